"""The base of every result model: what ``--json`` prints and what the API returns.

Field names are snake_case in Python and camelCase on the wire (``backupType``,
``sizeBytes``...): the original BackupManager contract, which the ERP's page reads.
Times are ISO 8601 in UTC with a ``Z``. One model serves every interface, so the CLI's
JSON and the API's can never drift apart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    PlainSerializer,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic.alias_generators import to_camel

from respaldo.catalog.serialize import format_time
from respaldo.phrases import Phrase

UtcTime = Annotated[datetime, PlainSerializer(format_time, return_type=str, when_used="json")]
"""A timezone-aware time, shown as ``2026-11-28T08:30:00Z``."""

IsoTime = Annotated[
    datetime, PlainSerializer(datetime.isoformat, return_type=str, when_used="json")
]
"""A time shown in its own offset, ``2026-11-28T08:30:00+00:00`` (prune's and rewind's
JSON have always shown times so)."""


def _keep_phrase(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    # Validation would copy a Phrase into a plain str, losing what the page translates.
    return value if isinstance(value, Phrase) else handler(value)


Said = Annotated[str, WrapValidator(_keep_phrase)]
"""Text respaldo words itself: on the wire the English text, as a ``str``; a
:class:`~respaldo.phrases.Phrase` given to it stays one, so that the page can say it in
its own language."""


class ResultModel(BaseModel):
    """A typed, immutable result; :meth:`to_json` is its wire form."""

    # Each field's docstring is its description in the API's OpenAPI schema.
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        use_attribute_docstrings=True,
    )

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data with the camelCase field names, in declaration order."""
        return self.model_dump(mode="json", by_alias=True)


def to_json_list(results: list[Any]) -> list[dict[str, Any]]:
    """The wire form of a list of result models."""
    return [result.to_json() for result in results]

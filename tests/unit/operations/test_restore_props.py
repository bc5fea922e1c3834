"""The restore's reading of the backed-up database's own properties: a comment or a
setting in no valid encoding (a SQL_ASCII database's) is a clear refusal, not a bug report."""

from __future__ import annotations

from typing import Any

import pytest

from respaldo.errors import RestoreError
from respaldo.operations import restore_props

pytestmark = pytest.mark.unit


def test_properties_in_no_valid_encoding_are_refused_saying_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def undecodable(*args: Any, **kwargs: Any) -> Any:
        return b"COMMENT ON DATABASE erp IS 'compa\xf1\xeda';".decode("utf-8")

    monkeypatch.setattr(restore_props, "read_properties", undecodable)
    with pytest.raises(RestoreError) as caught:
        restore_props.read_database_properties(lambda: None, no_owner=False)  # type: ignore[arg-type,return-value]
    message = str(caught.value)
    assert "comment or settings) are not valid utf-8" in message
    assert "invalid continuation byte at byte 33" in message
    assert caught.value.hint and "take a new backup" in caught.value.hint
    assert "report" not in caught.value.hint

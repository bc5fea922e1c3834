"""docs/monitoring.md's ``--json`` section names every field of the status report.

Scripts and the ERP read ``respaldo status --json`` (and ``GET /admin/status``) by these
names: a field added to the report without a word in the page (``count`` was) is one no
reader knows of, and a name the page gives that the report lacks breaks a script.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from respaldo.operations.status import DatabaseStatus, StatusItem, StatusReport
from respaldo.operations.status_server import ArchiveView

pytestmark = pytest.mark.unit

PAGE = Path(__file__).resolve().parents[2] / "docs" / "monitoring.md"


def _section() -> str:
    text = PAGE.read_text()
    start = text.index("## `--json`")
    return text[start : text.index("\n## ", start + 1)]


def _names(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def test_the_json_section_names_every_field() -> None:
    named = set(re.findall(r"`([a-zA-Z]+)`", _section()))
    fields = set().union(*(_names(m) for m in (StatusReport, DatabaseStatus, StatusItem)))
    fields |= _names(ArchiveView)
    assert "ageSeconds" in fields  # the aliases, as the JSON spells them
    missing = sorted(fields - named)
    assert not missing, f"docs/monitoring.md's --json section does not name {missing}"

"""A job run from its catalog row runs as it was asked for: its parameters reach the
operation (a lost job's retry on another worker is run this way)."""

from __future__ import annotations

from typing import Any

import pytest

from respaldo.domain import BackupKind, JobKind, TriggeredBy
from respaldo.operations import scheduled

pytestmark = pytest.mark.unit


def test_a_queued_backup_keeps_its_pg_dump_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def backup_source(_ctx: Any, name: str, kind: BackupKind | None, **options: Any) -> str:
        seen.update(name=name, kind=kind, **options)
        return "done"

    monkeypatch.setattr(scheduled, "backup_source", backup_source)
    body, _ = scheduled._body(JobKind.BACKUP, "erp", {"type": "full", "jobs": 3}, TriggeredBy.CLI)
    assert body(None) == "done"  # type: ignore[arg-type]
    assert seen == {
        "name": "erp",
        "kind": BackupKind.FULL,
        "triggered_by": TriggeredBy.CLI,
        "reserved": None,
        "jobs": 3,
    }
    body, _ = scheduled._body(JobKind.BACKUP, "erp", {"type": "full"}, TriggeredBy.SCHEDULE)
    body(None)  # type: ignore[arg-type]
    assert seen["jobs"] is None

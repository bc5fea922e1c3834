"""A scheduled restore test and a scheduled cleanup are in the audit log, with their
schedule as the actor, as the same jobs asked for by a person are; a scheduled backup is
not. Each job is submitted and run the way the service runs it (the schedule's own
entry, ``run_queued``), against the logical tests' real PostgreSQL database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from respaldo.config import load_settings
from respaldo.domain import JobStatus
from respaldo.operations import jobs
from respaldo.operations.context import Context
from respaldo.operations.schedule import entries
from respaldo.operations.scheduled import run_queued
from tests.integration.logical.conftest import Respaldo

pytestmark = pytest.mark.integration


def _run_scheduled(respaldo: Respaldo, name: str) -> int:
    settings = load_settings(respaldo.config)
    (entry,) = [e for e in entries(settings, set()) if e.name == name]
    with Context.open(settings) as ctx:
        job = jobs.submit(ctx, entry.request())
        run_queued(ctx, job.id, on_conflict=JobStatus.SKIPPED)
        return job.id


def test_scheduled_restore_tests_and_cleanups_are_audited(respaldo: Respaldo) -> None:
    first = respaldo.backup()
    since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()

    drill = _run_scheduled(respaldo, "restore_test:erp")
    cleanup = _run_scheduled(respaldo, "cleanup")
    backup = _run_scheduled(respaldo, "full:erp")

    audit = respaldo.run("audit", "--json", "--since", since)
    assert audit.code == 0, str(audit)
    entries_ = [e for e in audit.json() if e["actor"].startswith("schedule:")]
    by_action = {e["action"]: e for e in entries_}
    assert set(by_action) == {"restore_test", "prune"}, entries_
    tested = by_action["restore_test"]
    assert tested["actor"] == "schedule:restore_test:erp"
    assert tested["target"] == first["id"]
    assert (tested["outcome"], tested["detail"]) == ("success", f"job {drill}")
    pruned = by_action["prune"]
    assert pruned["actor"] == "schedule:cleanup"
    assert (pruned["outcome"], pruned["detail"]) == ("success", f"job {cleanup}")
    assert f"job {backup}" not in str(entries_)

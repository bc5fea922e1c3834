"""Ids, limits and offsets beyond the 64-bit range the catalog stores: a job id typed
with too many digits is "no job", a page far past the end is empty. Binding such a number
raised OverflowError in SQLite: a 500 to the API, a traceback to ``respaldo jobs show``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from respaldo.api import create_app
from respaldo.catalog import DrillRuns, Jobs
from respaldo.config import Settings
from respaldo.domain import BackupKind, JobKind, TriggeredBy
from respaldo.errors import RecordNotFound
from respaldo.operations.context import Context
from respaldo.operations.listing import list_drills
from tests.unit.api.conftest import completed_backup

HUGE = [2**63, 10**23]


@pytest.mark.parametrize("number", HUGE)
def test_a_job_id_beyond_64_bits_is_no_job(
    settings: Settings, context: Context, admin: dict[str, str], number: int
) -> None:
    with context.catalog.begin() as session:
        Jobs(session).submit(
            JobKind.BACKUP, target="erp", triggered_by=TriggeredBy.CLI, requested_by="t"
        )
    with TestClient(create_app(settings, context), headers=admin) as client:
        for answer in (
            client.get(f"/admin/jobs/{number}"),
            client.post(f"/admin/jobs/{number}/cancel"),
        ):
            assert answer.status_code == 404, answer.text
            assert answer.json()["detail"] == f"no job {number}"
        # The largest id that fits is looked up as any other.
        assert client.get(f"/admin/jobs/{2**63 - 1}").status_code == 404
        assert client.get("/admin/jobs/1").status_code == 200


@pytest.mark.parametrize("number", HUGE)
def test_a_page_beyond_64_bits_is_empty(
    settings: Settings, context: Context, admin: dict[str, str], number: int
) -> None:
    made = completed_backup(context, "erp", BackupKind.FULL, datetime(2026, 12, 1, tzinfo=UTC))
    with TestClient(create_app(settings, context), headers=admin) as client:
        backups = client.get("/admin/backups", params={"offset": number})
        assert backups.status_code == 200, backups.text
        assert backups.json() == []
        assert backups.headers["X-Total-Count"] == "1"
        audit = client.get("/admin/audit", params={"offset": number})
        assert audit.status_code == 200, audit.text
        assert audit.json() == []
        # A small offset still pages as before.
        assert [b["id"] for b in client.get("/admin/backups").json()] == [made]


def test_the_catalog_takes_any_limit_and_finds_no_run_beyond_64_bits(context: Context) -> None:
    with context.catalog.begin() as session:
        Jobs(session).submit(
            JobKind.BACKUP, target="erp", triggered_by=TriggeredBy.CLI, requested_by="t"
        )
    with context.catalog.read() as session:
        assert len(Jobs(session).list(limit=10**23)) == 1
        with pytest.raises(RecordNotFound, match=f"no drill run {10**23}"):
            DrillRuns(session).get(10**23)
    assert list_drills(context, limit=10**23) == []

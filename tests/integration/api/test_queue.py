"""With a PostgreSQL catalog, what the API starts goes to the queue and a ``respaldo
worker`` process runs it (test_workers' site: the catalog a database of the test
cluster); the answer still comes at once, with the pending record and the job."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from respaldo.config import load_settings
from respaldo.domain import Role
from tests.integration.api.conftest import client
from tests.integration.logical.test_workers import Site, site  # noqa: F401
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def ended(api: TestClient, job_id: int) -> dict[str, Any] | None:
    job: dict[str, Any] = api.get(f"/admin/jobs/{job_id}").json()
    return job if job["status"] not in ("queued", "running") else None


def test_a_backup_and_a_restore_started_by_the_api_run_on_a_worker(site: Site) -> None:  # noqa: F811
    worker = site.worker("w1")
    with client(load_settings(site.config), Role.ADMIN, "erp-page") as api:
        created = api.post("/admin/backups", json={"type": "full", "database": "erp2"})
        assert created.status_code == 202, created.text
        record = created.json()
        assert record["status"] == "pending"
        wait_for("the backup", lambda: ended(api, record["jobId"]) is not None)
        job = ended(api, record["jobId"])
        assert job is not None
        assert (job["status"], job["queueName"], job["resultId"]) == (
            "completed",
            "default",
            record["id"],
        ), job
        assert job["workerPid"] == worker.pid
        (listed,) = api.get("/admin/backups", params={"database": "erp2"}).json()
        assert (listed["id"], listed["status"]) == (record["id"], "completed")

        restore = api.post(f"/admin/backups/{record['id']}/restore")
        assert restore.status_code == 202, restore.text
        wait_for("the restore", lambda: ended(api, restore.json()["jobId"]) is not None)
        done = ended(api, restore.json()["jobId"])
        assert done is not None and done["status"] == "completed", done
        assert done["workerPid"] == worker.pid

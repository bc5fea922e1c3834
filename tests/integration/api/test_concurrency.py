"""Readers are served while a backup runs (SQLite catalog): the backup is held inside
pg_dump by a lock the test holds, so a reader that waited for it would never answer."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from sample.cluster import TempCluster

from tests.integration.api.conftest import finished
from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.test_jobs import partitioned_table, pg_dump_waiting
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def test_concurrent_readers_are_served_while_a_backup_runs(
    api: TestClient, respaldo: Respaldo, pg: TempCluster
) -> None:
    partitioned_table(pg, respaldo.dbname)
    with pg.connect(respaldo.dbname, autocommit=False) as locker:
        locker.execute("LOCK TABLE ONLY public.bitacora IN ACCESS EXCLUSIVE MODE")
        created = api.post("/admin/backups", json={"type": "full"}).json()
        wait_for("pg_dump to wait on the lock", lambda: pg_dump_waiting(pg, respaldo.dbname))

        def read(_: int) -> tuple[int, str, int, str]:
            listed = api.get("/admin/backups")
            job = api.get(f"/admin/jobs/{created['jobId']}")
            return (
                listed.status_code,
                listed.json()[0]["status"],
                job.status_code,
                job.json()["status"],
            )

        with ThreadPoolExecutor(4) as readers:
            answers = list(readers.map(read, range(8)))
        assert answers == [(200, "in_progress", 200, "running")] * 8
        locker.rollback()
    assert finished(api, created["jobId"])["status"] == "completed"
    assert api.get("/admin/backups").json()[0]["status"] == "completed"

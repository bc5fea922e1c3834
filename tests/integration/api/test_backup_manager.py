"""The specification's BackupManager page, replayed against the API: list, create a full
backup, restore it with the confirm dialog's answer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sample.cluster import TempCluster

from tests.integration.api.conftest import client, finished
from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import databases, table_checksums
from tests.integration.logical.test_replace import _spoil

pytestmark = pytest.mark.integration


def test_a_backup_created_by_post_runs_to_completion_and_appears_in_get(
    api: TestClient, respaldo: Respaldo
) -> None:
    assert api.get("/admin/backups").json() == []
    created = api.post("/admin/backups", json={"type": "full"})
    assert created.status_code == 202, created.text
    record = created.json()
    assert record["status"] in ("pending", "in_progress")
    assert (record["backupType"], record["databaseName"]) == ("full", "erp")
    job = finished(api, record["jobId"])
    assert (job["status"], job["resultId"]) == ("completed", record["id"]), job
    listed = api.get("/admin/backups")
    assert listed.status_code == 200
    (shown,) = listed.json()
    assert shown["id"] == record["id"]
    assert shown["status"] == "completed"
    cli = respaldo.run("list", "--json")
    assert listed.json() == cli.json()
    assert listed.headers["X-Total-Count"] == "1"


def _with_hooks(respaldo: Respaldo, log: Path) -> Respaldo:
    """The test's config with stop and start hooks on erp that write to ``log``."""
    text = respaldo.config.read_text()
    anchor = 'schema_version_query = "SELECT max(version) FROM public.schema_migrations"\n'
    hooks = (
        f'pre_restore_hook = ["sh", "-c", "echo stop >> {log}"]\n'
        f'post_restore_hook = ["sh", "-c", "echo start >> {log}"]\n'
    )
    assert text.count(anchor) == 1
    config = respaldo.tmp / "hooked.toml"
    config.write_text(text.replace(anchor, anchor + hooks))
    return dataclasses.replace(respaldo, config=config)


def test_restore_over_the_live_database_needs_its_name_and_runs_the_stop_and_start_hooks(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    log = respaldo.tmp / "hooks.log"
    hooked = _with_hooks(respaldo, log)
    with client(hooked.settings()) as api:
        created = api.post("/admin/backups", json={"type": "full"}).json()
        assert finished(api, created["jobId"])["status"] == "completed"
        backed_up = table_checksums(pg, respaldo.dbname)
        _spoil(pg, respaldo.dbname)
        spoiled = table_checksums(pg, respaldo.dbname)
        before = (databases(pg), api.get("/admin/jobs").json())

        wrong = api.post(
            f"/admin/backups/{created['id']}/restore", json={"replace": True, "confirm": "crm"}
        )
        assert wrong.status_code == 422, wrong.text
        assert wrong.headers["content-type"] == "application/problem+json"
        problem = wrong.json()
        assert problem["detail"].startswith("confirm: replacing database ")
        assert "erp" in problem["hint"]
        missing = api.post(f"/admin/backups/{created['id']}/restore", json={"replace": True})
        assert missing.status_code == 422, missing.text
        # Nothing changed: no job, no database, the live one as it was, no hook ran.
        assert (databases(pg), api.get("/admin/jobs").json()) == before
        assert table_checksums(pg, respaldo.dbname) == spoiled
        assert not log.exists()

        started = api.post(
            f"/admin/backups/{created['id']}/restore", json={"replace": True, "confirm": "erp"}
        )
        assert started.status_code == 202, started.text
        answer = started.json()
        assert set(answer) >= {"message", "jobId"}
        assert "the application is stopped" in answer["message"]
        job = finished(api, answer["jobId"])
        assert (job["kind"], job["status"], job["target"]) == (
            "restore",
            "completed",
            respaldo.dbname,
        ), job
    assert table_checksums(pg, respaldo.dbname) == backed_up
    assert log.read_text().split() == ["stop", "start"]


def test_restore_goes_into_a_new_database_by_default(
    api: TestClient, respaldo: Respaldo, pg: TempCluster
) -> None:
    created = api.post("/admin/backups", json={"type": "full", "database": "erp"}).json()
    assert finished(api, created["jobId"])["status"] == "completed"
    backed_up = table_checksums(pg, respaldo.dbname)
    _spoil(pg, respaldo.dbname)
    started = api.post(f"/admin/backups/{created['id']}/restore")
    assert started.status_code == 202, started.text
    target = started.json()["targetDatabase"]
    assert target.startswith(f"{respaldo.dbname}_restored_")
    assert finished(api, started.json()["jobId"])["status"] == "completed"
    assert table_checksums(pg, target) == backed_up
    assert table_checksums(pg, respaldo.dbname) != backed_up  # the live one untouched


def test_a_snapshot_is_a_pinned_full_backup_with_a_snapshot_id(api: TestClient) -> None:
    created = api.post("/admin/backups", json={"type": "snapshot"})
    assert created.status_code == 202, created.text
    assert (created.json()["backupType"], created.json()["pinned"]) == ("full", True)
    assert finished(api, created.json()["jobId"])["status"] == "completed"
    detail = api.get(f"/admin/backups/{created.json()['id']}").json()
    assert detail["backup"]["pinned"] is True
    assert detail["manifest"]["snapshot"]

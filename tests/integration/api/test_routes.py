"""The routes beyond the BackupManager contract, on real backups: a restore test and its
checks, one backup in full, deletion refused as retention refuses it, pinning, the
retention preview, the databases, and the audit entries of each change."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from respaldo.domain import Role
from tests.integration.api.conftest import client, finished
from tests.integration.logical.conftest import WRONG_PASSWORD, Respaldo

pytestmark = pytest.mark.integration


def backup(api: TestClient, **body: str) -> str:
    created = api.post("/admin/backups", json={"type": "full", **body})
    assert created.status_code == 202, created.text
    job = finished(api, created.json()["jobId"])
    assert job["status"] == "completed", job
    backup_id: str = created.json()["id"]
    return backup_id


def test_restore_test_detail_delete_pin_retention_and_their_audit(respaldo: Respaldo) -> None:
    settings = respaldo.settings()
    with (
        client(settings, Role.OPERATOR, "ops") as ops,
        client(settings, Role.ADMIN, "boss") as boss,
    ):
        older, newer = backup(ops), backup(ops)

        tested = boss.post("/admin/backups/test")  # the newest backup of the first database
        assert tested.status_code == 202, tested.text
        assert newer in tested.json()["message"]
        assert finished(boss, tested.json()["jobId"])["status"] == "completed"
        (run,) = boss.get("/admin/restore-tests").json()
        assert (run["backupId"], run["status"]) == (newer, "passed")
        assert {c["name"] for c in run["checks"]} >= {"restore", "row counts"}

        detail = boss.get(f"/admin/backups/{newer}").json()
        assert detail["backup"]["isVerified"] is True
        assert [s["name"] for s in detail["manifest"]["streams"]] == ["dump", "globals"]
        assert detail["manifest"]["tables"] > 0
        # The sample's documents are large objects, recorded with the backup.
        assert detail["manifest"]["largeObjects"] > 0
        assert detail["manifest"]["largeObjectBytes"] > 0
        assert [(c["repository"], c["role"]) for c in detail["copies"]] == [("local", "primary")]
        assert [t["runId"] for t in detail["restoreTests"]] == [run["runId"]]

        refused = boss.delete(f"/admin/backups/{newer}")
        assert refused.status_code == 409, refused.text
        assert "newest completed" in refused.json()["detail"]
        assert boss.post(f"/admin/backups/{older}/pin").json()["pinned"] is True
        pinned = boss.delete(f"/admin/backups/{older}")
        assert (pinned.status_code, pinned.json()["hint"]) == (409, "unpin it first")
        preview = {d["id"]: d for d in boss.get("/admin/retention").json()["decisions"]}
        assert preview[older]["rules"][0] == "pinned"
        assert "newest completed" in preview[newer]["rules"]
        assert boss.post(f"/admin/backups/{older}/unpin").json()["pinned"] is False
        deleted = boss.delete(f"/admin/backups/{older}")
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["manifestsDeletedFrom"] == ["local"]
        assert [b["id"] for b in boss.get("/admin/backups").json()] == [newer]
        assert older not in respaldo.repository().backup_ids()

        (erp,) = [d for d in boss.get("/admin/databases").json() if d["name"] == "erp"]
        assert erp["lastBackup"]["id"] == newer
        assert [(n["kind"], n["backupId"]) for n in erp["newestCompleted"]] == [("full", newer)]
        (rpo,) = [i for i in erp["status"]["items"] if i["key"] == "rpo:erp:full"]
        assert (rpo["level"], rpo["backupId"]) == ("green", newer)

        denied = ops.delete(f"/admin/backups/{newer}")
        assert denied.status_code == 403
        audit = boss.get("/admin/audit", params={"limit": 50}).json()
    seen = [
        (e["actor"], e["action"], e["target"], e["outcome"])
        for e in reversed(audit)
        if e["action"] not in ("login", "token.create")
    ]
    # A change that runs as a job: started, then how its job ended.
    assert seen == [
        ("token:ops", "backup.create", older, "success"),
        ("token:ops", "backup.create", older, "success"),
        ("token:ops", "backup.create", newer, "success"),
        ("token:ops", "backup.create", newer, "success"),
        ("token:boss", "restore_test", "newest backup", "success"),
        ("token:boss", "restore_test", newer, "success"),
        ("token:boss", "backup.delete", newer, "failure"),
        ("token:boss", "backup.pin", older, "success"),
        ("token:boss", "backup.delete", older, "failure"),
        ("token:boss", "backup.unpin", older, "success"),
        ("token:boss", "backup.delete", older, "success"),
        ("token:ops", "access", f"DELETE /admin/backups/{newer}", "denied"),
    ]


def test_a_failed_backup_shows_no_password(api: TestClient) -> None:
    created = api.post("/admin/backups", json={"type": "full", "database": "wrongpass"})
    assert created.status_code == 202, created.text
    job = finished(api, created.json()["jobId"])
    assert job["status"] == "failed"
    record = api.get(f"/admin/backups/{created.json()['id']}").json()["backup"]
    assert record["status"] == "failed" and "password authentication failed" in (
        record["errorMessage"] or ""
    )
    for answer in (api.get("/admin/jobs"), api.get("/admin/backups"), api.get("/admin/audit")):
        assert WRONG_PASSWORD not in answer.text


def test_the_retention_preview_says_when_prune_would_refuse_for_the_clock(
    respaldo: Respaldo,
) -> None:
    """Backups that stopped ten days ago (or a clock that far ahead): prune refuses to
    expire by age and deletes nothing (``[retention] clock_check_days``), while the
    preview of the API and the page said "expire" of the backups it kept, as if the
    nightly prune were deleting them. It now says the prune's refusal with them (the
    page: tests/integration/web/test_pages.py)."""
    settings = respaldo.settings()
    ids = [respaldo.backup()["id"] for _ in range(3)]
    stopped_ten_days_ago(respaldo, ids)
    with client(settings, Role.VIEWER, "viewer") as viewer:
        preview = viewer.get("/admin/retention").json()
        said = preview["refused"]
        assert said.startswith("prune refused, nothing was deleted: the clock says "), said
        assert "10 days after the newest backup completed" in said, said
        assert {d["id"]: d["decision"] for d in preview["decisions"]}[ids[0]] == "expire"
    refused = respaldo.run("prune")
    assert refused.code == 1 and "prune refused" in refused.err, refused
    assert set(respaldo.repository().backup_ids()) >= set(ids)


def stopped_ten_days_ago(respaldo: Respaldo, ids: list[str]) -> None:
    """Date backups ``ids`` (oldest first) 15, 12 and 10 days ago, each kept 7 days."""
    from datetime import UTC, datetime, timedelta

    from respaldo.catalog import BackupRecord, open_catalog

    catalog = open_catalog(respaldo.settings().catalog.url)
    try:
        with catalog.begin() as session:
            for backup_id, days in zip(ids, (15, 12, 10), strict=True):
                record = session.get(BackupRecord, backup_id)
                assert record is not None
                when = datetime.now(UTC) - timedelta(days=days)
                record.created_at = record.started_at = record.completed_at = when
                record.expires_at = when + timedelta(days=7)
    finally:
        catalog.close()

"""``GET /health``: 200 with the newest backups when all is well, 503 when not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from respaldo.api import create_app
from respaldo.config import Settings
from respaldo.domain import BackupKind
from respaldo.operations.context import Context
from tests.unit.api.conftest import completed_backup


def test_health_is_200_with_the_age_of_the_newest_backup_per_database_and_kind(
    settings: Settings, context: Context
) -> None:
    now = datetime.now(UTC)
    completed_backup(context, "erp", BackupKind.FULL, now - timedelta(days=2))
    newest = completed_backup(context, "erp", BackupKind.FULL, now - timedelta(hours=3))
    physical = completed_backup(context, "erp", BackupKind.INCREMENTAL, now - timedelta(hours=1))
    with TestClient(create_app(settings, context)) as client:
        response = client.get("/health")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True
    assert body["catalog"] == {"name": "catalog", "ok": True, "error": None}
    assert [r["name"] for r in body["repositories"]] == ["local", "offsite"]
    assert [(b["database"], b["kind"], b["backupId"]) for b in body["newestBackups"]] == [
        ("erp", "full", newest),
        ("erp", "incremental", physical),
    ]
    age = body["newestBackups"][0]["ageSeconds"]
    assert 3 * 3600 - 60 - 600 < age < 3 * 3600 + 600


def test_health_is_503_when_a_repository_is_gone(
    settings: Settings, context: Context, tmp_path: Path
) -> None:
    (tmp_path / "offsite" / "config").unlink()
    with TestClient(create_app(settings, context)) as client:
        response = client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["ok"] is False
    (offsite,) = [r for r in body["repositories"] if r["name"] == "offsite"]
    assert offsite["ok"] is False and offsite["error"]
    assert body["catalog"]["ok"] is True


def test_health_opens_its_own_context_without_one(settings: Settings, context: Context) -> None:
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").status_code == 200

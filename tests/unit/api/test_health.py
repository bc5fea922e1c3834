"""``GET /health``: 200 with the newest backups when all is well, 503 when not."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from respaldo.api import create_app
from respaldo.catalog import BackupRecords
from respaldo.config import Settings
from respaldo.domain import BackupKind, TriggeredBy
from respaldo.operations.context import Context
from respaldo.operations.repositories import init_repositories
from respaldo.repository import KdfParams

FAST_KDF = KdfParams(time_cost=1, memory_cost=8 * 1024, parallelism=1)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", "correct horse (test)")
    return Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        repositories=[
            {"name": "local", "url": f"file://{tmp_path / 'repo'}"},
            {"name": "offsite", "url": f"file://{tmp_path / 'offsite'}"},
        ],
        cache_dir=tmp_path / "cache",
    )


@pytest.fixture
def context(settings: Settings) -> Iterator[Context]:
    init_repositories(settings, kdf=FAST_KDF)
    with Context.open(settings, create=True) as opened:
        yield opened


def completed_backup(context: Context, database: str, kind: BackupKind, when: datetime) -> str:
    with context.catalog.begin() as session:
        records = BackupRecords(session)
        record = records.create_pending(
            kind=kind,
            repository="local",
            triggered_by=TriggeredBy.SCHEDULE,
            retention_days=7,
            database_name=database,
            now=when,
        )
        records.start(record.id, 1, now=when)
        records.complete(
            record.id,
            completed_at=when + timedelta(minutes=1),
            size_bytes=1,
            size_compressed=1,
            checksum="0" * 64,
            manifest=f"manifests/{record.id}",
        )
        return record.id


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

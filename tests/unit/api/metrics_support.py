"""What the metrics tests share: an installation with two databases and two local
repositories, catalog rows written through the catalog's own classes, and the parsed
exposition."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from respaldo.catalog import BackupRecords, DrillRuns, Jobs
from respaldo.config import Settings
from respaldo.domain import BackupKind, JobKind, JobStatus, TriggeredBy
from respaldo.operations.context import Context
from respaldo.operations.metrics import CONTENT_TYPE
from respaldo.operations.repositories import init_repositories
from respaldo.repository import KdfParams

FAST_KDF = KdfParams(time_cost=1, memory_cost=8 * 1024, parallelism=1)
T0 = datetime(2026, 11, 28, 8, 30, tzinfo=UTC)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def installation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings of two databases (erp, crm) and two local repositories (local, offsite)."""
    monkeypatch.setenv("RESPALDO_PASSPHRASE", "correct horse (test)")
    return Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        repositories=[
            {"name": "local", "url": f"file://{tmp_path / 'repo'}"},
            {"name": "offsite", "url": f"file://{tmp_path / 'offsite'}"},
        ],
        databases=[
            {"name": "erp", "dsn": "postgresql://u@127.0.0.1:1/erp"},
            {"name": "crm", "dsn": "postgresql://u@127.0.0.1:1/crm"},
        ],
        cache_dir=tmp_path / "cache",
    )


@contextmanager
def opened(settings: Settings) -> Iterator[Context]:
    """Its repositories and catalog created, and a context on them."""
    init_repositories(settings, kdf=FAST_KDF)
    with Context.open(settings, create=True) as context:
        yield context


def samples(text: str) -> Samples:
    """Every sample of an exposition, keyed by (sample name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CONTENT_TYPE
    return samples(response.text)


def backup(
    context: Context,
    kind: BackupKind,
    started: datetime,
    *,
    database: str = "erp",
    failed: bool = False,
    size: int = 1000,
    stored: int = 100,
) -> str:
    with context.catalog.begin() as session:
        records = BackupRecords(session)
        record = records.create_pending(
            kind=kind,
            repository="local",
            triggered_by=TriggeredBy.SCHEDULE,
            retention_days=7,
            database_name=database,
            now=started,
        )
        records.start(record.id, 1, now=started)
        if failed:
            records.fail(record.id, "connection refused", now=started + timedelta(seconds=5))
        else:
            records.complete(
                record.id,
                completed_at=started + timedelta(seconds=90),
                size_bytes=size,
                size_compressed=size // 2,
                stored_new_bytes=stored,
                checksum="0" * 64,
                manifest=f"manifests/{record.id}",
            )
        return record.id


def drill(
    context: Context,
    started: datetime,
    *,
    passed: bool,
    seconds: float,
    backup_id: str = "20261128T083000Z-00000000",
) -> None:
    with context.catalog.begin() as session:
        runs = DrillRuns(session)
        run = runs.start(backup_id, database="erp", scratch_name="s", now=started)
        runs.finish(
            run.id,
            passed=passed,
            restore_seconds=seconds,
            checks=[],
            now=started + timedelta(seconds=seconds + 3),
        )


def job(context: Context, kind: JobKind, status: JobStatus, **finish: object) -> None:
    with context.catalog.begin() as session:
        jobs = Jobs(session)
        row = jobs.submit(kind, target=None, triggered_by=TriggeredBy.CLI, requested_by="t")
        if status is JobStatus.QUEUED:
            return
        jobs.start(row.id, pid=1)
        if status is not JobStatus.RUNNING:
            jobs.finish(row.id, status, **finish)  # type: ignore[arg-type]


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))

"""A catalog with backups, restore tests and copies dated as a status test wants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from respaldo.catalog import BackupCopies, BackupRecords, DrillRuns
from respaldo.config import Settings
from respaldo.domain import BackupKind, CopyStatus, TriggeredBy
from respaldo.operations.context import Context

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
UNREACHABLE = "postgresql://respaldo@127.0.0.1:1/{name}"


def status_settings(tmp_path: Path, *, secondary: bool = False, **extra: Any) -> Settings:
    repositories = [{"name": "local", "url": f"file://{tmp_path / 'repo'}"}]
    if secondary:
        repositories.append({"name": "offsite", "url": f"file://{tmp_path / 'offsite'}"})
    values: dict[str, Any] = {
        "catalog": {"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        "repositories": repositories,
        "databases": [{"name": "erp", "dsn": UNREACHABLE.format(name="erp")}],
        "cache_dir": tmp_path / "cache",
    }
    values.update(extra)
    return Settings(**values)


def backup(
    ctx: Context,
    completed: datetime,
    *,
    kind: BackupKind = BackupKind.FULL,
    database: str = "erp",
    failed: str | None = None,
    size: int = 1,
    parent: str | None = None,
) -> str:
    """A backup that completed (or failed with ``failed``) at ``completed``, of ``size``
    plaintext bytes, incremental on ``parent`` if given."""
    started = completed - timedelta(minutes=5)
    with ctx.catalog.begin() as session:
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
        if failed is not None:
            records.fail(record.id, failed, now=completed)
        else:
            records.complete(
                record.id,
                completed_at=completed,
                size_bytes=size,
                size_compressed=1,
                checksum="0" * 64,
                manifest=f"manifests/{record.id}",
                parent_id=parent,
            )
        return record.id


def drill(
    ctx: Context, backup_id: str, finished: datetime, *, passed: bool, database: str = "erp"
) -> None:
    with ctx.catalog.begin() as session:
        runs = DrillRuns(session)
        run = runs.start(
            backup_id,
            database=database,
            scratch_name="scratch",
            now=finished - timedelta(minutes=3),
        )
        runs.finish(
            run.id,
            passed=passed,
            restore_seconds=60.0,
            checks=[],
            error=None if passed else "row counts differ in 1 table",
            now=finished,
        )


def copied(ctx: Context, backup_id: str, when: datetime, *, error: str | None = None) -> None:
    status = CopyStatus.FAILED if error else CopyStatus.COMPLETED
    with ctx.catalog.begin() as session:
        BackupCopies(session).mark(backup_id, "offsite", status, error=error, now=when)

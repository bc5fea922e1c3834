"""What the catalog knows, as result models: ``list``, ``show`` and ``drills``.

Read in read-only sessions (:meth:`respaldo.catalog.Catalog.read`): listing never waits
for a running backup's write.
"""

from __future__ import annotations

from typing import Any

from respaldo.catalog import BackupRecord, BackupRecords, DrillRuns, checks_of
from respaldo.catalog.models import DrillRun
from respaldo.domain import BackupKind, BackupStatus, DrillStatus, TriggeredBy
from respaldo.operations.catalog_rebuild import backups_the_catalog_misses
from respaldo.operations.context import Context
from respaldo.operations.models import ResultModel, UtcTime


class BackupView(ResultModel):
    """One backup as ``list --json``, ``show --json`` and the API show it.

    The fields and their order are a contract: the original BackupManager ones
    (``id`` to ``schemaVersion``), then respaldo's additions. Worker bookkeeping (pid,
    host, heartbeat) is not shown.
    """

    id: str
    timestamp: UtcTime
    backup_type: BackupKind
    storage_path: str | None
    s3_url: str | None
    storage_tier: str | None
    size_bytes: int | None
    size_compressed: int | None
    checksum: str | None
    checksum_algorithm: str
    is_verified: bool
    verified_at: UtcTime | None
    status: BackupStatus
    started_at: UtcTime | None
    completed_at: UtcTime | None
    duration: float | None
    retention_days: int | None
    expires_at: UtcTime | None
    error_message: str | None
    database_version: str | None
    schema_version: str | None
    database_name: str | None
    repository: str
    manifest: str | None
    stored_new_bytes: int | None
    triggered_by: TriggeredBy | None
    pinned: bool
    tool_version: str | None

    @classmethod
    def from_record(cls, record: BackupRecord) -> BackupView:
        """The view of a catalog record (reads loaded attributes only)."""
        values: dict[str, Any] = {
            name: getattr(record, name) for name in cls.model_fields if name != "timestamp"
        }
        return cls(timestamp=record.created_at, **values)


class DrillCheckView(ResultModel):
    """One check of a restore test: what was checked, whether it passed, and how."""

    name: str
    ok: bool
    detail: str = ""


class DrillRunView(ResultModel):
    """One past restore test, as ``drills --json`` shows it."""

    run_id: int
    backup_id: str
    database: str | None
    status: DrillStatus
    started_at: UtcTime
    finished_at: UtcTime | None
    restore_seconds: float | None
    checks: list[DrillCheckView]
    error_message: str | None

    @classmethod
    def from_run(cls, run: DrillRun) -> DrillRunView:
        return cls(
            run_id=run.id,
            backup_id=run.backup_id,
            database=run.database_name,
            status=run.status,
            started_at=run.started_at,
            finished_at=run.finished_at,
            restore_seconds=run.restore_seconds,
            checks=[DrillCheckView.model_validate(c) for c in checks_of(run)],
            error_message=run.error_message,
        )


class BackupListing(ResultModel):
    """The backups asked for, newest first. ``unrecorded_in`` names the primary
    repository when the catalog holds no record at all but that repository holds backups
    (a new catalog, or the wrong one: 'catalog rebuild' records them)."""

    backups: list[BackupView]
    unrecorded_in: str | None = None


def list_backups(
    ctx: Context,
    *,
    database: str | None = None,
    kind: BackupKind | None = None,
    status: BackupStatus | None = None,
    limit: int | None = None,
) -> BackupListing:
    """Backups in the catalog, newest first, filtered by each argument given."""
    with ctx.catalog.read() as session:
        records = BackupRecords(session).list(
            database=database, kind=kind, status=status, limit=limit
        )
        views = [BackupView.from_record(r) for r in records]
    missed = backups_the_catalog_misses(ctx) if not views else None
    return BackupListing(backups=views, unrecorded_in=missed)


def show_backup(ctx: Context, backup_id: str) -> BackupView:
    """One backup's record. Raises RecordNotFound."""
    return BackupView.from_record(ctx.record(backup_id))


def list_drills(
    ctx: Context, *, backup_id: str | None = None, limit: int = 20
) -> list[DrillRunView]:
    """Past restore tests (of ``backup_id`` only, if given), newest first."""
    with ctx.catalog.read() as session:
        return [
            DrillRunView.from_run(r)
            for r in DrillRuns(session).list(backup_id=backup_id, limit=limit)
        ]

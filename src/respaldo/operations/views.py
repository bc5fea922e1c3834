"""Catalog records as result models: what ``--json`` prints and the API returns for a
backup (the original BackupManager contract) and for a restore test.

No SQLAlchemy object leaves the application layer: an operation that has a record
returns its view. This module imports no other operation, so that any may use it.
"""

from __future__ import annotations

from typing import Any

from respaldo.catalog import BackupRecord, checks_of
from respaldo.catalog.models import DrillRun
from respaldo.domain import BackupKind, BackupStatus, DrillStatus, TriggeredBy
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

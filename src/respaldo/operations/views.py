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
from respaldo.phrases import N_

KIND_WORDS = {
    BackupKind.FULL: N_("logical"),
    BackupKind.INCREMENTAL: N_("physical"),
    BackupKind.FILES: N_("files"),
    BackupKind.SNAPSHOT: N_("snapshot"),
}
"""What each kind of backup is called where respaldo names it to people: the CLI's lists
and status, the page's labels (capitalised there), as the status and the alerts say
"logical backup" and "physical backup". The values (full, incremental) stay the keys:
``--type``, ``backupType``, the metrics' kind label, ``rpo:erp:full``."""


def kind_word(kind: BackupKind | str) -> str:
    """``kind`` as :data:`KIND_WORDS` calls it (English); a value it does not know, as
    given."""
    try:
        return KIND_WORDS[BackupKind(kind)]
    except ValueError:
        return str(kind)


class BackupView(ResultModel):
    """One backup as ``list --json``, ``show --json`` and the API show it.

    The fields and their order are a contract: the original BackupManager ones
    (``id`` to ``schemaVersion``), then respaldo's additions. Worker bookkeeping (pid,
    host, heartbeat) is not shown.
    """

    id: str
    """The backup id: its UTC creation time and a random suffix."""
    timestamp: UtcTime
    """When the backup was created (its record made)."""
    backup_type: BackupKind
    """full (pg_dump), incremental (pg_basebackup), files or snapshot."""
    storage_path: str | None
    """Where the primary repository is (its location, never a secret)."""
    s3_url: str | None
    """The S3 URL of the backup, when the repository is on S3."""
    storage_tier: str | None
    """The S3 storage class, when known."""
    size_bytes: int | None
    """Bytes of the backup as the source produced them."""
    size_compressed: int | None
    """Bytes stored for it, compressed and encrypted, before deduplication."""
    checksum: str | None
    """SHA-256 of its main stream (the dump), checked on restore."""
    checksum_algorithm: str
    """The checksum's algorithm: sha256."""
    is_verified: bool
    """Whether the last verification or restore test of it passed."""
    verified_at: UtcTime | None
    """When it was last verified or restore-tested."""
    status: BackupStatus
    """pending, in_progress, completed or failed."""
    started_at: UtcTime | None
    """When the backup started running."""
    completed_at: UtcTime | None
    """When it completed or failed."""
    duration: float | None
    """Seconds from start to end."""
    retention_days: int | None
    """Days it is kept after completing, unless pinned."""
    expires_at: UtcTime | None
    """When retention may expire it (completedAt + retentionDays)."""
    error_message: str | None
    """Why it failed, or what a verification found wrong."""
    database_version: str | None
    """PostgreSQL version of the source server."""
    schema_version: str | None
    """The application's schema version (schema_version_query)."""
    database_name: str | None
    """The configured database (or file set) it is of."""
    repository: str
    """The configured repository it was written to (the primary)."""
    manifest: str | None
    """The name of its manifest in the repository."""
    stored_new_bytes: int | None
    """Bytes it added to the repository (new chunks only)."""
    triggered_by: TriggeredBy | None
    """Who started it: cli, schedule or api."""
    pinned: bool
    """Pinned backups are never expired by retention."""
    tool_version: str | None
    """The respaldo version that took it."""
    primary_deleted_at: UtcTime | None
    """When it was deleted from its primary repository (``repository``), by a prune that
    expired it or by hand, while a mirror that could not be reached kept it: its record
    stays until it is deleted there too (by a later prune that reaches that mirror, or by
    deleting it again). Not listed meanwhile, nor read, copied or verified in the
    primary. Null: the primary holds it."""

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
    """What was checked: restore, row counts, a validation query, amcheck."""
    ok: bool
    """Whether the check passed."""
    detail: str = ""
    """How it went, in words."""


class DrillRunView(ResultModel):
    """One past restore test, as ``drills --json`` shows it."""

    run_id: int
    """The restore test's id."""
    backup_id: str
    """The backup it tested."""
    database: str | None
    """The configured database the backup is of."""
    status: DrillStatus
    """running, passed or failed."""
    started_at: UtcTime
    """When the test started."""
    finished_at: UtcTime | None
    """When it ended."""
    restore_seconds: float | None
    """Seconds the restore took: the recovery time actually achievable."""
    checks: list[DrillCheckView]
    """Every check and its result."""
    error_message: str | None
    """Why the test failed, if it did."""

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

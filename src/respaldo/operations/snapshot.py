"""Pinned snapshots of everything configured, and pinning by hand.

``take_snapshot`` backs up every configured source at once: each database logically
(``full``; physically too with ``physical``) and each file set (``files``). Every one of
those backups is *pinned* (catalog ``pinned``): retention never expires it until a user
unpins it, e.g. after an ERP upgrade went well. They share a *snapshot id* (the same
form as a backup id), written into each manifest (``meta.snapshot``, ``meta.pinned``) so
that the group and the pin survive a catalog rebuild. A source that fails does not stop
the others; the result lists both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from respaldo import cancellation
from respaldo.catalog import BackupRecords
from respaldo.config import Settings
from respaldo.domain import BackupKind, TriggeredBy, new_backup_id
from respaldo.errors import ConfigError, InvalidInput, RespaldoError
from respaldo.operations.context import Context
from respaldo.operations.recorded import BackupResult

# Each kind of backup (logical, physical, files) is imported when a backup of that kind
# runs: a one-shot ``respaldo backup`` starts a process for one of them (start-up,
# docs/benchmarks.md).
from respaldo.operations.views import BackupView


@dataclass
class SnapshotResult:
    snapshot_id: str
    backups: list[BackupResult] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    """(source and kind, error message) of every backup that failed."""

    @property
    def ok(self) -> bool:
        return not self.failures


def take_snapshot(
    ctx: Context, *, physical: bool = False, triggered_by: TriggeredBy = TriggeredBy.CLI
) -> SnapshotResult:
    """Back up and pin every configured database and file set. Raises ConfigError if
    nothing is configured; failures of single sources are in the result."""
    settings = ctx.settings
    if not settings.databases and not settings.file_sets:
        raise ConfigError("nothing to snapshot: no databases and no file sets are configured")
    result = SnapshotResult(new_backup_id(datetime.now(UTC)))
    sid = result.snapshot_id
    jobs: list[tuple[str, BackupKind]] = [(db.name, BackupKind.FULL) for db in settings.databases]
    if physical:
        jobs += [(db.name, BackupKind.INCREMENTAL) for db in settings.databases]
    jobs += [(fs.name, BackupKind.FILES) for fs in settings.file_sets]
    from respaldo.operations.backup import backup_database
    from respaldo.operations.files_backup import backup_files
    from respaldo.operations.physical import backup_cluster

    for name, kind in jobs:
        try:
            if kind is BackupKind.FULL:
                backup = backup_database(ctx, name, triggered_by=triggered_by, snapshot=sid)
            elif kind is BackupKind.INCREMENTAL:
                backup = backup_cluster(ctx, name, triggered_by=triggered_by, snapshot=sid)
            else:
                backup = backup_files(ctx, name, triggered_by=triggered_by, snapshot=sid)
        except RespaldoError as exc:
            result.failures.append((f"{name} ({kind.value})", str(exc)))
            continue
        result.backups.append(backup)
        if backup.signal is not None:
            # It completed before the signal took effect; the snapshot stops there.
            cancellation.raise_taken(backup.signal)
    return result


def set_pinned(ctx: Context, backup_id: str, pinned: bool) -> BackupView:
    """Pin or unpin a backup in the catalog; idempotent. Raises RecordNotFound,
    InvalidBackupId."""
    with ctx.catalog.begin() as session:
        record = BackupRecords(session).get(backup_id)
        record.pinned = pinned
        session.flush()
        return BackupView.from_record(record)


@dataclass(frozen=True)
class BackupPlan:
    """What :func:`backup_source` will take: ``kind`` as asked (``snapshot`` included),
    ``recorded_kind`` as its record will say, and its record's retention and pin."""

    source: str
    kind: BackupKind
    recorded_kind: BackupKind
    retention_days: int
    pinned: bool


def plan_backup(settings: Settings, name: str, kind: BackupKind | None = None) -> BackupPlan:
    """Check that ``name`` can be backed up as ``kind`` and say how (see
    :func:`backup_source`). Raises ConfigError."""
    is_db = any(d.name == name for d in settings.databases)
    is_files = any(f.name == name for f in settings.file_sets)
    if not is_db and not is_files:
        known = [d.name for d in settings.databases] + [f.name for f in settings.file_sets]
        raise ConfigError(
            f"{name!r} is neither a configured database nor a file set",
            hint=f"configured: {', '.join(known) or 'none'}",
        )
    if kind is None:
        kind = BackupKind.FULL if is_db else BackupKind.FILES
    if kind is BackupKind.FILES:
        if not is_files:
            raise ConfigError(f"{name!r} is not a configured file set")
        days = settings.file_set(name).retention_days
        return BackupPlan(name, kind, kind, days, False)
    if not is_db:
        raise ConfigError(f"{name!r} is a file set: its backups are of type files")
    days = settings.database(name).retention_days
    # A snapshot of one database is what 'respaldo snapshot' takes of each: a pinned
    # full backup carrying a snapshot id.
    recorded = BackupKind.FULL if kind is BackupKind.SNAPSHOT else kind
    return BackupPlan(name, kind, recorded, days, kind is BackupKind.SNAPSHOT)


def backup_source(
    ctx: Context,
    name: str,
    kind: BackupKind | None = None,
    *,
    triggered_by: TriggeredBy = TriggeredBy.CLI,
    reserved: str | None = None,
    jobs: int | None = None,
) -> BackupResult:
    """Back up the configured database or file set ``name``.

    ``kind`` defaults to ``full`` for a database and ``files`` for a file set; a name
    that is both needs it. ``snapshot`` takes a pinned full backup with a snapshot id of
    one database (``respaldo snapshot`` takes one of every source). ``reserved`` is the
    id of a pending record made for it (see
    :func:`~respaldo.operations.recorded.reserve_record`). ``jobs``: pg_dump workers of a
    logical backup (default: the database's ``dump_jobs``). Raises ConfigError for an
    unknown name or a kind that does not fit, InvalidInput for ``jobs`` out of range or
    with a backup that is not logical, and whatever the backup raises.
    """
    if jobs is not None:
        from respaldo.operations.pardump import check_jobs

        check_jobs(jobs)
    plan = plan_backup(ctx.settings, name, kind)
    if jobs is not None and plan.recorded_kind is not BackupKind.FULL:
        raise InvalidInput(
            "jobs",
            f"is for logical (full) backups, not {plan.kind.value} ones",
            hint="leave it out, or back up a configured database with --type full",
        )
    if plan.kind is BackupKind.FILES:
        from respaldo.operations.files_backup import backup_files

        return backup_files(ctx, name, triggered_by=triggered_by, reserved=reserved)
    if plan.kind is BackupKind.INCREMENTAL:
        from respaldo.operations.physical import backup_cluster

        return backup_cluster(ctx, name, triggered_by=triggered_by, reserved=reserved)
    from respaldo.operations.backup import backup_database

    snapshot = new_backup_id(datetime.now(UTC)) if plan.kind is BackupKind.SNAPSHOT else None
    return backup_database(
        ctx, name, triggered_by=triggered_by, snapshot=snapshot, reserved=reserved, jobs=jobs
    )

"""The life of one backup in the catalog, shared by every kind of backup.

:func:`recorded_backup` is what every kind of backup (logical, physical, files) does
around its own work: a ``pending`` record that names the job it runs in, ``in_progress``
with this pid, the caller's body (which writes the streams and commits the manifest), then
``completed`` with the writer's figures, or ``failed`` with the error's message, and
finally copies to the secondary repositories.

The record has no lease of its own: the job's lease says the backup is alive, and a
record left in progress by a job that ended (its process died and the job lapsed) is
settled at the next start (:mod:`respaldo.operations.reconcile`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from respaldo import cancellation
from respaldo.catalog import BackupRecord, BackupRecords
from respaldo.domain import BackupKind, TriggeredBy
from respaldo.operations.context import Context, current_pid
from respaldo.operations.copy import CopyOutcome, replicate
from respaldo.operations.jobs import current_job, note_result
from respaldo.operations.views import BackupView
from respaldo.repository import Manifest, Repository, WriteStats

Reporter = Callable[[int], None]


@dataclass(frozen=True)
class BackupResult:
    record: BackupRecord
    manifest: Manifest
    stats: WriteStats
    copies: list[CopyOutcome]

    @property
    def view(self) -> BackupView:
        """The backup's record as ``backup --json`` prints it and the API returns it."""
        return BackupView.from_record(self.record)

    @property
    def warnings(self) -> list[str]:
        """What the backup noted as not quite right (in its manifest)."""
        return [str(w) for w in self.manifest.meta.get("warnings") or []]


class Heartbeat:
    """Progress callbacks for a backup's streams. Each report goes to the job's progress
    (which its lease stores, and where a cancelled job raises JobCancelled)."""

    def __init__(self, ctx: Context, backup_id: str) -> None:
        self.ctx = ctx
        self.backup_id = backup_id

    def phase(self, name: str) -> Reporter:
        def report(done: int) -> None:
            self.ctx.progress(name, done, None)

        return report


Body = Callable[[Repository, str, datetime, Heartbeat], tuple[Manifest, WriteStats]]
"""``body(repository, backup_id, started_at, heartbeat)`` -> (committed manifest, stats)."""


def recorded_backup(
    ctx: Context,
    *,
    kind: BackupKind,
    source: str,
    retention_days: int | None,
    triggered_by: TriggeredBy,
    pinned: bool,
    body: Body,
) -> BackupResult:
    """Run ``body`` as backup of ``kind`` of ``source``, recorded in the catalog.

    The record's checksum is the SHA-256 of the manifest's first stream. Any exception
    of ``body`` fails the record (message without secrets: the layers below scrub them)
    and is re-raised.
    """
    repo_settings = ctx.settings.repository()
    repo = ctx.repository()
    with ctx.catalog.begin() as session:
        record = BackupRecords(session).create_pending(
            kind=kind,
            repository=repo_settings.name,
            triggered_by=triggered_by,
            retention_days=retention_days,
            database_name=source,
            storage_path=repo.storage.location,
            pinned=pinned,
            job_id=current_job(),
        )
        BackupRecords(session).start(record.id, current_pid())
        note_result(session, record.id)
    backup_id = record.id
    try:
        manifest, stats = body(
            repo, backup_id, record.started_at or datetime.now(UTC), Heartbeat(ctx, backup_id)
        )
    except BaseException as exc:
        with ctx.catalog.begin() as session:
            BackupRecords(session).fail(backup_id, _failure(exc))
        raise
    with ctx.catalog.begin() as session:
        record = BackupRecords(session).complete(
            backup_id,
            completed_at=manifest.completed_at,
            size_bytes=stats.size_bytes,
            size_compressed=stats.size_compressed,
            stored_new_bytes=stats.stored_bytes,
            checksum=manifest.streams[0].sha256,
            manifest=f"manifests/{backup_id}",
            database_version=manifest.meta.get("server_version"),
            schema_version=manifest.meta.get("schema_version"),
            parent_id=manifest.meta.get("incremental_of"),
        )
        if stats.unconfirmed_chunks:
            # Verification quarantined copies this backup had deduplicated against while
            # it ran: it is complete but not known-good, and must not count as good.
            record = BackupRecords(session).set_verified(
                backup_id,
                manifest.completed_at,
                verified=False,
                problem=unconfirmed_problem(stats.unconfirmed_chunks),
            )
    copies = replicate(ctx, repo)
    with ctx.catalog.begin() as session:
        record = BackupRecords(session).get(backup_id)
    return BackupResult(record, manifest, stats, copies)


def _failure(exc: BaseException) -> str:
    """The record's reason. A cancelled job's backup says it was cancelled: cancelling
    kills the child program, and what the body then raises is often the child's death
    ("pg_basebackup was killed by signal 9"), which is not why the backup ended."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    token = cancellation.current()
    if token is not None and token.cancelled:
        return f"cancelled: {token.reason}" if token.reason else "cancelled"
    return str(exc) or type(exc).__name__


def unconfirmed_problem(chunks: int) -> str:
    return (
        f"not known-good: references {chunks} chunks that verification found damaged while "
        "the backup ran; run 'respaldo repair', or take a new backup"
    )

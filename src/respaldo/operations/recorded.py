"""The life of one backup in the catalog, shared by every kind of backup.

:func:`recorded_backup` is what every kind of backup (logical, physical, files) does
around its own work: a ``pending`` record that names the job it runs in, ``in_progress``
with this pid, the primary repository opened and the caller's body (which checks the
source, writes the streams and commits the manifest) — so that any failure of either is a
failed backup record, never a failure that only the job knows of — then
``completed`` with the writer's figures, or ``failed`` with the error's message, and
finally copies to the secondary repositories (the backups, then the archived WAL).

Once the manifest is being written the backup exists: a signal (SIGTERM, SIGHUP, Ctrl-C)
from there is held until the record says ``completed``, and then ends the backup there,
completed (:func:`respaldo.cancellation.committing`; the copies are left to the next
backup); a signal during the copies ends it so too. The result's ``signal`` says so.

The record has no lease of its own: the job's lease says the backup is alive, and a
record left in progress by a job that ended (its process died and the job lapsed) is
settled at the next start (:mod:`respaldo.operations.reconcile`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from respaldo import cancellation
from respaldo.catalog import BackupRecord, BackupRecords, this_host
from respaldo.domain import BackupKind, BackupStatus, TriggeredBy
from respaldo.errors import InvalidInput
from respaldo.operations.context import Context, current_pid
from respaldo.operations.copy import (
    CopyOutcome,
    WalCopyOutcome,
    replicate,
    replicate_wal,
    secondaries,
)
from respaldo.operations.jobs import current_job, note_result
from respaldo.operations.lost_packs import mark_lost_packs
from respaldo.operations.scrub import Scrubber
from respaldo.operations.views import BackupView
from respaldo.phrases import N_, counted
from respaldo.repository import Manifest, Repository, WriteStats
from respaldo.repository.pack_check import LostPacks

log = logging.getLogger(__name__)

Reporter = Callable[[int], None]


@dataclass(frozen=True)
class BackupResult:
    record: BackupRecord
    manifest: Manifest
    stats: WriteStats
    copies: list[CopyOutcome]
    wal_copies: list[WalCopyOutcome] = field(default_factory=list)
    """The archived WAL copied to each secondary after the backups."""
    signal: str | None = None
    """A signal (SIGTERM, SIGHUP, Ctrl-C: its job reason) that came once the manifest was
    being written: the backup completed before it took effect, and ended there."""
    copies_left: bool = False
    """The copies to the secondaries were not made (or not all) for that signal."""

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
    reserved: str | None = None,
) -> BackupResult:
    """Run ``body`` as backup of ``kind`` of ``source``, recorded in the catalog.

    ``reserved`` is the id of a ``pending`` record made beforehand by
    :func:`reserve_record` (an API request answers with it before the job runs): it is
    started instead of a new one. The record's checksum is the SHA-256 of the manifest's
    first stream. Any exception of ``body`` fails the record (message without secrets:
    the layers below scrub them, and the scrubber of operations.scrub removes any secret
    this process loaded that their text still echoes) and is re-raised.
    """
    with ctx.catalog.begin() as session:
        if reserved is None:
            # Before the repository is opened: one that does not open (S3 down, a disk
            # not mounted) fails this record, so the failure shows where every other
            # backup failure does (status, metrics, the page), not only in the job.
            record = _pending(
                session,
                ctx,
                None,
                kind,
                source,
                retention_days,
                triggered_by,
                pinned,
                job_id=current_job(),
            )
        else:
            record = BackupRecords(session).get(reserved)
            if (record.backup_type, record.database_name) != (kind, source):
                raise InvalidInput(
                    "reserved",
                    f"backup {reserved} was reserved for a {record.backup_type.value} backup "
                    f"of {record.database_name}, not a {kind.value} backup of {source}",
                )
            record.pinned = record.pinned or pinned
            record.job_id = record.job_id or current_job()
        BackupRecords(session).start(record.id, current_pid())
        note_result(session, record.id)
    backup_id = record.id
    # The record's duration, on the monotonic clock (BackupRecords.complete).
    steady = time.monotonic()
    # A signal once the manifest is being written (BackupWriter.commit) is held until the
    # record says completed, and then ends the backup there, completed: the job, the
    # record, the exit status and the alerts all say so (cancellation.committing).
    with cancellation.committing() as committed:
        try:
            repo = ctx.repository()
            manifest, stats = body(
                repo, backup_id, record.started_at or datetime.now(UTC), Heartbeat(ctx, backup_id)
            )
        except BaseException as exc:
            if committed.passed and isinstance(exc, KeyboardInterrupt):
                # A second signal while the manifest was written: it may stand, so the
                # record is left in progress for the next start to complete from it, or
                # fail if it is not there (operations/reconcile.py).
                log.warning(
                    "backup %s stopped while its manifest was written; the next respaldo "
                    "command completes its record if the manifest stands, or fails it",
                    backup_id,
                )
                raise
            with ctx.catalog.begin() as session:
                BackupRecords(session).fail(
                    backup_id,
                    Scrubber(ctx.settings)(_failure(exc)),
                    duration=time.monotonic() - steady,
                )
            if isinstance(exc, LostPacks):
                # Packs it deduplicated against are gone: the earlier backups that use
                # them cannot restore either, and must not stay good until a verify.
                # After the record: it reads manifests, and a signal meanwhile must not
                # leave this backup in progress.
                mark_lost_packs(ctx, repo, ctx.settings.repository().name, exc)
            raise
        record = _complete(ctx, repo, backup_id, manifest, stats, time.monotonic() - steady)
    copies: list[CopyOutcome] = []
    wal_copies: list[WalCopyOutcome] = []
    if committed.signal is None:
        try:
            copies = replicate(ctx, repo)
            wal_copies = replicate_wal(ctx, repo)
        except KeyboardInterrupt as exc:
            # The backup stands: the copies are left to the next backup (or copy --all).
            committed.take(exc)
    with ctx.catalog.begin() as session:
        record = BackupRecords(session).get(backup_id)
    late = committed.signal
    if late is not None:
        log.warning("backup %s completed before the signal took effect (%s)", backup_id, late)
    return BackupResult(
        record,
        manifest,
        stats,
        copies,
        wal_copies,
        signal=late,
        copies_left=late is not None and bool(secondaries(ctx.settings)),
    )


def _complete(
    ctx: Context,
    repo: Repository,
    backup_id: str,
    manifest: Manifest,
    stats: WriteStats,
    duration: float,
) -> BackupRecord:
    with ctx.catalog.begin() as session:
        record = BackupRecords(session).complete(
            backup_id,
            completed_at=manifest.completed_at,
            size_bytes=stats.size_bytes,
            size_compressed=stats.size_compressed,
            stored_new_bytes=stats.stored_bytes,
            checksum=manifest.streams[0].sha256,
            manifest=f"manifests/{backup_id}",
            storage_path=repo.storage.location,
            database_version=manifest.meta.get("server_version"),
            schema_version=manifest.meta.get("schema_version"),
            parent_id=manifest.meta.get("incremental_of"),
            source=backup_source(manifest.meta),
            duration=duration,
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
        return record


def backup_source(meta: dict[str, Any]) -> str | None:
    """``<system identifier>/<database>`` of the server a logical backup was read from
    (its manifest's meta), None for a manifest that does not name both."""
    system, dbname = meta.get("system_identifier"), meta.get("dbname")
    if system is None or dbname is None:
        return None
    return f"{system}/{dbname}"[:160]


def _failure(exc: BaseException) -> str:
    """The record's reason. A cancelled job's backup says it was cancelled: cancelling
    kills the child program, and what the body then raises is often the child's death
    ("pg_basebackup was killed by signal 9"), which is not why the backup ended."""
    if isinstance(exc, KeyboardInterrupt):
        return str(exc) or "interrupted"  # SIGTERM's and SIGHUP's name the signal
    token = cancellation.current()
    if token is not None and token.cancelled:
        return f"cancelled: {token.reason}" if token.reason else "cancelled"
    return str(exc) or type(exc).__name__


def reserve_record(
    ctx: Context,
    *,
    kind: BackupKind,
    source: str,
    retention_days: int | None,
    triggered_by: TriggeredBy,
    pinned: bool = False,
) -> BackupView:
    """A ``pending`` record for a backup that a job will take (``reserved`` of
    :func:`recorded_backup`), owned by this process: if it dies before the job starts
    the record, the next process that opens the catalog fails it."""
    repo = ctx.repository()
    with ctx.catalog.begin() as session:
        record = _pending(session, ctx, repo, kind, source, retention_days, triggered_by, pinned)
        # No job yet: the record falls back to this process until its job starts it
        # (then it follows the job), so that it is failed if this process dies first.
        record.worker_pid, record.worker_host = current_pid(), this_host()
        session.flush()
        return BackupView.from_record(record)


def fail_reserved(ctx: Context, backup_id: str, message: str) -> None:
    """Fail a reserved record that is still ``pending``: its job ended (refused,
    cancelled, failed) before the backup started. A record the backup started is left
    alone: the backup itself records how it ended."""
    with ctx.catalog.begin() as session:
        records = BackupRecords(session)
        if records.get(backup_id).status is BackupStatus.PENDING:
            records.fail(backup_id, Scrubber(ctx.settings)(message))


def _pending(
    session: Session,
    ctx: Context,
    repo: Repository | None,
    kind: BackupKind,
    source: str,
    retention_days: int | None,
    triggered_by: TriggeredBy,
    pinned: bool,
    job_id: int | None = None,
) -> BackupRecord:
    return BackupRecords(session).create_pending(
        kind=kind,
        repository=ctx.settings.repository().name,
        triggered_by=triggered_by,
        retention_days=retention_days,
        database_name=source,
        # Without the opened repository, its location is set when the backup completes.
        storage_path=repo.storage.location if repo is not None else None,
        pinned=pinned,
        job_id=job_id,
    )


def unconfirmed_problem(chunks: int) -> str:
    return counted(
        chunks,
        N_(
            "not known-good: references {count} chunk that verification found damaged while "
            "the backup ran; run 'respaldo repair', or take a new backup"
        ),
        N_(
            "not known-good: references {count} chunks that verification found damaged while "
            "the backup ran; run 'respaldo repair', or take a new backup"
        ),
    )

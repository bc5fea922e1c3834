"""Reading and changing backup records, with the status state machine enforced.

Every method works inside the caller's Session and transaction: nothing here commits, so
several changes can be made atomically (``with catalog.begin() as session: ...``). Methods
that change a record flush, so database errors surface at the call, and lock the row
first (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite the whole transaction is
serialised by ``BEGIN IMMEDIATE``), so two processes cannot both move a record on from
the same status.

Every status change is checked against :data:`respaldo.domain.BACKUP_TRANSITIONS` before
anything is written: a refused change raises InvalidTransition and leaves the record as it
was. The one exception is :meth:`BackupRecords.upsert_from_manifest`, see there.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from respaldo import __version__
from respaldo.catalog.columns import row_count
from respaldo.catalog.jobs import orphan_reason
from respaldo.catalog.models import BackupRecord, DrillRun, Job
from respaldo.domain import (
    BackupKind,
    BackupStatus,
    JobKind,
    TriggeredBy,
    backup_id_time,
    new_backup_id,
    validate_backup_id,
)
from respaldo.errors import InvalidTransition, RecordExists, RecordNotFound
from respaldo.phrases import N_, Phrase
from respaldo.processes import pid_alive as pid_alive
from respaldo.processes import this_host as this_host

_T = TypeVar("_T")

_ACTIVE = (BackupStatus.PENDING, BackupStatus.IN_PROGRESS)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return value.astimezone(UTC)


def _non_negative(value: int | None, name: str) -> int | None:
    if value is not None and value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
    return value


def _expiry(completed_at: datetime | None, retention_days: int | None) -> datetime | None:
    if completed_at is None or retention_days is None:
        return None
    return completed_at + timedelta(days=retention_days)


def _duration(started_at: datetime | None, ended_at: datetime) -> float | None:
    if started_at is None:
        return None
    # Clamped: a clock stepped back by NTP during a backup must not fail its recording.
    return max(0.0, (ended_at - started_at).total_seconds())


def _measured(duration: float | None) -> float | None:
    """A duration the backup's own process measured (monotonic clock), checked.

    The timestamps' difference is what is left for a record failed or rebuilt by another
    process: a wall clock stepped while the backup ran (NTP, a VM resumed) made it
    hours long (a step forward) or zero (back), in the catalog, the page and
    ``respaldo_backup_last_duration_seconds``."""
    if duration is None:
        return None
    if duration < 0:
        raise ValueError(f"duration must not be negative, got {duration}")
    return duration


@dataclass(frozen=True, slots=True, kw_only=True)
class ManifestValues:
    """What a repository manifest says about a backup, for rebuilding the catalog.

    A manifest exists only for a completed backup, so these describe a completed one.
    The fields before ``retention_days`` are the manifest's own and always overwrite the
    record (None included). In the optional group after it, None means "the manifest does
    not say": an existing record keeps its value, a new one gets the column default.
    """

    id: str
    backup_type: BackupKind
    repository: str
    manifest: str
    started_at: datetime
    completed_at: datetime
    database_name: str | None = None
    size_bytes: int | None = None
    size_compressed: int | None = None
    stored_new_bytes: int | None = None
    checksum: str | None = None
    checksum_algorithm: str = "sha256"
    database_version: str | None = None
    schema_version: str | None = None
    tool_version: str | None = None
    parent_id: str | None = None
    source: str | None = None
    """``<system identifier>/<database>`` the backup was read from (None: not named)."""
    # optional: None keeps what the record has
    retention_days: int | None = None
    pinned: bool | None = None
    triggered_by: TriggeredBy | None = None
    storage_path: str | None = None
    s3_url: str | None = None
    storage_tier: str | None = None


class BackupRecords:
    """Queries and changes on ``backup_records`` within one Session (never commits)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # -- reading -------------------------------------------------------------------------

    def get(self, backup_id: str) -> BackupRecord:
        """Return the record with this id.

        Raises InvalidBackupId if ``backup_id`` is malformed, RecordNotFound if absent.
        """
        record = self.session.get(BackupRecord, validate_backup_id(backup_id))
        if record is None:
            raise _not_found(backup_id)
        return record

    def list(
        self,
        *,
        database: str | None = None,
        kind: BackupKind | None = None,
        status: BackupStatus | None = None,
        limit: int | None = None,
        offset: int = 0,
        since: datetime | None = None,
        until: datetime | None = None,
        verified: bool | None = None,
        primary_deleted: bool | None = None,
    ) -> builtins.list[BackupRecord]:
        """Records matching every filter given (None: no filter), newest first.

        Newest means latest ``created_at``; records made in the same second are ordered
        by id, descending. ``since``/``until`` bound ``created_at`` (both inclusive);
        ``verified`` is ``is_verified``; ``primary_deleted`` whether
        ``primary_deleted_at`` is set. ``limit`` caps the count (must be positive),
        after skipping ``offset`` records.
        """
        query = self._where(
            sa.select(BackupRecord), database, kind, status, since, until, verified, primary_deleted
        )
        query = query.order_by(BackupRecord.created_at.desc(), BackupRecord.id.desc())
        if limit is not None:
            if limit <= 0:
                raise ValueError(f"limit must be positive, got {limit}")
            query = query.limit(row_count(limit))
        if offset:
            if offset < 0:
                raise ValueError(f"offset must not be negative, got {offset}")
            query = query.offset(row_count(offset))
        return builtins.list(self.session.scalars(query))

    def count(
        self,
        *,
        database: str | None = None,
        kind: BackupKind | None = None,
        status: BackupStatus | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        verified: bool | None = None,
        primary_deleted: bool | None = None,
    ) -> int:
        """How many records :meth:`list` would return without limit and offset."""
        query = self._where(
            sa.select(sa.func.count()).select_from(BackupRecord),
            database,
            kind,
            status,
            since,
            until,
            verified,
            primary_deleted,
        )
        return int(self.session.scalar(query) or 0)

    @staticmethod
    def _where(
        query: sa.Select[_T],
        database: str | None,
        kind: BackupKind | None,
        status: BackupStatus | None,
        since: datetime | None,
        until: datetime | None,
        verified: bool | None,
        primary_deleted: bool | None = None,
    ) -> sa.Select[_T]:
        if database is not None:
            query = query.where(BackupRecord.database_name == database)
        if kind is not None:
            query = query.where(BackupRecord.backup_type == kind)
        if status is not None:
            query = query.where(BackupRecord.status == status)
        if since is not None:
            query = query.where(BackupRecord.created_at >= _aware(since, "since"))
        if until is not None:
            query = query.where(BackupRecord.created_at <= _aware(until, "until"))
        if verified is not None:
            query = query.where(BackupRecord.is_verified.is_(verified))
        if primary_deleted is not None:
            deleted = BackupRecord.primary_deleted_at.is_not(None)
            query = query.where(deleted if primary_deleted else sa.not_(deleted))
        return query

    # -- the life of a backup ------------------------------------------------------------

    def create_pending(
        self,
        *,
        kind: BackupKind,
        repository: str,
        triggered_by: TriggeredBy,
        retention_days: int | None,
        database_name: str | None = None,
        backup_id: str | None = None,
        pinned: bool | None = None,
        storage_path: str | None = None,
        s3_url: str | None = None,
        storage_tier: str | None = None,
        tool_version: str | None = __version__,
        job_id: int | None = None,
        now: datetime | None = None,
    ) -> BackupRecord:
        """Add a ``pending`` record and return it.

        ``backup_id`` defaults to a new id made from ``now`` (default: the current time).
        ``pinned`` defaults to True for snapshots, else False. ``retention_days`` None
        keeps the backup until deleted by hand. ``job_id`` names the job the backup runs
        in: once that job has ended, :meth:`fail_abandoned` fails a record it left
        pending or in progress. Raises RecordExists if the id is taken, InvalidBackupId
        if a given id is malformed, ValueError for a negative retention.
        """
        created_at = _aware(now, "now") if now is not None else _utcnow()
        if retention_days is not None and retention_days < 0:
            raise ValueError(f"retention_days must not be negative, got {retention_days}")
        record_id = (
            validate_backup_id(backup_id) if backup_id is not None else new_backup_id(created_at)
        )
        if self.session.get(BackupRecord, record_id) is not None:
            raise RecordExists(f"backup {record_id} is already in the catalog")
        record = BackupRecord(
            id=record_id,
            created_at=created_at,
            backup_type=kind,
            status=BackupStatus.PENDING,
            database_name=database_name,
            repository=repository,
            triggered_by=triggered_by,
            retention_days=retention_days,
            pinned=kind is BackupKind.SNAPSHOT if pinned is None else pinned,
            is_verified=False,
            checksum_algorithm="sha256",
            storage_path=storage_path,
            s3_url=s3_url,
            storage_tier=storage_tier,
            tool_version=tool_version,
            job_id=job_id,
        )
        self.session.add(record)
        self.session.flush()
        return record

    def start(
        self, backup_id: str, pid: int, *, host: str | None = None, now: datetime | None = None
    ) -> BackupRecord:
        """``pending`` -> ``in_progress``, run by process ``pid`` on ``host`` (default: this).

        Sets ``started_at`` (and ``heartbeat_at``) to ``now``. The pid decides whether the
        backup was abandoned only for a record without a job. Raises RecordNotFound,
        InvalidTransition.
        """
        when = _aware(now, "now") if now is not None else _utcnow()
        record = self._lock(backup_id)
        self._move(record, BackupStatus.IN_PROGRESS)
        record.started_at = when
        record.heartbeat_at = when
        record.worker_pid = pid
        record.worker_host = host if host is not None else this_host()
        self.session.flush()
        return record

    def complete(
        self,
        backup_id: str,
        *,
        completed_at: datetime,
        size_bytes: int,
        size_compressed: int,
        checksum: str,
        manifest: str,
        stored_new_bytes: int | None = None,
        checksum_algorithm: str = "sha256",
        database_version: str | None = None,
        schema_version: str | None = None,
        storage_path: str | None = None,
        s3_url: str | None = None,
        storage_tier: str | None = None,
        parent_id: str | None = None,
        source: str | None = None,
        duration: float | None = None,
    ) -> BackupRecord:
        """``in_progress`` -> ``completed``, with what the backup produced.

        ``duration`` is how long the backup ran as the process running it measured it (on
        the monotonic clock); without it, seconds since ``started_at``, never negative. Sets
        ``expires_at`` = ``completed_at`` + ``retention_days`` (None if retention_days
        is None; a pinned record keeps its expiry date, which retention ignores).
        Location fields given as None keep their values. Raises RecordNotFound,
        InvalidTransition, ValueError for negative sizes or a naive ``completed_at``.
        """
        completed_at = _aware(completed_at, "completed_at")
        _non_negative(size_bytes, "size_bytes")
        _non_negative(size_compressed, "size_compressed")
        _non_negative(stored_new_bytes, "stored_new_bytes")
        record = self._lock(backup_id)
        self._move(record, BackupStatus.COMPLETED)
        record.completed_at = completed_at
        record.duration = (
            _duration(record.started_at, completed_at) if duration is None else _measured(duration)
        )
        record.expires_at = _expiry(completed_at, record.retention_days)
        record.size_bytes = size_bytes
        record.size_compressed = size_compressed
        record.stored_new_bytes = stored_new_bytes
        record.checksum = checksum
        record.checksum_algorithm = checksum_algorithm
        record.manifest = manifest
        record.parent_id = parent_id
        record.source = source
        record.database_version = database_version
        record.schema_version = schema_version
        record.error_message = None
        _set_locations(record, storage_path, s3_url, storage_tier)
        # Its parent was found not to restore while it ran (a repair, a restore test).
        self._fail_with_parent(record)
        self.session.flush()
        return record

    def _fail_with_parent(self, record: BackupRecord) -> None:
        """Mark ``record``, completed, as failed verification when the backup it is
        incremental on failed it: it restores only on top of that one, so it is no
        recovery point either. One known to fail already keeps its own reason."""
        if record.parent_id is None or has_failed_verification(record):
            return
        parent = self.session.get(BackupRecord, record.parent_id)
        if parent is not None and has_failed_verification(parent):
            record.is_verified = False
            record.verified_at = parent.verified_at
            record.error_message = chain_problem(record.parent_id)

    def fail(
        self,
        backup_id: str,
        message: str,
        *,
        now: datetime | None = None,
        duration: float | None = None,
    ) -> BackupRecord:
        """``pending`` or ``in_progress`` -> ``failed``, with ``message`` as the reason.

        ``completed_at`` records when the backup ended (``now``), and ``duration`` how
        long it ran, if it started: as measured by the process that ran it (``duration``)
        or else from the two timestamps. Raises RecordNotFound, InvalidTransition (a
        completed backup cannot fail afterwards; a failed one cannot fail twice).
        """
        when = _aware(now, "now") if now is not None else _utcnow()
        record = self._lock(backup_id)
        self._fail(record, message, when)
        if duration is not None and record.started_at is not None:
            record.duration = _measured(duration)
        self.session.flush()
        return record

    def set_verified(
        self, backup_id: str, when: datetime, *, verified: bool = True, problem: str | None = None
    ) -> BackupRecord:
        """Record the result of verifying a completed backup at ``when``.

        ``verified=False`` records a failed verification (``is_verified`` false,
        ``verified_at`` the time of the check); ``problem`` then says what is wrong (it
        becomes ``error_message``, which ``show`` prints). A successful verification
        clears an earlier problem. Raises RecordNotFound, and InvalidTransition if the
        backup is not ``completed``.
        """
        when = _aware(when, "when")
        record = self._lock(backup_id)
        if record.status is not BackupStatus.COMPLETED:
            raise InvalidTransition(
                f"backup {record.id} is {record.status.value}: only a completed backup can be "
                "verified",
                current=record.status.value,
                requested=record.status.value,
            )
        record.is_verified = verified
        record.verified_at = when
        if verified:
            record.error_message = None
            self._clear_descendants(record.id)
        else:
            if problem is not None:
                record.error_message = problem
            self._fail_descendants(record.id, when)
        self.session.flush()
        return record

    def _fail_descendants(self, backup_id: str, when: datetime) -> None:
        """Mark as failed verification, at ``when``, every completed backup built on
        ``backup_id`` (an incremental physical backup restores only on top of its whole
        chain, pg_combinebackup needs every one of them). Left good, the newest child of a
        damaged backup was the database's recovery point: status green, retention keeping
        it as the newest good backup, the page offering its restore, none of which could
        restore. One already known to fail keeps its own reason."""
        for child in self._descendants(backup_id):
            if not has_failed_verification(child):
                child.is_verified = False
                child.verified_at = when
                child.error_message = chain_problem(backup_id)

    def _clear_descendants(self, backup_id: str) -> None:
        """Take back :meth:`_fail_descendants` of ``backup_id``, verified now (a restore
        test of it that had failed for a passing reason, a disk full, passed again): the
        backups built on it, failed for the sake of a backup of their chain alone, are back
        to not yet verified (below one that failed on its own, they stay failed).
        Left failed, every incremental of a chain stayed 'failed verification' for good,
        none of them a recovery point nor offered for restore, all restorable."""
        clean = {backup_id}
        for child in self._descendants(backup_id):  # parents first
            if child.parent_id not in clean:
                continue  # below a backup that failed on its own: failed with it
            if has_failed_verification(child):
                if not _is_chain_problem(child.error_message):
                    continue  # its own fault (and its children's)
                child.verified_at = None
                child.error_message = None
            clean.add(child.id)

    def _descendants(self, backup_id: str) -> builtins.list[BackupRecord]:
        """Every completed backup built on ``backup_id``, its children first."""
        found: builtins.list[BackupRecord] = []
        parents, seen = [backup_id], {backup_id}
        while parents:
            children = self.session.scalars(
                sa.select(BackupRecord).where(
                    BackupRecord.parent_id.in_(parents),
                    BackupRecord.status == BackupStatus.COMPLETED,
                )
            ).all()
            parents = []
            for child in children:
                if child.id not in seen:
                    seen.add(child.id)
                    parents.append(child.id)
                    found.append(child)
        return found

    def deleted_from_primary(self, backup_id: str, *, now: datetime | None = None) -> None:
        """Record that the backup's manifest was deleted from its primary repository
        (``repository``) while others still hold it: its record stays until they are
        done too (:meth:`delete`). Idempotent: the first time is kept.

        Raises RecordNotFound."""
        record = self._lock(backup_id)
        if record.primary_deleted_at is None:
            record.primary_deleted_at = now or _utcnow()
            self.session.flush()

    def delete(self, backup_id: str) -> None:
        """Remove a record, and its copies, for good (retention expired it and its
        manifests are gone from every repository).

        Raises RecordNotFound, and InvalidTransition for a backup still pending or in
        progress: its worker would go on without a record.
        """
        record = self._lock(backup_id)
        if record.status in _ACTIVE:
            raise InvalidTransition(
                f"backup {record.id} is {record.status.value}: a running backup cannot be deleted",
                current=record.status.value,
                requested="deleted",
            )
        # Its restore tests keep its kind (drill_runs.backup_kind): a test recorded
        # without it (by a worker of a respaldo before migration 0015, still running
        # through an upgrade) would count for no kind once the record is gone.
        self.session.execute(
            sa.update(DrillRun)
            .where(DrillRun.backup_id == record.id, DrillRun.backup_kind.is_(None))
            .values(backup_kind=record.backup_type)
        )
        self.session.delete(record)
        self.session.flush()

    def abandoned(
        self,
        *,
        is_alive: Callable[[int], bool] = pid_alive,
        host: str | None = None,
    ) -> builtins.list[tuple[BackupRecord, str]]:
        """Every pending/in_progress record that nothing will finish, with the reason;
        changes nothing. See :meth:`fail_abandoned` for which. Oldest first.

        For a caller that looks at something else before deciding (the repository: a
        manifest proves the backup completed), then calls :meth:`fail_abandoned`.
        """
        query = (
            sa.select(BackupRecord)
            .where(BackupRecord.status.in_(_ACTIVE))
            .order_by(BackupRecord.created_at, BackupRecord.id)
        )
        return self._gone(query, is_alive, host)

    def fail_abandoned(
        self,
        now: datetime,
        *,
        is_alive: Callable[[int], bool] = pid_alive,
        host: str | None = None,
        spare: Collection[str] = (),
    ) -> builtins.list[BackupRecord]:
        """Mark as failed every pending/in_progress record that nothing will finish; return
        them, oldest first.

        A record that names its job (``job_id``) follows it: it is abandoned exactly when
        that job has ended (a job whose process died is failed by
        :meth:`respaldo.catalog.jobs.Jobs.fail_lapsed` first), with the job's reason
        ("job 7 failed: process 4242 died while the job ran (found at start-up)"). A
        record without a job (written before jobs existed, or outside any job) falls
        back to its own process: abandoned if its pid is on ``host`` (default: this one)
        and ``is_alive(pid)`` is false ("process 4242 died during the backup (found at
        start-up)"); records of other hosts, or without a pid, are left alone.

        Records whose id is in ``spare`` are left as they are (their fate is not known
        yet). Idempotent: a second call finds nothing more.
        """
        query = (
            sa.select(BackupRecord)
            .where(BackupRecord.status.in_(_ACTIVE))
            .order_by(BackupRecord.created_at, BackupRecord.id)
            .with_for_update()
        )
        failed: builtins.list[BackupRecord] = []
        for record, reason in self._gone(query, is_alive, host):
            if record.id not in spare:
                self._fail(record, reason, _aware(now, "now"))
                failed.append(record)
        self.session.flush()
        return failed

    def _gone(
        self,
        query: sa.Select[BackupRecord],
        is_alive: Callable[[int], bool],
        host: str | None,
    ) -> builtins.list[tuple[BackupRecord, str]]:
        local_host = host if host is not None else this_host()
        gone = []
        for record in self.session.scalars(query):
            job_id = record.job_id if record.job_id is not None else self._reserved_by(record)
            if job_id is not None:
                reason = orphan_reason(self.session, job_id)
            else:
                reason = _dead_worker(record, is_alive, local_host)
            if reason is not None:
                gone.append((record, reason))
        return gone

    def _reserved_by(self, record: BackupRecord) -> int | None:
        # A record reserved for a job (an API request's backup) names no job until the
        # job starts it, but the job names it: the record follows that job, so that it
        # is failed with the job's reason (not started) and never while the job waits.
        if record.status is not BackupStatus.PENDING:
            return None
        query = sa.select(Job.id).where(Job.kind == JobKind.BACKUP, Job.result_id == record.id)
        return self.session.scalars(query.order_by(Job.id.desc()).limit(1)).first()

    # -- rebuilding from repositories ----------------------------------------------------

    def upsert_from_manifest(self, values: ManifestValues) -> tuple[BackupRecord, bool]:
        """Make the record of ``values.id`` agree with its manifest; return (record, created).

        Inserts the record if missing (``created_at`` from the id, not verified). Otherwise
        overwrites only what the manifest owns: kind, source, manifest name, times, sizes,
        checksum, versions, and the optional fields that are not None. Never touches
        ``is_verified``/``verified_at`` (but for one incremental on a backup that failed
        verification, failed with it: :meth:`_fail_with_parent`; a failed verification
        keeps its reason), the worker columns, or ``repository`` of an existing record
        (which repository is primary is configuration, not history).

        Status becomes ``completed`` whatever it was, outside the state machine on purpose:
        a manifest is written only after all its data, so it proves the backup completed,
        even if a crash left the record ``in_progress`` or :meth:`fail_abandoned` then
        marked it ``failed``. Idempotent. Raises InvalidBackupId, ValueError for naive
        times or negative sizes.
        """
        record_id = validate_backup_id(values.id)
        started_at = _aware(values.started_at, "started_at")
        completed_at = _aware(values.completed_at, "completed_at")
        for name in ("size_bytes", "size_compressed", "stored_new_bytes", "retention_days"):
            _non_negative(getattr(values, name), name)
        record = self.session.get(
            BackupRecord, record_id, with_for_update=True, populate_existing=True
        )
        created = record is None
        if record is None:
            record = BackupRecord(
                id=record_id,
                created_at=backup_id_time(record_id),
                repository=values.repository,
                is_verified=False,
                pinned=values.backup_type is BackupKind.SNAPSHOT,
            )
            self.session.add(record)
        record.backup_type = values.backup_type
        record.status = BackupStatus.COMPLETED
        if not has_failed_verification(record):
            # A failed run's reason, gone with the failure; a failed verification's stays.
            record.error_message = None
        record.database_name = values.database_name
        record.manifest = values.manifest
        record.started_at = started_at
        record.completed_at = completed_at
        record.duration = _duration(started_at, completed_at)
        record.size_bytes = values.size_bytes
        record.size_compressed = values.size_compressed
        record.stored_new_bytes = values.stored_new_bytes
        record.checksum = values.checksum
        record.checksum_algorithm = values.checksum_algorithm
        record.database_version = values.database_version
        record.schema_version = values.schema_version
        record.tool_version = values.tool_version
        record.parent_id = values.parent_id
        record.source = values.source
        if values.retention_days is not None:
            record.retention_days = values.retention_days
        if values.pinned is not None:
            record.pinned = values.pinned
        if values.triggered_by is not None:
            record.triggered_by = values.triggered_by
        record.expires_at = _expiry(completed_at, record.retention_days)
        _set_locations(record, values.storage_path, values.s3_url, values.storage_tier)
        # A catalog rebuilt from the repository marks the damaged backups again
        # (operations/catalog_rebuild.py), oldest first: the incrementals built on one
        # come after it, and were counted good (recovery points, offered for restore).
        self._fail_with_parent(record)
        self.session.flush()
        return record, created

    # -- internals -----------------------------------------------------------------------

    def _lock(self, backup_id: str) -> BackupRecord:
        # populate_existing: the status we check must be the committed one, not a copy
        # this session loaded before another process moved the record on.
        record = self.session.get(
            BackupRecord,
            validate_backup_id(backup_id),
            with_for_update=True,
            populate_existing=True,
        )
        if record is None:
            raise _not_found(backup_id)
        return record

    @staticmethod
    def _move(record: BackupRecord, target: BackupStatus) -> None:
        BackupStatus(record.status).check_transition(target, backup_id=record.id)
        record.status = target

    def _fail(self, record: BackupRecord, message: str, when: datetime) -> None:
        self._move(record, BackupStatus.FAILED)
        record.error_message = message
        record.completed_at = when
        record.duration = _duration(record.started_at, when)


def chain_problem(backup_id: str) -> str:
    """The catalog's words for a backup whose chain holds ``backup_id``, which failed
    verification (``error_message``)."""
    return (
        f"cannot be restored: backup {backup_id}, of the chain it is incremental on, failed "
        "verification"
    )


def _is_chain_problem(message: str | None) -> bool:
    """Whether ``message`` is a :func:`chain_problem`'s, of any backup."""
    before, _, after = chain_problem("\0").partition("\0")
    return message is not None and message.startswith(before) and message.endswith(after)


def has_failed_verification(record: BackupRecord) -> bool:
    """:func:`failed_verification` of one loaded record (a completed one)."""
    return record.verified_at is not None and not record.is_verified


def failed_verification() -> sa.ColumnElement[bool]:
    """A completed backup known not to restore: a verification of it failed (``repair``
    found chunks lost, a restore test of it failed, or it was written against chunks
    found damaged). The rule of retention's "good" backup (respaldo.retention)."""
    return sa.and_(BackupRecord.verified_at.is_not(None), BackupRecord.is_verified.is_(False))


def newest_completed_times(before: datetime | None = None) -> sa.Subquery:
    """When each source's newest good backup of each kind completed (completed and not
    :func:`failed_verification`; ``before``: of those that completed no later than that):
    columns ``database_name``, ``backup_type`` and ``at``; one row per source and kind.
    A backup known not to restore is no recovery point: an age must not count from it."""
    completed = sa.and_(BackupRecord.status == BackupStatus.COMPLETED, ~failed_verification())
    if before is not None:
        completed = sa.and_(completed, BackupRecord.completed_at <= before)
    return (
        sa.select(
            BackupRecord.database_name,
            BackupRecord.backup_type,
            sa.func.max(BackupRecord.completed_at).label("at"),
        )
        .where(completed)
        .group_by(BackupRecord.database_name, BackupRecord.backup_type)
        .subquery()
    )


def newest_completed(
    session: Session, before: datetime | None = None
) -> builtins.list[BackupRecord]:
    """The newest good backup of every source and kind (see :func:`newest_completed_times`;
    ``before``: that completed no later than that), ordered by source and kind (of two
    that completed in the same instant, the later record)."""
    newest = newest_completed_times(before)
    query = (
        sa.select(BackupRecord)
        .join(
            newest,
            sa.and_(
                BackupRecord.database_name.is_not_distinct_from(newest.c.database_name),
                BackupRecord.backup_type == newest.c.backup_type,
                BackupRecord.completed_at == newest.c.at,
            ),
        )
        .where(BackupRecord.status == BackupStatus.COMPLETED, ~failed_verification())
        .order_by(BackupRecord.id)
    )
    found: dict[tuple[str | None, str], BackupRecord] = {}
    for record in session.scalars(query):
        found[(record.database_name, record.backup_type)] = record
    return [found[key] for key in sorted(found, key=lambda k: (k[0] or "", k[1]))]


def _dead_worker(
    record: BackupRecord, is_alive: Callable[[int], bool], local_host: str
) -> str | None:
    # The fallback for a record without a job: its pid, on its own host only.
    pid = record.worker_pid
    if pid is not None and record.worker_host == local_host and not is_alive(pid):
        return f"process {pid} died during the backup (found at start-up)"
    return None


def _set_locations(
    record: BackupRecord, storage_path: str | None, s3_url: str | None, storage_tier: str | None
) -> None:
    if storage_path is not None:
        record.storage_path = storage_path
    if s3_url is not None:
        record.s3_url = s3_url
    if storage_tier is not None:
        record.storage_tier = storage_tier


def _not_found(backup_id: str) -> RecordNotFound:
    return RecordNotFound(
        Phrase(N_("no backup {backup} in the catalog"), backup=backup_id),
        hint=Phrase(
            N_(
                "'respaldo list' shows the backups; if the catalog was lost or is stale, "
                "'respaldo catalog rebuild' reads it back from the repositories"
            )
        ),
    )

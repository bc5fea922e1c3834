"""Aggregate figures of the catalog, read in one transaction: what metrics expose.

Each query is an aggregate over an indexed column or a small table (drill runs, jobs),
so reading every figure costs a few milliseconds however many backups the catalog holds;
a scrape every 15 seconds must stay cheap. Nothing here writes.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from respaldo.catalog.backups import newest_completed, newest_completed_times
from respaldo.catalog.drills import tested_kind
from respaldo.catalog.jobs import known_kind
from respaldo.catalog.models import BackupRecord, DrillRun, Job, JobTally, NotificationRecord
from respaldo.domain import BackupKind, BackupStatus, DrillStatus, JobKind, JobStatus


@dataclass
class BackupFigures:
    """One source and kind: its newest completed backup and the failures since."""

    database: str | None
    kind: BackupKind
    last_success_at: datetime | None = None
    duration_seconds: float | None = None
    size_bytes: int | None = None
    stored_new_bytes: int | None = None
    last_failure_at: datetime | None = None
    failures_since_success: int = 0
    """Failed backups that ended after the newest completed one (all of them if none)."""


@dataclass
class DrillFigures:
    """One database's restore tests (drills)."""

    database: str | None
    passed: int = 0
    failed: int = 0
    last_finished_at: datetime | None = None
    last_passed: bool | None = None
    """Whether the newest finished drill passed."""
    last_success_at: datetime | None = None
    last_success_restore_seconds: float | None = None
    """The restore time measured by the newest passed drill: the measured RTO."""


@dataclass
class KindDrillFigures:
    """One database's restore tests of one kind of its backups (the tested backup's
    kind; a test whose backup record is gone has none and is not counted here)."""

    database: str | None
    kind: BackupKind
    last_finished_at: datetime | None = None
    last_passed: bool | None = None
    """Whether the newest finished drill of this kind passed, and no failed one of this
    kind stands unsettled (as the status: only a later pass of the same backup or a
    newer one settles a failure)."""
    last_success_at: datetime | None = None


@dataclass
class NotificationFigures:
    """One notification target: messages sent to it and failed, and when each last."""

    target: str
    sent: int = 0
    failed: int = 0
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None


@dataclass
class CatalogFigures:
    backups: list[BackupFigures] = field(default_factory=list)
    drills: list[DrillFigures] = field(default_factory=list)
    kind_drills: list[KindDrillFigures] = field(default_factory=list)
    newest_backup_at: dict[tuple[str | None, BackupKind], datetime] = field(default_factory=dict)
    """When each source's newest completed backup of each kind completed, verified bad or
    not: what :func:`respaldo.operations.tested_kinds.relied_on` goes by, as the status."""
    jobs: dict[tuple[JobKind, JobStatus], int] = field(default_factory=dict)
    """Number of jobs per (kind, status), only the pairs that occur."""
    job_last_success_at: dict[JobKind, datetime] = field(default_factory=dict)
    reclaimed_bytes: dict[str, int] = field(default_factory=dict)
    """Bytes reclaimed per repository by every completed prune (from ``jobs.outcome``)."""
    notifications: list[NotificationFigures] = field(default_factory=list)


def read_figures(session: Session, *, before: datetime | None = None) -> CatalogFigures:
    """Every figure, from the caller's (read) transaction. ``before``: a backup that
    completed, or a restore test that finished, later (dated in the future: a clock was
    ahead) is not the newest."""
    return CatalogFigures(
        backups=_backups(session, before),
        drills=_drills(session, before),
        kind_drills=_kind_drills(session, before),
        newest_backup_at=_newest_backup_at(session, before),
        jobs=_job_counts(session),
        job_last_success_at=_job_successes(session),
        reclaimed_bytes=_reclaimed(session),
        notifications=_notifications(session),
    )


def _backups(session: Session, before: datetime | None) -> list[BackupFigures]:
    figures: dict[tuple[str | None, BackupKind], BackupFigures] = {}

    def entry(database: str | None, kind: BackupKind) -> BackupFigures:
        return figures.setdefault((database, kind), BackupFigures(database, kind))

    newest = newest_completed_times(before)
    for record in newest_completed(session, before):
        item = entry(record.database_name, record.backup_type)
        item.last_success_at = record.completed_at
        item.duration_seconds = record.duration
        item.size_bytes = record.size_bytes
        item.stored_new_bytes = record.stored_new_bytes

    # A failed record's completed_at is when it failed; a record rebuilt without one
    # counts from its creation. Joined to the newest successes as a whole (not a
    # subquery per failed record, which scanned the table once per failure: 10 s for
    # 10,000 records).
    ended = sa.func.coalesce(BackupRecord.completed_at, BackupRecord.created_at)
    since = sa.case((sa.or_(newest.c.at.is_(None), ended > newest.c.at), 1), else_=0)
    failures = (
        sa.select(
            BackupRecord.database_name,
            BackupRecord.backup_type,
            sa.func.max(ended),
            sa.func.sum(since),
        )
        .outerjoin(
            newest,
            sa.and_(
                BackupRecord.database_name.is_not_distinct_from(newest.c.database_name),
                BackupRecord.backup_type == newest.c.backup_type,
            ),
        )
        .where(BackupRecord.status == BackupStatus.FAILED)
        .group_by(BackupRecord.database_name, BackupRecord.backup_type)
    )
    for database, kind, last_failure, count in session.execute(failures):
        item = entry(database, kind)
        item.last_failure_at = last_failure
        item.failures_since_success = int(count or 0)
    return sorted(figures.values(), key=lambda f: (f.database or "", f.kind.value))


def _drills(session: Session, before: datetime | None) -> list[DrillFigures]:
    figures: dict[str | None, DrillFigures] = {}

    def entry(database: str | None) -> DrillFigures:
        return figures.setdefault(database, DrillFigures(database))

    counts = sa.select(DrillRun.database_name, DrillRun.status, sa.func.count()).group_by(
        DrillRun.database_name, DrillRun.status
    )
    for database, status, count in session.execute(counts):
        if status is DrillStatus.PASSED:
            entry(database).passed = int(count)
        elif status is DrillStatus.FAILED:
            entry(database).failed = int(count)
    # As the status: one dated in the future is no recent test (its age is unknown), or
    # RespaldoRestoreTestTooOld, which compares time() with it, stayed quiet until then.
    for run in _newest_runs(session, (DrillStatus.PASSED, DrillStatus.FAILED), before):
        item = entry(run.database_name)
        item.last_finished_at = run.finished_at
        item.last_passed = run.status is DrillStatus.PASSED
    for run in _newest_runs(session, (DrillStatus.PASSED,), before):
        item = entry(run.database_name)
        item.last_success_at = run.finished_at
        item.last_success_restore_seconds = run.restore_seconds
    return sorted(figures.values(), key=lambda f: f.database or "")


def _kind_drills(session: Session, before: datetime | None) -> list[KindDrillFigures]:
    figures: dict[tuple[str | None, BackupKind], KindDrillFigures] = {}
    ended: sa.ColumnElement[bool] = DrillRun.finished_at.is_not(None)
    if before is not None:
        ended = sa.and_(ended, DrillRun.finished_at <= before)
    # One row per (database, kind, result): the newest finish of each; a few rows. The
    # run's own kind (drills.tested_kind): a test of a backup retention deleted since
    # still counts for its kind.
    kind_of = tested_kind()
    query = (
        sa.select(
            DrillRun.database_name,
            kind_of,
            DrillRun.status,
            sa.func.max(DrillRun.finished_at),
        )
        .outerjoin(BackupRecord, BackupRecord.id == DrillRun.backup_id)
        .where(ended, DrillRun.status.in_((DrillStatus.PASSED, DrillStatus.FAILED)))
        .group_by(DrillRun.database_name, kind_of, DrillRun.status)
    )
    for database, kind, status, at in session.execute(query):
        if at is None or kind is None:
            continue
        item = figures.setdefault((database, kind), KindDrillFigures(database, kind))
        if status is DrillStatus.PASSED:
            item.last_success_at = at
        # Of a pass and a failure finished in the same instant, the failure is the newest:
        # an alert must not be silenced by a tie.
        last = item.last_finished_at
        if last is None or at > last or (at == last and status is DrillStatus.FAILED):
            item.last_finished_at = at
            item.last_passed = status is DrillStatus.PASSED
    for key in _unsettled_failures(session, ended, before):
        if key in figures:
            figures[key].last_passed = False
    return sorted(figures.values(), key=lambda f: (f.database or "", f.kind.value))


def _unsettled_failures(
    session: Session, ended: sa.ColumnElement[bool], before: datetime | None
) -> set[tuple[str | None, BackupKind]]:
    """The (database, kind) pairs with a failed restore test that no later pass of the
    same backup or a newer one settled (the status's rule, operations/status_drills.py,
    in SQL: the newest backup's test failed, then a manual drill of an older backup
    passed, and the metric said passed while the status said the failure stands)."""
    failed_backup = aliased(BackupRecord)
    passed_run = aliased(DrillRun)
    passed_backup = aliased(BackupRecord)
    failed_kind = tested_kind(failed_backup)
    settled = (
        sa.select(passed_run.id)
        .outerjoin(passed_backup, passed_backup.id == passed_run.backup_id)
        .where(
            passed_run.status == DrillStatus.PASSED,
            passed_run.database_name == DrillRun.database_name,
            sa.func.coalesce(passed_run.backup_kind, passed_backup.backup_type) == failed_kind,
            # A pass in the same instant does not settle it (the failure is the newest
            # of a tie, as above).
            passed_run.finished_at > DrillRun.finished_at,
            # A backup retention deleted since is not dated any more: its pass settles
            # the failure, as the status has it.
            sa.or_(
                passed_backup.completed_at.is_(None),
                failed_backup.completed_at.is_(None),
                passed_backup.completed_at >= failed_backup.completed_at,
            ),
        )
    )
    if before is not None:
        settled = settled.where(passed_run.finished_at <= before)
    query = (
        sa.select(DrillRun.database_name, failed_kind)
        .outerjoin(failed_backup, failed_backup.id == DrillRun.backup_id)
        .where(ended, DrillRun.status == DrillStatus.FAILED, ~settled.exists())
        .distinct()
    )
    return {(database, kind) for database, kind in session.execute(query) if kind is not None}


def _newest_backup_at(
    session: Session, before: datetime | None
) -> dict[tuple[str | None, BackupKind], datetime]:
    completed: sa.ColumnElement[bool] = BackupRecord.status == BackupStatus.COMPLETED
    if before is not None:
        completed = sa.and_(completed, BackupRecord.completed_at <= before)
    query = (
        sa.select(
            BackupRecord.database_name,
            BackupRecord.backup_type,
            sa.func.max(BackupRecord.completed_at),
        )
        .where(completed)
        .group_by(BackupRecord.database_name, BackupRecord.backup_type)
    )
    return {(db, kind): at for db, kind, at in session.execute(query) if at is not None}


def newest_kind_passes(
    session: Session, before: datetime | None = None
) -> dict[tuple[str | None, BackupKind], DrillRun]:
    """Each (database, kind of the tested backup)'s newest passed restore test (ties: the
    higher id), of those that finished no later than ``before`` if given; a test of no
    known kind (:func:`~respaldo.catalog.drills.tested_kind`) is not here. One aggregate
    query and its rows: what the monthly report names as each kind's newest proof."""
    passed: sa.ColumnElement[bool] = sa.and_(
        DrillRun.status == DrillStatus.PASSED, DrillRun.finished_at.is_not(None)
    )
    if before is not None:
        passed = sa.and_(passed, DrillRun.finished_at <= before)
    kind_of = tested_kind()
    newest = (
        sa.select(
            DrillRun.database_name,
            kind_of.label("kind"),
            sa.func.max(DrillRun.finished_at).label("at"),
        )
        .outerjoin(BackupRecord, BackupRecord.id == DrillRun.backup_id)
        .where(passed)
        .group_by(DrillRun.database_name, kind_of)
        .subquery()
    )
    query = (
        sa.select(DrillRun, kind_of)
        .outerjoin(BackupRecord, BackupRecord.id == DrillRun.backup_id)
        .join(
            newest,
            sa.and_(
                DrillRun.database_name.is_not_distinct_from(newest.c.database_name),
                kind_of == newest.c.kind,
                DrillRun.finished_at == newest.c.at,
            ),
        )
        .where(passed)
        .order_by(DrillRun.id)
    )
    # Ordered by id: of a tie, the higher id is written last and stays.
    return {(run.database_name, kind): run for run, kind in session.execute(query)}


def newest_backup_times(
    session: Session, before: datetime | None = None
) -> dict[tuple[str | None, BackupKind], datetime]:
    """When each source's newest completed backup of each kind completed (no later than
    ``before`` if given): what :func:`respaldo.operations.tested_kinds.relied_on` goes by."""
    return _newest_backup_at(session, before)


def _newest_runs(
    session: Session, statuses: tuple[DrillStatus, ...], before: datetime | None
) -> list[DrillRun]:
    """The newest finished run per database among ``statuses`` (ties: the higher id),
    of those that finished no later than ``before`` if given."""
    finished: sa.ColumnElement[bool] = DrillRun.finished_at.is_not(None)
    if before is not None:
        finished = sa.and_(finished, DrillRun.finished_at <= before)
    newest = (
        sa.select(DrillRun.database_name, sa.func.max(DrillRun.finished_at).label("at"))
        .where(DrillRun.status.in_(statuses), finished)
        .group_by(DrillRun.database_name)
        .subquery()
    )
    query = (
        sa.select(DrillRun)
        .join(
            newest,
            sa.and_(
                DrillRun.database_name.is_not_distinct_from(newest.c.database_name),
                DrillRun.finished_at == newest.c.at,
            ),
        )
        .where(DrillRun.status.in_(statuses))
        .order_by(DrillRun.id)
    )
    return list(session.scalars(query))


def _job_counts(session: Session) -> dict[tuple[JobKind, JobStatus], int]:
    # The jobs still in the table, and those forgotten (retention, a routine schedule's
    # earlier runs): the counters of ended jobs never go down.
    # Of the kinds this version knows (a newer respaldo's are not read: known_kind).
    query = (
        sa.select(Job.kind, Job.status, sa.func.count())
        .where(known_kind())
        .group_by(Job.kind, Job.status)
    )
    counts = {(kind, status): int(count) for kind, status, count in session.execute(query)}
    known_tallies = sa.select(JobTally).where(JobTally.kind.in_(list(JobKind)))
    for tally in session.scalars(known_tallies):
        key = (tally.kind, tally.status)
        counts[key] = counts.get(key, 0) + int(tally.count)
    return counts


def _job_successes(session: Session) -> dict[JobKind, datetime]:
    query = (
        sa.select(Job.kind, sa.func.max(Job.finished_at))
        .where(known_kind(), Job.status == JobStatus.COMPLETED)
        .group_by(Job.kind)
    )
    found = {kind: at for kind, at in session.execute(query) if at is not None}
    forgotten = sa.select(JobTally).where(
        JobTally.kind.in_(list(JobKind)),
        JobTally.status == JobStatus.COMPLETED,
        JobTally.last_finished_at.is_not(None),
    )
    for tally in session.scalars(forgotten):
        at = tally.last_finished_at
        if at is not None and (tally.kind not in found or at > found[tally.kind]):
            found[tally.kind] = at
    return found


def _reclaimed(session: Session) -> dict[str, int]:
    # One row per completed prune (one a day on the default schedule): summed here, as
    # the per-repository figures are inside a JSON object.
    query = sa.select(Job.outcome).where(
        Job.kind == JobKind.PRUNE, Job.status == JobStatus.COMPLETED, Job.outcome.is_not(None)
    )
    total: dict[str, int] = defaultdict(int)
    for text in session.scalars(query):
        reclaimed = (json.loads(text).get("bytes_reclaimed") if text else None) or {}
        for repository, count in reclaimed.items():
            # A repack can write more than it deletes: such a run counts as 0, so that
            # the sum only grows (it is exposed as a counter).
            total[str(repository)] += max(0, int(count))
    return dict(total)


def _notifications(session: Session) -> list[NotificationFigures]:
    # Messages are rare (alerts, reports): the table stays small.
    query = sa.select(
        NotificationRecord.target,
        NotificationRecord.ok,
        sa.func.count(),
        sa.func.max(NotificationRecord.sent_at),
    ).group_by(NotificationRecord.target, NotificationRecord.ok)
    found: dict[str, NotificationFigures] = {}
    for target, ok, count, last in session.execute(query):
        entry = found.setdefault(target, NotificationFigures(target))
        if ok:
            entry.sent, entry.last_success_at = int(count), last
        else:
            entry.failed, entry.last_failure_at = int(count), last
    return [found[t] for t in sorted(found)]

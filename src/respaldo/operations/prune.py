"""Prune: expire backups by policy, delete them from every repository, collect garbage.

1. *Decide*: :func:`respaldo.retention.decide` over the catalog's records, with the
   ``[retention]`` policy of each (database, kind). Pure: ``--dry-run`` shows exactly
   what a real run would do.
2. For each expired completed backup: delete its manifest from every configured
   repository (primary and secondaries), then its catalog record. A failed record holds
   no data: only its record goes. Each deletion is logged.
3. Garbage collection (:func:`respaldo.repository.collect_garbage`) in every repository.
   Damaged chunks of kept backups it finds (and quarantines) make the run fail: they are
   news, and only ``verify`` marks the backups that need them as damaged.
4. WAL retention, then, in repositories with S3 Object Lock, renewal of the locks of what
   is left (:func:`respaldo.storage.object_lock.extend_locks`): everything still there is
   needed by a kept backup, so it must stay locked.

Crash safety (kill -9 at any point): a backup's manifests go before its record, so a
record is never deleted while a repository still holds the backup; a record whose
manifests are already gone is expired again by the next run (decisions only ever move
from keep to expire as time passes), which deletes nothing more and then the record.
Garbage collection is itself safe to interrupt and finishes on the next run.

A backup is deleted only if its manifest could be deleted from *every* repository: a
secondary that cannot be reached leaves the record in place, so the next run finishes
the job rather than leaving the backup orphaned there. WAL objects (``wal/``) are not
touched.

A secondary that cannot be opened or listed (an offsite store down, a disk not mounted:
:func:`unreachable`) is *deferred*, not failed: the primary and the other repositories
are pruned as ever, and so is the catalog's bookkeeping of what waits there (the
records of the backups that expired), and the run succeeds with a warning and an alert
(once per repeat interval per repository, as a failed copy's). Failing it instead
stopped nothing (the primary was pruned all the same) but failed every prune and job
for the length of the outage, each with a critical alert whose hint, "run prune again",
could not help. Retention still counts on the catalog for what such a mirror holds (its
completed copies), so the newest backup it holds is kept in every repository, as when
it is listed.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from respaldo import cancellation
from respaldo.catalog import BackupCopies, BackupRecord, BackupRecords
from respaldo.catalog.jobs import params_of
from respaldo.catalog.models import DrillRun, Job
from respaldo.config import Settings
from respaldo.domain import (
    BackupKind,
    BackupStatus,
    CopyStatus,
    DrillStatus,
    JobKind,
    JobStatus,
    is_backup_id,
)
from respaldo.errors import (
    ClockAhead,
    ConfigError,
    ObjectNotFound,
    RecordNotFound,
    RepositoryNotFound,
    RespaldoError,
    TransientStorageError,
    option,
)
from respaldo.operations import alerts
from respaldo.operations.context import Context
from respaldo.operations.wal_retention import WalPruneReport, prune_wal
from respaldo.operations.zone import time_zone
from respaldo.phrases import N_, counted, days_said
from respaldo.repository import GcReport, Repository, collect_garbage
from respaldo.repository.locks import Lease, LockKind
from respaldo.repository.manifest import manifest_name
from respaldo.retention import (
    BackupFacts,
    Decision,
    Policy,
    PolicyFor,
    decide,
    kept_for_mirrors,
)
from respaldo.storage.lifecycle import HAZARD_HINT, lifecycle_store
from respaldo.storage.object_lock import LockRenewal, extend_locks, locking_store

log = logging.getLogger(__name__)


@dataclass
class RepositoryOutcome:
    """What prune did in one repository."""

    name: str
    location: str = ""
    manifests_deleted: int = 0
    gc: GcReport | None = None
    wal: WalPruneReport | None = None
    locks: LockRenewal | None = None
    error: str | None = None
    lock_error: str | None = None  # the part of ``error`` that is about object locks
    lifecycle_error: str | None = None  # the part about the bucket's lifecycle rules
    deferred: str | None = None
    """Why this secondary could not be reached (``cannot open: ...``): nothing was done
    in it, and what expired waits for the next prune that reaches it. Not an error."""
    waiting: int = 0
    """Expired backups whose deletion here waits (their records stay until then)."""

    @property
    def bytes_reclaimed(self) -> int:
        gc = self.gc.bytes_reclaimed if self.gc is not None else 0
        return gc + (self.wal.bytes_deleted if self.wal is not None else 0)

    def fail(self, message: str) -> None:
        self.error = f"{self.error}; {message}" if self.error else message


@dataclass
class PruneResult:
    dry_run: bool
    now: datetime
    decisions: list[Decision]
    deleted: list[str] = field(default_factory=list)
    repositories: list[RepositoryOutcome] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def expired(self) -> list[Decision]:
        return [d for d in self.decisions if not d.keep]

    @property
    def ok(self) -> bool:
        return all(r.error is None for r in self.repositories)

    @property
    def bytes_reclaimed(self) -> int:
        return sum(r.bytes_reclaimed for r in self.repositories)


def facts_of(record: BackupRecord, being_restored: Collection[str] = ()) -> BackupFacts:
    """What retention needs of a catalog record; ``being_restored``: the ids of the
    backups running restores read (:func:`being_restored`)."""
    return BackupFacts(
        id=record.id,
        database=record.database_name,
        kind=record.backup_type.value,
        status=BackupStatus(record.status).value,
        completed_at=record.completed_at,
        expires_at=record.expires_at,
        is_verified=bool(record.is_verified),
        pinned=bool(record.pinned),
        created_at=record.created_at,
        verified_at=record.verified_at,
        parent=record.parent_id,
        size=record.size_bytes,
        restoring=record.id in being_restored,
    )


def being_restored(session: Session) -> set[str]:
    """The backups a running or queued restore job or restore test (drill) reads,
    whatever started it (the CLI, the API, a schedule) on whichever host: retention keeps
    them, and so their chains, until it ends (or is cancelled). The restore's shared
    lease only holds off garbage collection: the prune deleted the manifest and record of
    the backup being restored, often the last good one before a disaster, which was gone
    once the restore ended. And a restore asked for through the API waits in the queue
    (a PostgreSQL catalog) until a worker is free: a prune meanwhile deleted its backup,
    and the restore failed when it started, 'no backup ... in ...'. A job of the queue
    that no worker takes keeps its backup until ``[queue] expire_hours`` fails it
    (:meth:`respaldo.catalog.jobs.Jobs.expire_queued`, when the catalog is opened)."""
    ids = {
        run.backup_id
        for run in session.scalars(
            sa.select(DrillRun).where(DrillRun.status == DrillStatus.RUNNING)
        )
    }
    for job in session.scalars(
        sa.select(Job).where(
            Job.kind.in_((JobKind.RESTORE, JobKind.DRILL)),
            Job.status.in_((JobStatus.QUEUED, JobStatus.RUNNING)),
        )
    ):
        backup_id = params_of(job).get("backup_id") or job.result_id
        if backup_id:
            ids.add(str(backup_id))
        elif job.kind is JobKind.DRILL and job.target and is_backup_id(job.target):
            # A drill's run is recorded once it has read the manifest, and its target
            # is the backup's id, or a database's or file set's name (the schedule's
            # restore tests): no backup's id, and not one to look up (the record of an
            # invalid id is refused, which failed every prune that had something to
            # delete while a restore test ran); its run above names its backup.
            ids.add(job.target)
    return ids


def _chains(session: Session, ids: set[str]) -> set[str]:
    """``ids`` and every backup they are incremental on, by the catalog's records."""
    records = BackupRecords(session)
    found: set[str] = set()
    todo = list(ids)
    while todo:
        backup_id = todo.pop()
        if backup_id in found:
            continue
        found.add(backup_id)
        try:
            parent = records.get(backup_id).parent_id
        except RecordNotFound:
            continue
        if parent:
            todo.append(parent)
    return found


def policy_for(settings: Settings) -> PolicyFor:
    """The ``[retention]`` settings as a ``policy_for(database, kind)`` function."""

    def lookup(database: str | None, kind: str) -> Policy:
        policy = Policy.from_rules(settings.retention.rules_for(database, kind))
        return replace(policy, shrink=_shrink(settings, database, kind))

    return lookup


def _shrink(settings: Settings, database: str | None, kind: str) -> float:
    """The size check's ``shrink`` of (database, kind) (``[rpo] shrink_percent`` and the
    database's or file set's own), for retention to keep the last backup before a fall
    (:class:`respaldo.retention.Policy`); 0 for physical backups (incremental ones are
    small by nature), and ``[rpo]``'s for a name no longer configured."""
    try:
        if kind == BackupKind.FULL.value and database is not None:
            return settings.rpo_for(database).shrink
        if kind == BackupKind.FILES.value and database is not None:
            return settings.rpo_for_file_set(database).shrink
    except ConfigError:
        return settings.rpo.shrink_percent / 100
    return 0.0


def plan(ctx: Context, *, database: str | None = None, now: datetime | None = None) -> PruneResult:
    """Decide keep or expire for every backup (of ``database``, if given); change nothing
    and read no repository (every completed backup is taken to be where the catalog
    says: its primary and the mirrors its copy completed in)."""
    facts, stored = _catalog(ctx, database)
    configured = {r.name for r in ctx.settings.repositories}
    holders = {backup_id: names & configured for backup_id, names in stored.items()}
    return _decide(ctx, with_holders(facts, holders), now, held=None)


def _catalog(ctx: Context, database: str | None) -> tuple[list[BackupFacts], dict[str, set[str]]]:
    """The facts of every catalog record (of ``database``, if given), and the names of
    the repositories the catalog says hold each completed one: its primary and the
    secondaries its copy completed in."""
    with ctx.catalog.read() as session:
        records = BackupRecords(session).list(database=database)
        restoring = being_restored(session)
        facts = [facts_of(r, restoring) for r in records]
        stored = {r.id: stored_in(r) for r in records if r.status is BackupStatus.COMPLETED}
    return facts, stored


def stored_in(record: BackupRecord) -> set[str]:
    """The repositories the catalog says hold ``record``'s backup: its primary (unless
    it was deleted from there) and the secondaries its copy completed in."""
    primary = {record.repository} if record.primary_deleted_at is None else set()
    return primary | {c.repository for c in record.copies if c.status is CopyStatus.COMPLETED}


def _decide(
    ctx: Context, facts: list[BackupFacts], now: datetime | None, held: set[str] | None
) -> PruneResult:
    """``held``: the ids of the backups some repository holds (:func:`held_anywhere`);
    a completed backup outside it is ``missing``, not a good one."""
    when = now or datetime.now(UTC)
    # GFS periods are the installation's days, as the page and the schedules show them.
    zone = time_zone(ctx.settings)
    decisions = decide(mark_missing(facts, held), policy_for(ctx.settings), when, zone)
    return PruneResult(dry_run=True, now=when, decisions=decisions)


def newest_completion(ctx: Context) -> datetime | None:
    """When the newest completed backup of the whole catalog (any database, any kind)
    completed, if any did."""
    with ctx.catalog.read() as session:
        newest = session.scalar(
            sa.select(sa.func.max(BackupRecord.completed_at)).where(
                BackupRecord.status == BackupStatus.COMPLETED
            )
        )
    return None if newest is None else newest.astimezone(UTC)


def last_jump(
    ctx: Context, newest: datetime, limit: timedelta
) -> tuple[datetime, datetime, datetime] | None:
    """If what respaldo recorded up to ``newest`` (backups started, completed or failed,
    jobs asked for) resumed after a silence longer than ``limit`` less than ``limit``
    before ``newest``: when the newest completed backup before the silence completed,
    and when the silence ended. None when there is no such silence, when the records
    since it already span ``limit`` (the new time has been lived in and confirmed), when
    a prune with ``--trust-clock`` completed since it (the user confirmed the time), or
    when no backup completed before it.

    A clock stepped ahead leaves exactly that: nothing recorded between the last thing
    done before the step and the first thing done after it. The service's next
    scheduled backup then completes "a year later" and agrees with the clock, so the
    newest backup is no evidence of the time; the one before the silence is."""
    since = newest - limit
    with ctx.catalog.read() as session:
        recent = [
            session.scalar(
                sa.select(sa.func.min(BackupRecord.created_at)).where(
                    BackupRecord.created_at.between(since, newest)
                )
            ),
            session.scalar(
                sa.select(sa.func.min(BackupRecord.completed_at)).where(
                    BackupRecord.completed_at.between(since, newest)
                )
            ),
            session.scalar(
                sa.select(sa.func.min(Job.created_at)).where(Job.created_at.between(since, newest))
            ),
        ]
        before = [
            session.scalar(
                sa.select(sa.func.max(BackupRecord.created_at)).where(
                    BackupRecord.created_at < since
                )
            ),
            session.scalar(
                sa.select(sa.func.max(BackupRecord.completed_at)).where(
                    BackupRecord.completed_at < since
                )
            ),
            session.scalar(sa.select(sa.func.max(Job.created_at)).where(Job.created_at < since)),
        ]
        resumed = min((t.astimezone(UTC) for t in recent if t is not None), default=newest)
        silent_since = max((t.astimezone(UTC) for t in before if t is not None), default=None)
        if silent_since is None or resumed - silent_since <= limit:
            return None
        if _clock_trusted_since(session, resumed):
            return None
        anchor = session.scalar(
            sa.select(sa.func.max(BackupRecord.completed_at)).where(
                BackupRecord.status == BackupStatus.COMPLETED,
                BackupRecord.completed_at <= silent_since,
            )
        )
    return None if anchor is None else (anchor.astimezone(UTC), silent_since, resumed)


def _clock_trusted_since(session: Session, resumed: datetime) -> bool:
    """Whether a prune with ``--trust-clock`` (not a dry run) completed after the
    silence ended: the user said the new time is right. Without this, the hint's way out
    held for one prune: a small office back from three weeks off ran it, and each night
    of the week after, the scheduled prune refused again, and alerted, as the next
    backup from before the holiday reached its expiry."""
    prunes = session.scalars(
        sa.select(Job).where(
            Job.kind == JobKind.PRUNE,
            Job.status == JobStatus.COMPLETED,
            Job.created_at >= resumed,
        )
    )
    return any(
        params.get("trust_clock") and not params.get("dry_run") for params in map(params_of, prunes)
    )


def check_clock(
    ctx: Context, result: PruneResult, facts: list[BackupFacts], held: set[str] | None
) -> None:
    """Raise :class:`ClockAhead` if the clock is more than ``[retention]
    clock_check_days`` past the newest completed backup and ``result`` expires backups
    that hold data and had not expired when it completed.

    The age rules (``keep_until_expires``, ``failed_days``) compare with the clock; the
    others count backups. A clock stepped a year ahead (a VM restored from a snapshot, a
    bad NTP step, a year typed wrong) made every backup a year old: a prune expired all
    but the newest, the newest verified and ``min_keep`` ones, and the history was gone
    when the clock came back. The newest backup is the evidence of what time it was; like
    restic's ``--keep-within`` (judged from the newest snapshot, not the clock), the age
    rules are not trusted beyond it. Backups that really stopped look the same, and then
    the history is all there is: the nightly prunes expire what expires in the first
    ``clock_check_days``, then refuse and say so (status is red for the backups' age,
    RPO, already). The first backup that completes ends the refusal.

    Unless it completed after a silence (:func:`last_jump`): ``respaldo serve`` keeps
    running its schedules through a step of the clock, and its next backup agreed with
    the clock. Then the evidence is the newest backup before the silence, until
    ``--trust-clock`` or until respaldo has recorded work at the new time for the same
    bound (the nightly prunes refuse, and alert, meanwhile). A machine really off that
    long looks the same, and is told the same way."""
    days = ctx.settings.retention.clock_check_days
    newest = newest_completion(ctx)
    if not days or newest is None:
        return
    longest, setting = longest_rpo(ctx.settings)
    limit = max(timedelta(days=days), longest)
    jump = last_jump(ctx, newest, limit)
    evidence = newest if jump is None else jump[0]
    if result.now <= evidence + limit:
        return
    kept_then = {d.backup.id for d in _decide(ctx, facts, evidence, held).decisions if d.keep}
    early = [d for d in result.expired if d.holds_data and d.backup.id in kept_then]
    if not early:
        return
    values = {
        "clock": f"{result.now:%Y-%m-%d %H:%M}",
        "days": days_said((result.now - evidence).days),
        "last": f"{evidence:%Y-%m-%d %H:%M}",
        "backup": early[0].backup.id,
    }
    count = len(early)
    trust = (
        f"prune with {option('trust_clock')} ([retention] clock_check_days = 0 turns the check off)"
    )
    if jump is not None:
        _, silent_since, resumed = jump
        bound = (
            f"[retention] clock_check_days = {days}"
            if limit == timedelta(days=days)
            else f"[rpo] {setting}"
        )
        raise ClockAhead(
            counted(
                count,
                CLOCK_JUMPED_ONE,
                CLOCK_JUMPED,
                resumed=f"{resumed:%Y-%m-%d %H:%M}",
                gap=days_said(round((resumed - silent_since) / timedelta(days=1))),
                limit=days_said(limit / timedelta(days=1)),
                setting=bound,
                **values,
            ),
            hint="check the clock (timedatectl; a VM restored from a snapshot, an NTP step) "
            "and set it right; if it is right (the machine was off that long), "
            f"{trust}, once: the prunes after it take the new time as right; otherwise "
            "the check ends by itself once backups have run "
            f"{days_said(limit / timedelta(days=1))} at the new time",
        )
    raise ClockAhead(
        # A Phrase: the page and the alerts say it in their language (respaldo.reasons
        # has it too, for the job's stored error).
        counted(count, CLOCK_AHEAD_ONE, CLOCK_AHEAD, limit=days, **values)
        if limit == timedelta(days=days)
        else counted(
            count,
            CLOCK_AHEAD_RPO_ONE,
            CLOCK_AHEAD_RPO,
            limit=f"{limit / timedelta(days=1):.1f}",
            setting=setting,
            **values,
        ),
        hint="check the clock (timedatectl; a VM restored from a snapshot, an NTP step); "
        "if it is right, backups stopped: take one ('respaldo backup'), which ends this; "
        f"to expire by age all the same, {trust}",
    )


def damaged_copies_problem(count: int, repository: str) -> str:
    """What a prune's outcome says of ``count`` damaged chunk copies its collection found
    that kept backups reference."""
    return counted(
        count,
        N_(
            "garbage collection found {count} damaged chunk copy that kept backups reference "
            "(quarantined; no backup deduplicates against it now): run 'respaldo verify --all "
            "--repository {repository}', which marks the backups that need it, then 'respaldo "
            "repair {repository}'"
        ),
        N_(
            "garbage collection found {count} damaged chunk copies that kept backups reference "
            "(quarantined; no backup deduplicates against them now): run 'respaldo verify "
            "--all --repository {repository}', which marks the backups that need them, then "
            "'respaldo repair {repository}'"
        ),
        repository=repository,
    )


def unrepaired_problem(count: int, repository: str) -> str:
    """What a prune's outcome says of ``count`` chunks kept backups reference whose every
    copy in ``repository`` is damaged ('repair' can still mend them from a mirror)."""
    return counted(
        count,
        N_(
            "{count} chunk that kept backups reference has only damaged copies (quarantined): "
            "those backups cannot be restored from {repository} until 'respaldo repair "
            "{repository}' copies it from another repository"
        ),
        N_(
            "{count} chunks that kept backups reference have only damaged copies "
            "(quarantined): those backups cannot be restored from {repository} until "
            "'respaldo repair {repository}' copies them from another repository"
        ),
        repository=repository,
    )


def longest_rpo(settings: Settings) -> tuple[timedelta, str]:
    """The longest age ``[rpo]`` lets a database's newest backup reach before status is
    red (its ``full_hours`` or ``physical_hours``, with ``[databases.rpo]``), and the
    setting that says so (``erp: full_hours = 800``); zero without databases."""
    longest, setting = timedelta(0), ""
    for db in settings.databases:
        rpo = settings.rpo_for(db.name)
        for key, age in (("full_hours", rpo.full), ("physical_hours", rpo.physical)):
            if age > longest:
                longest, setting = age, f"{db.name}: {key} = {age / timedelta(hours=1):g}"
    return longest, setting


# Each with its "1 backup would expire" (counted): the job's stored error, the page and
# the alerts said "1 backups would expire".
CLOCK_AHEAD_ONE = N_(
    "prune refused, nothing was deleted: the clock says {clock} UTC, {days} after the "
    "newest backup completed ({last} UTC, more than [retention] clock_check_days = "
    "{limit}), and by it {count} backup would expire by age that had not expired then "
    "(e.g. {backup}): the clock is ahead, or no backup has completed since"
)
CLOCK_AHEAD = N_(
    "prune refused, nothing was deleted: the clock says {clock} UTC, {days} after the "
    "newest backup completed ({last} UTC, more than [retention] clock_check_days = "
    "{limit}), and by it {count} backups would expire by age that had not expired then "
    "(e.g. {backup}): the clock is ahead, or no backup has completed since"
)
# A backup completed after a silence longer than the bound (last_jump): the one before
# the silence is the evidence of the time.
CLOCK_JUMPED_ONE = N_(
    "prune refused, nothing was deleted: respaldo recorded nothing for {gap} before "
    "{resumed} UTC (more than {limit}, {setting}): the clock jumped ahead, or "
    "respaldo was stopped that long; by the clock ({clock} UTC, {days} after the "
    "newest backup before that silence, {last} UTC) {count} backup would expire by age "
    "that had not expired then (e.g. {backup})"
)
CLOCK_JUMPED = N_(
    "prune refused, nothing was deleted: respaldo recorded nothing for {gap} before "
    "{resumed} UTC (more than {limit}, {setting}): the clock jumped ahead, or "
    "respaldo was stopped that long; by the clock ({clock} UTC, {days} after the "
    "newest backup before that silence, {last} UTC) {count} backups would expire by age "
    "that had not expired then (e.g. {backup})"
)
# The bound when [rpo] lets a backup be older than clock_check_days (a weekly or monthly
# installation): its nightly prunes refused, and alerted, between two on-time backups.
CLOCK_AHEAD_RPO_ONE = N_(
    "prune refused, nothing was deleted: the clock says {clock} UTC, {days} after the "
    "newest backup completed ({last} UTC, more than {limit} days, the longest backup age "
    "[rpo] allows: {setting}), and by it {count} backup would expire by age that had not "
    "expired then (e.g. {backup}): the clock is ahead, or no backup has completed since"
)
CLOCK_AHEAD_RPO = N_(
    "prune refused, nothing was deleted: the clock says {clock} UTC, {days} after the "
    "newest backup completed ({last} UTC, more than {limit} days, the longest backup age "
    "[rpo] allows: {setting}), and by it {count} backups would expire by age that had not "
    "expired then (e.g. {backup}): the clock is ahead, or no backup has completed since"
)


def prune(
    ctx: Context,
    *,
    dry_run: bool = False,
    database: str | None = None,
    now: datetime | None = None,
    wait: float | None = None,
    trust_clock: bool = False,
) -> PruneResult:
    """Expire what the policy expires, in every repository, then collect garbage.

    ``dry_run`` deletes nothing: each repository's report says what collection would
    reclaim once the expired backups are gone. ``wait`` (default: ``[locks]
    wait_seconds``) is how long collection waits for running backups. Problems of one
    repository (unreachable, locked) are in its outcome and make ``ok`` false; the
    other repositories are still pruned. Idempotent.

    Raises :class:`ClockAhead`, having changed nothing, when the clock is far past the
    newest completed backup and that would expire backups by age (:func:`check_clock`),
    unless ``trust_clock``.
    """
    settings = ctx.settings
    settings.repository()  # ConfigError if none is configured: nothing could be deleted
    # The catalog before the repositories: a backup completing meanwhile is then one the
    # catalog does not know yet (kept, with a warning), never one it thinks is missing.
    facts, stored = _catalog(ctx, database)
    repos = open_repositories(ctx)
    present = list_backups(repos)
    # Listed before deciding: a backup no repository holds is not a good one, and must
    # not keep the last one that can be restored out of min_keep; and each repository
    # keeps the newest good backup it holds (a mirror that missed the newer copies).
    whole = restorable(ctx, present)
    facts = with_holders(facts, holders_known(whole, stored, repos))
    held = held_anywhere(whole, repos, stored)
    result = _decide(ctx, facts, now, held)
    if not trust_clock:
        check_clock(ctx, result, facts, held)
    result.dry_run = dry_run
    result.repositories = [outcome for outcome, _ in repos]
    expired = _expired_to_delete(result, present, stored, whole_catalog=database is None)
    if not dry_run:
        for decision in expired:
            _delete_backup(ctx, decision, repos, result)
    gone = {d.backup.id for d in expired if d.holds_data}
    if dry_run:
        for outcome in result.repositories:
            if outcome.deferred is not None:
                outcome.waiting = len(gone)
    for outcome, opened in repos:
        if opened is None:
            continue
        try:
            outcome.gc = collect_garbage(
                opened,
                dry_run=dry_run,
                repack_threshold=settings.gc.repack_threshold,
                small_pack_fraction=settings.gc.small_pack_fraction,
                assume_deleted=gone if dry_run else (),
                wait=wait,
            )
        except RespaldoError as exc:
            outcome.fail(f"garbage collection: {exc}" + (f" ({exc.hint})" if exc.hint else ""))
            log.warning("garbage collection of %s failed: %s", outcome.name, exc)
        else:
            if outcome.gc.damaged:
                # News of damage to kept backups: a prune that reported success would
                # leave them counted as good until someone happened to verify.
                outcome.fail(damaged_copies_problem(outcome.gc.damaged, outcome.name))
            if outcome.gc.unrepaired:
                # Known damage that 'repair' mends. Said only in a line of the output, by a
                # prune that succeeded, it went unseen: once this collection had dropped a
                # mirror's lost pack from its index, the mirror's daily check passed while
                # it could not restore the backups that need these chunks.
                outcome.fail(unrepaired_problem(outcome.gc.unrepaired, outcome.name))
            try:
                outcome.wal = _prune_wal(opened, dry_run=dry_run, gone=gone, wait=wait)
            except RespaldoError as exc:
                outcome.fail(f"WAL retention: {exc}")
                log.warning("WAL retention in %s failed: %s", outcome.name, exc)
        _check_lifecycle(opened, outcome)
        # Whatever happened above: a prune that keeps failing (a backup holding its lease
        # every night) must not let the locks of kept backups run out.
        _renew_locks(opened, outcome, now=result.now, dry_run=dry_run)
    for outcome in result.repositories:
        if outcome.deferred is not None:
            result.warnings.append(deferred_problem(outcome))
    if not dry_run:
        _alert(ctx, result, database)
    return result


def deferred_problem(outcome: RepositoryOutcome) -> str:
    """What a prune says of a secondary it could not reach (``outcome.deferred``)."""
    waiting = counted(
        outcome.waiting,
        "{count} expired backup keeps its record until it is deleted there",
        "{count} expired backups keep their records until they are deleted there",
    )
    return (
        f"repository {outcome.name} could not be reached ({outcome.deferred}): its prune is "
        f"deferred to the next prune that reaches it ({waiting}; its garbage collection, WAL "
        "retention and object lock renewal wait too); the other repositories were pruned"
    )


def _alert(ctx: Context, result: PruneResult, database: str | None) -> None:
    """A critical alert per repository prune could not finish in, a warning per mirror
    it could not reach (deferred); object locks that could not be renewed are an alert
    of their own (a kept backup may lose its lock)."""
    for outcome in result.repositories:
        if outcome.deferred is not None:
            # A warning, titled as deferred: the prune completed ("CRITICAL: prune
            # failed" said otherwise, over a body that said deferred). A failed copy's
            # throttle: an offsite store down for a week is one alert per repeat
            # interval, not one per nightly prune.
            alerts.notify_deferred(
                ctx,
                "prune",
                deferred_problem(outcome),
                repository=outcome.name,
                hint=f"the next prune that reaches {outcome.name} finishes there; if it "
                # Credentials rejected fail the prune (unreachable): not this alert's.
                "stays unreachable, check its endpoint and network, or that its disk is "
                "mounted",
                throttle_key=f"prune-deferred:{outcome.name}",
            )
        if outcome.lock_error is not None:
            alerts.notify_failure(
                ctx,
                "lock-renewal",
                outcome.lock_error,
                repository=outcome.name,
                hint="the next prune tries again; if it keeps failing, check the bucket's "
                "permissions (s3:PutObjectRetention) and Object Lock settings",
            )
        if outcome.lifecycle_error is not None:
            alerts.notify_failure(
                ctx, "prune", outcome.lifecycle_error, repository=outcome.name, hint=HAZARD_HINT
            )
        # What is left once those two have been told, if anything.
        told = "; ".join(e for e in (outcome.lifecycle_error, outcome.lock_error) if e)
        if outcome.error is not None and outcome.error != told:
            damaged = outcome.gc is not None and outcome.gc.damaged
            unrepaired = outcome.gc is not None and outcome.gc.unrepaired
            if damaged:
                hint = (
                    f"kept backups are damaged: run 'respaldo verify --all --repository "
                    f"{outcome.name}', then 'respaldo repair {outcome.name}'"
                )
            elif unrepaired:
                hint = (
                    f"run 'respaldo repair {outcome.name}', then 'respaldo verify --all "
                    f"--repository {outcome.name}'"
                )
            else:
                hint = "run 'respaldo prune' again; it finishes what is left"
            alerts.notify_failure(
                ctx,
                "prune",
                outcome.error,
                database=database,
                repository=outcome.name,
                hint=hint,
            )


def _renew_locks(
    repo: Repository, outcome: RepositoryOutcome, *, now: datetime, dry_run: bool
) -> None:
    store = locking_store(repo.storage)
    if store is None or store.lock_policy is None:
        return
    try:
        outcome.locks = extend_locks(store, now, dry_run=dry_run)
    except RespaldoError as exc:
        _lock_failure(outcome, f"object lock renewal: {exc}")
        log.warning("object lock renewal in %s failed: %s", outcome.name, exc)
        return
    if outcome.locks.failed:
        _lock_failure(
            outcome,
            f"could not renew {len(outcome.locks.failed)} object locks "
            f"(first: {outcome.locks.failed[0]}); the next prune tries again",
        )


def _check_lifecycle(repo: Repository, outcome: RepositoryOutcome) -> None:
    """Fail ``outcome`` if the bucket's lifecycle rules delete or archive the
    repository's current objects (:mod:`respaldo.storage.lifecycle`): ``init`` refuses
    such a bucket, but a rule added since is seen only here, one request a prune, long
    before the rule's days have passed. Rules that cannot be read are left alone (init
    warned about the missing permission)."""
    store = lifecycle_store(repo.storage)
    if store is None:
        return
    try:
        found = store.lifecycle_hazards()
    except RespaldoError as exc:
        log.info("cannot read the lifecycle rules of %s: %s", outcome.name, exc)
        return
    if found:
        message = (
            f"the bucket takes backups away behind respaldo's back: {'; '.join(found)}; "
            "every backup references chunks stored on earlier days, and those would become "
            "unrestorable"
        )
        outcome.fail(message)
        outcome.lifecycle_error = message
        log.warning("%s: %s", outcome.name, message)


def _lock_failure(outcome: RepositoryOutcome, message: str) -> None:
    outcome.fail(message)
    outcome.lock_error = message


def _prune_wal(
    repo: Repository, *, dry_run: bool, gone: set[str], wait: float | None
) -> WalPruneReport:
    if dry_run:
        return prune_wal(repo, dry_run=True, assume_deleted=gone)
    # Exclusive, like garbage collection: a physical backup starting meanwhile must not
    # lose the beginning of the WAL it will need.
    with Lease.acquire(
        repo.storage,
        LockKind.EXCLUSIVE,
        "WAL retention",
        stale_after=repo.lock_stale_after,
        wait=repo.lock_wait if wait is None else wait,
    ):
        return prune_wal(repo)


def _expired_to_delete(
    result: PruneResult,
    present: dict[str, set[str]],
    stored: dict[str, set[str]],
    whole_catalog: bool,
) -> list[Decision]:
    """The expired decisions that are safe to carry out; warnings for the others, and
    for kept backups gone from a repository the catalog says holds them."""
    anywhere: set[str] = set().union(*present.values())
    all_open = len(present) == len(result.repositories)
    todo = []
    for decision in result.decisions:
        b = decision.backup
        mirrors = kept_for_mirrors(decision)
        if mirrors:
            names = ", ".join(mirrors)
            result.warnings.append(
                f"backup {b.id} is kept only because it is the newest one {names} "
                "holds (the copies of newer backups there failed or have not run): "
                + "; ".join(f"'respaldo copy --all --to {name}' copies them" for name in mirrors)
                + ", and a later prune expires it"
            )
        if decision.keep:
            if b.completed and all_open and b.id not in anywhere:
                result.warnings.append(
                    f"backup {b.id} is completed in the catalog but no repository holds "
                    "its manifest; 'respaldo verify --all' tells more"
                )
            elif b.missing:
                result.warnings.append(
                    f"backup {b.id} cannot be restored: it is incremental on a backup no "
                    "repository holds; take a new backup"
                )
            elif b.completed:
                _warn_if_lost_somewhere(result, b.id, present, stored.get(b.id, set()))
            continue
        if not b.completed and b.id in anywhere:
            # The catalog says failed, a repository says it completed (the process died
            # between the manifest and the catalog): it may be the newest good backup.
            result.warnings.append(
                f"backup {b.id} is {b.status} in the catalog but has a manifest: left "
                "alone; 'respaldo catalog rebuild' records it as completed"
            )
            continue
        todo.append(decision)
    if whole_catalog:
        known = {d.backup.id for d in result.decisions}
        for name, ids in present.items():
            orphans = sorted(ids - known)
            if orphans:
                result.warnings.append(
                    counted(
                        len(orphans),
                        "{count} backup in repository {name} has no catalog record ({backup}); "
                        "it is kept: 'respaldo catalog rebuild' adopts it",
                        "{count} backups in repository {name} have no catalog record (e.g. "
                        "{backup}); they are kept: 'respaldo catalog rebuild' adopts them",
                        name=name,
                        backup=orphans[0],
                    )
                )
    return todo


def _warn_if_lost_somewhere(
    result: PruneResult, backup_id: str, present: dict[str, set[str]], stored: set[str]
) -> None:
    """A kept backup that a repository lost (its manifest deleted by hand, a partial
    restore of the directory) while another still holds it: collection there removes
    what only it needed, so the loss of that copy must at least be said."""
    holders = sorted(name for name, ids in present.items() if backup_id in ids)
    for name in sorted(stored):
        if name in present and backup_id not in present[name] and holders:
            result.warnings.append(
                f"backup {backup_id} is kept, but repository {name} no longer holds its "
                f"manifest (the catalog says it was stored there): garbage collection "
                f"there removes what only it needed; {', '.join(holders)} still holds it "
                f"('respaldo verify --all --repository {name}' tells more)"
            )


def open_repositories(ctx: Context) -> list[tuple[RepositoryOutcome, Repository | None]]:
    """Every configured repository with its outcome; None (and the outcome's error)
    for one that cannot be opened."""
    repos: list[tuple[RepositoryOutcome, Repository | None]] = []
    for repo_settings in ctx.settings.repositories:
        outcome = RepositoryOutcome(repo_settings.name)
        try:
            repo = ctx.repository(repo_settings.name)
            outcome.location = repo.storage.location
        except RespaldoError as exc:
            store = repo_settings.url.startswith("s3://")
            _cannot_open(outcome, exc, secondary=bool(repos), object_store=store)
            repos.append((outcome, None))
            continue
        repos.append((outcome, repo))
    return repos


def list_backups(repos: list[tuple[RepositoryOutcome, Repository | None]]) -> dict[str, set[str]]:
    """The ids of the backups each repository holds (has a manifest of), by name. One
    that cannot be listed is left out, its outcome says why, and it becomes None in
    ``repos``."""
    present: dict[str, set[str]] = {}
    for i, (outcome, repo) in enumerate(repos):
        if repo is None:
            continue
        try:
            present[outcome.name] = set(repo.backup_ids())
        except RespaldoError as exc:
            _cannot_open(outcome, exc, secondary=i > 0)
            repos[i] = (outcome, None)
    return present


def restorable(ctx: Context, present: dict[str, set[str]]) -> dict[str, set[str]]:
    """``present`` without, in each repository, the backups whose copy there the catalog
    records as having lost data (a pack of the mirror found gone by a copy or its
    verify, :mod:`~respaldo.operations.lost_packs`): still listed, such a copy restores
    nothing, and counted as held there, retention kept it as the newest the mirror
    holds while an older whole one expired. One query; rarely any row."""
    with ctx.catalog.read() as session:
        lost = BackupCopies(session).lost_in()
    return {name: ids - lost.get(name, set()) for name, ids in present.items()}


def unreachable(exc: RespaldoError, *, object_store: bool = False) -> bool:
    """Whether ``exc``, met opening or listing a repository, says it cannot be reached
    (its store did not answer, timed out or failed: a transient error, after the
    store's retries; nothing is at its location: a disk not mounted) rather than that
    it is another repository or cannot be opened with these keys, which is no outage
    to wait out. Nor is a store's permanent refusal: credentials rejected, access
    denied (403), no such bucket, a certificate not trusted, permission denied on a
    disk. Waiting does not end it, and deferred it was a throttled warning of a prune
    that completed every night while the mirror's retention never ran. Nor, for an
    ``object_store``, is nothing at its location: a store that is down does not answer
    "empty"; its prefix was emptied (every object of the mirror deleted) or the URL
    names another."""
    if isinstance(exc, RepositoryNotFound):
        return not object_store
    return isinstance(exc, TransientStorageError)


def _cannot_open(
    outcome: RepositoryOutcome, exc: RespaldoError, *, secondary: bool, object_store: bool = False
) -> None:
    if secondary and unreachable(exc, object_store=object_store):
        outcome.deferred = f"cannot open: {exc}"
    else:
        outcome.fail(f"cannot open: {exc}")


def held_anywhere(
    present: dict[str, set[str]],
    repos: list[tuple[RepositoryOutcome, Repository | None]],
    stored: dict[str, set[str]],
) -> set[str]:
    """The backups some repository holds: what the listings hold, and for a repository
    that could not be listed, what the catalog says was written or copied there
    (:func:`holders_known`). Without the catalog's word for it, a mirror's outage made
    every backup count as held: backups lost from the primary (that never reached the
    mirror) counted as good toward ``min_keep`` and older good ones expired."""
    return set(holders_known(present, stored, repos))


def holders_listed(present: dict[str, set[str]]) -> dict[str, set[str]]:
    """Backup id -> the names of the repositories whose listing (``present``, from
    :func:`list_backups`) holds it. A repository that could not be listed is in no
    backup's set: nothing can be deleted from it either."""
    found: dict[str, set[str]] = {}
    for name, ids in present.items():
        for backup_id in ids:
            found.setdefault(backup_id, set()).add(name)
    return found


def holders_known(
    present: dict[str, set[str]],
    stored: dict[str, set[str]],
    repos: list[tuple[RepositoryOutcome, Repository | None]],
) -> dict[str, set[str]]:
    """:func:`holders_listed`, and for a repository that could not be listed, the
    catalog's word (``stored``: backup id -> the repositories it was written or copied
    to): while a mirror is down, the newest backup it holds is still known, and kept."""
    found = holders_listed(present)
    unlisted = {outcome.name for outcome, _ in repos} - present.keys()
    for backup_id, names in stored.items():
        for name in names & unlisted:
            found.setdefault(backup_id, set()).add(name)
    return found


def with_holders(facts: list[BackupFacts], holders: dict[str, set[str]]) -> list[BackupFacts]:
    """``facts`` with each completed backup's ``holders`` set from ``holders`` (backup id
    -> repository names), so that retention keeps the newest good backup of each
    repository (:func:`respaldo.retention.protected`)."""
    return [
        replace(f, holders=frozenset(holders.get(f.id, ()))) if f.completed else f for f in facts
    ]


def mark_missing(facts: list[BackupFacts], held: set[str] | None) -> list[BackupFacts]:
    """``facts`` with every completed backup that cannot be restored marked ``missing``
    (so it is not a good one): outside ``held`` (no repository holds it), or incremental
    on a backup outside it (it restores only on top of its whole chain). Unchanged if
    ``held`` is None."""
    if held is None:
        return facts
    by_id = {f.id: f for f in facts}

    def lost(f: BackupFacts) -> bool:
        seen: set[str] = set()
        current: BackupFacts | None = f
        while current is not None and current.id not in seen:
            if current.id not in held:
                return True
            seen.add(current.id)
            if current.parent is None:
                return False
            if current.parent not in held:
                return True
            current = by_id.get(current.parent)
        return False

    return [replace(f, missing=True) if f.completed and lost(f) else f for f in facts]


def delete_manifests(
    backup_id: str, repos: list[tuple[RepositoryOutcome, Repository | None]]
) -> list[str]:
    """Delete the manifest of ``backup_id`` from every repository (its data goes with
    the next garbage collection). The names of the repositories that may still hold it:
    none, or each one's outcome says why, and the catalog record must stay, so that the
    deletion can be finished later (:func:`deleted_elsewhere` records what is done).

    In the order of ``repos``, the configuration's: the primary first. A copy to a
    mirror running meanwhile relies on it (:mod:`respaldo.repository.copy`)."""
    left: list[str] = []
    for outcome, repo in repos:
        if repo is None:
            left.append(outcome.name)
            if outcome.deferred is not None:
                outcome.waiting += 1
            continue
        try:
            repo.storage.delete(manifest_name(backup_id))
            outcome.manifests_deleted += 1
        except ObjectNotFound:
            pass  # never copied there, or deleted by an interrupted run
        except RespaldoError as exc:
            left.append(outcome.name)
            outcome.fail(f"cannot delete manifest of {backup_id}: {exc}")
    return left


def deleted_elsewhere(ctx: Context, backup_id: str, left: list[str]) -> None:
    """The record of ``backup_id`` stays, for the repositories ``left`` that may still
    hold it; if its primary is not one of them, that it is gone from there
    (``primary_deleted_at``): while a mirror is down for days, it is no longer listed,
    verified in the primary, copied or read from there."""
    with ctx.catalog.begin() as session:
        records = BackupRecords(session)
        try:
            if records.get(backup_id).repository not in left:
                records.deleted_from_primary(backup_id)
        except RecordNotFound:
            pass  # another prune (or a deletion by hand) finished it meanwhile


def _delete_backup(
    ctx: Context,
    decision: Decision,
    repos: list[tuple[RepositoryOutcome, Repository | None]],
    result: PruneResult,
) -> None:
    backup = decision.backup
    # The record may have changed since the decision (pinned meanwhile, verified):
    # then leave it to the next run, which decides on what it is now.
    with ctx.catalog.begin() as session:
        try:
            # What prune found in the repositories is not in the record.
            current = replace(
                facts_of(BackupRecords(session).get(backup.id)),
                missing=backup.missing,
                holders=backup.holders,
            )
        except RecordNotFound:
            return
        # A restore (or drill) that started since the decision: of this backup, or of
        # an incremental one that restores on top of it.
        restored = backup.id in _chains(session, being_restored(session))
    if restored:
        result.warnings.append(
            f"backup {backup.id} is being restored (it, or a backup incremental on it): "
            "left for the next prune"
        )
        return
    if current != backup:
        result.warnings.append(f"backup {backup.id} changed during prune; left for next time")
        return
    # Manifests and record go together: a SIGTERM between them left the record
    # "completed" with no manifest (verify --all: a lost backup) until the next prune.
    with cancellation.shielded():
        left = delete_manifests(backup.id, repos) if decision.holds_data else []
        if left:
            # Its record stays, so the next run deletes what is left of it.
            deleted_elsewhere(ctx, backup.id, left)
            return
        with ctx.catalog.begin() as session:
            try:
                BackupRecords(session).delete(backup.id)
            except RecordNotFound:
                # Another prune (or a deletion by hand) finished it meanwhile: done all
                # the same, and this run must go on to collect garbage and renew locks.
                log.info("backup %s was deleted meanwhile by another process", backup.id)
                return
    result.deleted.append(backup.id)
    log.info(
        "deleted backup %s (%s %s, %s, completed %s): %s",
        backup.id,
        backup.database or "-",
        backup.kind,
        backup.status,
        backup.completed_at.isoformat() if backup.completed_at else "-",
        decision.rule,
    )

"""Settling what a process that died left running: its jobs, its backup records (completed
if the manifest exists), its drill runs.

One mechanism decides what is abandoned: the job's lease. A job whose process is gone
from this host, or whose lease lapsed, is failed with the reason
(:meth:`respaldo.catalog.jobs.Jobs.fail_lapsed`); a backup record or a drill run still
running in a job that has ended is abandoned, with the job's reason. Rows without a job
(written before jobs existed, or outside any job) fall back to their own pid on this host.

A backup exists once its manifest is written; the catalog record is completed just after.
A process killed between the two (kill -9, power loss, OOM) leaves a complete backup whose
record says ``in_progress``. At the next start such a record must not be marked
``failed``: its manifest is looked for in the repository it was written to, and if it is
there the record is completed from it (sizes, checksum, times, versions), as ``catalog
rebuild`` would. Only records without a manifest are failed.

The look is cheap: one ``stat`` per abandoned record, and the repository is opened (the
passphrase, the index) only for a record whose manifest exists.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum

from sqlalchemy.orm import Session

from respaldo.catalog import BackupRecords, DrillRuns, Job, Jobs, Workers
from respaldo.catalog.jobs import params_of
from respaldo.config import DatabaseSettings
from respaldo.domain import BackupKind, BackupStatus, JobKind, JobStatus, TriggeredBy, is_backup_id
from respaldo.errors import (
    ConfigError,
    IntegrityError,
    ObjectNotFound,
    RecordNotFound,
    RespaldoError,
)
from respaldo.operations import queue
from respaldo.operations.catalog_rebuild import manifest_values, sealed_size
from respaldo.operations.context import Context
from respaldo.operations.jobs import alert_expired, alert_lapsed
from respaldo.operations.repositories import open_store
from respaldo.postgres import ConnInfo
from respaldo.postgres.scratchdb import drop_abandoned
from respaldo.postgres.server import connect, writable
from respaldo.repository.manifest import manifest_name

log = logging.getLogger(__name__)


class _Found(Enum):
    MANIFEST = "manifest"  # the backup completed: the record was completed from it
    NOTHING = "nothing"  # no manifest (or none that can ever be read): fail the record
    UNKNOWN = "unknown"  # cannot tell now: leave the record as it is, look again next time


@dataclass
class Settled:
    """What :func:`settle_abandoned` did: jobs and drill runs by id, records by backup id."""

    jobs: list[int] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    undecided: list[str] = field(default_factory=list)
    drills: list[int] = field(default_factory=list)


def settle_abandoned(
    ctx: Context,
    now: datetime | None = None,
    *,
    retry_here: bool = False,
    alerts_later: bool = False,
) -> Settled:
    """Fail the lapsed jobs, and the jobs of the queue that waited longer than ``[queue]
    expire_hours`` with no live worker for their queue (expired, alerted, not retried);
    complete the abandoned records whose manifest exists, fail the other records and the
    abandoned drill runs. Every process runs it when it opens
    the catalog (:meth:`Context.open`), and ``respaldo serve`` on a SQLite catalog every
    lease renewal period (:meth:`respaldo.scheduling.service.Service.sweep`). Leases are
    judged by the catalog's clock (:mod:`respaldo.catalog.clock`), not this machine's;
    ``now`` (tests) stands in for it.

    A lost job of the queue (PostgreSQL) is retried per its kind's policy by whoever
    fails it. With ``retry_here`` (the service, which runs jobs itself on SQLite), a lost
    job that the service ran (a schedule's or the API's, not a command line's: the person
    who typed it saw it die) is retried per the same policy, as a new job held by this
    process (:meth:`Jobs.held_retries`), in the transaction that fails it: exactly once.

    The alert of each job failed here is sent before this returns, unless
    ``alerts_later`` (the service's sweep): then it is recorded as a pending delivery for
    each target and the service's resend sends it, so that a target that hangs never
    holds up the sweep (nor, on SQLite, the start of the retries).

    "Abandoned" is :meth:`BackupRecords.abandoned` and :meth:`DrillRuns.abandoned`: still
    running in a job that has ended. Looking is a read that waits for no writer; only
    when something lapsed is the catalog written. A record whose repository cannot be
    asked now (unreachable, no passphrase for reading the manifest) is left
    ``in_progress`` with a warning, and settled by a later command: marking it failed
    could be wrong, and nothing else depends on it meanwhile (prune keeps running
    backups). A repository opened to read a manifest stays open in ``ctx`` for the
    command. The scratch directories of failed drills are removed by the next drill.
    """
    settled = Settled()
    lease = timedelta(seconds=ctx.settings.jobs.lease_seconds)
    # Every command opens the catalog: look first, and take the write lock (which
    # waits behind a running backup's writes) only when a job did lapse.
    seen = _still_lapsed(ctx, lease, now)
    if seen:
        with ctx.catalog.begin() as session:
            failed_jobs = Jobs(session).fail_lapsed(lease=lease, now=now, seen=seen)
            # A lost job of the queue (PostgreSQL catalog) is retried per its kind's
            # policy in the transaction that fails it: whoever finds it first, a worker's
            # sweep or any command opening the catalog, queues the retry, once.
            for job in failed_jobs:
                if queue.retry(ctx, session, job) is None and retry_here:
                    _retry_here(ctx, session, job)
            settled.jobs = [job.id for job in failed_jobs]
        # Whichever process fails a lapsed job tells it (never twice: it is failed now).
        alert_lapsed(ctx, failed_jobs, later=alerts_later)
        _drop_scratch_of(ctx, failed_jobs)
    expire = timedelta(hours=ctx.settings.queue.expire_hours)
    if expire:
        with ctx.catalog.read() as session:
            stale = Jobs(session).any_stale_queued(expire=expire, now=now)
        if stale:
            with ctx.catalog.begin() as session:
                # Not retried: nothing was lost, the job waited too long to be wanted.
                expired = Jobs(session).expire_queued(
                    lease=lease, expire=expire, now=now, silent=silent_workers(ctx, lease, now)
                )
                settled.jobs += [job.id for job in expired]
            alert_expired(ctx, expired, later=alerts_later)
    with ctx.catalog.read() as session:
        abandoned = BackupRecords(session).abandoned()
        candidates = [
            (record.id, record.repository)
            for record, _ in abandoned
            if record.status is BackupStatus.IN_PROGRESS  # pending ones wrote nothing
        ]
        drills = DrillRuns(session).abandoned()
    if not abandoned and not drills:
        return settled
    for backup_id, repository in candidates:
        found = _complete_from_manifest(ctx, backup_id, repository)
        if found is _Found.MANIFEST:
            settled.completed.append(backup_id)
        elif found is _Found.UNKNOWN:
            settled.undecided.append(backup_id)
    with ctx.catalog.begin() as session:
        # When a record or drill run left behind ended is only told, not judged: this
        # machine's clock, as for the other times of records.
        ended = now if now is not None else datetime.now(UTC)
        failed = BackupRecords(session).fail_abandoned(ended, spare=settled.undecided)
        settled.failed = [record.id for record in failed]
        settled.drills = [run.id for run in DrillRuns(session).fail_abandoned(now=ended)]
    for backup_id in settled.failed:
        # Said only of a record that was said to wait: the end of the story told before.
        if ctx.said.pop(backup_id, None) is not None:
            log.warning(
                "backup %s: its repository can be read again and holds no manifest of it: "
                "its record is failed",
                backup_id,
            )
    return settled


SWEEP_CONNECT_TIMEOUT = 3
"""Seconds :func:`_drop_scratch_of` waits for a lapsed job's server to answer (unless its
DSN sets ``connect_timeout``). Any command may be the first to find the job, ``respaldo
list`` included: a server whose machine is down (packets dropped) held it for connect's
10 s per server, 14 s in all for ``list``. A server that answers does in milliseconds."""


CONFIRM_RENEWALS = 5
"""How many lease renewal periods a job that only its lease's age condemns is watched
for a renewal before it is failed (:func:`_still_lapsed`)."""


def _still_lapsed(
    ctx: Context, lease: timedelta, now: datetime | None
) -> dict[int, datetime | None]:
    """The jobs to fail as lapsed, with their last sign of life (``Jobs.looks_lapsed``).

    A lease's age is read on a wall clock, which NTP, a VM resumed or a person can step.
    Stepped ahead by more than a lease (an hour, say), every running job's last renewal
    looked older than its lease until its next one, a renewal period later: a sweep or a
    command opening the catalog in between failed live jobs as lost (a backup cancelled
    mid-way, a critical alert, a second run of it by the retry). So a job that only the
    clock condemns is looked at again after :data:`CONFIRM_RENEWALS` renewal periods (on
    this process's monotonic clock, which no step moves): its runner, if alive, has
    renewed by then, and it is not failed. One whose process is gone from this host is
    failed at once. The wait happens only when a lease looks lapsed: a real loss costs
    the first process that finds it a few seconds, once."""
    with ctx.catalog.read() as session:
        looked = Jobs(session).looks_lapsed(lease=lease, now=now)
    if all(sign is None for sign in looked.values()):
        return looked
    threading.Event().wait(CONFIRM_RENEWALS * ctx.settings.jobs.renew_seconds)
    with ctx.catalog.read() as session:
        again = Jobs(session).looks_lapsed(lease=lease, now=now)
    # Kept: the gone, and the silent that were silent the first time too (a job that
    # lapsed in between waits for the next look, as it would have before).
    return {
        job_id: sign
        for job_id, sign in again.items()
        if sign is None or (job_id in looked and looked[job_id] == sign)
    }


def silent_workers(ctx: Context, lease: timedelta, now: datetime | None) -> dict[int, datetime]:
    """The workers silent for longer than ``lease`` at two looks :data:`CONFIRM_RENEWALS`
    renewal periods apart (this process's monotonic clock), with the same last heartbeat
    at both: the rule :func:`_still_lapsed` gives jobs. Heartbeats are judged by the
    catalog's clock; stepped ahead by more than a lease (NTP, a VM resumed), it made every
    live worker look silent: its row was pruned (and never came back: a beat re-creates
    nothing) and the jobs waiting in its queues expired. A live worker beats in between.
    The wait happens only when a worker looks silent with a heartbeat not yet confirmed
    silent, by this process (``ctx``) or another (the row's ``confirmed_silent_at``): a
    lost worker's row stays for :data:`~respaldo.operations.queue.LOST_SHOWN`, and neither
    a sweep every renewal period nor each one-shot command must wait each time for it."""
    with ctx.catalog.read() as session:
        workers = Workers(session)
        looked = workers.silent(lease=lease, now=now)
        known = ctx.silent_confirmed | workers.confirmed_silent() if looked else set()
    if set(looked.items()) <= known:
        return looked
    _second_look(ctx)
    with ctx.catalog.read() as session:
        again = Workers(session).silent(lease=lease, now=now)
    confirmed = {worker: beat for worker, beat in again.items() if looked.get(worker) == beat}
    # Only the pairs silent now: a worker pruned, or heard from again, is forgotten.
    ctx.silent_confirmed = set(confirmed.items())
    if set(confirmed.items()) - known:
        with ctx.catalog.begin() as session:
            Workers(session).confirm_silent(confirmed)
    return confirmed


def _second_look(ctx: Context) -> None:
    """Wait :data:`CONFIRM_RENEWALS` renewal periods before looking again: a live worker
    beats in between (this process's monotonic clock, whatever the catalog's says)."""
    threading.Event().wait(CONFIRM_RENEWALS * ctx.settings.jobs.renew_seconds)


def prune_workers(ctx: Context, now: datetime | None = None) -> int:
    """Forget the workers silent (:func:`silent_workers`) for longer than
    :data:`~respaldo.operations.queue.LOST_SHOWN`; return how many. A worker killed with
    SIGKILL leaves its row until then: silent for longer than the lease, it is listed
    ``lost`` (``respaldo workers``, the status), so that whoever lost a machine sees it.
    Before, its row was removed once silent for a lease, and it vanished unseen."""
    lease = timedelta(seconds=ctx.settings.jobs.lease_seconds)
    silent = silent_workers(ctx, lease, now)
    if not silent:
        return 0
    with ctx.catalog.read() as session:
        old = Workers(session).silent(lease=queue.LOST_SHOWN, now=now)
    # The write transaction only when a lost worker's window has passed, not every sweep.
    if not any(silent.get(worker) == beat for worker, beat in old.items()):
        return 0
    with ctx.catalog.begin() as session:
        return Workers(session).prune(lease=queue.LOST_SHOWN, now=now, seen=silent)


def _drop_scratch_of(ctx: Context, lapsed: list[Job]) -> None:
    """Drop the abandoned scratch databases of the servers the lapsed restores and drills
    ran on, now, rather than at the next restore or drill there.

    A restore killed with SIGKILL (OOM, a power cut of its own machine) leaves its
    staging database, a whole copy of the data, and, with ``--jobs``, pg_restore
    processes in sessions of their own that go on loading it (nobody will swap it in).
    They were swept only by the next restore or drill on that server, which may be the
    monthly restore test: until then the copy filled the ERP's disk and the orphans
    loaded its server. The process that finds the job lapsed (``serve``, a worker, any
    command) sweeps now; :func:`~respaldo.postgres.scratchdb.drop_abandoned` drops only
    databases nobody holds, with ``FORCE``, which ends the orphans' sessions (and so the
    orphans) before the drop. A server that cannot be reached is left to the next
    restore or drill, as before, with a warning, after :data:`SWEEP_CONNECT_TIMEOUT`."""
    servers: dict[tuple[str | None, int | None], ConnInfo] = {}
    for job in lapsed:
        if job.kind not in (JobKind.RESTORE, JobKind.DRILL):
            continue
        try:
            db = _database_of(ctx, job)
            if db is None:
                continue
            admin = writable(ConnInfo.from_settings(db))
        except RespaldoError as exc:
            log.warning("cannot look for what job %s left on its server: %s", job.id, exc)
            continue
        servers.setdefault((admin.host, admin.port), admin)
    for admin in servers.values():
        try:
            with connect(
                admin,
                autocommit=True,
                connect_timeout=SWEEP_CONNECT_TIMEOUT,
                application_name="respaldo sweep",
            ) as conn:
                said = drop_abandoned(admin, conn)
        except RespaldoError as exc:
            log.warning(
                "cannot drop the scratch databases left on %s: %s (the next restore or "
                "drill there tries again)",
                admin.describe(),
                exc,
            )
            continue
        for line in said:
            log.warning("%s", line)


def _database_of(ctx: Context, job: Job) -> DatabaseSettings | None:
    """The configured database whose server a restore or drill job used, or None (a
    drill of a file set, a physical restore's, a backup the catalog no longer has)."""
    params = params_of(job)
    name = params.get("database")
    if not name:
        configured = {db.name for db in ctx.settings.databases}
        if job.kind is JobKind.DRILL and job.target in configured:
            name = job.target
        else:
            backup_id = params.get("backup_id") or job.result_id
            if not backup_id and job.target and is_backup_id(job.target):
                # A target that is no backup id is a file set's name (a scheduled restore
                # test of it): looking it up as an id warned "invalid backup id" for
                # every lapsed drill of a file set, which makes no scratch database.
                backup_id = job.target
            if not backup_id:
                return None
            try:
                with ctx.catalog.read() as session:
                    record = BackupRecords(session).get(str(backup_id))
                    kind, name = record.backup_type, record.database_name
            except RecordNotFound:
                return None
            if kind in (BackupKind.INCREMENTAL, BackupKind.FILES):
                return None  # physical and files restores make no scratch database
    if not name:
        return None
    return ctx.settings.database(str(name))


def sweep_here(ctx: Context) -> list[int]:
    """The sweep of ``respaldo serve`` on a SQLite catalog (no queue, so no worker sweeps):
    :func:`settle_abandoned` with ``retry_here``, then the ids of the retries this process
    holds and has to run (those it queued now, at its start, or in an earlier sweep it
    has not run yet), oldest first. The alerts of the jobs it failed are left to the
    service's resend (``alerts_later``)."""
    settle_abandoned(ctx, retry_here=True, alerts_later=True)
    with ctx.catalog.read() as session:
        return [job.id for job in Jobs(session).held_retries(os.getpid())]


def _retry_here(ctx: Context, session: Session, lost: Job) -> Job | None:
    """A retry of the lost ``lost``, held by this process (the service) to run, if it was
    the service's and its kind's policy allows; None otherwise."""
    if lost.started_at is None and lost.retry_of is None:
        # Accepted, never started: whoever asked decides whether it still stands
        # (docs/service.md); only work that was cut off is run again. A retry the
        # service held is that cut-off work (its own, within the retries): run again.
        return None
    if not _may_retry_here(ctx, lost):
        return None
    job = Jobs(session).retry(lost, runner_pid=os.getpid())
    log.warning("job %s was lost (%s): job %s runs it again", lost.id, lost.error_message, job.id)
    return job


def _may_retry_here(ctx: Context, job: Job) -> bool:
    """Whether the service may run ``job`` again itself: the service's own (a schedule's
    or the API's, not a command line's), no queue's, within its kind's retries."""
    if job.queue_name is not None or job.triggered_by is TriggeredBy.CLI:
        return False
    if queue.has_queue(ctx):  # the service's jobs are the queue's: its workers retry them
        return False
    return queue.retries_allowed(ctx.settings, job)


def retry_stopped(ctx: Context, schedule: str) -> int | None:
    """At the service's start (SQLite catalog): when the last run of ``schedule`` (skips
    aside) was cancelled by a stop of the service (SIGTERM, ``systemctl restart``: it
    ended ``cancelled`` and nobody asked), queue a retry of it held by this process, which
    its first sweep starts, as for a run lost to kill -9 and within the same ``[queue]
    retries``; returns its id. None when there is nothing to run again, or a retry of it
    exists already (two services starting on one catalog: the write lock makes it once).

    Before, such a run was not missed (its time had come and gone with a job) and not
    lost (it ended): the night's backup cut off by a restart was simply not taken, the
    status amber (not alerted) until the RPO lapsed a day later."""
    with ctx.catalog.begin() as session:
        jobs = Jobs(session)
        # Runs skipped while it ran (its schedule fired again) ran nothing after it.
        last = jobs.last_run(schedule)
        if last is None:
            return None
        stopped = last.status is JobStatus.CANCELLED and not last.cancel_requested
        if not stopped or jobs.retried(last.id) or not _may_retry_here(ctx, last):
            return None
        job = jobs.retry(last, runner_pid=os.getpid())
        log.warning(
            "%s: its last run (job %s) was cancelled by a stop of the service (%s): "
            "job %s runs it again",
            schedule,
            last.id,
            last.error_message,
            job.id,
        )
        return job.id


def _say(ctx: Context, backup_id: str, message: str) -> None:
    """Warn ``message`` about a record that waits, unless it is what was said last about
    it on this context: the service sweeps every few seconds, and a repository that stays
    unreachable must not fill the log with one line per pass."""
    if ctx.said.get(backup_id) != message:
        ctx.said[backup_id] = message
        log.warning("%s", message)


def _complete_from_manifest(ctx: Context, backup_id: str, repository: str) -> _Found:
    settings = ctx.settings
    try:
        repo_settings = settings.repository(repository)
    except ConfigError:
        return _Found.NOTHING  # no longer configured: no manifest can ever be found
    name = manifest_name(backup_id)
    try:
        # No retries here: a record that cannot be looked at now waits for the next
        # sweep, which is the retry (and retries would log a warning each, every pass).
        store = open_store(repo_settings, retries=0)
        try:
            store.stat(name)
        finally:
            store.close()
    except ObjectNotFound:
        return _Found.NOTHING
    except RespaldoError as exc:
        _say(
            ctx,
            backup_id,
            f"backup {backup_id}: its process died; whether it completed is not known until "
            f"repository {repository} can be read ({exc})",
        )
        return _Found.UNKNOWN
    try:
        repo = ctx.repository(repo_settings.name)
        manifest = repo.load_manifest(backup_id)
    except IntegrityError as exc:
        log.warning("backup %s: its process died and its manifest is damaged (%s)", backup_id, exc)
        return _Found.NOTHING
    except RespaldoError as exc:
        _say(
            ctx,
            backup_id,
            f"backup {backup_id}: its process died after writing its manifest, which cannot "
            f"be read now ({exc}); a command that can open repository {repository} will "
            "complete its record",
        )
        return _Found.UNKNOWN
    values = manifest_values(
        manifest, repo_settings.name, repo.storage.location, sealed_size(repo, manifest)
    )
    with ctx.catalog.begin() as session:
        BackupRecords(session).upsert_from_manifest(values)
    ctx.said.pop(backup_id, None)
    log.warning(
        "backup %s: its process died after the backup was complete; its record is completed "
        "from its manifest (copies to other repositories follow with the next backup)",
        backup_id,
    )
    return _Found.MANIFEST

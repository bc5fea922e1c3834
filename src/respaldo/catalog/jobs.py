"""Queries on ``jobs``: submitting, starting, renewing, finishing and cancelling jobs.

A job's lease is its ``heartbeat_at``: the process that runs it renews it, and a job
whose lease lapsed (or whose process is gone from this host) is failed by
:meth:`Jobs.fail_lapsed`, which every process runs when it opens the catalog. That is
the one mechanism for work whose process died: a backup record or a drill run names the
job it runs in (``job_id``) and is abandoned exactly when that job has ended while the
row still says it runs (:func:`orphan_reason`). Only rows without a job (written before
jobs existed, or outside any job) fall back to their own pid.

A queued job that a process of its own is to run (not one of procrastinate's queue,
which owns those) names that process too, its "runner", in the same columns: the
service's worker threads, a CLI command, a schedule. It is failed as not started when its
runner is gone from this host, or, on another host (where a pid cannot be checked), when
the runner stopped renewing it (:meth:`Jobs.renew_queued`). A queued job without either
(submitted by an older respaldo) is failed once it has waited longer than the lease.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from respaldo.catalog.clock import catalog_now
from respaldo.catalog.columns import row_count, row_id
from respaldo.catalog.models import Job, JobTally
from respaldo.domain import JobKind, JobStatus, TriggeredBy
from respaldo.errors import (
    AlreadyFired,
    CatalogError,
    InvalidTransition,
    JobConflict,
    RecordNotFound,
)
from respaldo.processes import pid_alive, this_host

_FINAL = tuple(status for status in JobStatus if status.is_final)

_PG_SCHEDULE_LOCKS: Final = 0x72_73_63_68
"""The advisory locks' first key that marks a schedule's lock ("rsch"): the second is the
schedule's name hashed (:meth:`Jobs.lock_schedule`)."""


def known_kind() -> sa.ColumnElement[bool]:
    """The jobs of a kind this version knows. A newer respaldo sharing the catalog (a
    fleet mid-upgrade, a downgrade) may write kinds this one cannot read: reading such a
    row raises LookupError, so the queries that sweep, list and count select around
    them, and leave them to the version that wrote them."""
    return Job.kind.in_(builtins.list(JobKind))


class Jobs:
    """Changes and queries within one Session (never commits)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def _now(self, now: datetime | None) -> datetime:
        """``now`` if given (tests), else the catalog's clock (:mod:`.clock`): every time
        a job's lease counts from or is judged against is the one clock of the catalog."""
        return now if now is not None else catalog_now(self.session)

    def submit(
        self,
        kind: JobKind,
        *,
        target: str | None,
        triggered_by: TriggeredBy,
        requested_by: str | None,
        params: Mapping[str, Any] | None = None,
        exclusive_key: str | None = None,
        scheduled_for: datetime | None = None,
        retry_of: int | None = None,
        attempt: int = 1,
        runner_pid: int | None = None,
        runner_host: str | None = None,
        now: datetime | None = None,
    ) -> Job:
        """A new ``queued`` job.

        ``scheduled_for``: the fire time of a scheduled job; a second job of the same
        schedule (``requested_by``) and fire time raises AlreadyFired, and the caller's
        transaction must then roll back.

        ``runner_pid`` (on ``runner_host``, default this host): the process that will run
        the job, which holds it in memory until then; if that process dies first, the job
        is failed as not started (:meth:`fail_lapsed`). Its lease starts now.
        """
        when = self._now(now)
        job = Job(
            kind=kind,
            target=target,
            params=json.dumps(dict(params or {}), sort_keys=True),
            status=JobStatus.QUEUED,
            triggered_by=triggered_by,
            requested_by=requested_by,
            created_at=when,
            cancel_requested=False,
            exclusive_key=exclusive_key,
            scheduled_for=scheduled_for,
            retry_of=retry_of,
            attempt=attempt,
        )
        if runner_pid is not None:
            job.worker_pid = runner_pid
            job.worker_host = runner_host if runner_host is not None else this_host()
            job.heartbeat_at = when
        self.session.add(job)
        if scheduled_for is None:
            self.session.flush()
            return job
        try:
            self.session.flush()
        except IntegrityError:
            raise AlreadyFired(
                f"{requested_by} was already fired for {scheduled_for.isoformat()}",
                hint="another 'respaldo serve' submitted it; nothing to do",
            ) from None
        return job

    def retry(
        self, lost: Job, *, runner_pid: int | None = None, now: datetime | None = None
    ) -> Job:
        """A new ``queued`` job that runs ``lost`` again: same kind, target, inputs and
        requester, the next attempt, linked to it by ``retry_of``. ``runner_pid`` (on this
        host): the process that will run it, as in :meth:`submit` (a queue's retry has
        none: the queue's workers take it).

        A backup record ``reserved`` for ``lost`` (an API request's) is not passed on:
        the sweep settles that record (failed with the reason, or completed from its
        manifest) and a settled record cannot be started again, so the retry takes a
        backup of its own, recorded as its result."""
        when = self._now(now)
        params = {k: v for k, v in params_of(lost).items() if k != "reserved"}
        job = Job(
            kind=lost.kind,
            target=lost.target,
            params=None if lost.params is None else json.dumps(params, sort_keys=True),
            status=JobStatus.QUEUED,
            triggered_by=lost.triggered_by,
            requested_by=lost.requested_by,
            created_at=when,
            cancel_requested=False,
            exclusive_key=lost.exclusive_key,
            queue_name=lost.queue_name,
            retry_of=lost.id,
            attempt=lost.attempt + 1,
        )
        if runner_pid is not None:
            job.worker_pid, job.worker_host, job.heartbeat_at = runner_pid, this_host(), when
        self.session.add(job)
        self.session.flush()
        return job

    def last_run(self, schedule: str) -> Job | None:
        """The newest job of ``schedule`` that was not ``skipped`` (a skip runs nothing:
        the run before it, or another process's, still went on)."""
        query = (
            sa.select(Job)
            .where(*_of_schedule(schedule), Job.status != JobStatus.SKIPPED)
            .order_by(Job.created_at.desc(), Job.id.desc())
            .limit(1)
        )
        return self.session.scalars(query).first()

    def lock_schedule(self, schedule: str) -> None:
        """Take ``schedule``'s lock until the transaction ends, so that its firings' checks
        for an unfinished previous run (:meth:`unfinished_run`) and their queueing take
        turns across processes. Two ``serve`` firing different fire times at once (one's
        scheduler late by an interval) each missed the other's uncommitted job under
        PostgreSQL's READ COMMITTED, and both queued. SQLite's writing transactions
        already run one at a time (``BEGIN IMMEDIATE``). Two schedules whose names hash
        alike only take turns too."""
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(
                sa.text(
                    "SELECT pg_advisory_xact_lock(CAST(:locks AS integer), hashtext(:schedule))"
                ),
                {"locks": _PG_SCHEDULE_LOCKS, "schedule": schedule},
            )

    def unfinished_run(self, schedule: str, *, besides: int) -> Job | None:
        """A job of ``schedule`` other than job ``besides`` that is still queued or
        running, the oldest; None when there is none. Every unfinished one is looked at,
        however many skipped firings came after it."""
        query = (
            sa.select(Job)
            .where(*_of_schedule(schedule), Job.status.not_in(_FINAL), Job.id != besides)
            .order_by(Job.id)
            .limit(1)
        )
        return self.session.scalars(query).first()

    def retried(self, job_id: int) -> bool:
        """Whether a retry of job ``job_id`` was made (:meth:`retry`)."""
        query = sa.select(Job.id).where(Job.retry_of == job_id).limit(1)
        return self.session.scalars(query).first() is not None

    def held_retries(self, pid: int) -> builtins.list[Job]:
        """The retries still ``queued`` that process ``pid`` of this host holds to run
        (:meth:`retry` with ``runner_pid``), oldest first."""
        query = (
            sa.select(Job)
            .where(
                known_kind(),
                Job.status == JobStatus.QUEUED,
                Job.retry_of.is_not(None),
                Job.queue_name.is_(None),
                Job.worker_pid == pid,
                Job.worker_host == this_host(),
            )
            .order_by(Job.id)
        )
        return builtins.list(self.session.scalars(query))

    def set_queued(self, job_id: int, *, queue_name: str, queue_job_id: int) -> Job:
        """Record where a job was queued (the queue and procrastinate's id)."""
        job = self.get(job_id)
        job.queue_name = queue_name
        job.queue_job_id = queue_job_id
        self.session.flush()
        return job

    def get(self, job_id: int) -> Job:
        """Job ``job_id``. Raises RecordNotFound, or CatalogError for a job of a kind a
        newer respaldo wrote."""
        try:
            job = self.session.get(Job, job_id) if row_id(job_id) else None
        except LookupError:
            kind = self.session.scalar(
                sa.select(sa.cast(Job.kind, sa.String)).where(Job.id == job_id)
            )
            raise CatalogError(
                f"job {job_id} is a {kind!r} job, written by a newer respaldo",
                hint="upgrade respaldo here to read, run or cancel it; the version that "
                "wrote it can",
            ) from None
        if job is None:
            raise RecordNotFound(f"no job {job_id}", hint="'respaldo jobs' lists the jobs")
        return job

    def list(
        self,
        *,
        limit: int = 50,
        status: JobStatus | None = None,
        triggered_by: TriggeredBy | None = None,
        requested_by: str | None = None,
        created_at_most: datetime | None = None,
    ) -> builtins.list[Job]:
        """Jobs matching every filter given, newest first (of the kinds this version
        knows: :func:`known_kind`)."""
        query = sa.select(Job).where(known_kind())
        if created_at_most is not None:
            query = query.where(Job.created_at <= created_at_most)
        if status is not None:
            query = query.where(Job.status == status)
        if triggered_by is not None:
            query = query.where(Job.triggered_by == triggered_by)
        if requested_by is not None:
            query = query.where(Job.requested_by == requested_by)
        query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(row_count(limit))
        return builtins.list(self.session.scalars(query))

    def forget_earlier(self, schedule: str, before: int, *, keep_failed: int) -> int:
        """Delete the runs of ``schedule`` older than job ``before`` that ended well
        (completed, skipped) and its failed or cancelled ones but the newest
        ``keep_failed``: for a schedule that runs every few minutes. Returns how many."""
        earlier = sa.and_(
            Job.triggered_by == TriggeredBy.SCHEDULE,
            Job.requested_by == schedule,
            Job.id < before,
        )
        bad = (JobStatus.FAILED, JobStatus.CANCELLED)
        kept = (
            sa.select(Job.id)
            .where(earlier, Job.status.in_(bad))
            .order_by(Job.id.desc())
            .limit(keep_failed)
        )
        ended = Job.status.in_((JobStatus.COMPLETED, JobStatus.SKIPPED, *bad))
        return self._forget(earlier, ended, Job.id.not_in(kept.scalar_subquery()))

    def forget_ended(self, before: datetime) -> int:
        """Delete the jobs that ended before ``before`` (retention), except the newest run
        of each schedule (the service counts missed runs from it) and the completed
        prunes that say what they reclaimed (``/metrics`` sums them). Returns how many."""
        newest_runs = (
            sa.select(sa.func.max(Job.id))
            .where(Job.triggered_by == TriggeredBy.SCHEDULE)
            .group_by(Job.requested_by)
        )
        reclaimed = sa.and_(
            Job.kind == JobKind.PRUNE,
            Job.status == JobStatus.COMPLETED,
            Job.outcome.is_not(None),
        )
        return self._forget(
            Job.status.in_(_FINAL),
            sa.func.coalesce(Job.finished_at, Job.created_at) < before,
            Job.id.not_in(newest_runs.scalar_subquery()),
            sa.not_(reclaimed),
        )

    def _forget(self, *where: sa.ColumnElement[bool]) -> int:
        """Delete the jobs ``where`` says, counting them into ``job_tallies`` in the same
        transaction (from the rows actually deleted: two processes forgetting at once
        never count one row twice). Returns how many."""
        rows = self.session.execute(
            # Of the kinds this version knows (known_kind): a newer respaldo's are its own
            # to forget, and reading one back raised LookupError, failing the prune.
            sa.delete(Job)
            .where(known_kind(), *where)
            .returning(Job.kind, Job.status, Job.finished_at)
        ).all()
        tallies: dict[tuple[JobKind, JobStatus], tuple[int, datetime | None]] = {}
        for kind, status, finished in rows:
            count, last = tallies.get((kind, status), (0, None))
            if finished is not None and (last is None or finished > last):
                last = finished
            tallies[(kind, status)] = (count + 1, last)
        for (kind, status), (count, last) in tallies.items():
            _add_tally(self.session, kind, status, count, last)
        return len(rows)

    def running_with_key(self, key: str) -> Job | None:
        query = sa.select(Job).where(
            known_kind(), Job.status == JobStatus.RUNNING, Job.exclusive_key == key
        )
        return self.session.scalars(query).first()

    def start(
        self, job_id: int, *, pid: int, host: str | None = None, now: datetime | None = None
    ) -> Job:
        """``queued`` -> ``running`` in process ``pid``; the lease starts now.

        Raises JobConflict if another running job holds its exclusive key (the caller's
        transaction must then roll back: the job stays queued); InvalidTransition if it
        is not queued (cancelled meanwhile).
        """
        job = self.get(job_id)
        job.status.check_transition(JobStatus.RUNNING, job_id=job.id)
        if job.exclusive_key is not None:
            holder = self.running_with_key(job.exclusive_key)
            if holder is not None:
                raise _conflict(job, holder.id)
        refusal = _conflict(job, None)  # built now: after a failed flush, job is unreadable
        when = self._now(now)
        job.status = JobStatus.RUNNING
        job.started_at = when
        job.heartbeat_at = when
        job.worker_pid = pid
        job.worker_host = host if host is not None else this_host()
        try:
            # The unique index catches a race the query above cannot see (another
            # process starting the same key in a concurrent transaction). The session
            # is then unusable: the caller's transaction rolls back, the job stays queued.
            self.session.flush()
        except IntegrityError:
            raise refusal from None
        return job

    def renew(
        self,
        job_id: int,
        *,
        done: int | None = None,
        total: int | None = None,
        now: datetime | None = None,
    ) -> Job:
        """Renew a running job's lease and store its progress; return the row, whose
        ``cancel_requested`` and ``status`` tell the runner whether to go on."""
        job = self.get(job_id)
        if job.status is JobStatus.RUNNING:
            job.heartbeat_at = self._now(now)
            if done is not None:
                job.progress_done = done
                job.progress_total = total
            self.session.flush()
        return job

    def renew_queued(self, job_ids: Iterable[int], *, now: datetime | None = None) -> int:
        """Renew the lease of those of ``job_ids`` still ``queued``: their runner, which
        holds them until it starts them, is alive. Returns how many were renewed."""
        ids = builtins.list(job_ids)
        if not ids:
            return 0
        result = self.session.execute(
            sa.update(Job)
            .where(Job.id.in_(ids), Job.status == JobStatus.QUEUED)
            .values(heartbeat_at=self._now(now))
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    def set_result(self, job_id: int, result_id: str) -> None:
        self.get(job_id).result_id = result_id
        self.session.flush()

    def finish(
        self,
        job_id: int,
        status: JobStatus,
        *,
        error: str | None = None,
        result_id: str | None = None,
        outcome: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> Job:
        """Move a job to a final ``status``, with the error that ended it, if any, and
        what it produced (``outcome``, stored as a JSON object)."""
        job = self.get(job_id)
        job.status.check_transition(status, job_id=job.id)
        job.status = status
        job.finished_at = self._now(now)
        job.error_message = error
        if result_id is not None:
            job.result_id = result_id
        if outcome is not None:
            job.outcome = json.dumps(dict(outcome), sort_keys=True)
        self.session.flush()
        return job

    def request_cancel(self, job_id: int, *, now: datetime | None = None) -> Job:
        """Ask a job to stop: a queued one is cancelled at once, a running one is flagged
        for its runner (which stops, cleans up and records ``cancelled``). Raises
        InvalidTransition for a job that has already ended."""
        job = self.get(job_id)
        if job.status.is_final:
            raise InvalidTransition(
                f"job {job.id} has already ended ({job.status.value})",
                current=job.status.value,
                requested=JobStatus.CANCELLED.value,
                hint="only queued or running jobs can be cancelled; 'respaldo jobs' lists them",
            )
        if job.status is JobStatus.QUEUED:
            job.status = JobStatus.CANCELLED
            job.finished_at = self._now(now)
            job.error_message = "cancelled before it started"
        job.cancel_requested = True
        self.session.flush()
        return job

    def fail_lapsed(
        self,
        *,
        lease: timedelta,
        is_alive: Callable[[int], bool] = pid_alive,
        now: datetime | None = None,
        seen: Mapping[int, datetime | None] | None = None,
    ) -> builtins.list[Job]:
        """Fail every running job whose process is gone from this host, or whose lease
        was last renewed more than ``lease`` ago (on any host); and every queued job that
        its runner will never start (see :func:`_unstarted_reason`). Return them.

        A lease's age is judged by the catalog's clock (:mod:`.clock`), the one that
        renewed it: on PostgreSQL, the clocks of the machines need not agree. With
        ``seen`` (what :meth:`looks_lapsed` said a while before), a job that only its
        lease's age condemns is failed only if its last sign of life is still the one
        seen then: one renewed since lives, whatever the clock says (a step of the clock).

        A running job someone asked to cancel (``respaldo jobs cancel``) whose process
        died before it could see the request ends ``cancelled`` instead: the request is
        honoured, and nobody retries it (:func:`retries_allowed`) or alerts on it."""
        lapsed = []
        found, when = self._lapsed(lease, is_alive, now, lock=True)
        if seen is not None:
            found = [
                (job, reason)
                for job, reason in found
                if job.id in seen and seen[job.id] in (None, _sign(job))
            ]
        for job, reason in found:
            cancelled = job.status is JobStatus.RUNNING and job.cancel_requested
            job.status = JobStatus.CANCELLED if cancelled else JobStatus.FAILED
            job.finished_at = when
            job.error_message = f"cancelled by request; {reason}" if cancelled else reason
            lapsed.append(job)
        self.session.flush()
        return lapsed

    def expire_queued(
        self,
        *,
        lease: timedelta,
        expire: timedelta,
        now: datetime | None = None,
        silent: Mapping[int, datetime] | None = None,
    ) -> builtins.list[Job]:
        """Fail every job of procrastinate's queue that has waited longer than
        ``expire`` in a queue no live worker (one heard from within ``lease``, not
        stopping unless still running a job) takes, and in which no worker has run a job
        for ``expire`` either (a restart's gap); return them. They can no longer be
        expected to run: a restore or restore test among them kept its backup from prune
        (:func:`respaldo.operations.prune.being_restored`) for as long as it waited,
        and would have started by surprise whenever a worker came back. Their queue
        entries stay; a worker that takes one finds the job ended and runs nothing.

        With ``silent`` (the workers silent at two looks a while apart, each with the
        heartbeat seen: :func:`respaldo.operations.reconcile.silent_workers`), only those
        count as dead: the catalog's clock stepped ahead made every live worker look
        silent, and every job waiting in its queues look expired."""
        # Imported here: workers.py builds on this module (known_kind).
        from respaldo.catalog.workers import Workers, queues_of

        stale = self._stale_queued(expire, now, lock=True)
        if not stale:
            return []
        when = self._now(now)
        workers = Workers(self.session)
        # A stopping worker still busy with a job is most often one being restarted (an
        # upgrade): it takes its queues again in a moment, as its successor.
        if silent is None:
            live = workers.alive(lease=lease, now=when)
        else:
            live = [w for w in workers.listed() if silent.get(w.id) != w.heartbeat_at]
        takers = [queues_of(w) for w in live if not w.stopping or workers.running(w)]
        served = self._served_queues(when - expire)
        expired = []
        hours = f"{expire / timedelta(hours=1):g}"
        for job in stale:
            if any(queues is None or job.queue_name in queues for queues in takers):
                continue  # a live worker takes it: it waits behind others, it will run
            if job.queue_name in served:
                continue  # its queue's worker ran a job lately: it is between two
            job.status = JobStatus.FAILED
            job.finished_at = when
            job.error_message = (
                f"expired: waited in queue {job.queue_name!r} since "
                f"{job.created_at.isoformat(timespec='seconds')}, more than [queue] "
                f"expire_hours = {hours}, and no live worker takes that queue"
            )
            expired.append(job)
        self.session.flush()
        return expired

    def _served_queues(self, since: datetime) -> set[str]:
        """The queues in which a worker ran a job at some time after ``since`` (one is
        running, or one started or ended then): the gap between a worker that stopped
        and the one that replaces it is no abandoned queue."""
        query = sa.select(Job.queue_name).where(
            Job.queue_name.is_not(None),
            Job.started_at.is_not(None),
            sa.or_(
                Job.status == JobStatus.RUNNING,
                Job.started_at >= since,
                Job.finished_at >= since,
            ),
        )
        return {str(name) for name in self.session.scalars(query.distinct())}

    def any_stale_queued(self, *, expire: timedelta, now: datetime | None = None) -> bool:
        """Whether a job of the queue has waited longer than ``expire`` (reads only)."""
        return bool(self._stale_queued(expire, now, lock=False))

    def _stale_queued(
        self, expire: timedelta, now: datetime | None, *, lock: bool
    ) -> builtins.list[Job]:
        query = sa.select(Job).where(
            known_kind(), Job.status == JobStatus.QUEUED, Job.queue_name.is_not(None)
        )
        if lock:
            query = query.with_for_update(skip_locked=True)
        queued = builtins.list(self.session.scalars(query))
        if not queued:
            return []  # nothing waits: the clock is not asked
        since = self._now(now) - expire
        return [job for job in queued if job.created_at < since]

    def any_lapsed(
        self,
        *,
        lease: timedelta,
        is_alive: Callable[[int], bool] = pid_alive,
        now: datetime | None = None,
    ) -> bool:
        """Whether :meth:`fail_lapsed` would fail any job; reads only, so that opening the
        catalog takes no write lock when (as nearly always) nothing lapsed."""
        found, _ = self._lapsed(lease, is_alive, now, lock=False)
        return bool(found)

    def looks_lapsed(
        self,
        *,
        lease: timedelta,
        is_alive: Callable[[int], bool] = pid_alive,
        now: datetime | None = None,
    ) -> dict[int, datetime | None]:
        """The jobs :meth:`fail_lapsed` would fail now (reads only), each with its last
        sign of life (its lease's last renewal, else its start or submission) where only
        the clock condemns it, None where its process is gone from this host (no clock
        is involved). Looked at again a while later, a sign that changed is a runner
        alive: the clock, not the lease, had moved (:func:`.reconcile.settle_abandoned`)."""
        found, _ = self._lapsed(lease, is_alive, now, lock=False)
        local = this_host()
        return {
            job.id: None if _dead_here(job, local, is_alive) else _sign(job) for job, _ in found
        }

    def _lapsed(
        self,
        lease: timedelta,
        is_alive: Callable[[int], bool],
        now: datetime | None,
        *,
        lock: bool,
    ) -> tuple[builtins.list[tuple[Job, str]], datetime | None]:
        """The jobs that lapsed with the reason of each, and the time (by the catalog's
        clock, unless ``now`` is given) they were judged at: None when no job runs or
        waits for a runner, which is then not asked for the time."""
        local = this_host()
        # Rows locked FOR UPDATE, skipping those another process locks: on PostgreSQL
        # two workers sweeping at once never both fail (and retry) the same job. SQLite
        # renders no FOR UPDATE; its writing transactions run one at a time anyway.
        # Queued jobs of procrastinate's queue (queue_name set) are its own to run, or to
        # find stalled (operations/queue.py); only those a process holds are looked at.
        # Of the kinds this version knows: a newer one's jobs are its to sweep.
        query = sa.select(Job).where(
            known_kind(),
            (Job.status == JobStatus.RUNNING)
            | ((Job.status == JobStatus.QUEUED) & Job.queue_name.is_(None)),
        )
        if lock:
            query = query.with_for_update(skip_locked=True)
        candidates = builtins.list(self.session.scalars(query))
        if not candidates:
            return [], None  # opening the catalog with nothing running asks no clock
        # Asked after reading the rows (none running: no round trip). Locked, the rows
        # read are the last renewals, and none lands before this transaction ends; not
        # locked (any_lapsed), a renewal read late only sends the caller to the locked
        # look (fail_lapsed), which judges again.
        when = self._now(now)
        found = []
        for job in candidates:
            if job.status is JobStatus.QUEUED:
                reason = _unstarted_reason(job, when, lease, local, is_alive)
            else:
                reason = _lapse_reason(job, when, lease, local, is_alive)
            if reason is not None:
                found.append((job, reason))
        return found, when


def _sign(job: Job) -> datetime:
    """A job's last sign of life, by the catalog's clock: its lease's last renewal, else
    its start, else its submission."""
    return job.heartbeat_at or job.started_at or job.created_at


def _dead_here(job: Job, local: str, is_alive: Callable[[int], bool]) -> bool:
    """Whether the job's runner is known gone: its pid, on this host, is not alive."""
    pid = job.worker_pid
    return pid is not None and job.worker_host == local and not is_alive(pid)


def _lapse_reason(
    job: Job, now: datetime, lease: timedelta, local: str, is_alive: Callable[[int], bool]
) -> str | None:
    pid = job.worker_pid
    if _dead_here(job, local, is_alive):
        return f"process {pid} died while the job ran (found at start-up)"
    last = _sign(job)
    if last < now - lease:
        return (
            f"the lease of process {pid} on {job.worker_host} lapsed: no sign of life "
            f"since {_silence(last, now, lease)}"
        )
    return None


def _unstarted_reason(
    job: Job, now: datetime, lease: timedelta, local: str, is_alive: Callable[[int], bool]
) -> str | None:
    """Why nothing will ever start the queued ``job``, or None while its runner may.

    On this host its runner's pid decides, however long the job has waited (a live CLI
    command waiting for the catalog, the service's workers busy with a long backup): a
    live process is never taken for a dead one. On another host, its lease decides.
    """
    pid = job.worker_pid
    if pid is None:
        # Queued by an older respaldo, which recorded no runner: once it has waited longer
        # than a lease, its process is taken for gone (a live one starts its jobs at once,
        # or holds them in 'respaldo serve', which an upgrade restarts).
        if job.created_at < now - lease:
            return (
                f"not started: queued at {job.created_at.isoformat(timespec='seconds')} by "
                "an older respaldo that does not record which process was to run it"
            )
        return None
    runner = f"{_runner_name(job)} (pid {pid} on {job.worker_host})"
    if job.worker_host == local:
        return None if is_alive(pid) else f"not started: {runner} stopped before running it"
    last = job.heartbeat_at or job.created_at
    if last < now - lease:
        return (
            f"not started: {runner}, which was to run it, gave no sign of life since "
            f"{_silence(last, now, lease)}"
        )
    return None


def _silence(last: datetime, now: datetime, lease: timedelta) -> str:
    """When a lease was last renewed and how long before ``now`` that was, by the one
    clock both times were read from (the catalog's): what a reader needs to tell a
    hung or dead process from a lease set too short."""
    silent = int((now - last).total_seconds())
    return (
        f"{last.isoformat(timespec='seconds')} ({silent} s before "
        f"{now.isoformat(timespec='seconds')} by the catalog's clock; the lease is "
        f"{lease.total_seconds():g} s)"
    )


def _runner_name(job: Job) -> str:
    # What a reader knows the process as: a request through the API or the web pages and
    # a schedule's firing are run by the service, a command line's job by that command.
    if job.triggered_by is TriggeredBy.CLI:
        return "the respaldo command"
    return "respaldo serve"


def orphan_reason(session: Session, job_id: int) -> str | None:
    """Why a row that runs in job ``job_id`` (a backup record, a drill run) and still
    says it runs is abandoned, or None while its job has not ended.

    A job ends only after what it runs has recorded its own end, so a row still running
    under an ended job was left by a process that died (its job lapsed: the job's
    reason), or by a bug; either way nothing will finish it. A job missing from the
    catalog ended too.
    """
    # Its status and error only: the job may be of a kind a newer respaldo wrote.
    query = sa.select(Job.status, Job.error_message).where(Job.id == job_id)
    found = session.execute(query).first()
    if found is None:
        return f"job {job_id} is no longer in the catalog"
    status, error = found
    if not status.is_final:
        return None
    if error:
        return f"job {job_id} {status.value}: {error}"
    return f"job {job_id} ended {status.value} while this still ran"


def _conflict(job: Job, holder: int | None) -> JobConflict:
    what = f"a {job.kind.value} of {job.target}" if job.target else f"a {job.kind.value}"
    running = f" (job {holder})" if holder is not None else ""
    return JobConflict(
        f"{what} is already running{running}",
        hint="wait for it to finish ('respaldo jobs' shows it), or cancel it with "
        "'respaldo jobs cancel ID'",
    )


def params_of(job: Job) -> dict[str, Any]:
    """The job's inputs as stored (a JSON object)."""
    return dict(json.loads(job.params)) if job.params else {}


def outcome_of(job: Job) -> dict[str, Any] | None:
    """What the job produced as stored (a JSON object), or None if it reported nothing."""
    return dict(json.loads(job.outcome)) if job.outcome else None


def _add_tally(
    session: Session, kind: JobKind, status: JobStatus, count: int, last: datetime | None
) -> None:
    """Add ``count`` forgotten jobs to the tally of (``kind``, ``status``), atomically
    (an upsert: two processes adding at once both count)."""
    values = {"kind": kind, "status": status, "count": count, "last_finished_at": last}
    keys = ["kind", "status"]
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        on_pg = postgresql.insert(JobTally).values(**values)
        statement: sa.Executable = on_pg.on_conflict_do_update(
            index_elements=keys, set_=_tally_sum(on_pg.excluded)
        )
    else:
        from sqlalchemy.dialects import sqlite

        on_sqlite = sqlite.insert(JobTally).values(**values)
        statement = on_sqlite.on_conflict_do_update(
            index_elements=keys, set_=_tally_sum(on_sqlite.excluded)
        )
    session.execute(statement)


def _tally_sum(added: Any) -> dict[str, Any]:
    """The SET of the upsert: counts added, the later of the two end times kept."""
    new, old = added.last_finished_at, JobTally.last_finished_at
    newest = sa.case(
        (old.is_(None), new),
        (new.is_(None), old),
        (new > old, new),
        else_=old,
    )
    return {"count": JobTally.count + added.count, "last_finished_at": newest}


def _of_schedule(schedule: str) -> tuple[sa.ColumnElement[bool], ...]:
    """The conditions of a job that ``schedule`` fired (a kind this respaldo knows)."""
    return (
        known_kind(),
        Job.triggered_by == TriggeredBy.SCHEDULE,
        Job.requested_by == schedule,
    )

"""The queue: with a PostgreSQL catalog, jobs go to worker processes through procrastinate.

respaldo's ``jobs`` table stays the record of every job (status, lease, progress,
cancellation); procrastinate only carries the job's id to a worker that takes jobs from
the job's queue, and its ``lock`` (the job's exclusive key, ``backup:<db>``) keeps two
backups of one database from being *taken* at once, while the unique index on the running
jobs' keys keeps them from *running* at once whatever takes them (a CLI backup too).

- :func:`enqueue` records a queued job and defers it into procrastinate in one catalog
  transaction (procrastinate writes on the catalog's own connection): a job is never
  recorded without its place in the queue, nor queued without its record.
- :func:`run_worker` is ``respaldo worker``: procrastinate's worker runs each job with
  :func:`~respaldo.operations.scheduled.run_queued` in a thread; beside it, the worker
  renews its row in ``workers``, sweeps for lost jobs (:func:`recover`: their alerts
  recorded) and, apart from the sweep, sends what waits for each notification target
  (:func:`resend_once`).
- A job whose worker died is failed when its lease lapses (by any process that sweeps)
  and run again as a NEW job (``retry_of`` names the lost one, ``attempt`` counts) on
  any worker of its queue, as many times as ``[queue] retries`` allows for its kind.
  Restores are never retried.

With a SQLite catalog there is no queue: the same job code runs in the process that
submits it (``respaldo serve``, the CLI), as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from respaldo.cancellation import CancelToken
from respaldo.catalog import Job, Jobs, Workers, catalog_now, clock_offset, queues_of, this_host
from respaldo.config import Settings
from respaldo.domain import JobKind, JobStatus, TriggeredBy
from respaldo.errors import (
    AlreadyFired,
    CatalogUnavailable,
    ConfigError,
    JobCancelled,
    RespaldoError,
)
from respaldo.operations.context import Context
from respaldo.operations.jobs import JobInfo, JobRequest
from respaldo.operations.models import ResultModel, UtcTime
from respaldo.operations.recurring import RecurringFailure
from respaldo.operations.repositories import check_identities

if TYPE_CHECKING:
    import procrastinate
    import procrastinate.app
    import procrastinate.worker
    from procrastinate.job_context import JobContext

    from respaldo.operations.alerts import DeliveryResult

log = logging.getLogger(__name__)

TASK = "respaldo.run_job"
"""procrastinate's name of the one task: run respaldo job ``job_id`` from its row."""

# How often a stopping job's watcher looks whether procrastinate asked to abort it.
_ABORT_POLL_SECONDS = 0.2

# How long a stopping worker waits for its side tasks to end before cancelling them again.
_CANCEL_AGAIN_SECONDS = 0.5


def has_queue(ctx: Context) -> bool:
    """Whether jobs go through the queue: the catalog is on PostgreSQL."""
    return ctx.catalog.engine.dialect.name == "postgresql"


def require_queue(ctx: Context) -> None:
    """Raise ConfigError unless the catalog is on PostgreSQL."""
    if not has_queue(ctx):
        raise ConfigError(
            "workers need a PostgreSQL catalog; this one is SQLite",
            hint="set [catalog] url = 'postgresql://user@host/db' (see docs/scaling.md); "
            "with SQLite, 'respaldo serve' runs its jobs itself",
        )


def queue_of(settings: Settings, kind: JobKind, target: str | None) -> str:
    """The queue of a job: its database's ``queue``, else ``[queue] default_queue``."""
    if target is not None and kind in (JobKind.BACKUP, JobKind.DRILL, JobKind.RESTORE):
        for db in settings.databases:
            if db.name == target and db.queue:
                return db.queue
    return settings.queue.default_queue


def retries_allowed(settings: Settings, job: Job) -> bool:
    """Whether the lost ``job`` may run again: restores never, nor a job someone asked to
    cancel; others while their attempt is within ``[queue] retries`` for their kind. (A job
    a stopping worker cancelled ends ``cancelled`` too, but nobody asked: it runs again.)"""
    if job.kind is JobKind.RESTORE or job.cancel_requested:
        return False
    return job.attempt - 1 < settings.queue.retries.get(job.kind, 0)


def _conninfo(ctx: Context) -> str:
    # The catalog's URL as libpq reads it (no SQLAlchemy driver name). Only handed to
    # psycopg's pool, never printed.
    url = ctx.catalog.engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def make_app(ctx: Context, *, pool_size: int = 4) -> procrastinate.App:
    """A procrastinate App on the catalog's database with respaldo's one task.

    The task runs in one of procrastinate's threads; see :func:`_run_task`. Not opened:
    :func:`run_worker` opens it (asynchronously); :func:`enqueue` never needs to, as it
    defers on the catalog session's own connection.
    """
    import procrastinate

    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(
            conninfo=_conninfo(ctx), min_size=1, max_size=pool_size
        )
    )

    def run_job(context: JobContext, job_id: int) -> None:
        _run_task(ctx, context, job_id)

    app.task(name=TASK, pass_context=True, retry=False)(run_job)
    return app


def _defer(ctx: Context, session: Session, job: Job) -> None:
    """Put ``job`` in its queue inside ``session``'s transaction; record where."""
    name = queue_of(ctx.settings, job.kind, job.target)
    driver = session.connection().connection.driver_connection
    deferrer = make_app(ctx).configure_task(
        TASK, queue=name, lock=job.exclusive_key, connection=driver
    )
    from procrastinate.exceptions import ConnectorException

    try:
        queue_job_id = deferrer.defer(job_id=job.id)
    except ConnectorException as exc:
        # The caller's transaction rolls back: no job is recorded without its place.
        cause = str(exc.__cause__ or exc).splitlines()[0]
        raise CatalogUnavailable(
            f"cannot queue {job.kind.value} job for {job.target or 'all'}: {cause}",
            hint="the catalog's queue tables are missing or unreachable; 'respaldo init' "
            "applies them (see docs/scaling.md)",
        ) from exc
    Jobs(session).set_queued(job.id, queue_name=name, queue_job_id=queue_job_id)


def enqueue(
    ctx: Context,
    request: JobRequest,
    *,
    scheduled_for: datetime | None = None,
    result_id: str | None = None,
) -> JobInfo:
    """Record a queued job for ``request`` and put it in its queue, atomically.

    A worker of the job's queue runs it. ``result_id`` names the backup it will work on
    when that is known already (an API request's reserved record, a restore's backup).
    Raises ConfigError without a PostgreSQL catalog, AlreadyFired for a second job of
    one schedule and fire time.
    """
    require_queue(ctx)
    with ctx.catalog.begin() as session:
        job = _submit(session, request, scheduled_for)
        if result_id is not None:
            Jobs(session).set_result(job.id, result_id)
        _defer(ctx, session, job)
        return JobInfo.of(job)


def _submit(session: Session, request: JobRequest, scheduled_for: datetime | None) -> Job:
    return Jobs(session).submit(
        request.kind,
        target=request.target,
        triggered_by=request.triggered_by,
        requested_by=request.requested_by,
        params={k: _plain(v) for k, v in request.params.items() if v is not None},
        exclusive_key=request.exclusive_key,
        scheduled_for=scheduled_for,
    )


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, bool | int | float) else str(value)


def submit_scheduled(
    ctx: Context, request: JobRequest, scheduled_for: datetime | None
) -> JobInfo | None:
    """A schedule fired: record its job for ``scheduled_for`` and queue it, or record it
    ``skipped`` when the schedule's previous job is still queued or running.

    Returns None when another ``serve`` already fired this schedule for this time (the
    catalog's unique index decides, whichever process is first).
    """
    try:
        with ctx.catalog.begin() as session:
            jobs = Jobs(session)
            schedule = request.requested_by or ""  # a schedule's request names it
            # Held to the commit: a firing of another serve waits here, then sees this job.
            jobs.lock_schedule(schedule)
            job = _submit(session, request, scheduled_for)
            previous = jobs.unfinished_run(schedule, besides=job.id)
            if previous is not None:
                reason = f"the previous run (job {previous.id}) still runs"
                return JobInfo.of(jobs.finish(job.id, JobStatus.SKIPPED, error=reason))
            _defer(ctx, session, job)
            return JobInfo.of(job)
    except AlreadyFired:
        log.info("%s at %s was fired by another service", request.requested_by, scheduled_for)
        return None


def retry(ctx: Context, session: Session, lost: Job) -> Job | None:
    """Queue a new job that runs ``lost`` again, if its kind's policy allows; in the
    caller's transaction."""
    if lost.queue_name is None or not retries_allowed(ctx.settings, lost):
        return None
    job = Jobs(session).retry(lost)
    _defer(ctx, session, job)
    log.warning("job %s was lost (%s): job %s runs it again", lost.id, lost.error_message, job.id)
    return job


def recover(ctx: Context) -> list[int]:
    """The sweep of a worker, and of ``respaldo serve`` with a queue: what every process
    does when it opens the catalog (fail the running jobs whose lease lapsed, their
    process dead on any machine, queueing a retry of each per ``[queue] retries``;
    settle the records they left), and forget the workers silent for longer than the
    lease. Returns the ids of the jobs it failed. Two processes sweeping at once never
    fail or retry one job twice (the lapsed rows are taken FOR UPDATE SKIP LOCKED).

    The alerts of the jobs it failed are only recorded, one pending delivery per target
    (:func:`~respaldo.operations.reconcile.settle_abandoned` with ``alerts_later``): both
    callers run a resend of their own (:func:`_resend`, ``Service.resend``) that sends
    them, so a target that hangs never holds up the sweep. Before, a worker's sweep sent
    them itself and waited ``[notifications] timeout_seconds`` on such a target."""
    from respaldo.operations.reconcile import prune_workers, settle_abandoned

    settled = settle_abandoned(ctx, alerts_later=True)
    dropped = _fail_dropped(ctx)
    prune_workers(ctx)
    return settled.jobs + dropped


# procrastinate's final states: an entry in one of them is never run again.
_ENDED_ENTRIES = ("succeeded", "failed", "cancelled", "aborted")


def _fail_dropped(ctx: Context) -> list[int]:
    """Fail (and retry per ``[queue] retries``, and alert) the queued jobs whose queue
    entry ended (or is gone: workers delete the entries of ended tasks) without running
    them: a worker took the entry and its task failed before the job started (the
    catalog did not answer it then; an older version that cannot read the job). Nothing
    would ever run them, and their schedule's later firings would all be skipped as
    overlapping. Jobs of a kind this version does not know are left to a process that
    does. Returns their ids."""
    from respaldo.operations.jobs import alert_lapsed

    known = [kind.value for kind in JobKind]
    found = sa.text(
        "SELECT j.id, coalesce(p.status::text, 'deleted'), j.queue_name FROM jobs j "
        "LEFT JOIN procrastinate_jobs p ON p.id = j.queue_job_id "
        "WHERE j.status = 'queued' AND j.queue_job_id IS NOT NULL AND j.kind IN :known "
        "AND (p.id IS NULL OR p.status::text IN :ended) "
        "FOR UPDATE OF j SKIP LOCKED"
    ).bindparams(sa.bindparam("known", expanding=True), sa.bindparam("ended", expanding=True))
    failed: list[Job] = []
    with ctx.catalog.begin() as session:
        rows = session.execute(found, {"known": known, "ended": list(_ENDED_ENTRIES)}).all()
        for job_id, entry, name in rows:
            reason = (
                f"not started: its entry in queue {name!r} was {entry} before the job ran "
                "(the task of the worker that took it failed; the worker's log says why)"
            )
            job = Jobs(session).finish(job_id, JobStatus.FAILED, error=reason)
            retry(ctx, session, job)
            failed.append(job)
    alert_lapsed(ctx, failed, later=True)  # recorded: the caller's resend sends it
    return [job.id for job in failed]


# --- the worker ---------------------------------------------------------------------------


def _run_task(ctx: Context, context: JobContext, job_id: int) -> None:
    """procrastinate's task: run respaldo job ``job_id`` here, as ``run_queued`` does.

    A job that is no longer queued (cancelled meanwhile, or failed as lost before this
    worker got it) is left alone. When procrastinate aborts the job (the worker's
    shutdown timeout passed), the job's token is cancelled: the body stops and cleans
    up, the job ends ``cancelled``, and a retry is queued per the policy.
    """
    from procrastinate.exceptions import JobAborted

    from respaldo.operations.scheduled import run_queued

    with ctx.catalog.read() as session:
        job = Jobs(session).get(job_id)
        status, by = job.status, job.triggered_by
    if status is not JobStatus.QUEUED:
        log.info("job %s is %s: nothing to run", job_id, status.value)
        return
    token = CancelToken()
    done = threading.Event()

    def watch() -> None:
        while not done.wait(_ABORT_POLL_SECONDS):
            if context.should_abort():
                token.cancel("the worker was stopped before the job ended")
                return

    watcher = threading.Thread(target=watch, name=f"job-{job_id}-abort", daemon=True)
    watcher.start()
    on_conflict = JobStatus.SKIPPED if by is TriggeredBy.SCHEDULE else JobStatus.FAILED
    try:
        run_queued(ctx, job_id, token=token, on_conflict=on_conflict)
    except JobCancelled:
        if context.should_abort():
            with ctx.catalog.begin() as session:
                retry(ctx, session, Jobs(session).get(job_id))
            raise JobAborted(f"job {job_id}: {token.reason}") from None
        raise
    finally:
        done.set()
        watcher.join()


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker runs. ``queues`` None: every queue."""

    queues: Sequence[str] | None = None
    name: str | None = None
    concurrency: int = 1
    install_signal_handlers: bool = True


def run_worker(ctx: Context, options: WorkerOptions) -> None:
    """``respaldo worker``: take jobs from ``options.queues`` until SIGTERM/SIGINT (with
    ``install_signal_handlers``) or until the calling task is cancelled.

    On SIGTERM no new job is taken; a running job may finish within ``[queue]
    shutdown_timeout_seconds``, after which it is cancelled (and retried elsewhere).
    Raises ConfigError without a PostgreSQL catalog.
    """
    from procrastinate.exceptions import ConnectorException

    require_queue(ctx)
    warn_clock_offset(ctx)
    warn_repositories(ctx)
    try:
        asyncio.run(_worker_main(ctx, options))
    except ConnectorException as exc:
        raise CatalogUnavailable(
            f"the worker lost the catalog's queue: {_first_line(exc)}",
            hint="check that the catalog's PostgreSQL runs; run workers under "
            "respaldo-worker@QUEUE.service (make install writes it), which starts them "
            "again: a job they ran is failed by its lease and retried",
        ) from exc


def _first_line(exc: BaseException) -> str:
    """What a queue's failure says: psycopg's error (procrastinate's wraps it)."""
    return str(exc.__cause__ or exc).splitlines()[0]


def warn_repositories(ctx: Context) -> None:
    """Refuse to start (RepositoryMismatch) where a configured repository is not the one
    the catalog knows by its name (a file:// path on this machine's own disk, another
    machine's being the catalog's); warn where one cannot be read from here."""
    for warning in check_identities(ctx.settings, ctx.catalog):
        log.warning("%s", warning)


def warn_clock_offset(ctx: Context) -> float | None:
    """Warn if this machine's clock is off the catalog server's by more than a tenth of
    ``[locks] stale_after_seconds``; return the offset in seconds (None: a SQLite
    catalog, or it could not be read, which the caller finds out soon enough itself).

    Job leases do not mind (the catalog's clock judges them), but the repository's locks
    have no shared clock: a machine far off the others has its locks taken for stale, or
    gives them up. The catalog's server is the one clock every machine of a fleet
    reads, so it is what a long-running process (a worker, ``serve``) compares with."""
    try:
        with ctx.catalog.read() as session:
            offset = clock_offset(session)
    except (sa.exc.SQLAlchemyError, RespaldoError) as exc:
        log.debug("could not compare this machine's clock with the catalog's: %s", exc)
        return None
    if offset is None:
        return None
    stale_after = ctx.settings.locks.stale_after_seconds
    if abs(offset) > stale_after / 10:
        log.warning(
            "this machine's clock is %.0f s %s the catalog server's: job leases do not "
            "mind (the catalog's clock judges them), but repository locks are judged by "
            "the machines' own clocks, which must agree within [locks] "
            "stale_after_seconds (%.0f s); set this machine's clock (NTP)",
            abs(offset),
            "behind" if offset < 0 else "ahead of",
            stale_after,
        )
    return offset


async def _worker_main(
    ctx: Context,
    options: WorkerOptions,
    stop: asyncio.Event | None = None,
    *,
    on_running: Callable[[], None] | None = None,
) -> None:
    """The worker until ``stop`` is set (by :class:`WorkerThread`, or by SIGTERM/SIGINT
    with ``install_signal_handlers``): procrastinate's graceful stop, then its side tasks
    ended.

    Stopping never rests on one cancellation alone: on Python 3.11 ``asyncio.wait_for``
    (with which psycopg_pool waits for a free connection) returns what it waited for when
    that arrives as the cancellation lands, and the cancelled task runs on. A worker that
    cancelled once and waited would then never exit (seen: a worker that outlived SIGTERM
    by minutes, its job long finished). So procrastinate's worker is told to stop by its
    stop event as well, and side tasks are cancelled again until they end.

    ``on_running`` is called once the worker is registered and its queue open."""
    from respaldo.operations.queue_worker import TellingWorker

    stop = stop or asyncio.Event()
    gave_up = asyncio.Event()
    settings = ctx.settings
    app = make_app(ctx, pool_size=max(4, options.concurrency + 3))
    name = options.name or f"{this_host()}:{os.getpid()}"

    def giving_up(exc: BaseException) -> None:
        if not stop.is_set():
            log.error(
                "the worker takes no new job: its queue failed (%s); it is shown stopping "
                "and exits once its running jobs end",
                _first_line(exc),
            )
            gave_up.set()

    worker_id = await asyncio.to_thread(_register, ctx, name, options.queues)
    try:
        async with app.open_async():
            worker = TellingWorker(
                app=app, gave_up=giving_up, **_worker_options(settings, name, options)
            )
            # Cancelling worker.run() is procrastinate's graceful stop: no new job, the
            # running ones finish or are aborted after the timeout.
            run = asyncio.create_task(worker.run(), name="respaldo worker")  # type: ignore[no-untyped-call]
            side = [
                asyncio.create_task(_heartbeat(ctx, worker_id, gave_up), name="respaldo heartbeat"),
                asyncio.create_task(_sweep(ctx, app), name="respaldo sweep"),
                asyncio.create_task(_resend(ctx), name="respaldo alert resend"),
                asyncio.create_task(_stop_on(stop, worker, run), name="respaldo stop"),
            ]
            if options.install_signal_handlers:
                _on_signals(ctx, worker_id, stop)
            if on_running is not None:
                on_running()
            try:
                await run
            except asyncio.CancelledError:
                if not stop.is_set():
                    raise
            finally:
                stop.set()
                await _end(side)
    finally:
        await asyncio.to_thread(_unregister, ctx, worker_id)


async def _stop_on(
    stop: asyncio.Event, worker: procrastinate.worker.Worker, run: asyncio.Task[None]
) -> None:
    """Once ``stop`` is set: stop procrastinate's ``worker`` gracefully, twice over.
    ``worker.stop()`` sets the event its loop checks, which no lost cancellation can undo
    (but which ``run`` clears if it has not started yet); ``run.cancel()`` stops a ``run``
    that has not started, or is still registering, at once."""
    await stop.wait()
    worker.stop()  # type: ignore[no-untyped-call]
    run.cancel()


async def _end(tasks: Sequence[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and return once every one has ended, cancelling again those that
    ran on (a lost cancellation: see :func:`_worker_main`)."""
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=_CANCEL_AGAIN_SECONDS)
    await asyncio.gather(*tasks, return_exceptions=True)


def _on_signals(ctx: Context, worker_id: int, stop: asyncio.Event) -> None:
    """On SIGTERM or SIGINT: mark the worker stopping (``respaldo workers`` shows it) and
    set ``stop``."""
    loop = asyncio.get_running_loop()

    def stopping(sig: signal.Signals) -> None:
        log.warning("%s: taking no new job; stopping", sig.name)
        try:
            _beat(ctx, worker_id, stopping=True)  # a short write, on the loop: rare
        except Exception:
            log.warning("could not mark worker %s stopping", worker_id, exc_info=True)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping, sig)


def _worker_options(
    settings: Settings, name: str, options: WorkerOptions
) -> procrastinate.app.WorkerOptions:
    found: procrastinate.app.WorkerOptions = {
        "name": name,
        "concurrency": options.concurrency,
        "shutdown_graceful_timeout": settings.queue.shutdown_timeout_seconds,
        "install_signal_handlers": False,  # ours: see _on_signals
        # procrastinate's own worker heartbeat follows respaldo's lease: a worker is
        # stalled when its jobs' leases lapse.
        "update_heartbeat_interval": settings.jobs.renew_seconds,
        "stalled_worker_timeout": settings.jobs.lease_seconds,
        # respaldo's jobs table is the record of every job: procrastinate's entry (and its
        # events) is deleted once the task ended, or its tables grow with every job. A
        # job still queued whose entry is gone is failed by the sweep (_fail_dropped).
        "delete_jobs": "always",
    }
    if options.queues:  # none: every queue
        found["queues"] = list(options.queues)
    return found


def _register(ctx: Context, name: str, queues: Sequence[str] | None) -> int:
    with ctx.catalog.begin() as session:
        return (
            Workers(session)
            .register(name=name, host=this_host(), pid=os.getpid(), queues=queues)
            .id
        )


def _unregister(ctx: Context, worker_id: int) -> None:
    with ctx.catalog.begin() as session:
        Workers(session).unregister(worker_id)


def _beat(ctx: Context, worker_id: int, *, stopping: bool = False) -> None:
    with ctx.catalog.begin() as session:
        Workers(session).beat(worker_id, stopping=stopping)


async def _heartbeat(ctx: Context, worker_id: int, gave_up: asyncio.Event) -> None:
    """Renew the worker's row every lease renewal period; once procrastinate's worker
    ``gave_up`` taking jobs, mark it stopping too: ``respaldo workers`` and the status
    must not count on it for its queues while it waits for its running jobs to end."""
    failures = RecurringFailure(
        log,
        f"could not renew the heartbeat of worker {worker_id}",
        f"the heartbeat of worker {worker_id} is renewed again",
    )
    while True:
        await asyncio.sleep(ctx.settings.jobs.renew_seconds)  # a period, not a wait
        await _beat_once(ctx, worker_id, failures, stopping=gave_up.is_set())


async def _beat_once(
    ctx: Context, worker_id: int, failures: RecurringFailure, *, stopping: bool = False
) -> None:
    try:
        await asyncio.to_thread(_beat, ctx, worker_id, stopping=stopping)
    except Exception as exc:  # a busy or restarting catalog: next beat
        failures.failed(exc)
    else:
        failures.worked()


async def _sweep(ctx: Context, app: procrastinate.App) -> None:
    """Every lease renewal period: :func:`recover`, then settle procrastinate's own jobs
    of stalled workers (:func:`_settle_stalled`)."""
    failures = RecurringFailure(
        log, "could not sweep for lost jobs", "sweeping for lost jobs works again"
    )
    while True:
        await _sweep_once(ctx, app, failures)
        await asyncio.sleep(ctx.settings.jobs.renew_seconds)  # a period, not a wait


async def _sweep_once(ctx: Context, app: procrastinate.App, failures: RecurringFailure) -> None:
    try:
        await asyncio.to_thread(recover, ctx)
        await _settle_stalled(ctx, app)
    except Exception as exc:  # the next pass is the retry
        failures.failed(exc)
    else:
        failures.worked()


async def _resend(ctx: Context) -> None:
    """At the start and every lease renewal period: :func:`resend_once`. A task of its
    own, apart from :func:`_sweep`: an attempt may take ``[notifications]
    timeout_seconds`` (more for SMTP's several answers) per target that hangs, and
    inside the sweep that held up the detection of lost jobs by as much."""
    while True:
        await asyncio.to_thread(resend_once, ctx)
        await asyncio.sleep(ctx.settings.jobs.renew_seconds)  # a period, not a wait


def resend_once(ctx: Context) -> list[DeliveryResult]:
    """Send what waits for each notification target, in order, from the oldest whose
    next try is due (:func:`alerts.retry_deliveries`, as ``Service.resend`` does): the
    lost jobs' alerts this worker's sweep and start only recorded, and what a target
    refused before. Never raises."""
    # Here, not at the top: one-shot commands import this module, and the alerts (babel,
    # apprise) only a process that sends them (tests/unit/test_cli_startup.py).
    from respaldo.operations import alerts

    return alerts.retry_deliveries(ctx, datetime.now(UTC))


async def _settle_stalled(ctx: Context, app: procrastinate.App) -> None:
    """procrastinate jobs left ``doing`` by a worker that stopped beating: one whose
    respaldo job never started goes back to its queue (procrastinate's retry, same job);
    one whose respaldo job ended (failed as lost, retried as a new job) is marked failed
    there too, which frees its lock for the retry. A running one waits for its lease."""
    from procrastinate import exceptions
    from procrastinate.jobs import Status

    manager = app.job_manager
    stalled = await manager.get_stalled_jobs(
        seconds_since_heartbeat=ctx.settings.jobs.lease_seconds
    )
    for queued in stalled:
        job_id = queued.task_kwargs.get("job_id")
        status = await asyncio.to_thread(_status, ctx, job_id)
        with contextlib.suppress(exceptions.ConnectorException):  # another sweeper won
            if status is JobStatus.QUEUED:
                await manager.retry_job(queued)
            elif status is not JobStatus.RUNNING:
                await manager.finish_job(queued, status=Status.FAILED, delete_job=False)


def _status(ctx: Context, job_id: Any) -> JobStatus | None:
    if not isinstance(job_id, int):
        return None
    with ctx.catalog.read() as session:
        # Its status only: the job may be of a kind a newer respaldo wrote.
        return session.scalar(sa.select(Job.status).where(Job.id == job_id))


class WorkerThread:
    """A worker inside another process (``respaldo serve`` with ``[server] run_jobs``):
    its own event loop in a thread, stopped by :meth:`stop` (procrastinate's graceful
    shutdown: the running job finishes or is cancelled after the timeout).

    A worker that stops on its own (procrastinate gives up on the catalog once its pool
    waited 30 s for a connection: the catalog's server down for a minute, a reboot) is
    started again every lease renewal period until it runs or :meth:`stop` is called.
    ``respaldo worker`` exits then and its service manager starts it again; ``serve``
    is the service manager of this one. Before, it stopped for good while ``serve`` went
    on: every later firing was queued for no one, or skipped behind a job nobody ran."""

    def __init__(self, ctx: Context, options: WorkerOptions) -> None:
        self.ctx = ctx
        self.options = WorkerOptions(
            options.queues, options.name, options.concurrency, install_signal_handlers=False
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._main, name="respaldo-worker", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        require_queue(self.ctx)
        self._thread.start()
        self._ready.wait()

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            if self._stopping.is_set():  # stop() came between two runs
                self._stop.set()
            self._ready.set()
            await _worker_main(self.ctx, self.options, self._stop, on_running=failures.worked)

        failures = RecurringFailure(
            log,
            "the worker of this process stopped, and starts again while the catalog does "
            "not answer",
            "the worker of this process takes jobs again",
        )
        try:
            while not self._stopping.is_set():
                try:
                    asyncio.run(main())
                except Exception as exc:  # the catalog, mostly: the next run is the retry
                    self.error = exc
                    failures.failed(exc)
                else:
                    if self._stopping.is_set():
                        break
                    # procrastinate's worker returned without being asked to stop.
                    # (Its side tasks' failures do not stop it: procrastinate 3.10 stops
                    # watching them once the periodic deferrer, with no periodic task
                    # here, returned at start; see docs/scaling.md.)
                    failures.failed(RuntimeError("procrastinate's worker stopped itself"))
                self._stopping.wait(self.ctx.settings.jobs.renew_seconds)
        except BaseException as exc:
            self.error = exc
            log.error("the worker of this process stopped: %s", exc)
        finally:
            self._ready.set()

    def stop(self) -> None:
        """Stop taking jobs, let the running one end (or cancel it after the timeout),
        and return when the worker has stopped."""
        self._stopping.set()
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stop.set)
        if self._thread.is_alive():
            self._thread.join()


# --- listing ------------------------------------------------------------------------------


STALE_RENEWALS = 5
"""How many lease renewal periods (``[jobs] renew_seconds``) of heartbeats a worker may
miss before it is shown ``stale`` (:func:`stale_after`)."""

WorkerState = Literal["taking jobs", "stopping", "stale", "lost"]

LOST_SHOWN = timedelta(hours=24)
"""How long a worker silent for longer than the lease (``[jobs] lease_seconds``) is still
listed, as ``lost`` (``respaldo workers``, an amber item of the status), before its row
is removed (:func:`~respaldo.operations.reconcile.prune_workers`): an operator who lost a
machine sees it, and what was lost with it, for a day."""


def stale_after(settings: Settings) -> timedelta:
    """How old a worker's heartbeat may be before the worker is shown ``stale``: it
    renews it every lease renewal period, so one silent for five of them (10 s by
    default) is dead, stopped (SIGSTOP) or hung, or cannot reach the catalog. Its row
    stays until the heartbeat is older than the lease (then it is pruned, and its jobs
    failed by their own lease): before, it was shown taking jobs for all that time, two
    minutes by default, its heartbeat's time the only sign."""
    return timedelta(seconds=STALE_RENEWALS * settings.jobs.renew_seconds)


class LostJob(ResultModel):
    """A job of a lost worker that failed after its last heartbeat."""

    id: int
    kind: JobKind
    target: str | None
    retry_id: int | None
    """The job that runs it again (``[queue] retries``); None: not retried."""


class WorkerInfo(ResultModel):
    """A worker as ``respaldo workers --json`` prints it."""

    id: int
    name: str
    host: str
    pid: int
    queues: list[str] | None
    started_at: UtcTime
    heartbeat_at: UtcTime
    heartbeat_age_seconds: float
    """Seconds since its last heartbeat, on the catalog's clock (which wrote it)."""
    state: WorkerState
    """``taking jobs``; ``stopping`` (it takes no new job, its running ones end); ``stale``
    (no heartbeat for longer than :func:`stale_after`: it takes nothing, whatever it
    said last); ``lost`` (no heartbeat for longer than the lease: listed for
    :data:`LOST_SHOWN`, then forgotten)."""
    stopping: bool
    running: list[JobInfo]
    failed: list[LostJob] = []
    """A lost worker's jobs that failed after its last heartbeat (its running ones, failed
    by their lease), each with its retry."""


def list_workers(ctx: Context, now: datetime | None = None) -> list[WorkerInfo]:
    """The workers heard from within :data:`LOST_SHOWN`, with the jobs each runs, each
    ``stale`` once its heartbeat is older than :func:`stale_after`, ``lost`` (with the
    jobs that failed after its heartbeat stopped) once older than the lease. ``now``
    (tests) stands for the catalog's clock."""
    lease = timedelta(seconds=ctx.settings.jobs.lease_seconds)
    stale = stale_after(ctx.settings)
    with ctx.catalog.read() as session:
        when = now if now is not None else catalog_now(session)
        workers = Workers(session)
        listed = []
        for w in workers.alive(lease=LOST_SHOWN, now=when):
            age = (when - w.heartbeat_at).total_seconds()
            state: WorkerState = "stopping" if w.stopping else "taking jobs"
            if age > stale.total_seconds():
                state = "stale"
            failed = []
            if age > lease.total_seconds():
                state = "lost"
                failed = [
                    LostJob(id=j.id, kind=j.kind, target=j.target, retry_id=retry)
                    for j, retry in workers.failed_since_silent(w)
                ]
            listed.append(
                WorkerInfo(
                    id=w.id,
                    name=w.name,
                    host=w.host,
                    pid=w.pid,
                    queues=queues_of(w),
                    started_at=w.started_at,
                    heartbeat_at=w.heartbeat_at,
                    heartbeat_age_seconds=max(age, 0.0),
                    state=state,
                    stopping=w.stopping,
                    running=[JobInfo.of(j) for j in workers.running(w)],
                    failed=failed,
                )
            )
        return listed


def describe_queues(queues: Sequence[str] | None) -> str:
    return "every queue" if queues is None else ", ".join(queues)

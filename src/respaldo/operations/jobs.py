"""Jobs: every operation, from any interface, runs as a recorded, cancellable job.

Two steps, kept apart so that a real queue can sit between them later:

- :func:`submit` records a ``queued`` job (what, on what, who asked) and returns it;
- :func:`run` runs a queued job's body in this thread: it takes the job's exclusive key
  (two backups of one database never run at once, across processes), renews the job's
  lease from a background thread (which also stores progress and notices
  ``respaldo jobs cancel``), and records how the job ended.

Cancellation: the job's :class:`~respaldo.cancellation.CancelToken` is current while the
body runs. Cancelling it kills the child programs the body started (``pg_dump``,
``pg_restore``, ``pg_basebackup``) at once, and the next progress report raises
JobCancelled; the body's own error handling then removes what it had written (a backup
commits no manifest, a restore drops its staging database), and the job says
``cancelled``.
"""

from __future__ import annotations

import contextvars
import dataclasses
import getpass
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar, runtime_checkable

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from respaldo import cancellation
from respaldo.cancellation import CancelToken
from respaldo.catalog import (
    AuthSessions,
    Deliveries,
    Job,
    Jobs,
    Notifications,
    outcome_of,
    params_of,
)
from respaldo.domain import JobKind, JobStatus, TriggeredBy
from respaldo.errors import JobCancelled, JobConflict, RespaldoError
from respaldo.operations.context import Context
from respaldo.operations.models import ResultModel, UtcTime
from respaldo.operations.recurring import RecurringFailure
from respaldo.phrases import N_, Phrase
from respaldo.repository import allocator

log = logging.getLogger(__name__)

T = TypeVar("T")


class JobInfo(ResultModel):
    """A job as ``respaldo jobs --json`` prints it (and the API will return it)."""

    id: int
    """The job id."""
    kind: JobKind
    """backup, restore, drill, prune or verify."""
    target: str | None
    """What it works on: a database, a file set, a directory or a backup id."""
    params: dict[str, Any]
    """Its parameters (backup type, restore options...)."""
    status: JobStatus
    """queued, running, completed, failed, cancelled or skipped."""
    triggered_by: TriggeredBy
    """Who started it: cli, schedule or api."""
    requested_by: str | None
    """The user, API caller or schedule that asked for it."""
    created_at: UtcTime
    """When it was submitted."""
    started_at: UtcTime | None
    """When it started running."""
    finished_at: UtcTime | None
    """When it ended."""
    heartbeat_at: UtcTime | None
    """The last renewal of its lease (a running job renews every few seconds)."""
    worker_pid: int | None
    """The process running it (queued: the process that will run it, when it is not
    the queue's)."""
    worker_host: str | None
    """The host of that process."""
    cancel_requested: bool
    """Whether someone asked it to stop."""
    progress_done: int | None
    """Bytes done so far (live, while it runs)."""
    progress_total: int | None
    """Bytes to do, when known."""
    error: str | None
    """Why it failed or was cancelled."""
    result_id: str | None
    """The backup it produced or used."""
    outcome: dict[str, Any] | None = None
    """What the job produced (a prune: ``bytes_reclaimed`` per repository)."""
    queue_name: str | None = None
    """The queue it was put in (PostgreSQL catalog); None when it ran in place."""
    retry_of: int | None = None
    """The lost job this one runs again, if it is a retry."""
    attempt: int = 1
    """1 for a first run, 2 for its first retry..."""
    scheduled_for: UtcTime | None = None
    """The schedule's fire time the job is for (scheduled jobs only)."""

    @classmethod
    def of(cls, job: Job) -> JobInfo:
        return cls(
            id=job.id,
            kind=job.kind,
            target=job.target,
            params=params_of(job),
            status=job.status,
            triggered_by=job.triggered_by,
            requested_by=job.requested_by,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            heartbeat_at=job.heartbeat_at,
            worker_pid=job.worker_pid,
            worker_host=job.worker_host,
            cancel_requested=job.cancel_requested,
            progress_done=job.progress_done,
            progress_total=job.progress_total,
            error=job.error_message,
            result_id=job.result_id,
            outcome=outcome_of(job),
            queue_name=job.queue_name,
            retry_of=job.retry_of,
            attempt=job.attempt,
            scheduled_for=job.scheduled_for,
        )


@dataclass(frozen=True)
class JobRequest:
    """What to run, on what, and who asked. ``exclusive_key`` defaults per kind: a
    backup holds ``backup:<target>`` while it runs, a prune (not a dry run) ``prune``,
    whatever its database: prunes share garbage collection and WAL retention."""

    kind: JobKind
    target: str | None
    triggered_by: TriggeredBy
    requested_by: str | None
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def exclusive_key(self) -> str | None:
        if self.kind is JobKind.BACKUP and self.target is not None:
            return f"backup:{self.target}"
        if self.kind is JobKind.PRUNE and not self.params.get("dry_run"):
            # A second one would wait for the first's exclusive lock, then fail.
            return "prune"
        if self.kind is JobKind.WAL_COPY:
            # A second copy at once (another worker) would list and copy the same files.
            return "wal_copy"
        return None


_current_job: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "respaldo_current_job", default=None
)


def current_job() -> int | None:
    """The id of the job this thread runs, or None outside any job."""
    return _current_job.get()


def note_result(session: Session, result_id: str) -> None:
    """Record, in the caller's transaction, the backup id the current job works on (if
    it runs in a job), so that even a failed or cancelled job names its record."""
    job_id = _current_job.get()
    if job_id is not None:
        Jobs(session).set_result(job_id, result_id)


def os_user() -> str:
    """The name of the OS user running this process ("uid N" if it has none)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def cli_request(
    kind: JobKind, target: str | None, params: Mapping[str, Any] | None = None
) -> JobRequest:
    """A request made from the command line by the OS user running it."""
    return JobRequest(kind, target, TriggeredBy.CLI, os_user(), dict(params or {}))


def submit(
    ctx: Context,
    request: JobRequest,
    *,
    scheduled_for: datetime | None = None,
    here: bool = False,
    result_id: str | None = None,
) -> JobInfo:
    """Record a ``queued`` job for ``request``; nothing runs in this call.

    With a PostgreSQL catalog the job also goes to its queue, in the same transaction, and
    a worker runs it (``queue_name`` is set: see :mod:`respaldo.operations.queue`). With
    SQLite, or with ``here`` (the caller runs it itself, as :func:`run_now` does), it is
    only recorded, and this process runs it with :func:`run` or ``run_queued``: the job
    names this process as its runner, so that if it dies before starting the job, the
    next process to open the catalog fails the job as not started, and tells (a process
    that holds jobs for longer, as the service's workers do, renews their lease with
    :func:`renew_queued`).
    ``result_id`` names the backup it will work on, when that is known already (a
    reserved record, a restore's backup).

    ``scheduled_for``: a schedule's fire time; a second job of the same schedule and
    fire time raises AlreadyFired (another ``serve`` fired it).
    """
    # Imported here: the queue builds on this module (JobInfo, JobRequest).
    from respaldo.operations import queue

    if not here and queue.has_queue(ctx):
        return queue.enqueue(ctx, request, scheduled_for=scheduled_for, result_id=result_id)
    with ctx.catalog.begin() as session:
        job = Jobs(session).submit(
            request.kind,
            target=request.target,
            triggered_by=request.triggered_by,
            requested_by=request.requested_by,
            params={k: _plain(v) for k, v in request.params.items() if v is not None},
            exclusive_key=request.exclusive_key,
            scheduled_for=scheduled_for,
            runner_pid=os.getpid(),
        )
        if result_id is not None:
            Jobs(session).set_result(job.id, result_id)
        return JobInfo.of(job)


def renew_queued(ctx: Context, job_ids: Collection[int]) -> None:
    """Renew the lease of those of ``job_ids`` that this process holds still ``queued``:
    it is alive and will start them."""
    if job_ids:
        with ctx.catalog.begin() as session:
            Jobs(session).renew_queued(job_ids)


KIND_WORDS = {
    JobKind.BACKUP: N_("backup"),
    JobKind.RESTORE: N_("restore"),
    JobKind.DRILL: N_("drill"),
    JobKind.PRUNE: N_("prune"),
    JobKind.VERIFY: N_("verify"),
    JobKind.REPORT: N_("report"),
    JobKind.WAL_COPY: N_("wal_copy"),
}
"""A job's kind in a sentence: as stored in English (``drill``), a word in another
language (the page's "prueba de restauración")."""


def check_free(ctx: Context, request: JobRequest) -> None:
    """Raise JobConflict if a running job holds the key ``request`` will need: it would
    be refused when it starts (where the catalog checks it again, race-free). For an
    interface that would rather refuse a request than accept a job bound to fail."""
    key = request.exclusive_key
    if key is None:
        return
    with ctx.catalog.read() as session:
        holder = Jobs(session).running_with_key(key)
        if holder is not None:
            raise JobConflict(
                Phrase(
                    N_("job {job} ({kind} of {target}) is running"),
                    job=holder.id,
                    kind=Phrase(KIND_WORDS.get(holder.kind, holder.kind.value)),
                    target=holder.target,
                ),
                hint=Phrase(N_("wait until it ends; the jobs list follows it")),
            )


def _plain(value: Any) -> Any:
    # Enum members and paths become their text: params are stored as JSON.
    return value if value is None or isinstance(value, bool | int | float) else str(value)


@runtime_checkable
class Verdict(Protocol):
    """A result that can say the operation ran to its end but found it failed: a restore
    test whose check failed, a verify that found damage (results, not exceptions: the
    CLI prints them and exits 3)."""

    def found_failure(self) -> str | None:
        """What failed, in one line; None when it succeeded."""
        ...


def found_failure(result: object) -> str | None:
    """What failed, when ``result`` is a :class:`Verdict` of failure; else None."""
    return result.found_failure() if isinstance(result, Verdict) else None


def run(
    ctx: Context,
    job_id: int,
    body: Callable[[Context], T],
    *,
    token: CancelToken | None = None,
    result_id: Callable[[T], str | None] = lambda _: None,
    outcome: Callable[[T], Mapping[str, Any] | None] = lambda _: None,
    on_conflict: JobStatus = JobStatus.FAILED,
) -> T:
    """Run the queued job ``job_id``: ``body(ctx)`` with a cancellable context.

    Returns what ``body`` returned; the job ends ``completed`` (with ``result_id(result)``
    and ``outcome(result)``, what metrics and reports read back from the job's row), or
    ``failed`` with what failed when the result is a :class:`Verdict` of failure: such a
    job is no success for the metrics, the page or the success notices (the operation
    alerted what it found itself).
    If another running job holds its exclusive key, the job ends ``on_conflict``
    (``failed``, or ``skipped`` for a scheduled run) and JobConflict is raised. If the
    body raises, the job ends ``cancelled`` when ``token`` was cancelled (by the caller,
    or by ``respaldo jobs cancel`` seen in the lease) or on Ctrl-C, and JobCancelled is
    raised; otherwise ``failed`` with the error's message, and the error is re-raised.
    """
    token = token or CancelToken()
    # Before the lease's and the operation's threads start: glibc's arena cap holds only
    # for arenas made after it (:mod:`respaldo.repository.allocator`).
    allocator.tune()
    try:
        with ctx.catalog.begin() as session:
            Jobs(session).start(job_id, pid=os.getpid())
    except JobConflict as exc:
        with ctx.catalog.begin() as session:
            Jobs(session).finish(job_id, on_conflict, error=str(exc))
        raise
    lease = _Lease(ctx, job_id, token)
    job_ctx = dataclasses.replace(ctx, progress=lease.progress(ctx.progress))
    lease.start()
    try:
        token.check()  # cancelled before it could start (a service stopping)
        running = _current_job.set(job_id)
        try:
            with cancellation.cancellable(token):
                result = body(job_ctx)
        finally:
            _current_job.reset(running)
    except BaseException as exc:
        lease.stop()
        _record_failure(ctx, lease, token, exc)
        if token.cancelled and not isinstance(exc, JobCancelled | KeyboardInterrupt):
            raise JobCancelled(f"job {job_id} cancelled: {token.reason}") from exc
        raise
    # The work is done: a signal from here (in run_now's cancellation.committing) waits
    # for the job to be finished. Raised here, it left the job running, which the next
    # start failed as lost, with an alert, and a scheduled backup ran again.
    cancellation.no_return()
    lease.stop()
    failure = found_failure(result)
    status = JobStatus.COMPLETED if failure is None else JobStatus.FAILED
    if failure is not None and token.cancelled:
        # Cancelling kills the child program: what the result found failed ("pg_restore
        # was killed by signal 9") is the cancellation, not a finding.
        status, failure = JobStatus.CANCELLED, token.reason or "cancelled"
    produced, told = result_id(result), outcome(result)
    done = _record_end(
        ctx,
        lease,
        job_id,
        lambda jobs: jobs.finish(job_id, status, error=failure, result_id=produced, outcome=told),
    )
    if failure is None:
        _notice(ctx, done)
    return result


def _record_end(ctx: Context, lease: _Lease, job_id: int, finished: Callable[[Jobs], Job]) -> Job:
    """Record the end of a job whose work is done with ``finished``, again every lease
    renewal period while the catalog does not answer (its server restarting), for as long
    as the job's lease holds (``_FENCE`` of it since the last renewal, as the fence);
    then raise what the catalog said, and the job is failed as lost by whoever looks.

    Before, one try: a restore that had renamed its target into place while the
    catalog's server restarted was recorded failed ("the lease ... lapsed: no sign of
    life"), the database there all the same."""
    settings = ctx.settings.jobs
    failures = RecurringFailure(
        log, f"could not record the end of job {job_id}", f"the end of job {job_id} is recorded"
    )
    while True:
        try:
            with ctx.catalog.begin() as session:
                lease.store_progress(Jobs(session))
                done = finished(Jobs(session))
        except SQLAlchemyError as exc:
            if time.monotonic() - lease.renewed >= settings.lease_seconds * _FENCE:
                raise
            failures.failed(exc)
            time.sleep(settings.renew_seconds)  # a period, not a wait
            continue
        failures.worked()
        return done


def _record_failure(ctx: Context, lease: _Lease, token: CancelToken, exc: BaseException) -> None:
    if isinstance(exc, KeyboardInterrupt):
        # Ctrl-C's has no text; SIGTERM's and SIGHUP's name the signal (cli/main.py).
        token.cancel(str(exc) or "interrupted")
    if token.cancelled or isinstance(exc, JobCancelled):
        status, message = JobStatus.CANCELLED, token.reason or str(exc)
    else:
        status, message = JobStatus.FAILED, str(exc) or type(exc).__name__
    # The message is shown to every reader of the job (API, page, CLI): a driver's or a
    # server's error may echo a password or key this process loaded.
    from respaldo.operations.scrub import Scrubber

    message = Scrubber(ctx.settings)(message)
    failed: Job | None = None
    with ctx.catalog.begin() as session:
        if lease.store_progress(Jobs(session)) is JobStatus.RUNNING:  # not failed as lapsed
            job = Jobs(session).finish(lease.job_id, status, error=message)
            failed = job if status is JobStatus.FAILED else None
    # Every failed job, whichever interface ran it, is told here (a cancelled one is not:
    # someone asked for it). The process that failed a lapsed job told that one.
    if failed is not None:
        # Imported here, as in _alert and _notice: the alerts module (its result models,
        # the i18n catalogs, the notification layer) costs every process that runs a job
        # about 0.05 CPU-s, and most never alert.
        from respaldo.operations import alerts

        if not alerts.was_alerted(exc):
            _alert(ctx, failed, exc)


def _alert(
    ctx: Context,
    job: Job,
    error: BaseException | str,
    hint: str | None = None,
    *,
    later: bool = False,
) -> None:
    """The critical alert for the failed ``job`` (never raises)."""
    from respaldo.operations import alerts

    alerts.notify_failure(
        ctx,
        job.kind.value,
        error,
        database=job.target,
        repository=_repository(ctx, job),
        job_id=job.id,
        hint=hint,
        later=later,
    )


def _notice(ctx: Context, job: Job) -> None:
    """The success notice of a completed job, for the targets that take them."""
    if not ctx.settings.notifications.takes("success"):
        return  # the usual case: the alerts module is not even imported
    from respaldo.operations import alerts

    details = (("Backup", job.result_id),) if job.result_id else ()
    alerts.notify_success(
        ctx,
        job.kind.value,
        database=job.target,
        repository=_repository(ctx, job),
        job_id=job.id,
        details=details,
    )


def _repository(ctx: Context, job: Job) -> str | None:
    """The repository the job worked on: its ``repository`` parameter, else the primary."""
    repository = params_of(job).get("repository")
    if repository is None and ctx.settings.repositories:
        repository = ctx.settings.repositories[0].name
    return str(repository) if repository is not None else None


LAPSED_HINT = (
    "the process running the job died or stopped answering; its log tells why. "
    "'respaldo jobs' shows the job; run it again once the cause is fixed"
)


def alert_lapsed(ctx: Context, lapsed: list[Job], *, later: bool = False) -> None:
    """The critical alert for each job failed because its lease lapsed (never raises);
    none for one that ended cancelled (someone asked for it). With ``later``, recorded
    for the service's resend to send (:func:`alerts.notify_failure`)."""
    for job in lapsed:
        if job.status is JobStatus.CANCELLED:
            continue
        _alert(ctx, job, job.error_message or "the job's lease lapsed", LAPSED_HINT, later=later)


EXPIRED_HINT = (
    "nothing ran and nothing was changed; start a worker for its queue ('respaldo worker "
    "--queue NAME', or 'respaldo serve' with [server] run_jobs), then ask for it again"
)


def alert_expired(ctx: Context, expired: list[Job], *, later: bool = False) -> None:
    """The critical alert for each queued job failed as expired (never raises); with
    ``later``, as :func:`alert_lapsed`."""
    for job in expired:
        _alert(ctx, job, job.error_message or "expired in its queue", EXPIRED_HINT, later=later)


def run_now(
    ctx: Context,
    request: JobRequest,
    body: Callable[[Context], T],
    *,
    result_id: Callable[[T], str | None] = lambda _: None,
    outcome: Callable[[T], Mapping[str, Any] | None] = lambda _: None,
) -> T:
    """Submit and run at once, in this thread: what a CLI command does. A change asked
    for from the command line is audited with its outcome (operations/job_audit.py)."""
    # Imported here: the audit builds on the principal, which asks this module who the
    # OS user is.
    from respaldo.operations.job_audit import audit_job_end

    job = submit(ctx, request, here=True)
    # Once the body returned, a signal waits for the job's end and its audit and is then
    # taken (run marks that point): the work is done, and the job says so.
    with cancellation.committing():
        try:
            result = run(ctx, job.id, body, result_id=result_id, outcome=outcome)
        except BaseException as exc:
            audit_job_end(ctx, request, job.id, None, exc)
            raise
        audit_job_end(ctx, request, job.id, result_id(result), None, result=result)
    return result


def skip(ctx: Context, job_id: int, reason: str) -> JobInfo:
    """End a queued job ``skipped`` without running it (a scheduled run whose previous
    run still runs)."""
    with ctx.catalog.begin() as session:
        return JobInfo.of(Jobs(session).finish(job_id, JobStatus.SKIPPED, error=reason))


ROUTINE_FAILURES_KEPT = 12
"""Failed runs a schedule of every few minutes keeps (an hour of ``wal_copy``'s)."""


def forget_earlier_runs(ctx: Context, schedule: str) -> None:
    """Called by the job of a schedule that runs every few minutes (``wal_copy``): its
    earlier runs that ended well are deleted, and its failures but the newest
    :data:`ROUTINE_FAILURES_KEPT`, so that they do not crowd every other job off the
    lists (288 rows a day). The current job stays, so the schedule's last run is known.
    Never raises: a catalog error leaves the rows for the next run."""
    job_id = current_job()
    if job_id is None:
        return
    try:
        with ctx.catalog.begin() as session:
            Jobs(session).forget_earlier(schedule, job_id, keep_failed=ROUTINE_FAILURES_KEPT)
    except (SQLAlchemyError, RespaldoError) as exc:
        log.warning("could not forget the earlier runs of %s: %s", schedule, exc)


def forget_old(ctx: Context, now: datetime) -> int:
    """Delete the jobs that ended more than ``[jobs] keep_days`` before ``now`` (none
    with 0), keeping what the service and the metrics need (see
    :meth:`~respaldo.catalog.jobs.Jobs.forget_ended`); returns how many. By the same
    rule, in the same transaction, the web logins that ended (expired or logged out)
    and the records of notifications sent that long ago: neither table was ever
    trimmed, one row per login and per message for ever."""
    days = ctx.settings.jobs.keep_days
    if days <= 0:
        return 0
    before = now - timedelta(days=days)
    with ctx.catalog.begin() as session:
        forgotten = Jobs(session).forget_ended(before)
        logins = AuthSessions(session).forget_ended(before)
        messages = Notifications(session).forget_sent(before)
        # Deliveries sent or given up; pending ones stay until sent or given up.
        messages += Deliveries(session).forget_ended(before)
    if forgotten or logins or messages:
        log.info(
            "forgot %d jobs, %d logins and %d notifications that ended more than %d days ago",
            forgotten,
            logins,
            messages,
            days,
        )
    return forgotten


def last_of_schedule(ctx: Context, name: str, now: datetime) -> JobInfo | None:
    """The newest job the schedule ``name`` submitted by ``now``, or None. One dated
    later was recorded while a clock was ahead: taken for the last run, it hid every run
    the service missed until the clock caught up with it (whenever it really ran, a
    run owed is run once more rather than missed)."""
    with ctx.catalog.read() as session:
        found = Jobs(session).list(
            limit=1, triggered_by=TriggeredBy.SCHEDULE, requested_by=name, created_at_most=now
        )
        return JobInfo.of(found[0]) if found else None


def cancel(ctx: Context, job_id: int) -> JobInfo:
    """Cancel a job: a queued one ends at once; a running one is flagged, and the process
    running it stops it within a lease renewal (``[jobs] lease_seconds / 10``, at most
    2 s). Raises RecordNotFound, or InvalidTransition for a job that already ended."""
    with ctx.catalog.begin() as session:
        return JobInfo.of(Jobs(session).request_cancel(job_id))


def get(ctx: Context, job_id: int) -> JobInfo:
    """One job. Raises RecordNotFound."""
    with ctx.catalog.read() as session:
        return JobInfo.of(Jobs(session).get(job_id))


def list_jobs(ctx: Context, *, limit: int = 50, status: JobStatus | None = None) -> list[JobInfo]:
    """Jobs, newest first."""
    with ctx.catalog.read() as session:
        return [JobInfo.of(job) for job in Jobs(session).list(limit=limit, status=status)]


_FENCE = 0.8
"""A running job stops when its lease has not been renewed for this part of
``[jobs] lease_seconds`` (the catalog does not answer it), before others find it lapsed."""


class _Lease(threading.Thread):
    """Renews a running job's lease, stores its progress, and cancels its token when the
    job was asked to stop (or is no longer ``running``: failed by another process)."""

    def __init__(self, ctx: Context, job_id: int, token: CancelToken) -> None:
        super().__init__(name=f"job-{job_id}-lease", daemon=True)
        self.ctx = ctx
        self.job_id = job_id
        self.token = token
        self._stopped = threading.Event()
        self._done: int | None = None
        self._total: int | None = None
        # The phase reporting now, and what the phases before it did: each phase counts
        # from 0 (a backup's globals after its dump), the job's figure goes on from them.
        self._phase: str | None = None
        self._before = 0
        # When the last renewal that the catalog took was sent (the job's start first).
        self._renewed = time.monotonic()

    def progress(
        self, report: Callable[[str, int, int | None], None]
    ) -> Callable[[str, int, int | None], None]:
        def wrapped(phase: str, done: int, total: int | None) -> None:
            if phase != self._phase:
                # Else a finished backup's job said 1.9 KiB, its globals, not its 4 MiB.
                self._before = self._done or 0
                self._phase = phase
            self._done = self._before + done
            self._total = None if total is None else self._before + total
            report(phase, done, total)
            self.token.check()

        return wrapped

    def run(self) -> None:
        settings = self.ctx.settings.jobs
        fence = threading.Thread(target=self._fence, name=f"{self.name}-fence", daemon=True)
        fence.start()
        # Once per cause: with the catalog down, every renewal (each 2 s until the fence
        # stops the job, 96 s at the default lease) logged its whole traceback.
        failures = RecurringFailure(
            log,
            f"could not renew the lease of job {self.job_id}",
            f"the lease of job {self.job_id} is renewed again",
        )
        while not self._stopped.wait(settings.renew_seconds):
            started = time.monotonic()  # the catalog's lease counts from about now
            try:
                with self.ctx.catalog.begin() as session:
                    job = Jobs(session).renew(self.job_id, done=self._done, total=self._total)
                    status, asked = job.status, job.cancel_requested
            except (RespaldoError, Exception) as exc:  # a busy catalog: try again next time
                failures.failed(exc)
                continue
            failures.worked()
            self._renewed = started
            if asked:
                self.token.cancel("cancelled by request")
            elif status is not JobStatus.RUNNING:
                self.token.cancel(f"the job was marked {status.value} by another process")

    def _fence(self) -> None:
        """Cancel the job once its lease has gone unrenewed for ``_FENCE`` of
        ``lease_seconds``: others will soon take it for lost (its lease lapses), fail it
        and maybe run it again, and it stops first, so two runs never overlap. Apart from
        the renewal: a catalog that drops packets makes the renewal's call hang for the
        minutes TCP takes to give up, raising nothing meanwhile."""
        settings = self.ctx.settings.jobs
        limit = settings.lease_seconds * _FENCE
        while not self._stopped.wait(settings.renew_seconds):
            silent = time.monotonic() - self._renewed
            if silent >= limit and not self.token.cancelled:
                self.token.cancel(
                    f"its lease could not be renewed for {silent:.0f} s (the catalog "
                    "does not answer): stopped before another process takes it for lost"
                )
                return

    @property
    def renewed(self) -> float:
        """When (``time.monotonic``) the last renewal the catalog took was sent."""
        return self._renewed

    def store_progress(self, jobs: Jobs) -> JobStatus:
        """Store the last progress reported (renewing the lease); return the status."""
        return jobs.renew(self.job_id, done=self._done, total=self._total).status

    def stop(self) -> None:
        self._stopped.set()
        if self.is_alive():
            self.join()

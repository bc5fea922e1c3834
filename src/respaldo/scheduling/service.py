"""The service's scheduler: APScheduler fires each schedule; each firing is a job.

Rules (from the specification):

- a run missed while the service was down runs once at start-up, not once per missed
  time (the last job a schedule submitted tells when it last ran);
- a schedule whose previous run still runs is skipped, and the skip is recorded as a
  ``skipped`` job; so is a backup refused because another process backs up the same
  database;
- :meth:`Service.stop` (SIGTERM) fires nothing more, cancels the running jobs and waits
  until each has recorded ``cancelled``: nothing is left ``running``;
- the RPO watchdog (:mod:`respaldo.operations.watchdog`) runs at start-up, at once (a
  service that was down for two days says so then, not at its next check), and every
  ``[rpo] watchdog_minutes`` after that;
- before each check it asks again which databases the primary repository archives WAL
  of (:meth:`Service.replan`): a database whose archiving was set up while the service
  ran gets its physical (``incremental``) schedule then, and the watchdog watches it as
  such, without a restart;
- each firing is recorded with its fire time, unique per schedule in the catalog: however
  many ``serve`` processes share a catalog, each schedule fires once per time (the
  others find the row taken and do nothing);
- with a PostgreSQL catalog the job goes to the queue (a worker runs it) instead of
  running here: see :mod:`respaldo.operations.queue`;
- a firing whose job cannot be recorded (the catalog refuses connections, a restart of
  its server) is not dropped: it is logged as an error and tried again every lease
  renewal period until the catalog takes it, unless a later firing of the same schedule
  comes first (the run owed is then that one: missed runs run once);
- the service sweeps for lost jobs at start-up and every lease renewal period
  (:meth:`Service.sweep`): a job whose process died is failed and alerted on (its
  alert recorded for each target, sent by the resend below: the sweep never waits on a
  target); with SQLite a retry of it is run here when it was the service's and ``[queue] retries``
  allows, as the queue's workers do; with a queue the retry goes to the queue (as a
  worker's sweep: with every worker gone, nothing else would look);
- the alerts a notification target refused are sent again, once their backoff is due,
  by a periodic run of their own (:meth:`Service.resend`, every lease renewal period,
  one run at a time), apart from the sweep, and the alerts of the lost jobs the sweep
  found: a target that hangs (a mail server that takes the connection and never answers)
  holds up only the next resend, never the detection of lost jobs;
- a run of the watchdog or of the sweep that blocks for ever (a hung mount, a lock held
  in the catalog) cannot be interrupted, and every later run is skipped: the stall
  monitor, a thread of its own, alerts (``stuck:<check>``, critical, with what it was
  doing) once a run is older than ``[rpo] watchdog_stuck_minutes``, and resolves the
  alert when it ends (:mod:`respaldo.operations.stall`; /health and the status say it
  too);
- the watchdog and the sweep run by elapsed time, which a step of the wall clock does not
  change: once the clock went back, the stall monitor brings one planned further ahead
  than its period back to now, and plans each cron schedule again from the new time
  (:meth:`Service.realign`; a wall time that ran is not run twice: the catalog refuses
  its fire time again).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from apscheduler.executors.base import BaseExecutor, run_job
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from respaldo.cancellation import CancelToken
from respaldo.domain import JobStatus
from respaldo.errors import (
    AlreadyFired,
    JobCancelled,
    JobConflict,
    RepositoryNotFound,
    RespaldoError,
    StorageError,
    first_line,
)
from respaldo.operations import alerts, jobs, queue, reconcile, stall, watchdog
from respaldo.operations.context import Context
from respaldo.operations.recurring import RecurringFailure
from respaldo.operations.schedule import (
    REPEATED_HOUR_REACH,
    Entry,
    entries,
    short_backup_limits,
    short_restore_test_limits,
)
from respaldo.operations.scheduled import run_queued, wal_archived
from respaldo.operations.scrub import Scrubber
from respaldo.operations.zone import time_zone
from respaldo.phrases import Phrase

log = logging.getLogger(__name__)

Runner = Callable[[Context, int, CancelToken], Any]
"""``runner(ctx, job_id, token)`` runs a submitted job (tests pass their own)."""

Watchdog = Callable[[Context, datetime], Any]
"""``watchdog(ctx, now)`` checks the status and alerts (:func:`watchdog.check`)."""

WATCHDOG = "watchdog"
OWN = "service"
"""The executor of the service's own checks (the watchdog, the sweep), apart from jobs."""
SWEEP = "lost-jobs-sweep"
RESEND = "alert-resend"
"""The id of the periodic run that sends again what notification targets refused."""
_CHECK_NAMES = {
    WATCHDOG: "watchdog check",
    SWEEP: "sweep for lost jobs",
    RESEND: "resend of waiting alerts",
}
"""What the service's log calls each of its own checks."""
OWED = "owed:"
"""Prefix of the id of the one-off job that records a firing the catalog refused."""
_NOTHING = object()
# How far back the wall clock must go between two looks of the stall monitor to be taken
# for a step (NTP slews small corrections; a step back this small delays a check as much).
_STEP_BACK = 1.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _log_end(what: str, exc: BaseException) -> None:
    """Say in the service's log how a job that raised ended, and why: the operator
    reading the journal sees the reason there (the job's record has it too), and a run
    skipped or cancelled is not told as an error."""
    if isinstance(exc, JobConflict):
        log.info("%s skipped: %s", what, first_line(exc))
    elif isinstance(exc, JobCancelled):
        log.info("%s cancelled: %s", what, first_line(exc))
    elif isinstance(exc, RespaldoError):
        log.warning("%s failed: %s", what, first_line(exc))
    else:  # not one of respaldo's own errors: a bug, whose traceback tells where
        log.warning("%s failed: %s", what, first_line(exc), exc_info=exc)


def _said_skipped(entry: Entry, job_id: int, why: str) -> None:
    """Say a firing skipped because the schedule's previous run still runs: at the
    default level (warnings), as nothing else says it until the RPO lapses (a nightly
    backup still running at the next night's time leaves that night without one)."""
    log.warning("%s skipped its run (job %s): %s", entry.name, job_id, why)


class _CheckThreads(BaseExecutor):  # type: ignore[misc]  # APScheduler has no type hints
    """The executor of the service's own checks: each run in a daemon thread of its own,
    and a stop does not wait for a run that is stuck (``stuck()``: the idents of the
    threads of the runs older than ``[rpo] watchdog_stuck_minutes``). In a pool, whose
    threads the interpreter joins at exit, a check hung for ever (a read on a hung NFS
    mount, which nothing can interrupt) kept SIGTERM from ever ending ``serve``, until
    its service manager killed it. The watchdog only reads; the sweep writes in
    transactions the catalog rolls back when the process ends mid-way, and the next
    sweep does it again."""

    def __init__(self, stuck: Callable[[], set[int]], period: float) -> None:
        super().__init__()
        self._stuck = stuck
        self._period = period
        self._threads: set[threading.Thread] = set()
        self._guard = threading.Lock()

    def start(self, scheduler: Any, alias: str) -> None:
        super().start(scheduler, alias)
        # APScheduler logs "Running job" and "executed successfully" at INFO for every run:
        # for the sweep for lost jobs, every lease renewal period (2 s by default), about
        # 86,000 lines a day under ``-v`` that buried respaldo's own. Only this executor's
        # (the checks'): a run of a schedule is still logged, and a check's failures
        # (warnings, errors) still are.
        self._logger.setLevel(logging.WARNING)

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        def run() -> None:
            try:
                events = run_job(job, job._jobstore_alias, run_times, self._logger.name)
            except BaseException as exc:
                self._run_job_error(job.id, exc, exc.__traceback__)
            else:
                self._run_job_success(job.id, events)
            finally:
                with self._guard:
                    self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=run, name=f"check-{job.id}", daemon=True)
        with self._guard:
            self._threads.add(thread)
        thread.start()

    def shutdown(self, wait: bool = True) -> None:
        # Waits for each run that is not stuck; one that becomes stuck meanwhile is left
        # (looked at again every period: how long it has run is all that tells).
        while wait:
            stuck = self._stuck()
            with self._guard:
                left = [t for t in self._threads if t.is_alive() and t.ident not in stuck]
            if not left:
                return
            left[0].join(self._period)


def _run_scheduled(ctx: Context, job_id: int, token: CancelToken) -> Any:
    return run_queued(ctx, job_id, token=token, on_conflict=JobStatus.SKIPPED)


class Service:
    """The schedules of one process. ``start`` once, ``stop`` once."""

    def __init__(
        self,
        ctx: Context,
        schedule: Sequence[Entry],
        *,
        runner: Runner = _run_scheduled,
        workers: int = 4,
        watchdog: Watchdog | None = None,
        watchdog_minutes: float = 5.0,
        clock: Callable[[], datetime] = _utcnow,
        queued: bool = False,
        archiving: Callable[[], Collection[str]] | None = None,
        archived: Collection[str] = (),
    ) -> None:
        self.ctx = ctx
        self.schedule = list(schedule)
        # How to learn which databases archive WAL now (None: the schedule is fixed), and
        # what it said last: the schedule and the watchdog follow it (replan()).
        self._archiving = archiving
        self.archived: frozenset[str] = frozenset(archived)
        self.queued = queued
        self._runner = runner
        self._watchdog = watchdog
        self._watchdog_minutes = watchdog_minutes
        self._clock = clock
        self._lock = threading.Lock()
        self._replanning = threading.Lock()
        self._running: dict[str, tuple[int, CancelToken]] = {}
        self._stopping = False
        self._last_fire: dict[str, datetime] = {}
        self._missed: dict[str, datetime] = {}
        # Schedule name -> fire time of a firing whose job the catalog could not record.
        self._owed: dict[str, datetime | None] = {}
        self._started = clock()
        self._retries: dict[int, tuple[threading.Thread, CancelToken]] = {}
        self._sweep_failures = RecurringFailure(
            log, "could not sweep for lost jobs", "sweeping for lost jobs works again"
        )
        # Whether the alerts an older respaldo kept as undelivered were taken in: looked
        # for once per process (an upgrade leaves them once), not at every resend.
        self._adopted = False
        # The stall monitor: its thread, what it told stuck (check -> since when), and
        # the event that wakes it (a check ended, or the service stops).
        self._monitor: threading.Thread | None = None
        # A stuck alert a previous process left firing (killed while stuck) is resolved
        # at the first look if nothing is stuck here.
        self._told_stuck: dict[str, datetime | None] = {WATCHDOG: None, SWEEP: None, RESEND: None}
        self._poke = threading.Event()
        self._replan_failures = RecurringFailure(
            log,
            "could not read which databases archive WAL (the schedule stays as it is)",
            "reading which databases archive WAL works again",
        )
        self._scheduler = BackgroundScheduler(
            timezone=time_zone(ctx.settings),
            # The watchdog and the sweep for lost jobs have threads of their own: in the
            # jobs' pool they waited behind every job, and a night of long backups and
            # restore tests (or one that hangs) on every worker left no check running, so
            # an RPO lapsing meanwhile, anywhere, was told only once a job ended.
            executors={"default": ThreadPoolExecutor(workers), OWN: self._check_threads()},
            # max_instances above 1: a run that finds its previous one still going must
            # get to fire() to be recorded as skipped (APScheduler would only log it).
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 3},
        )

    def _stuck_limit(self) -> timedelta:
        return timedelta(minutes=self.ctx.settings.rpo.watchdog_stuck_minutes)

    def _stall_period(self) -> float:
        """How often, in seconds, the stall monitor and a stop waiting for the checks look
        again: a quarter of the limit, at most a minute."""
        return min(self._stuck_limit().total_seconds() / 4, 60.0)

    def _check_threads(self) -> _CheckThreads:
        def stuck() -> set[int]:
            return {each.thread for each in stall.stuck(self._clock(), self._stuck_limit())}

        return _CheckThreads(stuck, self._stall_period())

    @classmethod
    def create(cls, ctx: Context) -> Service:
        """The service for ``ctx.settings``' schedules, with the RPO watchdog: its jobs go
        to the queue with a PostgreSQL catalog, else run here. Raises ConfigError, and
        what opening the primary repository raises for a configuration that is wrong
        (WrongPassphrase...).

        A primary repository that cannot be reached now does not stop the service (nothing
        would run, and nothing would tell: the watchdog is the service's): it starts
        without the physical schedules, logs an error, and adds them when the repository
        answers (:meth:`replan`, before each watchdog check)."""
        try:
            archived: set[str] | None = wal_archived(ctx)
        except (StorageError, RepositoryNotFound) as exc:
            # Unavailable, not misconfigured: a wrong passphrase still stops the start.
            log.error(
                "cannot read which databases archive WAL from the primary repository (%s); "
                "their physical backups are scheduled when it answers (checked every "
                "[rpo] watchdog_minutes); the other schedules start now",
                Scrubber(ctx.settings)(str(exc)),
            )
            archived = None
        service = cls(
            ctx,
            entries(ctx.settings, archived or ()),
            watchdog_minutes=ctx.settings.rpo.watchdog_minutes,
            queued=queue.has_queue(ctx),
            archiving=partial(wal_archived, ctx),
            archived=archived or (),
        )

        def check(context: Context, now: datetime) -> Any:
            # The databases that get physical backups are the ones it watches as such.
            return watchdog.check(context, now, wal_archived=service.archived)

        service._watchdog = check
        return service

    def replan(self) -> None:
        """Ask again which databases archive WAL and schedule accordingly: a schedule that
        is now on (``incremental:<db>``, ``wal_copy``) is added, one now off removed. Never
        raises: a repository that cannot be read leaves the schedule as it is (logged once
        per cause)."""
        if self._archiving is None or self._stopping:
            return
        with self._replanning:  # the watchdog's run and a direct call: one at a time
            self._replan(self._archiving)

    def _replan(self, archiving: Callable[[], Collection[str]]) -> None:
        try:
            archived = frozenset(archiving())
            if archived == self.archived:
                self._replan_failures.worked()
                return
            planned = entries(self.ctx.settings, archived)
        except Exception as exc:
            self._replan_failures.failed(exc)
            return
        self._replan_failures.worked()
        before = {entry.name for entry in self.schedule}
        after = {entry.name for entry in planned}
        now = self._clock()
        for entry in planned:
            if entry.name not in before:
                self._add(entry, now)
                log.warning("%s is scheduled now: WAL archiving changed", entry.name)
        for name in before - after:
            with contextlib.suppress(JobLookupError):
                self._scheduler.remove_job(name)
            log.warning("%s is no longer scheduled: WAL archiving changed", name)
        self.schedule, self.archived = planned, archived

    def _add(self, entry: Entry, when: datetime) -> None:
        """Schedule ``entry``; a run it missed (see :meth:`missed`) is due at once."""
        try:
            missed = self._missed_time(entry, when)
        except Exception:  # the catalog: the schedule's next time comes as planned
            log.warning("cannot tell whether %s missed a run", entry.name, exc_info=True)
            missed = None
        # A missed run is recorded for the time it was due: two services starting
        # together submit it once.
        extra: dict[str, Any] = {"next_run_time": when} if missed is not None else {}
        if missed is not None:
            with self._lock:
                self._missed[entry.name] = missed  # for its first firing only
        elif not self.queued:
            # Its last run cut off by the service's own stop runs again (a missed run
            # supersedes it); with a queue, the stopping worker queued the retry.
            try:
                reconcile.retry_stopped(self.ctx, entry.name)
            except Exception:
                log.warning("cannot tell whether a stop cut %s off", entry.name, exc_info=True)
        self._scheduler.add_job(
            self.fire,
            entry.trigger,
            args=[entry],
            kwargs={"by_trigger": True},
            id=entry.name,
            name=entry.name,
            **extra,
        )
        if missed is not None:
            # A warning (the default level logs no info): a nightly backup that ran hours
            # late, or not on its night, is what the operator reads the journal for.
            zone = entry.trigger.timezone
            log.warning(
                "%s missed its run of %s while the service was down: running it now",
                entry.name,
                f"{missed.astimezone(zone):%Y-%m-%d %H:%M %Z}",
            )

    def missed(self, now: datetime) -> list[Entry]:
        """Schedules that were due since their last recorded run (while the service was
        down): each runs once at start-up. A schedule that never ran has missed nothing."""
        return [entry for entry in self.schedule if self._missed_time(entry, now) is not None]

    def _missed_time(self, entry: Entry, now: datetime) -> datetime | None:
        last = jobs.last_of_schedule(self.ctx, entry.name, now)
        return None if last is None else entry.last_due(last.created_at, now)

    def start(self, now: datetime | None = None) -> None:
        """Add every schedule (missed ones due at once) and the watchdog (due at once)
        and start firing."""
        # The stall monitor's first look at the clocks, before anything is planned: a step
        # back between the plans and a later first look (the monitor's thread starts late
        # on a loaded machine, after serve already listens) went unseen, and the sweep
        # stayed planned an hour ahead.
        reference = datetime.now(UTC), time.monotonic()
        when = now or self._clock()
        self._started = when
        silent = alerts.unannounced(self.ctx.settings)
        if silent is not None:
            log.warning("%s", silent)
        for said in alerts.unusable_targets(self.ctx.settings):
            log.warning("%s", said)
        for said in short_restore_test_limits(self.ctx.settings, self.schedule, when):
            log.warning("%s", said)
        for said in short_backup_limits(self.ctx.settings, self.schedule, when):
            log.warning("%s", said)
        for entry in self.schedule:
            self._add(entry, when)
        # The service sweeps for lost jobs, at once (what it lost before a restart) and
        # every lease renewal period: with SQLite nobody else does; with a queue its
        # workers do too, but with every worker gone (their machine lost, [server]
        # run_jobs = false here) a job they ran stayed running for ever, each later firing
        # of its schedule skipped as overlapping, and nothing told until an RPO lapsed.
        self._scheduler.add_job(
            self.sweep,
            IntervalTrigger(seconds=self.ctx.settings.jobs.renew_seconds, timezone=UTC),
            id=SWEEP,
            name=SWEEP,
            next_run_time=when,
            max_instances=1,
            executor=OWN,
        )
        # Its own run, not a part of the sweep's: each attempt may take up to
        # [notifications] timeout_seconds per target (a hanging mail server or webhook),
        # and inside the sweep that delayed the detection of lost jobs by as much, and
        # skipped the sweeps due meanwhile.
        self._scheduler.add_job(
            self.resend,
            IntervalTrigger(seconds=self.ctx.settings.jobs.renew_seconds, timezone=UTC),
            id=RESEND,
            name=RESEND,
            next_run_time=when,
            max_instances=1,
            executor=OWN,
        )
        if self._watchdog is not None:
            self._scheduler.add_job(
                self.watch,
                IntervalTrigger(minutes=self._watchdog_minutes, timezone=UTC),
                id=WATCHDOG,
                name=WATCHDOG,
                next_run_time=when,
                max_instances=1,
                executor=OWN,
            )
        self._scheduler.start()
        self._monitor = threading.Thread(
            target=self._watch_checks, args=reference, name="stall-monitor", daemon=True
        )
        self._monitor.start()

    def _watch_checks(self, wall: datetime, steady: float) -> None:
        """The stall monitor's loop: look every quarter of the limit (at most a minute),
        and whenever a check ends. Its own thread: the checks' executor is where a stuck
        run sits, and nothing there could tell. ``wall`` and ``steady``: the clocks as
        they read before the service planned anything."""
        limit = self._stuck_limit()
        period = self._stall_period()
        while not self._stopping:
            self._poke.wait(period)
            self._poke.clear()
            if self._stopping:
                return
            try:
                self.look_for_stuck_checks(limit)
            except Exception:  # a bug: the monitor must go on looking
                log.exception("the stall monitor failed")
            # The wall clock went back since the last look if it moved less than the
            # monotonic one (which no step moves): APScheduler's plans are on the first.
            before, since = wall, steady
            wall, steady = datetime.now(UTC), time.monotonic()
            if (wall - before).total_seconds() < steady - since - _STEP_BACK:
                try:
                    self.realign(wall)
                except Exception:  # a bug: the monitor must go on looking
                    log.exception("the stall monitor could not realign the checks")

    def realign(self, now: datetime) -> list[str]:
        """Bring back to ``now`` each of the service's own periodic runs (the sweep, the
        watchdog, a firing owed to the catalog) planned further ahead than its period;
        returns their ids. APScheduler plans them on the wall clock: stepped back an
        hour (an NTP correction, a VM resumed from a snapshot) while it waited, their
        next run was still the old time, an hour ahead, and neither the sweep for lost
        jobs nor the RPO watchdog ran for that hour, telling nothing. The monitor's
        thread calls it at the first look (at most a minute apart) after the wall clock
        went back, with the wall clock (the scheduler's, not the one tests pass).

        A cron schedule's next run is planned again from ``now`` too: it stayed at the
        old time, and a ``*/5`` ``wal_copy`` did not run for the hour the clock went
        back (past ``[rpo] wal_copy_minutes``). A wall time that already ran is not run
        twice: its fire time is recorded, and the catalog refuses it again
        (``AlreadyFired``); the due time of the next firing is reckoned from ``now``.

        The next run is reckoned from the schedule's last firing when that is not after
        ``now`` (the step went back less far than it): from ``now`` alone, in the second
        pass of a fall-back's repeated hour, a step of a few seconds planned a nightly
        ``30 2 * * *`` that ran at 02:30 CEST again for 02:30 CET, another instant the
        catalog took, and it ran twice that night."""
        moved = self._realign_checks(now)
        by_name = {entry.name: entry for entry in self.schedule}
        for job in self._scheduler.get_jobs():
            entry = by_name.get(job.id)
            if entry is None or job.next_run_time is None:
                continue
            with self._lock:
                last = self._last_fire.get(entry.name)
            if last is None:
                last = self._first_since(entry)  # where the first firing here goes on from
            ran = last if last <= now else None
            planned = next(iter(entry.next_runs(now, 1, ran=ran)), None)
            # In UTC: two times of one zone compare by their wall clocks, fold ignored.
            if planned is None or planned.astimezone(UTC) >= job.next_run_time.astimezone(UTC):
                continue
            if ran is None:  # gone back past it: what is due is reckoned from now
                with self._lock:
                    self._last_fire[entry.name] = now
            with contextlib.suppress(JobLookupError):  # replanned meanwhile
                job.modify(next_run_time=planned)
                moved.append(job.id)
        if moved:
            log.warning(
                "the clock went back: %s run now instead of when the old time said",
                ", ".join(moved),
            )
        return moved

    def _realign_checks(self, now: datetime) -> list[str]:
        renew = timedelta(seconds=self.ctx.settings.jobs.renew_seconds)
        periods = {SWEEP: renew, RESEND: renew}
        if self._watchdog is not None:
            periods[WATCHDOG] = timedelta(minutes=self._watchdog_minutes)
        owed = timedelta(seconds=self.ctx.settings.jobs.renew_seconds)
        moved = []
        for job in self._scheduler.get_jobs():
            period = periods.get(job.id, owed if job.id.startswith(OWED) else None)
            if period is None or job.next_run_time is None:
                continue
            if job.next_run_time - now > period:
                with contextlib.suppress(JobLookupError):  # ended meanwhile (paid, replanned)
                    job.modify(next_run_time=now)
                    moved.append(job.id)
        return moved

    def look_for_stuck_checks(self, limit: timedelta) -> list[stall.Stuck]:
        """Alert on each check of this process that has run longer than ``limit``
        (``stuck:<check>``) and resolve the alert of each told before that is no longer
        stuck; returns the stuck ones. Never raises for an alert that cannot be sent."""
        now = self._clock()
        found = stall.stuck(now, limit)
        for each in found:
            if self._told_stuck.get(each.check) != each.since:
                log.error(
                    "the %s has run for %d min and is stuck in: %s; no later run starts "
                    "(%s) until it ends",
                    _CHECK_NAMES.get(each.check, each.check),
                    each.minutes(now),
                    each.doing,
                    "no alert waiting for a target is sent"
                    if each.check == RESEND
                    else "nothing else is alerted on",
                )
            self._told_stuck[each.check] = each.since
            alerts.set_condition(
                self.ctx,
                each.key,
                True,
                message=each.message(),
                args={"minutes": each.minutes(now), "doing": each.doing},
                hint=Phrase(stall.hint_of(each.check)),
                now=now,
            )
        stuck_now = {each.check for each in found}
        for check in [c for c in self._told_stuck if c not in stuck_now]:
            del self._told_stuck[check]
            result = alerts.set_condition(
                self.ctx,
                stall.PREFIX + check,
                False,
                message=stall.message_of(check),
                now=now,
            )
            if result.action == "resolved":
                log.warning("the %s runs again", check)
        return found

    def watch(self) -> None:
        """Follow WAL archiving (:meth:`replan`), then run the watchdog once, at the
        clock's time. Never raises: a check that fails is logged and the next one runs as
        planned."""
        try:
            with stall.running(WATCHDOG, self._clock):
                if self._archiving is not None and self.ctx.settings.repositories:
                    stall.at(stall.REPOSITORY, repository=self.ctx.settings.repositories[0].name)
                self.replan()
                if self._watchdog is None or self._stopping:
                    return
                try:
                    self._watchdog(self.ctx, self._clock())
                except Exception:
                    log.exception("the RPO watchdog failed")
        finally:
            self._poke.set()  # the monitor resolves a stuck alert at once

    def sweep(self) -> list[int]:
        """Fail the jobs lost by a process that died (their alert recorded, for
        :meth:`resend` to send), queue a retry of each that was this service's and may be
        retried (``[queue] retries``), and start each retry this process holds in a
        thread of its own; returns their ids. With a
        queue, as a worker's sweep (:func:`queue.recover`: the retries go to the queue,
        none is held here). Never raises: a sweep that fails is logged (once per cause,
        and once when sweeping works again) and the next one runs as planned."""
        if self._stopping:
            return []
        try:
            with stall.running(SWEEP, self._clock):
                stall.at(stall.SWEEPING)
                return self._sweep()
        finally:
            self._poke.set()  # the monitor resolves a stuck alert at once

    def resend(self) -> list[alerts.DeliveryResult]:
        """Send again the alerts notification targets refused, once their backoff is due
        (:func:`alerts.retry_deliveries`); at the first run, first take in those an older
        respaldo kept as undelivered. Every lease renewal period: a delivery goes within
        seconds of its backoff, where the watchdog (every ``[rpo] watchdog_minutes``)
        would add up to its period to each. Never raises."""
        if self._stopping:
            return []
        # Watched as the sweep is: a run that hangs (a target whose secret file nobody
        # writes, a lock held in the catalog; a target's own answer is bounded by
        # [notifications] timeout_seconds) skips every later one, and nothing said so.
        try:
            with stall.running(RESEND, self._clock):
                stall.at(stall.CATALOG)
                if not self._adopted:
                    self._adopted = alerts.adopt_undelivered(self.ctx)
                return alerts.retry_deliveries(self.ctx, self._clock())
        finally:
            self._poke.set()  # the monitor resolves a stuck alert at once

    def _sweep(self) -> list[int]:
        try:
            if self.queued:
                # As a worker's sweep: fail (and retry in the queue) what a dead worker
                # ran, and the queued jobs whose queue entry ended; nothing is held here.
                # Their alerts are recorded for the resend to send, as on SQLite.
                queue.recover(self.ctx)
                held = []
            else:
                held = reconcile.sweep_here(self.ctx)
        except Exception as exc:
            self._sweep_failures.failed(exc)
            return []
        self._sweep_failures.worked()
        started = []
        with self._lock:
            for job_id in held:
                if self._stopping or job_id in self._retries:
                    continue
                token = CancelToken()
                thread = threading.Thread(
                    target=self._run_retry, args=(job_id, token), name=f"retry-{job_id}"
                )
                self._retries[job_id] = (thread, token)
                thread.start()
                started.append(job_id)
        return started

    def _run_retry(self, job_id: int, token: CancelToken) -> None:
        try:
            self._runner(self.ctx, job_id, token)
        except (RespaldoError, Exception) as exc:
            _log_end(f"job {job_id} (a retry of a lost job)", exc)
        finally:
            # Ended (or never started, if the catalog failed: still queued, the next
            # sweep starts it again).
            with self._lock:
                self._retries.pop(job_id, None)

    def join_retries(self) -> None:
        """Return once every retry started so far has ended."""
        with self._lock:
            threads = [thread for thread, _ in self._retries.values()]
        for thread in threads:
            thread.join()

    def _fire_time(self, entry: Entry) -> datetime | None:
        """The time this firing of ``entry`` was due: the latest fire time of its trigger
        since its previous firing here (APScheduler calls late on a loaded machine, never
        early), so every service computes the same time for the same firing. None for a
        firing that no trigger time explains: a direct call, or the trigger's call for a
        time an earlier late call here already took (:meth:`fire` skips that one)."""
        now = self._clock()
        with self._lock:
            since = self._last_fire.get(entry.name)
        if since is None:
            since = self._first_since(entry)
        with self._lock:
            since = self._last_fire.get(entry.name, since)
            due = self._missed.pop(entry.name, None) or entry.last_due(since, now)
            if due is not None and due > since:
                self._last_fire[entry.name] = due
        return due

    def _first_since(self, entry: Entry) -> datetime:
        """Where the first firing here of ``entry`` looks for its due time from: the run
        of it the catalog recorded last, if that was shortly before the start, else just
        before the start. A service started inside a fall-back's repeated hour has no
        previous fire time, so its trigger reaches a wall time that already ran in the
        first pass by its second one: a nightly `30 2 * * *` backup that ran at 02:30 CEST
        ran again at 02:30 CET after a restart at 02:20 CET. From the recorded run, that
        wall time is behind it (each wall time runs once, as docs/service.md says)."""
        started = self._started - timedelta(seconds=1)
        try:
            last = jobs.last_of_schedule(self.ctx, entry.name, started)
        except Exception:  # the catalog: as before, from the start
            log.warning("cannot read the last run of %s", entry.name, exc_info=True)
            return started
        if last is None:
            return started
        ran = last.scheduled_for or last.created_at
        # A repeated hour is at most an hour long (half of one at Lord Howe); an older
        # run cannot be in its first pass, and walking from it would cost for nothing.
        if started - REPEATED_HOUR_REACH <= ran <= started:
            return ran
        return started

    def fire(self, entry: Entry, *, by_trigger: bool = False) -> None:
        """Submit ``entry``'s job and run it here (or hand it to the queue), or record it
        skipped if the previous run of the same schedule still runs. Does nothing when
        another service already fired it for the same time. Never raises: the job records
        its error."""
        due = self._fire_time(entry)
        if due is None and by_trigger:
            # On a loaded machine two of the trigger's calls can come late and out of
            # order: the first took the latest due time, so this one's was run already.
            # Submitted without a time it would escape deduplication, and every service
            # sharing the catalog would run it once more.
            log.debug("%s: this firing's time was taken by an earlier late one", entry.name)
            return
        with self._lock:
            # This firing supersedes one still owed: a schedule's missed runs run once.
            self._owed.pop(entry.name, None)
        self._submit(entry, due)

    def _pay(self, entry: Entry, due: datetime | None) -> None:
        """Record the firing of ``entry`` at ``due`` the catalog refused, unless a later
        firing came meanwhile."""
        with self._lock:
            if self._stopping or self._owed.get(entry.name, _NOTHING) != due:
                return
        self._submit(entry, due)

    def _owe(self, entry: Entry, due: datetime | None, exc: BaseException) -> None:
        """The catalog refused the job of ``entry``'s firing at ``due``: try again in a
        lease renewal period (a one-off job of the scheduler), and say so once."""
        period = self.ctx.settings.jobs.renew_seconds
        with self._lock:
            if self._stopping:
                return
            first = entry.name not in self._owed
            self._owed[entry.name] = due
        if first:
            cause = Scrubber(self.ctx.settings)(first_line(exc))
            log.error(
                "the run of %s could not be recorded in the catalog (%s: %s); "
                "it is tried again every %g s until the catalog takes it",
                entry.name,
                type(exc).__name__,
                cause,
                period,
            )
        self._scheduler.add_job(
            self._pay,
            DateTrigger(run_date=datetime.now(UTC) + timedelta(seconds=period), timezone=UTC),
            args=[entry, due],
            id=OWED + entry.name,
            name=OWED + entry.name,
            replace_existing=True,
            misfire_grace_time=None,
        )

    def _recorded(self, entry: Entry) -> None:
        with self._lock:
            owed = self._owed.pop(entry.name, _NOTHING) is not _NOTHING
        if owed:
            log.warning("the run of %s is recorded in the catalog now", entry.name)

    def _submit(self, entry: Entry, due: datetime | None) -> None:
        """Record the job of ``entry``'s firing at ``due`` and run it here (or hand it to
        the queue); a firing the catalog refuses is owed (:meth:`_owe`)."""
        if self.queued:
            self._fire_queued(entry, due)
            return
        refused: Exception | None = None
        with self._lock:
            # Held from the submit to the record of the running job: stop() cancels
            # every job recorded before it, and nothing starts after it.
            if self._stopping:
                return
            try:
                job = jobs.submit(self.ctx, entry.request(), scheduled_for=due, here=True)
            except AlreadyFired:
                job = None
            except Exception as exc:  # the catalog: the firing is owed, not lost
                job, refused = None, exc
            if job is not None and refused is None:
                previous = self._running.get(entry.name)
                if previous is not None:
                    why = f"the previous run (job {previous[0]}) still runs"
                    jobs.skip(self.ctx, job.id, why)
                    _said_skipped(entry, job.id, why)
                    job = None
                else:
                    token = CancelToken()
                    self._running[entry.name] = (job.id, token)
        if refused is not None:
            self._owe(entry, due, refused)
            return
        self._recorded(entry)
        if job is None:
            return
        try:
            self._runner(self.ctx, job.id, token)
        except (RespaldoError, Exception) as exc:
            _log_end(f"scheduled job {job.id} ({entry.name})", exc)
        finally:
            with self._lock:
                self._running.pop(entry.name, None)

    def _fire_queued(self, entry: Entry, due: datetime | None) -> None:
        with self._lock:
            if self._stopping:
                return
        try:
            job = queue.submit_scheduled(self.ctx, entry.request(), due)
        except Exception as exc:  # the catalog or its queue: the firing is owed, not lost
            self._owe(entry, due, exc)
            return
        self._recorded(entry)
        if job is not None and job.status is JobStatus.SKIPPED:
            _said_skipped(entry, job.id, job.error or "")

    def running(self) -> dict[str, int]:
        """Schedule name -> id of its running job."""
        with self._lock:
            return {name: job_id for name, (job_id, _) in self._running.items()}

    def next_run_times(self) -> dict[str, datetime | None]:
        return {job.id: job.next_run_time for job in self._scheduler.get_jobs()}

    def stop(self, reason: str) -> None:
        """Fire nothing more, cancel the running jobs with ``reason``, and return once
        each has ended (and recorded ``cancelled``)."""
        with self._lock:
            self._stopping = True
            running = list(self._running.values())
            running += [(job_id, token) for job_id, (_, token) in self._retries.items()]
        for _job_id, token in running:
            token.cancel(reason)
        self._poke.set()
        if self._monitor is not None:
            self._monitor.join()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        self.join_retries()

"""The service: a missed run once at start-up, an overlapping run skipped, SIGTERM.

The jobs run in a real catalog; the work inside them is the test's (a runner that
waits for the test), so these tests need no PostgreSQL.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from sqlalchemy.exc import OperationalError

from respaldo.cancellation import CancelToken
from respaldo.catalog import Jobs
from respaldo.config import Settings
from respaldo.domain import JobKind, JobStatus, TriggeredBy
from respaldo.errors import OperationError
from respaldo.operations import jobs, queue, reconcile
from respaldo.operations.context import Context
from respaldo.operations.schedule import entries
from respaldo.scheduling.service import SWEEP, WATCHDOG, Service
from tests.waiting import wait_for

MEXICO = ZoneInfo("America/Mexico_City")


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    settings = Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        databases=[{"name": "erp", "dsn": "postgresql://respaldo@127.0.0.1/erp"}],
        schedules={"time_zone": "America/Mexico_City"},
        # Renewed (and swept) every second; a running job stops itself after 8 s without
        # a renewal. With 2 s it stopped after 1.6 s: a loaded machine holding the lease's
        # thread up that long cancelled a run the test expected completed.
        jobs={"lease_seconds": 10.0},
        cache_dir=tmp_path / "cache",
    )
    with Context.open(settings, create=True) as context:
        yield context


class Runner:
    """Runs each job as a real job whose body waits until released (or cancelled)."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.release = threading.Event()

    def __call__(self, ctx: Context, job_id: int, token: CancelToken) -> Any:
        def body(_: Context) -> None:
            self.started.append(job_id)
            while not self.release.is_set():
                token.check()
                token.wait(0.05)

        return jobs.run(ctx, job_id, body, token=token)


def ran_before(ctx: Context, name: str, when: datetime) -> None:
    """A completed job of schedule ``name`` created at ``when``."""
    with ctx.catalog.begin() as session:
        job = Jobs(session).submit(
            JobKind.BACKUP,
            target="erp",
            triggered_by=TriggeredBy.SCHEDULE,
            requested_by=name,
            now=when,
        )
        Jobs(session).start(job.id, pid=1, now=when)
        Jobs(session).finish(job.id, JobStatus.COMPLETED, now=when + timedelta(minutes=5))


def test_runs_missed_while_down_run_once_at_start_up(
    ctx: Context, caplog: pytest.LogCaptureFixture
) -> None:
    # Down since the night of the 1st: the runs of the 2nd and 3rd were missed.
    ran_before(ctx, "full:erp", datetime(2026, 12, 1, 3, 0, tzinfo=MEXICO))
    ran_before(ctx, "cleanup", datetime(2026, 12, 3, 4, 0, tzinfo=MEXICO))
    runner = Runner()
    runner.release.set()
    service = Service(ctx, entries(ctx.settings, ()), runner=runner)
    now = datetime(2026, 12, 3, 10, 0, tzinfo=MEXICO)
    assert [e.name for e in service.missed(now)] == ["full:erp"]  # cleanup ran today
    assert service.missed(datetime(2026, 12, 2, 2, 0, tzinfo=MEXICO)) == []  # not yet due

    # Started for real: the missed run happens once, at once; the next is tomorrow's.
    ran_before(ctx, "full:erp", datetime.now(UTC) - timedelta(days=3))
    ran_before(ctx, "cleanup", datetime.now(UTC))  # ran just now: nothing missed
    caplog.set_level(logging.WARNING, logger="respaldo.scheduling.service")
    service.start()
    try:
        wait_for("the missed run", lambda: len(runner.started) == 1)
        # Said at the default level (warnings), with the night it was due: the gap shows.
        (said,) = [r.getMessage() for r in caplog.records if "missed its run" in r.getMessage()]
        assert re.fullmatch(
            r"full:erp missed its run of \d{4}-\d\d-\d\d 03:00 CST while the service was "
            r"down: running it now",
            said,
        ), said
        wait_for("it to end", lambda: service.running() == {})
        scheduled = [j for j in jobs.list_jobs(ctx) if j.id == runner.started[0]]
        assert scheduled[0].requested_by == "full:erp"
        assert scheduled[0].status is JobStatus.COMPLETED
        next_run = service.next_run_times()["full:erp"]
        assert next_run is not None and next_run > datetime.now(UTC)  # no burst pending
        assert len(runner.started) == 1
    finally:
        service.stop("test over")


def test_a_run_dated_in_the_future_hides_no_missed_run(ctx: Context) -> None:
    # The clock was a week ahead on the 1st when the backup ran (recorded on the 8th), was
    # put right, and the service was down on the 2nd and the 3rd: the run dated the 8th
    # is not the last one the schedule made by the 3rd, so the 3rd's is owed.
    ran_before(ctx, "full:erp", datetime(2026, 11, 30, 3, 0, tzinfo=MEXICO))
    ran_before(ctx, "full:erp", datetime(2026, 12, 8, 3, 0, tzinfo=MEXICO))
    service = Service(ctx, entries(ctx.settings, ()), runner=Runner())
    now = datetime(2026, 12, 3, 10, 0, tzinfo=MEXICO)
    assert "full:erp" in [e.name for e in service.missed(now)]
    # Once the clock has passed it, it is the last run again: nothing missed on the 8th.
    later = datetime(2026, 12, 8, 10, 0, tzinfo=MEXICO)
    assert "full:erp" not in [e.name for e in service.missed(later)]


def test_a_run_whose_previous_run_still_goes_is_skipped_and_recorded(
    ctx: Context, caplog: pytest.LogCaptureFixture
) -> None:
    runner = Runner()
    service = Service(ctx, entries(ctx.settings, ()), runner=runner)
    (full,) = [e for e in service.schedule if e.name == "full:erp"]
    first = threading.Thread(target=service.fire, args=[full])
    first.start()
    try:
        wait_for("the first run to start", lambda: len(runner.started) == 1)
        service.fire(full)  # returns at once
        skipped = jobs.list_jobs(ctx, status=JobStatus.SKIPPED)
        assert [(j.requested_by, j.error) for j in skipped] == [
            ("full:erp", f"the previous run (job {runner.started[0]}) still runs")
        ]
        assert len(runner.started) == 1
        # In the log at the default level (warnings): nothing else says it.
        assert [
            r.getMessage()
            for r in caplog.records
            if r.levelno == logging.WARNING and "skipped its run" in r.getMessage()
        ] == [
            f"full:erp skipped its run (job {skipped[0].id}): the previous run "
            f"(job {runner.started[0]}) still runs"
        ]
    finally:
        runner.release.set()
        first.join()
    assert jobs.get(ctx, runner.started[0]).status is JobStatus.COMPLETED


def test_a_queued_run_the_queue_skipped_is_said_too(
    ctx: Context, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With a queue the catalog decides the skip (queue.submit_scheduled); the queue is
    # PostgreSQL's, so here its answer is a skipped job of the SQLite catalog.
    service = Service(ctx, entries(ctx.settings, ()), runner=Runner(), queued=True)
    (full,) = [e for e in service.schedule if e.name == "full:erp"]
    job = jobs.submit(ctx, full.request(), here=True)
    skipped = jobs.skip(ctx, job.id, "the previous run (job 7) still runs")
    monkeypatch.setattr(queue, "submit_scheduled", lambda *_: skipped)
    service.fire(full)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"full:erp skipped its run (job {job.id}): the previous run (job 7) still runs"
    ]


def test_stop_cancels_running_jobs_and_leaves_nothing_running(ctx: Context) -> None:
    runner = Runner()
    service = Service(ctx, entries(ctx.settings, ()), runner=runner)
    service.start()
    (full,) = [e for e in service.schedule if e.name == "full:erp"]
    worker = threading.Thread(target=service.fire, args=[full])
    worker.start()
    wait_for("the run to start", lambda: len(runner.started) == 1)
    service.stop("respaldo serve stopped (SIGTERM)")
    worker.join()
    job = jobs.get(ctx, runner.started[0])
    assert (job.status, job.error) == (JobStatus.CANCELLED, "respaldo serve stopped (SIGTERM)")
    assert jobs.list_jobs(ctx, status=JobStatus.RUNNING) == []
    service.fire(full)  # a firing after stop runs nothing
    assert len(jobs.list_jobs(ctx)) == 1


def _cut_off(ctx: Context, *, by_request: bool) -> int:
    """A run of full:erp cancelled while it ran: by the service's stop (SIGTERM) or by
    someone's request; returns its job's id."""
    runner = Runner()
    service = Service(ctx, entries(ctx.settings, ()), runner=runner)
    service.start()
    (full,) = [e for e in service.schedule if e.name == "full:erp"]
    worker = threading.Thread(target=service.fire, args=[full])
    worker.start()
    wait_for("the run to start", lambda: len(runner.started) == 1)
    service.fire(full)  # skipped: the run still goes
    if by_request:
        jobs.cancel(ctx, runner.started[0])
        worker.join()
    service.stop("respaldo serve stopped (SIGTERM)")
    worker.join()
    assert jobs.get(ctx, runner.started[0]).status is JobStatus.CANCELLED
    return runner.started[0]


def test_a_run_the_services_stop_cut_off_runs_again_at_its_next_start(ctx: Context) -> None:
    # systemctl restart during the nightly backup: the run ended cancelled, neither missed
    # (its time came, with a job) nor lost (it ended), so the night's backup was not taken
    # and the status stayed amber, alerting nobody, until the RPO lapsed a day later.
    stopped = _cut_off(ctx, by_request=False)
    runner = Runner()
    runner.release.set()
    service = Service(ctx, entries(ctx.settings, ()), runner=runner)
    service.start()
    try:
        wait_for("the run again", lambda: len(runner.started) == 1)
        wait_for("it to end", lambda: jobs.get(ctx, runner.started[0]).status.is_final)
    finally:
        service.stop("test over")
    again = jobs.get(ctx, runner.started[0])
    assert (again.retry_of, again.attempt, again.requested_by) == (stopped, 2, "full:erp")
    assert again.status is JobStatus.COMPLETED
    # Once: the next start finds the schedule's last run completed.
    later = Service(ctx, entries(ctx.settings, ()), runner=runner)
    later.start()
    later.stop("test over")
    assert len(jobs.list_jobs(ctx)) == 3


def test_a_run_someone_cancelled_is_not_run_again_at_the_next_start(ctx: Context) -> None:
    _cut_off(ctx, by_request=True)
    runner = Runner()
    service = Service(ctx, entries(ctx.settings, ()), runner=runner)
    service.start()
    service.stop("test over")
    assert len(jobs.list_jobs(ctx)) == 2 and runner.started == []


def test_two_services_on_one_catalog_fire_each_schedule_once(tmp_path: Path) -> None:
    settings = Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'shared.db'}"},
        databases=[{"name": "erp", "dsn": "postgresql://respaldo@127.0.0.1/erp"}],
        schedules={
            "time_zone": "UTC",
            "full": "* * * * * *",  # every second
            "restore_test": "off",
            "cleanup": "off",
            "verify": "off",
        },
        cache_dir=tmp_path / "cache",
    )
    runners = [Runner(), Runner()]
    for runner in runners:
        runner.release.set()
    with Context.open(settings, create=True) as one, Context.open(settings) as two:
        services = [
            Service(ctx, entries(settings, ()), runner=runner)
            for ctx, runner in zip((one, two), runners, strict=True)
        ]
        for service in services:
            service.start()
        try:
            wait_for("six firings", lambda: len(jobs.list_jobs(one)) >= 6)
        finally:
            for service in services:
                service.stop("test over")
        fired = jobs.list_jobs(one, limit=500)
    times = [job.scheduled_for for job in fired]
    assert None not in times
    assert len(times) == len(set(times)), sorted(str(t) for t in times)


def test_a_late_firing_whose_time_an_earlier_one_took_runs_nothing(tmp_path: Path) -> None:
    # APScheduler calls late and, from its thread pool, out of order on a loaded machine:
    # a call that finds its due time taken must not become a job with no time, which no
    # other service sharing the catalog would recognise as the same firing.
    settings = Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        databases=[{"name": "erp", "dsn": "postgresql://respaldo@127.0.0.1/erp"}],
        schedules={
            "time_zone": "UTC",
            "full": "* * * * * *",
            "restore_test": "off",
            "cleanup": "off",
            "verify": "off",
        },
        cache_dir=tmp_path / "cache",
    )
    now = datetime(2026, 12, 5, 7, 0, 0, 400_000, tzinfo=UTC)
    runner = Runner()
    runner.release.set()
    with Context.open(settings, create=True) as ctx:
        service = Service(ctx, entries(settings, ()), runner=runner, clock=lambda: now)
        (full,) = [e for e in service.schedule if e.name == "full:erp"]
        service.fire(full, by_trigger=True)  # took 07:00:00
        service.fire(full, by_trigger=True)  # the same second's call, late: nothing
        fired = jobs.list_jobs(ctx)
    assert [job.scheduled_for for job in fired] == [now.replace(microsecond=0)]


@pytest.mark.parametrize("cron", ["*/5 * * * *", "*/5 */1 * * *", "*/5 0-23 * * *"])
def test_the_second_pass_of_a_repeated_hour_fires_an_every_hour_schedule(
    tmp_path: Path, cron: str
) -> None:
    # Madrid falls back at 03:00 CEST (2026-10-25): 02:00 CET comes after 02:55 CEST. A
    # `*/5` schedule fires in both passes; its second-pass times were not due at all,
    # and compared in the zone (wall clocks, fold ignored) they looked taken already.
    settings = Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        databases=[{"name": "erp", "dsn": "postgresql://respaldo@127.0.0.1/erp"}],
        schedules={
            "time_zone": "Europe/Madrid",
            "full": cron,
            "restore_test": "off",
            "cleanup": "off",
            "verify": "off",
        },
        cache_dir=tmp_path / "cache",
    )
    times = [datetime(2026, 10, 25, 0, 55, 0, 300_000, tzinfo=UTC)]  # 02:55 CEST
    runner = Runner()
    runner.release.set()
    with Context.open(settings, create=True) as ctx:
        service = Service(ctx, entries(settings, ()), runner=runner, clock=lambda: times[-1])
        (full,) = [e for e in service.schedule if e.name == "full:erp"]
        for minutes in (0, 5, 10, 60):  # 02:55 CEST, 02:00 and 02:05 CET, then 02:55 CET
            times.append(times[0] + timedelta(minutes=minutes))
            service.fire(full, by_trigger=True)
        fired = jobs.list_jobs(ctx)
    madrid = ZoneInfo("Europe/Madrid")
    assert sorted(
        f"{job.scheduled_for.astimezone(madrid):%H:%M %Z}" for job in fired if job.scheduled_for
    ) == ["02:00 CET", "02:05 CET", "02:55 CEST", "02:55 CET"]
    assert len(fired) == 4


def test_a_restart_in_the_repeated_hour_does_not_run_a_pinned_schedule_again(
    tmp_path: Path,
) -> None:
    # Madrid falls back at 03:00 CEST (2026-10-25). A daily `30 2 * * *` backup ran at
    # 02:30 CEST; the service restarted at 02:20 CET, in the repeated hour. The new
    # service's trigger, with no previous fire time of its own, reaches 02:30 by its
    # second pass (02:30 CET): run again, the nightly full backup ran twice that night,
    # though docs/service.md says a schedule pinned to hours runs each wall time once.
    settings = Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        databases=[{"name": "erp", "dsn": "postgresql://respaldo@127.0.0.1/erp"}],
        schedules={
            "time_zone": "Europe/Madrid",
            "full": "30 2 * * *",
            "restore_test": "off",
            "cleanup": "off",
            "verify": "off",
        },
        cache_dir=tmp_path / "cache",
    )
    first_pass = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST
    times = [first_pass + timedelta(minutes=50)]  # 02:20 CET: the restart
    runner = Runner()
    runner.release.set()
    with Context.open(settings, create=True) as ctx:
        with ctx.catalog.begin() as session:  # what the service before the restart recorded
            job = Jobs(session).submit(
                JobKind.BACKUP,
                target="erp",
                triggered_by=TriggeredBy.SCHEDULE,
                requested_by="full:erp",
                scheduled_for=first_pass,
                now=first_pass + timedelta(seconds=1),
            )
            Jobs(session).start(job.id, pid=1, now=first_pass + timedelta(seconds=1))
            Jobs(session).finish(job.id, JobStatus.COMPLETED, now=first_pass + timedelta(minutes=9))
        after = Service(ctx, entries(settings, ()), runner=runner, clock=lambda: times[-1])
        (full,) = [e for e in after.schedule if e.name == "full:erp"]
        assert after.missed(times[-1]) == []
        times.append(first_pass + timedelta(hours=1, microseconds=300_000))  # 02:30 CET
        after.fire(full, by_trigger=True)
        times.append(first_pass + timedelta(days=1, hours=1, microseconds=300_000))  # the 26th
        after.fire(full, by_trigger=True)
        fired = jobs.list_jobs(ctx)
    madrid = ZoneInfo("Europe/Madrid")
    assert sorted(
        f"{job.scheduled_for.astimezone(madrid):%d %H:%M %Z}" for job in fired if job.scheduled_for
    ) == ["25 02:30 CEST", "26 02:30 CET"]


def test_a_small_clock_step_in_the_repeated_hour_does_not_plan_a_pinned_schedule_again(
    tmp_path: Path,
) -> None:
    # Madrid falls back at 03:00 CEST (2026-10-25). The service ran a daily `30 2 * * *`
    # backup at 02:30 CEST and planned the next for the 26th. At 02:10 CET (the second
    # pass) NTP steps the clock back a few seconds: realign() planned the schedule again
    # from now alone, for 02:30 CET, an instant the catalog had not seen, and the
    # nightly backup ran twice that night. Only a step back past the last firing
    # plans again from now (and the catalog refuses the wall time that ran).
    settings = Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        databases=[{"name": "erp", "dsn": "postgresql://respaldo@127.0.0.1/erp"}],
        schedules={
            "time_zone": "Europe/Madrid",
            "full": "30 2 * * *",
            "restore_test": "off",
            "cleanup": "off",
            "verify": "off",
        },
        cache_dir=tmp_path / "cache",
    )
    first_pass = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST
    next_day = datetime(2026, 10, 26, 1, 30, tzinfo=UTC)  # 02:30 CET on the 26th
    times = [first_pass + timedelta(microseconds=300_000)]
    runner = Runner()
    runner.release.set()
    with Context.open(settings, create=True) as ctx:
        service = Service(ctx, entries(settings, ()), runner=runner, clock=lambda: times[-1])
        (full,) = [e for e in service.schedule if e.name == "full:erp"]
        service.fire(full, by_trigger=True)  # 02:30 CEST
        # As APScheduler planned it after that firing (not started: nothing fires by itself).
        service._scheduler.add_job(
            service.fire, full.trigger, args=[full], id=full.name, next_run_time=next_day
        )
        times.append(first_pass + timedelta(minutes=40))  # 02:10 CET, just stepped back
        assert "full:erp" not in service.realign(times[-1])
        assert _utc(service.next_run_times()["full:erp"]) == next_day
        times.append(first_pass + timedelta(hours=1, microseconds=300_000))  # 02:30 CET
        service.fire(full, by_trigger=True)  # a firing then (it is not planned) runs nothing
        # Stepped back past the last firing (to 02:20 CEST): planned again from then; the
        # firing at 02:30 CEST finds its fire time taken.
        times.append(first_pass - timedelta(minutes=10))
        assert "full:erp" in service.realign(times[-1])
        assert _utc(service.next_run_times()["full:erp"]) == first_pass
        times.append(first_pass + timedelta(microseconds=300_000))
        service.fire(full, by_trigger=True)
        fired = jobs.list_jobs(ctx)
    assert [job.scheduled_for for job in fired] == [first_pass]


def _utc(when: datetime | None) -> datetime | None:
    # An ambiguous wall time never equals another zone's time (PEP 495): compared in UTC.
    return None if when is None else when.astimezone(UTC)


def _sweep_failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "respaldo.scheduling.service"]


def test_a_failing_sweep_is_logged_once_per_cause_and_once_when_it_recovers(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The service sweeps every lease renewal period (every second here): a catalog that
    # stays unreadable must not put a traceback in the log at every sweep.
    causes: list[Exception] = [
        *[OSError(5, "Input/output error")] * 3,
        *[RuntimeError("database disk image is malformed")] * 2,
    ]

    def sweep_here(context: Context) -> list[int]:
        if causes:
            raise causes.pop(0)
        return []

    monkeypatch.setattr(reconcile, "sweep_here", sweep_here)
    service = Service(ctx, [])
    caplog.set_level(logging.INFO, logger="respaldo.scheduling.service")
    for _ in range(3):
        assert service.sweep() == []
    records = _sweep_failures(caplog)
    assert len(records) == 1, [r.getMessage() for r in records]
    assert "could not sweep for lost jobs" in records[0].getMessage()
    assert "Input/output error" in records[0].getMessage()
    assert records[0].exc_info is not None  # the traceback, once
    for _ in range(2):
        service.sweep()
    records = _sweep_failures(caplog)
    assert len(records) == 2, [r.getMessage() for r in records]
    assert "database disk image is malformed" in records[1].getMessage()
    for _ in range(3):
        service.sweep()
    records = _sweep_failures(caplog)
    assert len(records) == 3, [r.getMessage() for r in records]
    assert "sweeping for lost jobs works again" in records[2].getMessage()
    # A failure after the recovery is said again, even with a cause said before.
    causes.append(OSError(5, "Input/output error"))
    service.sweep()
    assert len(_sweep_failures(caplog)) == 4


def test_a_service_that_would_tell_nobody_says_so_as_it_starts(
    ctx: Context, caplog: pytest.LogCaptureFixture
) -> None:
    # No [notifications] target takes critical alerts: every failure and stale backup
    # would go unannounced, and nothing said so.
    service = Service(ctx, [])
    with caplog.at_level(logging.WARNING, logger="respaldo.scheduling.service"):
        service.start(datetime(2026, 12, 4, 12, 0, tzinfo=UTC))
        service.stop("test over")
    (said,) = [r.getMessage() for r in caplog.records if "told to nobody" in r.getMessage()]
    assert said.startswith("no [notifications] target is configured")


def test_a_restore_test_limit_its_schedule_outlasts_is_said_as_the_service_starts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # First Sundays 35 days apart: with restore_test_days = 35, restore_test:erp turns red
    # and alerts while every test passes on time. Said at start, not refused.
    settings = Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        databases=[{"name": "erp", "dsn": "postgresql://respaldo@127.0.0.1/erp"}],
        schedules={"time_zone": "America/Mexico_City"},
        rpo={"restore_test_days": 35},
        cache_dir=tmp_path / "cache",
    )
    with Context.open(settings, create=True) as context:
        service = Service(context, entries(settings, ()))
        with caplog.at_level(logging.WARNING, logger="respaldo.scheduling.service"):
            service.start(datetime(2026, 12, 4, 12, 0, tzinfo=UTC))
            service.stop("test over")
    (said,) = [r.getMessage() for r in caplog.records if "restore_test_days" in r.getMessage()]
    assert said.startswith("restore_test_days of 'erp' (35 days) leaves less than 48 h")
    assert said.endswith("restore_test_days to 37 or more")  # no DST in Mexico now


@pytest.mark.parametrize("zone", ["Europe/Madrid", "America/Santiago"])
@pytest.mark.parametrize("physical_hours", [None, 7])
def test_a_physical_limit_a_fall_back_change_uses_up_is_said_as_the_service_starts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, zone: str, physical_hours: int | None
) -> None:
    # Every 6 hours is 7 hours across the fall-back night: a default install (8 h) is not
    # warned of at every start, as it was with the default of 7; 7 set by hand still is.
    settings = Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        databases=[{"name": "erp", "dsn": "postgresql://respaldo@127.0.0.1/erp"}],
        schedules={"time_zone": zone},
        rpo={} if physical_hours is None else {"physical_hours": physical_hours},
        cache_dir=tmp_path / "cache",
    )
    with Context.open(settings, create=True) as context:
        service = Service(context, entries(settings, {"erp"}))
        with caplog.at_level(logging.WARNING, logger="respaldo.scheduling.service"):
            service.start(datetime(2026, 12, 4, 12, 0, tzinfo=UTC))
            service.stop("test over")
    said = [r.getMessage() for r in caplog.records if "_hours" in r.getMessage()]
    if physical_hours is None:
        assert said == []
        return
    (warning,) = said
    assert warning.startswith("physical_hours of 'erp' (7 h) leaves less than 30 min")
    assert warning.endswith("physical_hours to 8 or more")


def test_the_default_restore_test_limit_is_not_warned_of(
    ctx: Context, caplog: pytest.LogCaptureFixture
) -> None:
    service = Service(ctx, entries(ctx.settings, ()))
    with caplog.at_level(logging.WARNING, logger="respaldo.scheduling.service"):
        service.start(datetime(2026, 12, 4, 12, 0, tzinfo=UTC))
        service.stop("test over")
    assert not [r for r in caplog.records if "restore_test_days" in r.getMessage()]


def test_a_firing_the_catalog_refused_runs_once_it_takes_it(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The catalog refuses the first submit (a full disk, a locked file): the firing is
    # owed, not dropped, and runs when the catalog takes it.
    refusals = [OperationalError("INSERT", {}, Exception("database or disk is full"))]
    submit = jobs.submit

    def refusing(*args: Any, **kwargs: Any) -> jobs.JobInfo:
        if refusals:
            raise refusals.pop()
        return submit(*args, **kwargs)

    monkeypatch.setattr(jobs, "submit", refusing)
    runner = Runner()
    runner.release.set()
    service = Service(ctx, entries(ctx.settings, ()), runner=runner)
    (full,) = [e for e in service.schedule if e.name == "full:erp"]
    service.start()
    try:
        with caplog.at_level(logging.ERROR, logger="respaldo.scheduling.service"):
            service.fire(full)
        assert runner.started == []
        assert any("full:erp" in r.getMessage() for r in caplog.records)
        wait_for("the owed run", lambda: len(runner.started) == 1)
    finally:
        service.stop("test over")
    (job,) = jobs.list_jobs(ctx)
    assert (job.requested_by, job.status) == ("full:erp", JobStatus.COMPLETED)


def _service_says(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [
        (r.levelno, r.getMessage())
        for r in caplog.records
        if r.name == "respaldo.scheduling.service"
    ]


def test_the_log_says_why_a_scheduled_run_failed_and_a_skip_is_no_error(
    ctx: Context, caplog: pytest.LogCaptureFixture
) -> None:
    def failing(ctx: Context, job_id: int, token: CancelToken) -> Any:
        def body(_: Context) -> None:
            raise OperationError("cannot connect to PostgreSQL (host=db1): connection refused")

        return jobs.run(ctx, job_id, body, token=token, on_conflict=JobStatus.SKIPPED)

    service = Service(ctx, entries(ctx.settings, ()), runner=failing)
    (full,) = [e for e in service.schedule if e.name == "full:erp"]
    caplog.set_level(logging.INFO, logger="respaldo.scheduling.service")
    service.fire(full)
    (failed,) = jobs.list_jobs(ctx, status=JobStatus.FAILED)
    # The journal of the service names the reason, not only that something went wrong.
    assert _service_says(caplog) == [
        (
            logging.WARNING,
            f"scheduled job {failed.id} (full:erp) failed: "
            "cannot connect to PostgreSQL (host=db1): connection refused",
        )
    ]
    caplog.clear()
    # A backup of erp that another process runs (respaldo backup by hand): skipped.
    with ctx.catalog.begin() as session:
        other = Jobs(session).submit(
            JobKind.BACKUP,
            target="erp",
            triggered_by=TriggeredBy.CLI,
            requested_by="ana",
            exclusive_key="backup:erp",
        )
        Jobs(session).start(other.id, pid=os.getpid())
    service.fire(full)
    (skipped,) = jobs.list_jobs(ctx, status=JobStatus.SKIPPED)
    said = _service_says(caplog)
    assert said == [
        (logging.INFO, f"scheduled job {skipped.id} (full:erp) skipped: {skipped.error}")
    ]
    assert f"job {other.id}" in said[0][1]


def test_a_target_that_cannot_send_is_named_as_the_service_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Secrets are read when a message goes: without this, the first alert (maybe days
    # later) was the first sign that the only mail target could not send.
    monkeypatch.delenv("RESPALDO_TEST_HOOK_TOKEN", raising=False)
    monkeypatch.setenv("RESPALDO_TEST_CHAT_URL", "tgram://not-a-bot-token/-100123")
    readable = tmp_path / "smtp-password"
    readable.write_text("s3cret-smtp\n")
    readable.chmod(0o600)
    mail = "mailto://respaldo:{secret}@127.0.0.1:2525?from=r@example.com&to=ops@example.com"
    hook = "json://127.0.0.1:9/hooks/{secret}"
    settings = Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        cache_dir=tmp_path / "cache",
        notifications={
            "targets": [
                {"name": "mail-ok", "url": mail, "secret_file": str(readable)},
                {"name": "mail-lost", "url": mail, "secret_file": str(tmp_path / "gone")},
                {"name": "hook", "url": hook, "secret_env": "RESPALDO_TEST_HOOK_TOKEN"},
                # A whole URL from the environment: the settings cannot check it.
                {"name": "chat", "url_env": "RESPALDO_TEST_CHAT_URL"},
            ]
        },
    )
    with Context.open(settings, create=True) as context:
        service = Service(context, [])
        with caplog.at_level(logging.WARNING, logger="respaldo.scheduling.service"):
            service.start(datetime(2026, 12, 4, 12, 0, tzinfo=UTC))
            service.stop("test over")
    said = [m for _, m in _service_says(caplog) if "its alerts will fail" in m]
    assert len(said) == 3, said
    lost, hook_said, chat = said
    assert lost.startswith("cannot read secret_file of notification target mail-lost")
    assert "RESPALDO_TEST_HOOK_TOKEN (secret_env) is not set" in hook_said
    assert chat.startswith("notification target chat: apprise cannot use its URL")
    assert not any("not-a-bot-token" in m for m in said)
    assert not any("mail-ok" in m or "s3cret-smtp" in m for _, m in _service_says(caplog))


def test_the_watchdog_checks_while_every_worker_runs_a_long_job(ctx: Context) -> None:
    # Every worker busy for hours (long backups, restore tests, one that hangs): the
    # watchdog waited in the jobs' pool behind them, and nothing was checked or alerted.
    ran_before(ctx, "full:erp", datetime.now(UTC) - timedelta(days=3))  # due at once
    runner = Runner()
    checked: list[datetime] = []
    service = Service(
        ctx,
        entries(ctx.settings, ()),
        runner=runner,
        workers=1,
        watchdog=lambda _, now: checked.append(now),
        watchdog_minutes=5,
    )
    service.start()
    try:
        wait_for("the job to take the only worker", lambda: len(runner.started) == 1)
        seen = len(checked)
        service._scheduler.modify_job(WATCHDOG, next_run_time=datetime.now(UTC))
        wait_for("the watchdog to check beside the job", lambda: len(checked) > seen)
        assert service.running() == {"full:erp": runner.started[0]}
    finally:
        runner.release.set()
        service.stop("test over")


def test_the_sweep_for_lost_jobs_does_not_log_each_run_at_info(
    ctx: Context, caplog: pytest.LogCaptureFixture
) -> None:
    """Seen in a soak of ``serve -v``: APScheduler's "Running job ... lost-jobs-sweep" and
    "executed successfully" lines every lease renewal period (2 s: ~86,000 a day). The
    service's own checks are quiet at INFO (their failures are still logged)."""
    swept = threading.Event()

    def ran(event: JobExecutionEvent) -> None:
        if event.job_id == SWEEP:
            swept.set()

    caplog.set_level(logging.INFO)
    service = Service(ctx, [])
    service._scheduler.add_listener(ran, EVENT_JOB_EXECUTED)
    try:
        service.start()
        wait_for("the first sweep", swept.is_set)
    finally:
        service.stop("test over")
    routine = [r.getMessage() for r in caplog.records if r.name.startswith("apscheduler.executors")]
    assert not routine

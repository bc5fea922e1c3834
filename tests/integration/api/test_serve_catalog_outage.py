"""``respaldo serve`` while its PostgreSQL catalog goes away and comes back: a schedule
that fires while the catalog refuses connections is not lost; its job is queued once the
catalog answers again (the RPO watchdog tells of the outage meanwhile); serve's own worker
takes jobs again, however long the catalog's server was down."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sample.cluster import TempCluster

from respaldo.cancellation import CancelToken
from respaldo.cancellation import current as current_token
from respaldo.config import Settings
from respaldo.domain import JobKind, JobStatus, TriggeredBy
from respaldo.operations import jobs, queue, reconcile
from respaldo.operations.context import Context
from respaldo.operations.schedule import entries
from respaldo.scheduling.service import Service
from tests.integration.api.conftest import CatalogRole
from tests.integration.majors import server_bindir
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def ctx(catalog_role: CatalogRole, tmp_path: Path) -> Iterator[Context]:
    with catalog_role.context(
        tmp_path,
        databases=[{"name": "erp", "dsn": "postgresql://respaldo@127.0.0.1/erp"}],
        jobs={"lease_seconds": 2.0},
    ) as context:
        yield context


def scheduled(ctx: Context, name: str) -> list[jobs.JobInfo]:
    return [
        j
        for j in jobs.list_jobs(ctx)
        if j.triggered_by is TriggeredBy.SCHEDULE and j.requested_by == name
    ]


def test_a_firing_the_catalog_refused_is_queued_once_the_catalog_is_back(
    ctx: Context, catalog_role: CatalogRole, caplog: pytest.LogCaptureFixture
) -> None:
    service = Service(ctx, entries(ctx.settings, ()), queued=True)
    (full,) = [e for e in service.schedule if e.name == "full:erp"]
    service.start()
    try:
        catalog_role.refuse()
        with caplog.at_level(logging.ERROR, logger="respaldo.scheduling.service"):
            service.fire(full)  # the catalog refuses: nothing can be recorded now
        told = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert any("full:erp" in m and "again" in m for m in told), told
        catalog_role.accept()
        # Nothing fires the schedule again today: the service queues the run it owes.
        wait_for("the run to be queued", lambda: len(scheduled(ctx, "full:erp")) == 1)
    finally:
        service.stop("test over")
    (job,) = scheduled(ctx, "full:erp")
    assert job.status is JobStatus.QUEUED and job.queue_name == "default"


def test_a_job_whose_lease_cannot_be_renewed_stops_before_others_take_it_for_lost(
    ctx: Context, catalog_role: CatalogRole, caplog: pytest.LogCaptureFixture
) -> None:
    # The catalog stops answering this process (a partition) while a job runs: once its
    # lease lapses, any other process fails it and a worker may run it again. The job
    # must have stopped by then, or two runs of it go on at once and the first one's
    # end is recorded against a row that says failed.
    job = jobs.submit(
        ctx,
        jobs.JobRequest(JobKind.VERIFY, None, TriggeredBy.CLI, "ana", {}),
        here=True,
    )
    started, stopped = threading.Event(), threading.Event()
    tokens: list[CancelToken] = []

    def body(_: Context) -> None:
        token = current_token()
        assert token is not None
        tokens.append(token)
        started.set()
        while not token.cancelled:
            token.wait(0.05)
        stopped.set()
        token.check()

    outcome: list[BaseException] = []

    def run() -> None:
        try:
            jobs.run(ctx, job.id, body)
        except BaseException as exc:
            outcome.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    try:
        assert started.wait(60)
        with caplog.at_level(logging.WARNING, logger="respaldo.operations.jobs"):
            catalog_role.refuse()
            wait_for("the job to stop", stopped.is_set)
    finally:
        if not stopped.is_set():
            tokens[0].cancel("the test failed")
        # The runner tries to record its end while the catalog still refuses it, so its
        # row stays running for the sweep below. With the catalog back first (a loaded
        # machine, the runner slow to get there), it recorded itself cancelled with the
        # lease's reason, right too, but then no sweep ever failed it and the wait timed out.
        runner.join()
        catalog_role.accept()
    assert outcome, "the job did not stop"
    # Said once per cause, not with a traceback at every renewal until the fence (8 here;
    # 48 at the default lease).
    told = [r for r in caplog.records if "could not renew the lease" in r.getMessage()]
    assert 1 <= len(told) <= 2, [r.getMessage() for r in told]

    # Back: a sweep finds its lease lapsed and records it failed, with the reason.
    def failed() -> bool:
        reconcile.sweep_here(ctx)
        return jobs.get(ctx, job.id).status is JobStatus.FAILED

    wait_for("the job to be failed as lost", failed)
    error = jobs.get(ctx, job.id).error
    assert error is not None and "lease" in error, error


def test_the_worker_of_serve_takes_jobs_again_once_the_catalog_is_back(
    ctx: Context, catalog_role: CatalogRole, caplog: pytest.LogCaptureFixture
) -> None:
    # serve's own worker ([server] run_jobs) while the catalog goes away and comes back:
    # it must take the jobs queued afterwards, not have stopped for good while the
    # service goes on queueing (every later firing skipped: "the previous run still
    # runs"), with nothing told but one line of its log.
    worker = queue.WorkerThread(ctx, queue.WorkerOptions(name="serve"))
    worker.start()
    try:
        first = jobs.submit(ctx, jobs.JobRequest(JobKind.VERIFY, None, TriggeredBy.CLI, "ana"))
        wait_for("the first job to end", lambda: jobs.get(ctx, first.id).status.is_final)
        with caplog.at_level(logging.WARNING, logger="respaldo.operations.queue"):
            catalog_role.refuse()
            # Until the worker's own loops meet the outage.
            wait_for("the worker to lose the catalog", lambda: _told(caplog, "heartbeat"))
            catalog_role.accept()
        second = jobs.submit(ctx, jobs.JobRequest(JobKind.VERIFY, None, TriggeredBy.CLI, "ana"))
        wait_for("the second job to end", lambda: jobs.get(ctx, second.id).status.is_final)
    finally:
        worker.stop()


def _told(caplog: pytest.LogCaptureFixture, what: str) -> bool:
    return any(what in r.getMessage() for r in list(caplog.records))


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[tuple[TempCluster, Context]]:
    """A catalog on a PostgreSQL server of its own, which the test may stop and start
    (the session's server holds every other test's databases), and a context on it."""
    cluster = TempCluster.create(bindir=server_bindir(None))
    try:
        cluster.execute("CREATE DATABASE respaldo")
        secret = cluster.password.get_secret_value()
        url = f"postgresql://{cluster.superuser}:{secret}@{cluster.host}:{cluster.port}/respaldo"
        settings = Settings(
            catalog={"url": url}, cache_dir=tmp_path / "cache", jobs={"lease_seconds": 2.0}
        )
        with Context.open(settings, create=True) as context:
            yield cluster, context
    finally:
        cluster.destroy()


def test_the_worker_of_serve_takes_jobs_again_after_the_catalogs_server_was_down(
    own_server: tuple[TempCluster, Context], caplog: pytest.LogCaptureFixture
) -> None:
    # The catalog's server stopped for longer than procrastinate's pool waits for a
    # connection (30 s: a reboot, an upgrade): procrastinate's worker gives up. serve
    # stayed up without it, so its service manager never restarted it, and every job
    # queued afterwards waited for no one (the schedule's next firings skipped behind it).
    server, ctx = own_server
    worker = queue.WorkerThread(ctx, queue.WorkerOptions(name="serve"))
    worker.start()
    try:
        with caplog.at_level(logging.WARNING, logger="respaldo.operations.queue"):
            server.stop("fast")
            wait_for(
                "the worker to give up on the catalog",
                lambda: _told(caplog, "the worker of this process stopped"),
                timeout=300,
            )
            server.start_again()
            job = jobs.submit(ctx, jobs.JobRequest(JobKind.VERIFY, None, TriggeredBy.CLI, "ana"))
            wait_for("the job to end", lambda: jobs.get(ctx, job.id).status.is_final)
            wait_for("the worker to say so", lambda: _told(caplog, "takes jobs again"))
        assert jobs.get(ctx, job.id).worker_pid is not None
    finally:
        worker.stop()


def test_a_job_whose_work_is_done_is_recorded_completed_after_a_catalog_restart(
    catalog_role: CatalogRole, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The catalog's server restarts just as a job's work ends (a restore has renamed its
    # target into place): recording the end failed once and the job stayed running, to
    # be failed as lost ("no sign of life") with the database restored all the same.
    with catalog_role.context(tmp_path, jobs={"lease_seconds": 60.0}) as ctx:
        job = jobs.submit(
            ctx, jobs.JobRequest(JobKind.VERIFY, None, TriggeredBy.CLI, "ana", {}), here=True
        )

        def body(_: Context) -> str:
            catalog_role.refuse()  # the work is done; the catalog goes away
            return "done"

        outcome: list[object] = []

        def run() -> None:
            try:
                outcome.append(jobs.run(ctx, job.id, body))
            except BaseException as exc:
                outcome.append(exc)

        runner = threading.Thread(target=run)
        with caplog.at_level(logging.WARNING, logger="respaldo.operations.jobs"):
            runner.start()
            try:
                wait_for(
                    "the end to be refused",
                    lambda: _told(caplog, "could not record the end") or not runner.is_alive(),
                )
            finally:
                catalog_role.accept()
                runner.join()
        assert outcome == ["done"], outcome
        assert jobs.get(ctx, job.id).status is JobStatus.COMPLETED
        assert _told(caplog, f"the end of job {job.id} is recorded")

"""A job the service accepted but never started is failed, with its reason and the
critical alert, once the process that was to run it is gone (kill -9, power loss); a
job of a live process is left to it, however long it waits."""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from respaldo.cancellation import CancelToken
from respaldo.catalog import Jobs
from respaldo.config import Settings
from respaldo.domain import BackupKind, JobKind, JobStatus, TriggeredBy
from respaldo.operations import jobs
from respaldo.operations.background import start_backup
from respaldo.operations.context import Context
from respaldo.operations.listing import show_backup
from respaldo.operations.workers import Workers
from respaldo.processes import this_host
from tests.servers.notify import Webhook, webhook  # noqa: F401


@pytest.fixture
def service(settings: Settings, webhook: Webhook) -> Settings:  # noqa: F811
    return settings.model_copy(
        update={
            "databases": Settings(
                databases=[{"name": "erp", "dsn": "postgresql://localhost/erp"}]
            ).databases,
            "jobs": Settings(jobs={"lease_seconds": 1.0}).jobs,
            "notifications": Settings(
                notifications={"targets": [{"name": "hook", "url": webhook.url}]}
            ).notifications,
        }
    )


@pytest.fixture
def opened(service: Settings, context: Context) -> Iterator[Context]:
    context.settings = service
    yield context


def _never_starts(ctx: Context, job_id: int, token: CancelToken) -> None:
    """A worker busy elsewhere: the job it was handed stays queued."""
    while not token.wait(60):
        pass


def _serve_until_killed(
    settings: Settings, out: multiprocessing.Queue[tuple[int, int, str]]
) -> None:
    """A service process: accepts a backup request, then dies before running it."""
    with Context.open(settings) as ctx:
        workers = Workers(ctx, size=1, runner=_never_starts)
        started = start_backup(ctx, workers, BackupKind.FULL, "erp", requested_by="ana")
        out.put((os.getpid(), started.job_id, started.id))
        threading.Event().wait()


def _from_child(
    proc: multiprocessing.process.BaseProcess, out: queue.Queue[tuple[int, int, str]]
) -> tuple[int, int, str]:
    while True:  # as long as the child lives: no time bound a loaded machine can miss
        try:
            return out.get(timeout=1)
        except queue.Empty:
            assert proc.is_alive(), f"the service process ended ({proc.exitcode})"


def test_a_job_accepted_by_a_service_killed_before_running_it_is_failed_and_alerted(
    service: Settings,
    opened: Context,
    webhook: Webhook,  # noqa: F811
) -> None:
    spawn = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[tuple[int, int, str]] = spawn.Queue()
    proc = spawn.Process(target=_serve_until_killed, args=(service, out), daemon=True)
    proc.start()
    try:
        pid, job_id, backup_id = _from_child(proc, out)  # type: ignore[arg-type]
        assert jobs.get(opened, job_id).status is JobStatus.QUEUED
    finally:
        proc.kill()  # kill -9
        proc.join()  # reaped: a zombie would count as alive
    with Context.open(service):  # any command
        pass
    job = jobs.get(opened, job_id)
    reason = f"not started: respaldo serve (pid {pid} on {this_host()}) stopped before running it"
    assert job.status is JobStatus.FAILED
    assert job.error == reason
    assert reason in (show_backup(opened, backup_id).error_message or "")
    (alert,) = webhook.inbox.wait(1)
    assert alert["json"]["title"] == "[respaldo] CRITICAL: backup of erp failed"
    assert reason in alert["json"]["message"]
    with Context.open(service):  # told once
        pass
    assert len(webhook.inbox.items) == 1


def test_a_live_service_keeps_its_queued_jobs_past_the_lease(
    service: Settings, opened: Context
) -> None:
    release = CancelToken()

    def held(ctx: Context, job_id: int, token: CancelToken) -> None:
        while not release.wait(60):
            pass

    workers = Workers(opened, size=1, runner=held)
    try:
        started = start_backup(opened, workers, BackupKind.FULL, "erp", requested_by="ana")
        # A CLI command's job, between its submission and its start in the same process.
        cli = jobs.submit(opened, jobs.cli_request(JobKind.PRUNE, None), here=True)
        job = jobs.get(opened, started.job_id)
        lease = timedelta(seconds=service.jobs.lease_seconds)
        # The service renews the lease of what it holds: wait for a renewal made after
        # the lease would have lapsed from the submission.
        deadline = datetime.now(UTC) + timedelta(minutes=2)
        while (
            jobs.get(opened, job.id).heartbeat_at or job.created_at
        ) < job.created_at + 2 * lease:
            assert datetime.now(UTC) < deadline, "the service never renewed its queued job"
            release.wait(0.1)
        with Context.open(service):  # any command
            pass
        assert jobs.get(opened, job.id).status is JobStatus.QUEUED
        assert jobs.get(opened, cli.id).status is JobStatus.QUEUED
        assert show_backup(opened, started.id).status.value == "pending"
    finally:
        release.cancel("done")
        workers.stop("test over")


def test_a_job_queued_by_an_older_version_is_failed_once_its_lease_passed(
    service: Settings,
    opened: Context,
    webhook: Webhook,  # noqa: F811
) -> None:
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    with opened.catalog.begin() as session:
        # An older respaldo recorded no runner on a queued job.
        old = (
            Jobs(session)
            .submit(
                JobKind.DRILL,
                target="erp",
                triggered_by=TriggeredBy.API,
                requested_by="ana",
                now=long_ago,
            )
            .id
        )
    with Context.open(service):
        pass
    job = jobs.get(opened, old)
    assert job.status is JobStatus.FAILED
    assert "by an older respaldo" in (job.error or "")
    (alert,) = webhook.inbox.wait(1)
    assert "restore test of erp failed" in alert["json"]["title"]

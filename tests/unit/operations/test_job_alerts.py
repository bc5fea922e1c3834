"""Every failed job sends a critical alert, from the one place jobs fail; cancelled jobs
and jobs whose alert was sent already send none; jobs whose lease lapsed send one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from respaldo.catalog import Jobs
from respaldo.config import Settings
from respaldo.domain import JobKind, JobStatus, TriggeredBy
from respaldo.errors import ConnectionFailed, JobCancelled
from respaldo.operations import alerts, jobs
from respaldo.operations.context import Context
from respaldo.operations.jobs import JobRequest
from tests.servers.notify import Webhook, webhook  # noqa: F401

pytestmark = pytest.mark.unit

BACKUP = JobRequest(JobKind.BACKUP, "erp", TriggeredBy.SCHEDULE, "full", {"type": "full"})


def _settings(tmp_path: Path, hook: Webhook) -> Settings:
    return Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        repositories=[{"name": "local", "url": f"file://{tmp_path / 'repo'}"}],
        jobs={"lease_seconds": 1.0},
        cache_dir=tmp_path / "cache",
        notifications={"targets": [{"name": "hook", "url": hook.url}]},
    )


@pytest.fixture
def ctx(tmp_path: Path, webhook: Webhook) -> Iterator[Context]:  # noqa: F811
    context = Context.open(_settings(tmp_path, webhook), create=True)
    try:
        yield context
    finally:
        context.close()


def test_a_failed_job_sends_a_critical_alert_with_its_details(
    ctx: Context,
    webhook: Webhook,  # noqa: F811
) -> None:
    def body(c: Context) -> None:
        raise ConnectionFailed("cannot connect to erp", hint="start PostgreSQL")

    job = jobs.submit(ctx, BACKUP)
    with pytest.raises(ConnectionFailed):
        jobs.run(ctx, job.id, body)
    (got,) = webhook.inbox.wait(1)
    assert got["json"]["title"] == "[respaldo] CRITICAL: backup of erp failed"
    message = got["json"]["message"]
    assert f"Job: {job.id}" in message
    assert "Repository: local" in message
    assert "Error: cannot connect to erp" in message
    assert "What to do: start PostgreSQL" in message


def test_a_cancelled_job_or_one_alerted_already_sends_nothing(
    ctx: Context,
    webhook: Webhook,  # noqa: F811
) -> None:
    def cancelled(c: Context) -> None:
        raise JobCancelled("cancelled by request")

    def alerted(c: Context) -> None:
        raise alerts.mark_alerted(RuntimeError("told already"))

    def failed(c: Context) -> None:
        raise RuntimeError("the last one")

    for body in (cancelled, alerted, failed):
        job = jobs.submit(ctx, BACKUP)
        with pytest.raises((JobCancelled, RuntimeError)):
            jobs.run(ctx, job.id, body)
    got = webhook.inbox.wait(1)
    assert [m["json"]["message"].count("the last one") for m in got] == [1]


def test_a_job_whose_lease_lapsed_is_alerted_by_whoever_fails_it(
    tmp_path: Path,
    ctx: Context,
    webhook: Webhook,  # noqa: F811
) -> None:
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    with ctx.catalog.begin() as session:
        table = Jobs(session)
        job = table.submit(
            JobKind.DRILL,
            target="erp",
            triggered_by=TriggeredBy.SCHEDULE,
            requested_by="restore_test",
            now=long_ago,
        )
        table.start(job.id, pid=1, host="elsewhere", now=long_ago)
    # The next process to open the catalog (any command) fails it, and tells.
    with Context.open(_settings(tmp_path, webhook)):
        pass
    (got,) = webhook.inbox.wait(1)
    assert got["json"]["title"] == "[respaldo] CRITICAL: restore test of erp failed"
    assert "lapsed" in got["json"]["message"]
    assert "What to do: the process running the job died" in got["json"]["message"]
    assert jobs.get(ctx, job.id).status is JobStatus.FAILED
    with Context.open(_settings(tmp_path, webhook)):  # the next command: failed already
        pass
    assert len(webhook.inbox.items) == 1  # told once

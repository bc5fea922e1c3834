"""The queue watched, and its own tables kept small. A queue whose jobs wait while no
live worker takes it is red in the status (and alerted by the watchdog). The queue's
own tables do not grow for ever: the catalog's ``jobs`` table is the
record of every job, so a worker deletes procrastinate's entry of a job once its task
has ended (its events go with it), whatever the job's outcome. Without that,
``procrastinate_jobs`` and ``procrastinate_events`` gained rows for every job (288 a day
from ``wal_copy`` alone) and nothing ever removed them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest

from respaldo.catalog import Workers
from respaldo.domain import JobKind, JobStatus, TriggeredBy
from respaldo.operations import jobs, queue, watchdog
from respaldo.operations.context import Context
from respaldo.operations.status import compute_status
from tests.integration.api.conftest import CatalogRole
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def ctx(catalog_role: CatalogRole, tmp_path: Path) -> Iterator[Context]:
    # The lease long enough that a loaded machine never misses a renewal (a job whose
    # lease goes unrenewed for 80% of it cancels itself, and the sweep fails it as lost).
    with catalog_role.context(tmp_path, jobs={"lease_seconds": 15.0}) as context:
        yield context


def entries(ctx: Context) -> tuple[int, int]:
    """Rows of procrastinate_jobs and procrastinate_events."""
    with ctx.catalog.read() as session:
        connection = session.connection()
        return (
            int(connection.exec_driver_sql("SELECT count(*) FROM procrastinate_jobs").scalar_one()),
            int(
                connection.exec_driver_sql("SELECT count(*) FROM procrastinate_events").scalar_one()
            ),
        )


def _ended(ctx: Context, job_id: int) -> bool:
    return jobs.get(ctx, job_id).status.is_final


def test_a_worker_leaves_no_queue_entry_of_the_jobs_it_ran(ctx: Context) -> None:
    worker = queue.WorkerThread(ctx, queue.WorkerOptions(name="w"))
    worker.start()
    try:
        # Two jobs that end failed (no repository is configured): a failed job's entry
        # is removed too; the job's row says how it ended.
        ran = [
            jobs.submit(ctx, jobs.JobRequest(JobKind.VERIFY, None, TriggeredBy.CLI, "ana"))
            for _ in range(2)
        ]
        for job in ran:
            wait_for(f"job {job.id} to end", partial(_ended, ctx, job.id))
    finally:
        worker.stop()  # returns once every task's end was acknowledged
    assert [jobs.get(ctx, j.id).status for j in ran] == [JobStatus.FAILED] * 2
    assert entries(ctx) == (0, 0)


def test_jobs_waiting_in_a_queue_no_live_worker_takes_turn_the_status_red(ctx: Context) -> None:
    # No worker runs (all dead, or serve with [server] run_jobs = false and none
    # started): every job waits for ever, every later firing of a schedule is skipped,
    # and the status stayed green until an RPO lapsed, a day later.
    waiting = jobs.submit(ctx, jobs.JobRequest(JobKind.VERIFY, None, TriggeredBy.CLI, "ana"))
    later = waiting.created_at + timedelta(seconds=ctx.settings.jobs.lease_seconds + 1)
    report = compute_status(ctx, later, wal_archived=(), servers=False)
    (item,) = [i for i in report.items if i.key == "queue:default"]
    assert (item.check, item.level, item.count) == ("queue", "red", 1), item
    assert report.level == "red"
    result = watchdog.check(ctx, later, wal_archived=(), servers=False)
    (raised,) = [c for c in result.conditions if c.key == "queue:default"]
    assert raised.action == "raised", raised

    # A live worker takes that queue (busy, say): waiting is not a fault.
    with ctx.catalog.begin() as session:
        Workers(session).register(name="w", host="other", pid=1, queues=["default"], now=later)
    report = compute_status(ctx, later, wal_archived=(), servers=False)
    (item,) = [i for i in report.items if i.key == "queue:default"]
    assert item.level == "green", item
    (shown,) = queue.list_workers(ctx, now=later)
    assert shown.state == "taking jobs", shown

    # Its heartbeat stops (killed -9, stopped, hung): a few renewal periods on, it takes
    # nothing, and says so. Before, it was shown taking jobs, and kept its queue green,
    # until its heartbeat was older than the whole lease.
    silent = later + queue.stale_after(ctx.settings) + timedelta(seconds=1)
    (shown,) = queue.list_workers(ctx, now=silent)
    assert (shown.name, shown.state) == ("w", "stale"), shown
    assert shown.heartbeat_age_seconds > queue.stale_after(ctx.settings).total_seconds()
    report = compute_status(ctx, silent, wal_archived=(), servers=False)
    (item,) = [i for i in report.items if i.key == "queue:default"]
    assert item.level == "red", item

    # Silent for longer than the lease (its machine lost): it is listed lost, and the
    # status says so in an amber item of its own, for a day. Before, its row was removed
    # by the next sweep, and nothing showed that a worker had gone.
    lost = later + timedelta(seconds=ctx.settings.jobs.lease_seconds + 1)
    (shown,) = queue.list_workers(ctx, now=lost)
    assert (shown.name, shown.state, shown.failed) == ("w", "lost", []), shown
    report = compute_status(ctx, lost, wal_archived=(), servers=False)
    (item,) = [i for i in report.items if i.key == "worker:other:1"]
    assert (item.check, item.level, item.at) == ("queue", "amber", later), item
    assert "worker w on other (process 1) is lost" in item.reason, item
    gone = later + queue.LOST_SHOWN + timedelta(seconds=1)
    assert queue.list_workers(ctx, now=gone) == []
    report = compute_status(ctx, gone, wal_archived=(), servers=False)
    assert not [i for i in report.items if i.key.startswith("worker:")]

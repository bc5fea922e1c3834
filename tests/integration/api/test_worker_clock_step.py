"""A step of the catalog server's clock neither forgets a live worker nor expires the
jobs waiting in the queues it takes.

Workers' heartbeats are written and judged by the catalog's clock. Stepped ahead by more
than a lease (an NTP correction, a VM resumed), every live worker looked silent: the
sweep removed its row (a beat re-creates nothing: ``respaldo workers`` no longer listed
it, for good) and every job waiting longer than ``[queue] expire_hours`` by that clock,
in a queue no "live" worker took, was failed as expired. Now, as for the jobs' leases,
a worker is taken for silent only if its heartbeat is unchanged at a second look a few
renewal periods later (this process's monotonic clock).

A real worker (procrastinate, its heartbeat) on a real PostgreSQL catalog; the step is
the ``now`` the sweep is given, an hour past the catalog's own clock. A worker row that
never beats (its process killed on another machine) is listed lost, and pruned a day
later.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from respaldo.catalog import Jobs, Workers
from respaldo.catalog.clock import catalog_now
from respaldo.catalog.models import Worker
from respaldo.domain import JobKind, JobStatus, TriggeredBy
from respaldo.operations import jobs, queue, reconcile
from respaldo.operations.context import Context
from tests.integration.api.conftest import CatalogRole
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def ctx(catalog_role: CatalogRole, tmp_path: Path) -> Iterator[Context]:
    settings = {"jobs": {"lease_seconds": 4.0}, "queue": {"expire_hours": 0.5}}
    with catalog_role.context(tmp_path, **settings) as context:
        yield context


def _names(ctx: Context) -> list[str]:
    with ctx.catalog.read() as session:
        return [str(n) for n in session.scalars(sa.select(Worker.name).order_by(Worker.id))]


def test_a_clock_step_neither_forgets_a_live_worker_nor_expires_its_queue(ctx: Context) -> None:
    worker = queue.WorkerThread(ctx, queue.WorkerOptions(name="live"))
    worker.start()
    try:
        wait_for("the worker to register", lambda: "live" in _names(ctx))
        with ctx.catalog.begin() as session:
            gone_id = (
                Workers(session).register(name="gone", host="elsewhere", pid=1, queues=None).id
            )
            ahead = catalog_now(session) + timedelta(hours=1)
            # Waiting in the default queue (no queue entry: the worker does not take it).
            waiting = Jobs(session).submit(
                JobKind.VERIFY, target=None, triggered_by=TriggeredBy.CLI, requested_by="ana"
            )
            waiting.queue_name = "default"
            waiting_id = waiting.id
        reconcile.prune_workers(ctx, now=ahead)
        # The silent one is kept, listed lost, for a day: only its heartbeat was confirmed
        # silent (and is remembered, so that its row costs the next sweeps no wait).
        assert _names(ctx) == ["live", "gone"]
        shown = {w.name: w.state for w in queue.list_workers(ctx, now=ahead) if w.name == "gone"}
        assert shown == {"gone": "lost"}
        assert [worker for worker, _ in ctx.silent_confirmed] == [gone_id]
        reconcile.settle_abandoned(ctx, now=ahead)
        assert jobs.get(ctx, waiting_id).status is JobStatus.QUEUED
        # Past the day, it is forgotten; the live one, looking as silent, is not.
        reconcile.prune_workers(ctx, now=ahead + queue.LOST_SHOWN)
        assert _names(ctx) == ["live"]
    finally:
        worker.stop()


def test_a_lost_worker_confirmed_by_one_process_costs_the_next_no_second_look(
    ctx: Context, catalog_role: CatalogRole, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each one-shot command that swept the queue (a job past its expiry) while a lost
    worker was listed waited the two looks' ~10 s again: the confirmation lived in one
    process's memory. The catalog keeps it now, with the heartbeat it confirmed."""
    with ctx.catalog.begin() as session:
        gone = Workers(session).register(name="gone", host="elsewhere", pid=1, queues=None)
        gone_id, beat = gone.id, gone.heartbeat_at
        ahead = catalog_now(session) + timedelta(hours=1)
    lease = timedelta(seconds=ctx.settings.jobs.lease_seconds)
    assert reconcile.silent_workers(ctx, lease, ahead) == {gone_id: beat}  # looked twice

    def looked_twice(_: Context) -> None:
        raise AssertionError("a second look at a worker already confirmed silent")

    monkeypatch.setattr(reconcile, "_second_look", looked_twice)
    settings = {"jobs": {"lease_seconds": 4.0}, "queue": {"expire_hours": 0.5}}
    with catalog_role.context(tmp_path / "another", **settings) as another:
        assert reconcile.silent_workers(another, lease, ahead) == {gone_id: beat}
        # A beat since: not the heartbeat confirmed, so looked at twice again.
        with another.catalog.begin() as session:
            Workers(session).beat(gone_id)
        with pytest.raises(AssertionError, match="second look"):
            reconcile.silent_workers(another, lease, ahead)

"""What a queue needs of the catalog: one job per schedule and fire time, retries linked
to the lost job, and the workers table with its heartbeats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from respaldo.catalog import Catalog, Job, Jobs, Workers, queues_of
from respaldo.domain import JobKind, JobStatus, TriggeredBy
from respaldo.errors import AlreadyFired

pytestmark = pytest.mark.unit

T0 = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)


def _fire(catalog: Catalog, schedule: str, when: datetime) -> int:
    with catalog.begin() as session:
        return (
            Jobs(session)
            .submit(
                JobKind.BACKUP,
                target="erp",
                triggered_by=TriggeredBy.SCHEDULE,
                requested_by=schedule,
                scheduled_for=when,
            )
            .id
        )


def _count(catalog: Catalog) -> int:
    with catalog.read() as session:
        return int(session.scalar(sa.select(sa.func.count()).select_from(Job)) or 0)


def test_a_schedule_fires_once_per_fire_time(catalog: Catalog) -> None:
    first = _fire(catalog, "full:erp", T0)
    with pytest.raises(AlreadyFired) as caught:
        _fire(catalog, "full:erp", T0)
    assert str(caught.value) == f"full:erp was already fired for {T0.isoformat()}"
    assert "another 'respaldo serve'" in caught.value.hint
    assert _count(catalog) == 1  # the refused one left nothing
    # Another time, or another schedule at the same time, is a job of its own.
    _fire(catalog, "full:erp", T0 + timedelta(hours=1))
    _fire(catalog, "full:crm", T0)
    assert _count(catalog) == 3
    with catalog.read() as session:
        assert Jobs(session).get(first).scheduled_for == T0


def test_jobs_without_a_fire_time_are_never_refused(catalog: Catalog) -> None:
    for _ in range(2):
        with catalog.begin() as session:
            Jobs(session).submit(
                JobKind.BACKUP, target="erp", triggered_by=TriggeredBy.CLI, requested_by="ana"
            )
    assert _count(catalog) == 2


def test_a_retry_is_a_new_job_linked_to_the_lost_one(catalog: Catalog) -> None:
    with catalog.begin() as session:
        jobs = Jobs(session)
        lost = jobs.submit(
            JobKind.BACKUP,
            target="erp",
            triggered_by=TriggeredBy.SCHEDULE,
            requested_by="full:erp",
            params={"type": "full"},
            exclusive_key="backup:erp",
            scheduled_for=T0,
        )
        jobs.set_queued(lost.id, queue_name="site-a", queue_job_id=41)
        jobs.start(lost.id, pid=1, host="elsewhere", now=T0)
        (failed,) = jobs.fail_lapsed(lease=timedelta(seconds=60), now=T0 + timedelta(minutes=5))
        again = jobs.retry(failed)
        third = jobs.retry(again)
    assert (again.retry_of, again.attempt, third.retry_of, third.attempt) == (
        lost.id,
        2,
        again.id,
        3,
    )
    assert again.status is JobStatus.QUEUED
    assert (again.kind, again.target, again.params) == (lost.kind, lost.target, lost.params)
    assert (again.triggered_by, again.requested_by) == (TriggeredBy.SCHEDULE, "full:erp")
    assert (again.exclusive_key, again.queue_name) == ("backup:erp", "site-a")
    assert again.scheduled_for is None  # the fire time stays the lost job's
    assert again.queue_job_id is None  # queued by the caller


def test_workers_beat_list_their_jobs_and_are_pruned_when_silent(catalog: Catalog) -> None:
    lease = timedelta(seconds=30)
    with catalog.begin() as session:
        workers = Workers(session)
        a = workers.register(name="a", host="h1", pid=10, queues=["site-a"], now=T0)
        b = workers.register(name="b", host="h2", pid=20, queues=None, now=T0)
        job = Jobs(session).submit(
            JobKind.BACKUP, target="erp", triggered_by=TriggeredBy.CLI, requested_by="ana"
        )
        Jobs(session).start(job.id, pid=10, host="h1", now=T0)
        workers.beat(a.id, now=T0 + timedelta(seconds=40))
        workers.beat(b.id, stopping=True, now=T0 + timedelta(seconds=5))
    with catalog.read() as session:
        workers = Workers(session)
        alive = workers.alive(lease=lease, now=T0 + timedelta(seconds=50))
        assert [(w.name, queues_of(w)) for w in alive] == [("a", ["site-a"])]
        assert [j.id for j in workers.running(alive[0])] == [job.id]
        both = workers.alive(lease=lease, now=T0 + timedelta(seconds=20))
        assert [(w.name, w.stopping, queues_of(w)) for w in both] == [
            ("a", False, ["site-a"]),
            ("b", True, None),
        ]
    with catalog.begin() as session:
        assert Workers(session).prune(lease=lease, now=T0 + timedelta(seconds=50)) == 1
        Workers(session).unregister(a.id)
    with catalog.read() as session:
        assert Workers(session).alive(lease=lease, now=T0) == []

"""The jobs table: the state machine, the per-database exclusion, leases, cancellation."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from respaldo.catalog import Catalog, Jobs, open_catalog
from respaldo.domain import JOB_TRANSITIONS, JobKind, JobStatus, TriggeredBy
from respaldo.errors import InvalidTransition, JobConflict
from respaldo.processes import this_host

T0 = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)


def _backup(catalog: Catalog, target: str = "erp") -> int:
    with catalog.begin() as session:
        return (
            Jobs(session)
            .submit(
                JobKind.BACKUP,
                target=target,
                triggered_by=TriggeredBy.CLI,
                requested_by="ana",
                params={"type": "full"},
                exclusive_key=f"backup:{target}",
                now=T0,
            )
            .id
        )


def test_a_job_goes_queued_running_completed(catalog: Catalog) -> None:
    job_id = _backup(catalog)
    with catalog.begin() as session:
        job = Jobs(session).start(job_id, pid=os.getpid(), now=T0)
        assert job.status is JobStatus.RUNNING
        Jobs(session).renew(job_id, done=10, total=100, now=T0 + timedelta(seconds=5))
        Jobs(session).finish(job_id, JobStatus.COMPLETED, result_id="x", now=T0 + timedelta(1))
    with catalog.begin() as session:
        job = Jobs(session).get(job_id)
        assert (job.status, job.progress_done, job.progress_total) == ("completed", 10, 100)
        assert job.result_id == "x"
        assert job.started_at == T0
        with pytest.raises(InvalidTransition, match="completed is final"):
            Jobs(session).finish(job_id, JobStatus.FAILED)


def test_the_transitions_are_written_once_and_finals_are_final() -> None:
    finals = {s for s in JobStatus if s.is_final}
    assert finals == {"completed", "failed", "cancelled", "skipped"}
    JobStatus.QUEUED.check_transition(JobStatus.SKIPPED)  # allowed: no error
    with pytest.raises(InvalidTransition):
        JobStatus.RUNNING.check_transition(JobStatus.QUEUED)
    assert set(JOB_TRANSITIONS) == set(JobStatus)


def test_two_backups_of_one_database_never_run_at_once(catalog_path: object) -> None:
    # Two catalogs on one file: two processes, as far as SQLite is concerned.
    url = f"sqlite:///{catalog_path}"
    with open_catalog(url, create=True) as first, open_catalog(url) as second:
        one, two, other = _backup(first), _backup(second), _backup(second, "ventas")
        with first.begin() as session:
            Jobs(session).start(one, pid=os.getpid())
        refused = rf"a backup of erp is already running \(job {one}\)"
        with pytest.raises(JobConflict, match=refused), second.begin() as session:
            Jobs(session).start(two, pid=os.getpid())
        with second.begin() as session:
            assert Jobs(session).get(two).status is JobStatus.QUEUED  # nothing changed
            Jobs(session).start(other, pid=os.getpid())  # another database is fine
        with first.begin() as session:
            Jobs(session).finish(one, JobStatus.COMPLETED)
        with second.begin() as session:
            assert Jobs(session).start(two, pid=os.getpid()).status is JobStatus.RUNNING


def test_the_unique_index_refuses_a_second_running_job_with_the_same_key(
    catalog: Catalog,
) -> None:
    one, two = _backup(catalog), _backup(catalog)
    with catalog.begin() as session:
        Jobs(session).start(one, pid=os.getpid())
    with pytest.raises(JobConflict, match="already running"), catalog.begin() as session:
        # As if the check had raced: write the row past Jobs.start's query.
        jobs = Jobs(session)
        jobs.running_with_key = lambda key: None  # type: ignore[method-assign]
        jobs.start(two, pid=os.getpid())


def test_cancelling_a_queued_job_ends_it_and_a_running_one_is_flagged(catalog: Catalog) -> None:
    queued, running = _backup(catalog, "a"), _backup(catalog, "b")
    with catalog.begin() as session:
        Jobs(session).start(running, pid=os.getpid())
        assert Jobs(session).request_cancel(queued).status is JobStatus.CANCELLED
        job = Jobs(session).request_cancel(running)
        assert (job.status, job.cancel_requested) == (JobStatus.RUNNING, True)
        assert Jobs(session).renew(running).cancel_requested
        Jobs(session).finish(running, JobStatus.CANCELLED, error="cancelled by request")
        with pytest.raises(InvalidTransition, match=f"job {running} has already ended") as info:
            Jobs(session).request_cancel(running)
        assert "only queued or running jobs" in info.value.hint


def test_a_job_whose_process_died_or_whose_lease_lapsed_becomes_failed(catalog: Catalog) -> None:
    dead, stale, alive = _backup(catalog, "a"), _backup(catalog, "b"), _backup(catalog, "c")
    with catalog.begin() as session:
        Jobs(session).start(dead, pid=999_999, now=T0)
        Jobs(session).start(stale, pid=os.getpid(), host="elsewhere", now=T0)
        Jobs(session).start(alive, pid=os.getpid(), now=T0)
    later = T0 + timedelta(minutes=10)

    def alive_here(pid: int) -> bool:
        return pid != 999_999

    with catalog.begin() as session:
        Jobs(session).renew(alive, now=later)
    with catalog.read() as session:
        assert Jobs(session).any_lapsed(lease=timedelta(minutes=5), is_alive=alive_here, now=later)
    with catalog.begin() as session:
        lapsed = Jobs(session).fail_lapsed(
            lease=timedelta(minutes=5), is_alive=lambda pid: pid != 999_999, now=later
        )
        assert sorted(j.id for j in lapsed) == [dead, stale]
    with catalog.begin() as session:
        jobs = Jobs(session)
        assert jobs.get(dead).error_message == (
            "process 999999 died while the job ran (found at start-up)"
        )
        assert "lease of process" in (jobs.get(stale).error_message or "")
        assert jobs.get(stale).status is JobStatus.FAILED
        assert jobs.get(alive).status is JobStatus.RUNNING
        # What is left running is alive and renewed: opening the catalog writes nothing.
        assert not jobs.any_lapsed(lease=timedelta(minutes=5), is_alive=alive_here, now=later)


def _queued(catalog: Catalog, target: str, **runner: object) -> int:
    with catalog.begin() as session:
        return (
            Jobs(session)
            .submit(
                JobKind.BACKUP,
                target=target,
                triggered_by=TriggeredBy.API,
                requested_by="ana",
                now=T0,
                **runner,  # type: ignore[arg-type]
            )
            .id
        )


def test_a_queued_job_whose_runner_died_or_went_silent_is_failed_never_a_live_ones(
    catalog: Catalog,
) -> None:
    here = this_host()
    dead = _queued(catalog, "a", runner_pid=999_999)
    alive = _queued(catalog, "b", runner_pid=os.getpid())
    silent = _queued(catalog, "c", runner_pid=os.getpid(), runner_host="elsewhere")
    renewed = _queued(catalog, "d", runner_pid=os.getpid(), runner_host="elsewhere")
    older = _queued(catalog, "e")  # an older respaldo recorded no runner
    with catalog.begin() as session:
        queued = Jobs(session).get(_queued(catalog, "f"))
        Jobs(session).set_queued(queued.id, queue_name="backup", queue_job_id=1)
    later = T0 + timedelta(minutes=10)
    with catalog.begin() as session:
        Jobs(session).renew_queued([renewed, dead, alive], now=later)
        lapsed = Jobs(session).fail_lapsed(
            lease=timedelta(minutes=5), is_alive=lambda pid: pid != 999_999, now=later
        )
        assert sorted(j.id for j in lapsed) == [dead, silent, older]
    with catalog.read() as session:
        jobs = Jobs(session)
        assert jobs.get(dead).error_message == (
            f"not started: respaldo serve (pid 999999 on {here}) stopped before running it"
        )
        assert jobs.get(silent).error_message == (
            f"not started: respaldo serve (pid {os.getpid()} on elsewhere), which was to run "
            "it, gave no sign of life since 2026-12-04T03:00:00+00:00 (600 s before "
            "2026-12-04T03:10:00+00:00 by the catalog's clock; the lease is 300 s)"
        )
        assert jobs.get(older).error_message == (
            "not started: queued at 2026-12-04T03:00:00+00:00 by an older respaldo that "
            "does not record which process was to run it"
        )
        for job_id in (dead, silent, older):
            assert jobs.get(job_id).status is JobStatus.FAILED
        # The live runner's job, the renewed one and the queue's (procrastinate's) wait.
        for job_id in (alive, renewed, queued.id):
            assert jobs.get(job_id).status is JobStatus.QUEUED


def test_a_queued_job_of_a_live_cli_process_is_never_failed(catalog: Catalog) -> None:
    with catalog.begin() as session:
        job = Jobs(session).submit(
            JobKind.PRUNE,
            target=None,
            triggered_by=TriggeredBy.CLI,
            requested_by="ana",
            runner_pid=os.getpid(),
            now=T0,
        )
    with catalog.read() as session:
        # Its own process starts it at once; however long that start waits for the
        # catalog, a live process on this host is never taken for a dead one.
        assert not Jobs(session).any_lapsed(lease=timedelta(minutes=5), now=T0 + timedelta(hours=1))
        assert Jobs(session).get(job.id).worker_pid == os.getpid()


def test_a_job_of_the_queue_expires_only_when_it_waited_long_and_no_live_worker_takes_it(
    catalog: Catalog,
) -> None:
    from respaldo.catalog import Workers

    lease, expire = timedelta(minutes=2), timedelta(hours=24)
    names = ("site-a", "site-b", "site-c", "site-d")
    ids: dict[str, int] = {}
    for name in names:
        job_id = _queued(catalog, name)
        with catalog.begin() as session:
            Jobs(session).set_queued(job_id, queue_name=name, queue_job_id=len(ids) + 1)
        ids[name] = job_id
    later = T0 + expire + timedelta(minutes=1)
    with catalog.begin() as session:
        workers = Workers(session)
        workers.register(name="a", host="h1", pid=10, queues=["site-a"], now=later)
        stopping = workers.register(name="b", host="h2", pid=20, queues=["site-b"], now=later)
        workers.beat(stopping.id, stopping=True, now=later)
        workers.register(name="c", host="h3", pid=30, queues=["site-c"], now=T0)  # silent
    with catalog.read() as session:
        assert not Jobs(session).any_stale_queued(expire=expire, now=T0 + expire)
        assert Jobs(session).any_stale_queued(expire=expire, now=later)
    with catalog.begin() as session:
        expired = Jobs(session).expire_queued(lease=lease, expire=expire, now=later)
    # site-a's live worker will take its job (it waits behind others); the others'
    # workers are stopping, silent or absent.
    assert sorted(j.id for j in expired) == sorted(ids[n] for n in names[1:])
    with catalog.read() as session:
        jobs = Jobs(session)
        assert jobs.get(ids["site-a"]).status is JobStatus.QUEUED
        gone = jobs.get(ids["site-d"])
        assert gone.status is JobStatus.FAILED and gone.finished_at == later
        assert gone.error_message == (
            "expired: waited in queue 'site-d' since 2026-12-04T03:00:00+00:00, more than "
            "[queue] expire_hours = 24, and no live worker takes that queue"
        )


def test_a_job_waiting_behind_a_busy_worker_does_not_expire_while_the_worker_restarts(
    catalog: Catalog,
) -> None:
    """A job waited longer than [queue] expire_hours behind the only worker of its queue,
    busy with a long job (a restore test of a large database). The worker is restarted
    (an upgrade): SIGTERM marks it stopping while its job finishes, then it exits and the
    new one registers. Whatever opened the catalog in between (a 'respaldo status', the
    stopping worker's own sweep) failed the waiting job as expired, "no live worker
    takes that queue", not retried: that night's backup was never taken. A queue whose
    worker is busy, or ran a job within expire_hours, is served; it expires only once
    nothing has run there for that long."""
    from respaldo.catalog import Workers

    lease, expire = timedelta(minutes=2), timedelta(hours=24)
    busy = _queued(catalog, "erp")
    waiting = _queued(catalog, "erp2")
    with catalog.begin() as session:
        jobs = Jobs(session)
        jobs.set_queued(busy, queue_name="q", queue_job_id=1)
        jobs.set_queued(waiting, queue_name="q", queue_job_id=2)
        jobs.start(busy, pid=10, host="h1", now=T0)
        worker = Workers(session).register(name="w", host="h1", pid=10, queues=["q"], now=T0)
    stopping = T0 + expire + timedelta(hours=1)
    with catalog.begin() as session:
        Workers(session).beat(worker.id, stopping=True, now=stopping)
        assert Jobs(session).expire_queued(lease=lease, expire=expire, now=stopping) == []
    exited = stopping + timedelta(minutes=5)
    with catalog.begin() as session:
        Jobs(session).finish(busy, JobStatus.COMPLETED, result_id="x", now=exited)
        Workers(session).unregister(worker.id)
    with catalog.begin() as session:
        gap = exited + timedelta(minutes=1)  # the new worker has not registered yet
        assert Jobs(session).expire_queued(lease=lease, expire=expire, now=gap) == []
    with catalog.read() as session:
        assert Jobs(session).get(waiting).status is JobStatus.QUEUED
    with catalog.begin() as session:
        # No worker came back, and nothing ran in that queue for a day: it expires.
        later = exited + expire + timedelta(minutes=1)
        expired = Jobs(session).expire_queued(lease=lease, expire=expire, now=later)
        assert [job.id for job in expired] == [waiting]

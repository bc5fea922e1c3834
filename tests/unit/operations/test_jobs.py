"""Running operations as jobs: outcomes, cancellation through the catalog, exclusion."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from respaldo import cancellation
from respaldo.cancellation import CancelToken
from respaldo.catalog import Jobs
from respaldo.config import Settings
from respaldo.domain import AuditOutcome, JobKind, JobStatus, TriggeredBy
from respaldo.errors import JobCancelled, JobConflict
from respaldo.operations import audit, jobs
from respaldo.operations.context import Context
from respaldo.operations.drill import Check, DrillResult
from respaldo.operations.jobs import JobRequest
from respaldo.operations.prune_report import PruneReport, RepositoryPruneView
from respaldo.operations.verify import VerifyResult
from tests.unit.results import verify_result

BACKUP = JobRequest(JobKind.BACKUP, "erp", TriggeredBy.SCHEDULE, "full", {"type": "full"})


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    settings = Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        # Renewed every 0.3 s; a job stops itself after 2.4 s without a renewal (a loaded
        # machine can hold a thread up for most of a second: no test waits on that).
        jobs={"lease_seconds": 3.0},
        cache_dir=tmp_path / "cache",
    )
    context = Context.open(settings, create=True)
    try:
        yield context
    finally:
        context.close()


def test_a_job_that_returns_is_completed_with_its_result_and_who_asked(ctx: Context) -> None:
    job = jobs.submit(ctx, BACKUP)
    assert job.status is JobStatus.QUEUED
    assert jobs.run(ctx, job.id, lambda c: "20261204T030000Z-0123abcd", result_id=str) == (
        "20261204T030000Z-0123abcd"
    )
    done = jobs.get(ctx, job.id)
    assert done.status is JobStatus.COMPLETED
    assert (done.triggered_by, done.requested_by) == ("schedule", "full")
    assert done.result_id == "20261204T030000Z-0123abcd"
    assert done.params == {"type": "full"}
    assert done.finished_at is not None and done.started_at is not None


def test_a_jobs_progress_goes_on_across_the_phases_of_its_body(ctx: Context) -> None:
    """A backup reports its dump, then its globals, each from 0: the job's figure is the
    whole job's (a finished backup's job said 1.9 KiB, its globals, not its dump's MiB)."""
    shown: list[tuple[str, int, int | None]] = []

    def body(c: Context) -> None:
        c.progress("dump", 4096, None)
        c.progress("dump", 5_000_000, None)
        c.progress("globals", 1936, None)
        c.progress("restore", 10, 100)  # a phase with a total: the total goes on too

    submitted = jobs.submit(ctx, BACKUP)
    ctx = dataclasses.replace(ctx, progress=lambda *report: shown.append(report))
    jobs.run(ctx, submitted.id, body)
    done = jobs.get(ctx, submitted.id)
    assert (done.progress_done, done.progress_total) == (5_001_946, 5_002_036)
    # What the command line's bars show stays per phase.
    assert shown == [
        ("dump", 4096, None),
        ("dump", 5_000_000, None),
        ("globals", 1936, None),
        ("restore", 10, 100),
    ]


def test_a_job_whose_body_raises_is_failed_with_the_message(ctx: Context) -> None:
    def body(c: Context) -> None:
        raise ValueError("pg_dump exited with status 1")

    job = jobs.submit(ctx, BACKUP)
    with pytest.raises(ValueError):
        jobs.run(ctx, job.id, body)
    done = jobs.get(ctx, job.id)
    assert (done.status, done.error) == (JobStatus.FAILED, "pg_dump exited with status 1")


def test_jobs_cancel_from_elsewhere_reaches_the_running_body(ctx: Context) -> None:
    """The body waits on its token: only the lease thread, reading the catalog's flag,
    can end the wait. It reports progress, which the lease stores."""
    started = threading.Event()

    def body(c: Context) -> None:
        c.progress("dump", 4096, 8192)
        started.set()
        current = cancellation.current()
        assert current is not None
        assert current.wait(60), "never cancelled"
        c.progress("dump", 5000, 8192)  # the next progress report raises

    job = jobs.submit(ctx, BACKUP)
    outcome: list[BaseException] = []

    def runner() -> None:
        try:
            jobs.run(ctx, job.id, body)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=runner)
    thread.start()
    assert started.wait(60)
    assert jobs.cancel(ctx, job.id).cancel_requested
    thread.join(60)
    assert not thread.is_alive()
    assert isinstance(outcome[0], JobCancelled)
    done = jobs.get(ctx, job.id)
    assert (done.status, done.error) == (JobStatus.CANCELLED, "cancelled by request")
    assert (done.progress_done, done.progress_total) == (5000, 8192)  # the last report


def test_a_job_failed_by_another_process_stops_its_runner(ctx: Context) -> None:
    """Another process found the lease lapsed (say the catalog was out of reach for longer
    than a lease) and failed the job: its runner stops, and the failure stands. What the
    record's own heartbeat did before jobs, the job's lease does for every operation."""
    started = threading.Event()

    def body(c: Context) -> None:
        started.set()
        current = cancellation.current()
        assert current is not None
        assert current.wait(60), "never stopped"
        c.progress("dump", 1, None)  # the next progress report raises

    job = jobs.submit(ctx, BACKUP)
    outcome: list[BaseException] = []

    def runner() -> None:
        try:
            jobs.run(ctx, job.id, body)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=runner)
    thread.start()
    assert started.wait(60)
    with ctx.catalog.begin() as session:
        Jobs(session).finish(job.id, JobStatus.FAILED, error="the lease lapsed")
    thread.join(60)
    assert not thread.is_alive()
    assert isinstance(outcome[0], JobCancelled)
    assert "marked failed by another process" in str(outcome[0])
    done = jobs.get(ctx, job.id)
    assert (done.status, done.error) == (JobStatus.FAILED, "the lease lapsed")


def test_a_job_whose_lease_renewal_hangs_stops_before_its_lease_lapses(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partition that drops packets does not refuse: the renewal's call to the catalog
    hangs (for the minutes TCP takes to give up), and raises nothing meanwhile. The job
    must still stop once its lease has gone unrenewed for most of lease_seconds (3 s
    here), as when the catalog refuses, before others take it for lost and run it again."""
    started, hanging, release = threading.Event(), threading.Event(), threading.Event()
    renew = Jobs.renew

    def hung_renew(self: Jobs, job_id: int, **given: Any) -> object:
        if hanging.is_set():
            release.wait(120)
        return renew(self, job_id, **given)

    monkeypatch.setattr(Jobs, "renew", hung_renew)

    def body(c: Context) -> None:
        hanging.set()
        started.set()
        current = cancellation.current()
        assert current is not None
        try:
            assert current.wait(60), "never stopped"
        finally:
            release.set()
        current.check()

    job = jobs.submit(ctx, BACKUP)
    with pytest.raises(JobCancelled, match="could not be renewed"):
        jobs.run(ctx, job.id, body)
    assert started.is_set()


def test_a_second_backup_of_the_same_database_is_refused_and_recorded(ctx: Context) -> None:
    inner: list[BaseException] = []

    def body(c: Context) -> None:
        second = jobs.submit(c, BACKUP)
        with pytest.raises(JobConflict, match="a backup of erp is already running") as info:
            jobs.run(c, second.id, lambda _: None, on_conflict=JobStatus.SKIPPED)
        inner.append(info.value)
        assert jobs.get(c, second.id).status is JobStatus.SKIPPED

    first = jobs.submit(ctx, BACKUP)
    jobs.run(ctx, first.id, body)
    assert inner and jobs.get(ctx, first.id).status is JobStatus.COMPLETED


def test_ctrl_c_cancels_the_job(ctx: Context) -> None:
    def body(c: Context) -> None:
        raise KeyboardInterrupt

    job = jobs.submit(ctx, BACKUP)
    with pytest.raises(KeyboardInterrupt):
        jobs.run(ctx, job.id, body)
    done = jobs.get(ctx, job.id)
    assert (done.status, done.error) == (JobStatus.CANCELLED, "interrupted")


def test_a_cancelled_token_kills_registered_children_at_once() -> None:
    token = CancelToken()
    killed: list[str] = []
    with cancellation.cancellable(token):
        forget = cancellation.on_cancel(lambda: killed.append("pg_dump"))
        cancellation.on_cancel(lambda: killed.append("pg_restore"))
        forget()
        token.cancel("SIGTERM")
        with pytest.raises(JobCancelled, match="cancelled: SIGTERM"):
            cancellation.check()
        cancellation.on_cancel(lambda: killed.append("late"))  # runs at once
    assert killed == ["pg_restore", "late"]
    cancellation.check()  # outside the job: nothing to cancel


def test_parameters_left_unset_are_not_stored(ctx: Context) -> None:
    request = JobRequest(JobKind.BACKUP, "erp", TriggeredBy.CLI, "ana", {"type": None})
    assert jobs.submit(ctx, request).params == {}


def test_a_second_prune_waits_for_none_and_is_refused(ctx: Context) -> None:
    """Two prunes at once (the schedule of two servers, or one by hand during the nightly
    one), whatever their databases: they share garbage collection and WAL retention, so
    the second one would wait for the first's exclusive lock and then fail (a false
    'prune failed' alert). It is refused (a scheduled one skipped) at once instead; a dry
    run, which takes no lock, still runs."""
    inner: list[str] = []

    def body(c: Context) -> None:
        second = jobs.submit(c, JobRequest(JobKind.PRUNE, "crm", TriggeredBy.SCHEDULE, None))
        with pytest.raises(JobConflict, match="already running"):
            jobs.run(c, second.id, lambda _: None, on_conflict=JobStatus.SKIPPED)
        assert jobs.get(c, second.id).status is JobStatus.SKIPPED
        dry = jobs.submit(
            c, JobRequest(JobKind.PRUNE, None, TriggeredBy.CLI, "me", {"dry_run": True})
        )
        inner.append(jobs.run(c, dry.id, lambda _: "looked"))

    first = jobs.submit(ctx, JobRequest(JobKind.PRUNE, None, TriggeredBy.CLI, "me", {}))
    jobs.run(ctx, first.id, body)
    assert inner == ["looked"] and jobs.get(ctx, first.id).status is JobStatus.COMPLETED


def _failed_drill() -> DrillResult:
    checks = [Check("restore", True, ""), Check("row counts", False, "orders: 10 != 12")]
    return DrillResult(1, "20261128T083000Z-1a2b3c4d", "erp", False, 12.0, checks)


def _damaged_verify() -> VerifyResult:
    return verify_result(
        ["chunk 00ab: checksum mismatch [backup x object y]", "chunk 00cd: missing"],
        quarantined=2,
    )


@pytest.mark.parametrize(
    ("kind", "result", "error"),
    [
        (JobKind.DRILL, _failed_drill, "the restore test failed: row counts: orders: 10 != 12"),
        (
            JobKind.VERIFY,
            _damaged_verify,
            "verify found 2 problems: chunk 00ab: checksum mismatch [backup x object y]",
        ),
    ],
    ids=["drill", "verify"],
)
def test_a_job_whose_result_is_a_failure_ends_failed_not_completed(
    ctx: Context, kind: JobKind, result: Callable[[], object], error: str
) -> None:
    """A restore test whose check failed, a verify that found damage: the operation ran
    to its end and returned its result (the CLI prints it and exits 3), but the job did
    not succeed. Completed, it counted as the kind's last success in the metrics, sent a
    success notice and showed a green badge on the page."""
    job = jobs.submit(ctx, JobRequest(kind, "erp", TriggeredBy.SCHEDULE, "s"))
    returned = jobs.run(ctx, job.id, lambda _: result())
    assert returned is not None
    done = jobs.get(ctx, job.id)
    assert (done.status, done.error) == (JobStatus.FAILED, error)


def test_a_failed_result_of_a_cancelled_job_is_a_cancellation(ctx: Context) -> None:
    """Cancelling kills the child (pg_restore): a drill may then return "restore: killed
    by signal 9" as its failed result. The job was stopped, it found nothing."""
    job = jobs.submit(ctx, JobRequest(JobKind.DRILL, "erp", TriggeredBy.CLI, "ana"))
    token = CancelToken()

    def body(_: Context) -> DrillResult:
        token.cancel("cancelled by request")  # as the lease thread does
        return _failed_drill()

    jobs.run(ctx, job.id, body, token=token)
    done = jobs.get(ctx, job.id)
    assert (done.status, done.error) == (JobStatus.CANCELLED, "cancelled by request")


def _unfinished_prune() -> PruneReport:
    offsite = RepositoryPruneView(
        name="offsite",
        location="s3://b/p",
        manifests_deleted=0,
        error="the repository does not open",
        gc=None,
        wal=None,
        object_lock=None,
    )
    return PruneReport(
        dry_run=False,
        now=datetime(2026, 11, 28, tzinfo=UTC),
        decisions=[],
        deleted=[],
        repositories=[offsite],
        bytes_reclaimed=0,
        warnings=[],
    )


@pytest.mark.parametrize(
    ("kind", "result", "error"),
    [
        (JobKind.DRILL, _failed_drill, "the restore test failed: row counts: orders: 10 != 12"),
        (JobKind.PRUNE, _unfinished_prune, "prune could not finish in offsite: "),
    ],
    ids=["drill", "prune"],
)
def test_a_cli_job_whose_result_is_a_failure_is_audited_as_one(
    ctx: Context, kind: JobKind, result: Callable[[], object], error: str
) -> None:
    """The job ends failed (above): its audit entry said success all the same, where the
    same prune asked for from the API (a raised error) was audited as a failure."""
    request = JobRequest(kind, "erp", TriggeredBy.CLI, "ana")
    jobs.run_now(ctx, request, lambda _: result())
    (entry,) = audit.entries(ctx)
    assert entry.outcome is AuditOutcome.FAILURE
    assert error in (entry.detail or ""), entry.detail


def test_a_cancelled_cli_job_whose_result_failed_is_audited_as_the_cancellation(
    ctx: Context,
) -> None:
    """The job ends cancelled (above): its audit entry said the restore test found a
    failure ("row counts: ..."), a finding the job never made: it was stopped."""

    def body(_: Context) -> DrillResult:
        token = cancellation.current()
        assert token is not None
        token.cancel("cancelled by request")  # as the lease thread does
        return _failed_drill()

    jobs.run_now(ctx, JobRequest(JobKind.DRILL, "erp", TriggeredBy.CLI, "ana"), body)
    (entry,) = audit.entries(ctx)
    assert entry.outcome is AuditOutcome.FAILURE
    assert "cancelled by request" in (entry.detail or ""), entry.detail
    assert "row counts" not in (entry.detail or ""), entry.detail

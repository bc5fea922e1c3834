"""The SQLite lost-job sweep of ``respaldo serve`` (``Service.sweep``,
``reconcile.sweep_here``, ``Context.open(retry_lost=True)``) on a PostgreSQL catalog: it
leaves the retries to the queue. A lost job of the queue is failed once and retried once,
in the queue (for a worker to take), never also held and run by the service; a lost job
that ran outside the queue is failed and alerted, never retried by the service (no sweep
of a PostgreSQL service would ever run it); a job a live worker runs is left running.

The catalog is a database of the test cluster; each lost job runs in a real child process
(a real job, its body blocking) killed with SIGKILL. The retry of a lost API backup of
the queue takes a backup of its own, never the request's settled record.
"""

from __future__ import annotations

import json
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import sql
from sample.cluster import TempCluster

from respaldo.catalog import Deliveries
from respaldo.config import Settings
from respaldo.domain import BackupStatus, JobKind, JobStatus, TriggeredBy
from respaldo.operations import jobs, queue, reconcile
from respaldo.operations.context import Context
from respaldo.operations.jobs import JobInfo, JobRequest
from respaldo.operations.listing import show_backup
from respaldo.operations.repositories import init_repositories
from respaldo.operations.scheduled import run_queued
from respaldo.operations.verify import verify
from respaldo.repository import KdfParams
from respaldo.scheduling.service import Service
from tests.lost_jobs import API_CHILD, Runner, kill_once_started, retries_of
from tests.servers.notify import Webhook, mute, webhook  # noqa: F401
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

# The child: runs one job on the catalog of RESPALDO_CATALOG__URL, says its id, blocks.
# "queue": submitted to the queue and run as a worker runs it; "here": run outside it.
CHILD = """
import sys, threading
from respaldo.catalog import Deliveries
from respaldo.config import Settings
from respaldo.domain import JobKind, TriggeredBy
from respaldo.operations import jobs
from respaldo.operations.context import Context
from respaldo.operations.jobs import JobInfo, JobRequest

ctx = Context.open(Settings(cache_dir=sys.argv[1]))
request = JobRequest(JobKind(sys.argv[2]), "erp", TriggeredBy.SCHEDULE, "nightly", {"type": "full"})
job = jobs.submit(ctx, request, here=sys.argv[3] == "here")

def body(_):
    print(job.id, flush=True)
    threading.Event().wait()

jobs.run(ctx, job.id, body)
"""


@pytest.fixture
def catalog_url(pg: TempCluster) -> Iterator[str]:
    name = f"lost_{uuid.uuid4().hex[:10]}"
    pg.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    password = pg.password.get_secret_value()
    yield f"postgresql://{pg.superuser}:{password}@{pg.host}:{pg.port}/{name}"
    pg.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def ctx(catalog_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Context]:
    """The service's context, opened before the job is lost."""
    monkeypatch.setenv("RESPALDO_CATALOG__URL", catalog_url)  # the child's too
    with Context.open(Settings(cache_dir=tmp_path / "cache"), create=True) as opened:
        assert queue.has_queue(opened)
        yield opened


def lose_job(tmp_path: Path, kind: str, how: str) -> int:
    """Run a job of ``kind`` (in the queue, or ``here``) in a child process and kill it
    (-9) while it runs; the job's id."""
    job_id, _ = kill_once_started(
        [sys.executable, "-c", CHILD, str(tmp_path / "child-cache"), kind, how]
    )
    return job_id


def _deferred(ctx: Context, job_id: int) -> int:
    """How many times job ``job_id`` was put in procrastinate's queue."""
    with ctx.catalog.read() as session:
        rows = session.connection().exec_driver_sql(
            "SELECT count(*) FROM procrastinate_jobs WHERE (args->>'job_id')::int = %(id)s",
            {"id": job_id},
        )
        return int(rows.scalar_one())


def test_a_lost_job_of_the_queue_is_retried_once_in_the_queue_not_by_the_service(
    ctx: Context, tmp_path: Path
) -> None:
    lost = lose_job(tmp_path, "backup", "queue")
    runner = Runner()
    service = Service(ctx, [], runner=runner)
    assert service.sweep() == []  # nothing held here: the queue's workers retry it
    service.join_retries()
    assert reconcile.sweep_here(ctx) == []
    # Found once: a worker's sweep, and a service starting now, find nothing more.
    assert queue.recover(ctx) == []
    with Context.open(ctx.settings, retry_lost=True) as restarted:
        assert reconcile.sweep_here(restarted) == []
    failed = jobs.get(ctx, lost)
    assert failed.status is JobStatus.FAILED and "died while the job ran" in (failed.error or "")
    (retry,) = retries_of(ctx, lost)
    assert (retry.status, retry.queue_name, retry.worker_pid) == (
        JobStatus.QUEUED,
        "default",
        None,
    )
    assert _deferred(ctx, retry.id) == 1
    assert runner.ran == []


def test_with_every_worker_gone_the_services_own_sweep_fails_alerts_and_requeues_the_job(
    ctx: Context,
    tmp_path: Path,
    webhook: Webhook,  # noqa: F811
) -> None:
    # The only worker (another machine, or serve's own with run_jobs) died mid-backup and
    # stays down. Nobody swept: the job stayed running for ever, each later firing of its
    # schedule was skipped as overlapping (no job waited, so the queue item stayed green),
    # and nothing was told until the RPO lapsed a day later.
    hook = {"targets": [{"name": "hook", "url": webhook.url, "levels": ["critical"]}]}
    settings = Settings(cache_dir=tmp_path / "cache", notifications=hook)
    # The service's context, opened (and so swept) before the job is lost.
    with Context.open(settings) as serving:
        lost = lose_job(tmp_path, "backup", "queue")
        service = Service(serving, [], runner=Runner(), queued=True)
        service.start()
        try:
            wait_for("the lost job to fail", lambda: jobs.get(ctx, lost).status.is_final)
            # The sweep recorded its alert; the service's resend (its own run) sends it.
            (told,) = webhook.inbox.wait(1)
        finally:
            service.stop("test over")
    failed = jobs.get(ctx, lost)
    assert failed.status is JobStatus.FAILED and "died while the job ran" in (failed.error or "")
    (retry,) = retries_of(ctx, lost)
    assert (retry.status, retry.queue_name) == (JobStatus.QUEUED, "default")
    assert "CRITICAL" in told["json"]["title"], told


def test_the_queues_retry_of_a_lost_api_backup_takes_a_backup_of_its_own(
    ctx: Context, tmp_path: Path
) -> None:
    # The request's reserved record is settled with the lost job (failed with the
    # reason); the retry, run as a worker runs it, records a new backup that verifies.
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "a.txt").write_text("a\n")
    (tmp_path / "passphrase").write_text("lost jobs passphrase\n")
    (tmp_path / "passphrase").chmod(0o600)
    plain = {
        "cache_dir": str(tmp_path / "cache"),
        "repositories": [{"name": "local", "url": f"file://{tmp_path / 'repo'}"}],
        "passphrase_file": str(tmp_path / "passphrase"),
        "file_sets": [{"name": "docs", "paths": [str(tmp_path / "tree")]}],
    }
    settings = Settings(**plain)
    init_repositories(settings, KdfParams(1, 1024, 1))
    lost, pid = kill_once_started([sys.executable, "-c", API_CHILD, json.dumps(plain), "queue"])
    with Context.open(settings) as worker:  # opening the catalog sweeps: fails, retries
        reserved = jobs.get(worker, lost).result_id
        assert reserved is not None
        old = show_backup(worker, reserved)
        assert old.status is BackupStatus.FAILED
        assert f"process {pid} died" in (old.error_message or "")
        (retry,) = retries_of(worker, lost)
        assert retry.queue_name == "default" and "reserved" not in retry.params
        run_queued(worker, retry.id)
        done = jobs.get(worker, retry.id)
        assert done.status is JobStatus.COMPLETED and done.result_id not in (None, reserved)
        assert done.result_id is not None
        assert show_backup(worker, done.result_id).status is BackupStatus.COMPLETED
        checked = verify(worker, backup_ids=[done.result_id])
        assert checked.backups == 1 and checked.problems == []


def test_a_lost_job_outside_the_queue_is_failed_but_not_held_by_the_service(
    ctx: Context, tmp_path: Path
) -> None:
    # A schedule's job run in-process on a PostgreSQL catalog: the SQLite path would hold
    # a retry for this service, whose sweep never runs on PostgreSQL (it would wait,
    # queued, for ever).
    lost = lose_job(tmp_path, "backup", "here")
    assert jobs.get(ctx, lost).queue_name is None
    runner = Runner()
    service = Service(ctx, [], runner=runner)
    assert service.sweep() == []
    service.join_retries()
    with Context.open(ctx.settings, retry_lost=True) as restarted:
        assert reconcile.sweep_here(restarted) == []
    assert jobs.get(ctx, lost).status is JobStatus.FAILED
    assert retries_of(ctx, lost) == [] and runner.ran == []


def test_the_sweep_leaves_a_job_a_live_worker_runs(ctx: Context) -> None:
    job = jobs.submit(
        ctx, JobRequest(JobKind.BACKUP, "erp", TriggeredBy.SCHEDULE, "nightly", {"type": "full"})
    )
    assert job.queue_name == "default"
    seen: list[list[int]] = []

    def body(_: Context) -> None:
        # Inside the job (its lease fresh, its process alive), as a worker runs it.
        seen.append(reconcile.sweep_here(ctx))
        seen.append(Service(ctx, [], runner=Runner()).sweep())
        assert jobs.get(ctx, job.id).status is JobStatus.RUNNING

    jobs.run(ctx, job.id, body)
    assert seen == [[], []]
    assert jobs.get(ctx, job.id).status is JobStatus.COMPLETED
    assert retries_of(ctx, job.id) == []


def _scheduled_verify_whose_entry_ended(ctx: Context, end_entry: str) -> JobInfo:
    """A scheduled verify, queued, whose queue entry ``end_entry`` (an UPDATE or DELETE
    of procrastinate_jobs, without its WHERE) ended before a worker ran it."""
    request = JobRequest(JobKind.VERIFY, None, TriggeredBy.SCHEDULE, "verify", {"slices": 7})
    dropped = queue.submit_scheduled(ctx, request, None)
    assert dropped is not None
    with ctx.catalog.begin() as session:
        session.connection().exec_driver_sql(
            end_entry + " WHERE (args->>'job_id')::int = %(id)s",
            {"id": dropped.id},
        )
    return dropped


@pytest.mark.parametrize(
    "end_entry",
    [
        "UPDATE procrastinate_jobs SET status = 'failed'",
        # Workers delete the entries of the tasks that ended.
        "DELETE FROM procrastinate_jobs",
    ],
)
def test_a_queued_job_whose_queue_entry_failed_is_failed_retried_and_frees_its_schedule(
    ctx: Context, end_entry: str
) -> None:
    # A worker took the job's queue entry and its task failed before the job started
    # (the catalog did not answer it at that moment; a worker of an older version that
    # cannot read the job): procrastinate marks the entry failed and never runs it again,
    # while the job says queued. Left so, it would stay queued for ever, and every later
    # firing of its schedule would be skipped ("the previous run still runs").
    dropped = _scheduled_verify_whose_entry_ended(ctx, end_entry)
    failed = queue.recover(ctx)
    assert failed == [dropped.id]
    ended = jobs.get(ctx, dropped.id)
    assert ended.status is JobStatus.FAILED
    assert ended.error is not None and "queue" in ended.error, ended.error
    (retry,) = retries_of(ctx, dropped.id)
    assert retry.status is JobStatus.QUEUED and _deferred(ctx, retry.id) == 1
    assert queue.recover(ctx) == []  # once


def test_a_workers_sweep_records_the_alert_of_a_job_it_fails_and_its_resend_sends_it(
    ctx: Context,
    tmp_path: Path,
    webhook: Webhook,  # noqa: F811
    mute: socket.socket,  # noqa: F811
) -> None:
    # A job whose queue entry ended (the cheapest job a sweep fails: no process to kill),
    # with a notification target that takes the connection and never answers. Before,
    # the worker's sweep sent the alert itself and waited [notifications]
    # timeout_seconds on that target, every lost job found later that much later.
    dropped = _scheduled_verify_whose_entry_ended(ctx, "DELETE FROM procrastinate_jobs")
    hanging = f"json://127.0.0.1:{mute.getsockname()[1]}/"
    targets = [{"name": "hook", "url": webhook.url}, {"name": "mute", "url": hanging}]
    settings = Settings(cache_dir=tmp_path / "cache", notifications={"targets": targets})
    with Context.open(settings) as worker:
        assert queue.recover(worker) == [dropped.id]
        with worker.catalog.read() as session:
            pending = [(d.target, d.attempts) for d in Deliveries(session).pending()]
        assert pending == [("hook", 0), ("mute", 0)]  # recorded; no target tried
        assert webhook.inbox.items == []
        # The worker's resend (a task of its own, at its start and every lease renewal
        # period) sends it; the mute target, gone now, refuses at once.
        mute.close()
        running = queue.WorkerThread(worker, queue.WorkerOptions(queues=["none"]))
        running.start()
        try:
            (alert,) = webhook.inbox.wait(1)
        finally:
            running.stop()
        with worker.catalog.read() as session:
            pending = [(d.target, d.attempts) for d in Deliveries(session).pending()]
    assert alert["json"]["title"] == "[respaldo] CRITICAL: verify failed", alert
    assert pending == [("mute", 1)]  # refused: tried again after its backoff


def test_a_job_cancelled_after_its_process_died_ends_cancelled_and_is_not_run_again(
    ctx: Context, tmp_path: Path
) -> None:
    # Someone cancels a job whose worker has died (nobody is left to see the request):
    # the sweep must honour the request, not fail the job as lost and queue it again.
    lost = lose_job(tmp_path, "backup", "queue")
    asked = jobs.cancel(ctx, lost)
    assert asked.cancel_requested
    assert queue.recover(ctx) == [lost]
    ended = jobs.get(ctx, lost)
    assert ended.status is JobStatus.CANCELLED, ended
    assert ended.error is not None and "cancel" in ended.error
    assert retries_of(ctx, lost) == []

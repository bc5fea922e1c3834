"""A worker whose procrastinate loop stopped taking jobs on its own is shown stopping.

procrastinate's loop ends when fetching the next job fails: here because the worker's
row in ``procrastinate_workers`` is gone, as another worker's start prunes it once this
one's procrastinate heartbeat stopped (it stops for good at its first failure, a catalog
outage longer than the pool's 30 s wait). procrastinate then takes no new job but waits
for the one running; ``respaldo workers`` and the status must not count on the worker
meanwhile, and the worker exits with the queue's error once the job ended.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from respaldo.domain import JobKind, JobStatus, TriggeredBy
from respaldo.errors import CatalogUnavailable
from respaldo.operations import jobs, queue, scheduled
from respaldo.operations.context import Context
from tests.integration.api.conftest import CatalogRole
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def ctx(catalog_role: CatalogRole, tmp_path: Path) -> Iterator[Context]:
    with catalog_role.context(tmp_path, jobs={"lease_seconds": 4.0}) as context:
        yield context


def stopping(ctx: Context) -> bool:
    (worker,) = queue.list_workers(ctx)
    return worker.stopping


def workers_table(catalog_role: CatalogRole, tmp_path: Path) -> str:
    """What ``respaldo workers`` prints, from a process of its own."""
    config = tmp_path / "workers.toml"
    config.write_text(f'cache_dir = "{tmp_path / "cli-cache"}"\n')
    argv = [sys.executable, "-m", "respaldo.cli.main", "--config", str(config), "workers"]
    env = {**os.environ, "RESPALDO_CATALOG__URL": catalog_role.url}
    shown = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=240)
    assert shown.returncode == 0, shown.stderr
    return shown.stdout


def test_a_worker_whose_queue_failed_is_stopping_while_its_job_ends(
    ctx: Context, catalog_role: CatalogRole, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The first job runs in the worker, its verify held until the test lets it go.
    held, release = threading.Event(), threading.Event()
    verify_slice = scheduled.verify_slice

    def holding(context: Context, slices: int, **options: Any) -> Any:
        held.set()
        release.wait()
        return verify_slice(context, slices, **options)

    monkeypatch.setattr(scheduled, "verify_slice", holding)
    outcome: list[BaseException] = []

    def work() -> None:
        options = queue.WorkerOptions(name="w", concurrency=2, install_signal_handlers=False)
        try:
            queue.run_worker(ctx, options)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    try:
        first = jobs.submit(ctx, jobs.JobRequest(JobKind.VERIFY, None, TriggeredBy.CLI, "ana"))
        assert held.wait(120), "the worker never took the first job"
        # What procrastinate does at another worker's start to a worker whose
        # procrastinate heartbeat is older than the lease (here: at once).
        with catalog_role.pg.connect(catalog_role.name) as conn:
            conn.execute("SELECT procrastinate_prune_stalled_workers_v1(0)")
        second = jobs.submit(ctx, jobs.JobRequest(JobKind.VERIFY, None, TriggeredBy.CLI, "bob"))
        # Its next fetch (the second job) fails: no new job, the first one still runs.
        # Before, the worker was listed as taking jobs until it exited.
        wait_for("the worker to be shown stopping", lambda: stopping(ctx))
        table = workers_table(catalog_role, tmp_path)
        (row,) = [line for line in table.splitlines() if " w " in line]
        assert "stopping" in row, row
        assert jobs.get(ctx, first.id).status is JobStatus.RUNNING
        assert jobs.get(ctx, second.id).status is JobStatus.QUEUED
    finally:
        release.set()
        worker.join()
    (error,) = outcome
    assert isinstance(error, CatalogUnavailable), repr(error)
    assert "the worker lost the catalog's queue" in error.message, error.message
    assert "procrastinate_jobs_worker_id_fkey" in error.message, error.message
    assert jobs.get(ctx, first.id).status.is_final  # let end, not lost
    assert queue.list_workers(ctx) == []

"""Leases on a PostgreSQL catalog are written and judged by its server's clock, so the
machines that share it need not agree on the time.

Real processes whose wall clocks are set an hour apart from this one's by libfaketime
(Debian's ``faketime``; their monotonic clocks are left alone): a job run by a process
whose clock runs behind is not taken for lost, neither by a process whose clock is right
nor by one whose clock runs ahead; a worker whose clock runs behind is listed as alive
and not pruned; and a process that died on another machine (a UTS namespace with a host
name of its own, so that its pid cannot be checked from here) still has its job failed
once its lease lapses, by a process whose clock runs an hour behind, which by its own
clock would not see the lease lapse for an hour.

The catalog is a database of the test cluster (its URL, with the password, in
RESPALDO_CATALOG__URL, inherited by every process). Everything waits on what the catalog
shows, with a generous deadline; nothing sleeps.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from psycopg import sql
from sample.cluster import TempCluster

from respaldo.catalog import open_catalog
from respaldo.config import Settings
from respaldo.domain import JobStatus
from respaldo.operations import jobs, queue
from respaldo.operations.context import Context
from tests.faketime import faketime_env
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

HOUR = 3600
"""How far the skewed processes' clocks are set from this one's: far beyond any lease."""

# The child: opens the catalog of RESPALDO_CATALOG__URL, starts a job outside the queue,
# renews its lease once the way the lease's thread does (so that a renewal, not only the
# start, was written by this process), then says the job's id and its own clock, and
# blocks. argv[2]: a host name to run under (another machine), or "" for this one.
RUNNER = """
import ctypes, json, socket, sys, threading
from datetime import UTC, datetime

if sys.argv[2]:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x04000000) != 0:  # CLONE_NEWUTS: a host name of its own
        sys.exit(f"cannot play another machine: unshare(CLONE_NEWUTS) errno {ctypes.get_errno()}")
    socket.sethostname(sys.argv[2])

from respaldo.catalog import Jobs
from respaldo.config import Settings
from respaldo.domain import JobKind, TriggeredBy
from respaldo.operations import jobs
from respaldo.operations.context import Context
from respaldo.operations.jobs import JobRequest

ctx = Context.open(Settings(cache_dir=sys.argv[1]))
request = JobRequest(JobKind.BACKUP, "erp", TriggeredBy.SCHEDULE, "nightly", {"type": "full"})
job = jobs.submit(ctx, request, here=True)

def body(_):
    with ctx.catalog.begin() as session:
        Jobs(session).renew(job.id)
    print(json.dumps({"job": job.id, "clock": datetime.now(UTC).isoformat()}), flush=True)
    threading.Event().wait()

jobs.run(ctx, job.id, body)
"""


def skewed(seconds: int) -> dict[str, str]:
    """The environment of a process whose wall clock is ``seconds`` off this one's
    (negative: behind)."""
    return faketime_env(FAKETIME=f"{seconds:+d}")


def respaldo(*args: str) -> list[str]:
    return [sys.executable, "-m", "respaldo.cli.main", *args]


@dataclass
class Running:
    """A job run by a child process, and what the child said of its clock."""

    process: subprocess.Popen[str]
    job_id: int
    clock: datetime


@pytest.fixture
def catalog_url(pg: TempCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    name = f"clock_{uuid.uuid4().hex[:10]}"
    pg.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    password = pg.password.get_secret_value()
    url = f"postgresql://{pg.superuser}:{password}@{pg.host}:{pg.port}/{name}"
    monkeypatch.setenv("RESPALDO_CATALOG__URL", url)  # every child's too
    config = tmp_path / "respaldo.toml"  # the commands' (the catalog is the environment's)
    config.write_text(f'cache_dir = "{tmp_path / "cli-cache"}"\n')
    monkeypatch.setenv("RESPALDO_CONFIG", str(config))
    # libfaketime fakes the monotonic clock too unless told not to: the lease's own
    # timing (its renewal period, the fence) stays on a clock no machine sets.
    monkeypatch.setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1")
    open_catalog(url, create=True).close()
    yield url
    pg.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for child in started:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.communicate()


def run_job(
    children: list[subprocess.Popen[str]], tmp_path: Path, env: dict[str, str], host: str
) -> Running:
    """Start RUNNER in ``env`` (a skewed clock, say) and wait for its job."""
    argv = [sys.executable, "-c", RUNNER, str(tmp_path / "child-cache"), host]
    child = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    children.append(child)
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line, f"the child said nothing: {child.communicate()}"
    said = json.loads(line)
    return Running(child, int(said["job"]), datetime.fromisoformat(said["clock"]))


def shown(job_id: int, env: dict[str, str]) -> jobs.JobInfo:
    """Run ``respaldo jobs show ID --json`` in ``env`` (it opens the catalog, which
    sweeps the lapsed jobs first) and read the job it printed."""
    argv = respaldo("jobs", "show", str(job_id), "--json")
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    assert done.returncode == 0, done.stderr
    return jobs.JobInfo.model_validate_json(done.stdout)


def test_a_job_run_by_a_machine_whose_clock_runs_behind_is_not_taken_for_lost(
    catalog_url: str, tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    running = run_job(children, tmp_path, skewed(-HOUR), host="")
    # The premise: the runner's clock is an hour behind, far beyond the lease (120 s).
    assert datetime.now(UTC) - running.clock > timedelta(minutes=50)
    settings = Settings(cache_dir=tmp_path / "cache")
    with Context.open(settings) as ctx:  # opening the catalog sweeps: fails nothing
        assert queue.recover(ctx) == []  # a worker's sweep, on a clock that is right
        job = jobs.get(ctx, running.job_id)
        assert (job.status, job.error) == (JobStatus.RUNNING, None)
        # Its times are the catalog's: within seconds of this (right) clock, not an hour.
        assert job.heartbeat_at is not None
        assert abs(job.heartbeat_at - datetime.now(UTC)) < timedelta(minutes=10)
    # A command on a machine whose clock runs an hour ahead opens the catalog too.
    ahead = shown(running.job_id, skewed(HOUR))
    assert (ahead.status, ahead.error) == (JobStatus.RUNNING, None)
    assert running.process.poll() is None  # never told it was marked failed: still runs


def test_a_worker_whose_clock_runs_behind_is_alive_and_not_pruned(
    catalog_url: str, tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    worker = subprocess.Popen(
        respaldo("worker", "--name", "behind"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=skewed(-HOUR),
    )
    children.append(worker)
    settings = Settings(cache_dir=tmp_path / "cache")
    with Context.open(settings) as ctx:

        def beaten() -> bool:
            # A heartbeat after the registration: the skewed process renewed it too, and
            # its handler of SIGTERM (set up between the two) is in place.
            assert worker.poll() is None, worker.communicate()
            with ctx.catalog.read() as session:
                found = session.connection().exec_driver_sql(
                    "SELECT count(*) FROM workers WHERE heartbeat_at > started_at"
                )
                return int(found.scalar_one()) == 1

        wait_for("the worker to renew its heartbeat", beaten)
        queue.recover(ctx)  # prunes the workers silent for longer than the lease
        # The workers of the earlier tests, killed, are listed lost for a day.
        assert [w.name for w in queue.list_workers(ctx) if w.state != "lost"] == ["behind"]
        # This process's clock agrees with the server's: nothing to say.
        offset = queue.warn_clock_offset(ctx)
        assert offset is not None and abs(offset) < 60
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate()
    assert worker.returncode == 0, stderr
    # The worker says its clock is off: the repository's locks still depend on it.
    assert re.search(
        r"this machine's clock is 3[56]\d\d s behind the catalog server's: job leases do "
        r"not mind",
        stderr,
    ), stderr


def test_a_dead_machines_lease_still_lapses_for_a_judge_whose_clock_runs_behind(
    catalog_url: str,
    tmp_path: Path,
    children: list[subprocess.Popen[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RESPALDO_JOBS__LEASE_SECONDS", "2")
    running = run_job(children, tmp_path, dict(os.environ), host="elsewhere")
    os.kill(running.process.pid, signal.SIGKILL)
    running.process.wait()
    # By its own clock, an hour behind, the judge would see the lease renewed an hour in
    # the future; by the catalog's, it lapses two seconds after the last renewal.
    judge = skewed(-HOUR)
    seen: list[jobs.JobInfo] = []

    def failed() -> bool:
        seen.append(shown(running.job_id, judge))
        return seen[-1].status is JobStatus.FAILED

    wait_for("the dead machine's job to be failed", failed)
    error = seen[-1].error or ""
    assert error.startswith(
        f"the lease of process {running.process.pid} on elsewhere lapsed: no sign of life since "
    ), error
    assert "by the catalog's clock; the lease is 2 s)" in error

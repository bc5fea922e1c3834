"""A step of the machine's clock does not fail a live job as lost (SQLite catalog).

On SQLite the catalog's clock is this machine's. Stepped ahead by an hour (an NTP
correction, a VM resumed from a snapshot), every running job's last lease renewal looked
an hour old until its runner's next renewal, a renewal period later: a command opening
the catalog in between (or ``serve``'s sweep, every 2 s) failed the live job as lost,
its runner was told so and stopped (a backup cut off, a critical alert, a retry).

Real processes: a child runs a job outside any service and renews its lease on this
machine's clock; ``respaldo jobs show`` runs with its wall clock an hour ahead
(libfaketime; monotonic clocks left alone), as the same machine's after a step, before
the runner renewed again (it always is, for the skewed process). Nothing sleeps: the
child's job ends when the test says so on its stdin.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from respaldo.config import load_settings
from respaldo.domain import JobStatus
from respaldo.operations import jobs
from respaldo.operations.context import Context
from tests.configs import local_config
from tests.faketime import faketime_env

pytestmark = pytest.mark.integration

# The child: starts a job outside the queue (its lease renewed by jobs.run's own thread,
# on this machine's clock), says its id, runs until a line comes on stdin, then says how
# the run ended: "completed", or what was raised (told the job was failed meanwhile).
RUNNER = """
import json, sys
from respaldo.config import load_settings
from respaldo.domain import JobKind, TriggeredBy
from respaldo.operations import jobs
from respaldo.operations.context import Context
from respaldo.operations.jobs import JobRequest

ctx = Context.open(load_settings(sys.argv[1]))
request = JobRequest(JobKind.BACKUP, "erp", TriggeredBy.SCHEDULE, "full:erp", {"type": "full"})
job = jobs.submit(ctx, request, here=True)

def body(_):
    print(json.dumps({"job": job.id}), flush=True)
    sys.stdin.readline()

try:
    jobs.run(ctx, job.id, body)
except BaseException as exc:
    print(json.dumps({"ended": f"{type(exc).__name__}: {exc}"}), flush=True)
else:
    print(json.dumps({"ended": "completed"}), flush=True)
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = local_config(tmp_path, repository=False)
    Context.open(load_settings(path), create=True).close()
    return path


@pytest.fixture
def runner(config: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    child = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line, f"the child said nothing: {child.communicate()}"
    yield child, int(json.loads(line)["job"])
    if child.poll() is None:
        os.kill(child.pid, signal.SIGCONT)
        os.kill(child.pid, signal.SIGKILL)
    child.communicate()


def respaldo(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "respaldo.cli.main", "--config", str(config), *args]


def shown_an_hour_ahead(config: Path, job_id: int, **env_settings: str) -> jobs.JobInfo:
    """``respaldo jobs show ID --json`` on a clock an hour ahead of the runner's: it
    opens the catalog, which sweeps the lapsed jobs first. ``env_settings`` (settings by
    environment variable) apply to that command alone."""
    env = faketime_env(FAKETIME="+3600", FAKETIME_DONT_FAKE_MONOTONIC="1", **env_settings)
    argv = respaldo(config, "jobs", "show", str(job_id), "--json")
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    assert done.returncode == 0, done.stderr
    return jobs.JobInfo.model_validate_json(done.stdout)


def test_a_clock_stepped_an_hour_ahead_does_not_fail_a_live_job(
    config: Path, runner: tuple[subprocess.Popen[str], int]
) -> None:
    child, job_id = runner
    seen = shown_an_hour_ahead(config, job_id)
    assert (seen.status, seen.error) == (JobStatus.RUNNING, None)
    # The runner was never told otherwise: its job ends as it would have.
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write("go\n")
    child.stdin.flush()
    assert json.loads(child.stdout.readline()) == {"ended": "completed"}


def test_a_runner_that_stopped_renewing_is_still_failed_on_a_clock_stepped_ahead(
    config: Path, runner: tuple[subprocess.Popen[str], int]
) -> None:
    # Alive (its pid answers) but silent: stopped, as a hung process. Only its lease
    # tells, and the second look finds it as silent as the first.
    child, job_id = runner
    os.kill(child.pid, signal.SIGSTOP)
    # The command that judges waits five of its own renewal periods before its second
    # look (reconcile.CONFIRM_RENEWALS): 10 s at the default lease (120 s), spent for
    # nothing on a runner that cannot renew. With a lease of 1 s it waits 0.5 s, and the
    # hour's step still puts the last renewal far beyond it.
    seen = shown_an_hour_ahead(config, job_id, RESPALDO_JOBS__LEASE_SECONDS="1")
    assert seen.status is JobStatus.FAILED
    assert seen.error is not None and "lease" in seen.error and "lapsed" in seen.error

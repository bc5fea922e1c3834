"""A real ``respaldo serve`` whose machine clock is stepped back an hour while it runs (an
NTP correction, a VM resumed from a snapshot) goes on sweeping for lost jobs (and running
its watchdog) within a stall monitor's look, not an hour later.

APScheduler plans the service's periodic checks on the wall clock: stepped back, their
next run was still the old time, an hour ahead, and for that hour a job whose process
died stayed ``running`` (its backup record too, each later firing of its schedule
skipped as overlapping) and no RPO alert went out.

serve's wall clock comes from libfaketime reading a file the test rewrites (its monotonic
clock left alone, as a step leaves it); the lost job is made by a real process that dies
while running it. The catalog is read directly (opening a context would sweep it).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from respaldo.catalog import Jobs, open_catalog
from respaldo.config import load_settings
from respaldo.domain import JobStatus
from respaldo.operations.initialize import initialize
from tests.configs import local_config
from tests.faketime import stepped_clock
from tests.integration.logical.conftest import FAST_KDF
from tests.integration.logical.test_serve import listening_port
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

# A process that starts a job outside the service and dies while it runs (no cleanup:
# os._exit), printing the job's id first.
DIES = """
import os, sys
from respaldo.config import load_settings
from respaldo.domain import JobKind, TriggeredBy
from respaldo.operations import jobs
from respaldo.operations.context import Context
from respaldo.operations.jobs import JobRequest

ctx = Context.open(load_settings(sys.argv[1]))
job = jobs.submit(ctx, JobRequest(JobKind.VERIFY, None, TriggeredBy.CLI, "ana", {}), here=True)

def body(_):
    print(job.id, flush=True)
    os._exit(9)

jobs.run(ctx, job.id, body)
"""


def test_serve_sweeps_a_lost_job_and_runs_its_schedule_soon_after_its_clock_went_back(
    tmp_path: Path,
) -> None:
    """One serve, one step of an hour back, two things that must go on within a look of
    the stall monitor, not an hour later: the sweep for lost jobs (a job whose process
    died while running it is failed) and a cron schedule (replanned from the new time).

    The schedule, as the default */5 wal_copy: its next run stayed planned at the old
    time, and for the hour the clock went back it did not run (past [rpo]
    wal_copy_minutes). Here a restore test every minute, which fails at once (no backup
    to test) and is recorded with its fire time. One serve for both: it starts once, and
    the sweep is looked at while the minute of the stepped clock passes."""
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("clock step passphrase\n")
    passphrase.chmod(0o600)
    config = local_config(
        tmp_path,
        """
[[databases]]
name = "erp"
dsn = "postgresql://respaldo@127.0.0.1:1/erp"

[schedules]
time_zone = "Europe/Madrid"
full = "off"
restore_test = "* * * * *"
cleanup = "off"
verify = "off"

[rpo]
# The stall monitor looks every quarter of this (3 s): a check that ran this long would
# only be told stuck, which this test does not look at.
watchdog_stuck_minutes = 0.2

[server]
listen = "127.0.0.1:0"
""",
        settings=f'passphrase_file = "{passphrase}"',
    )
    initialize(load_settings(config), kdf=FAST_KDF)
    clock, env = stepped_clock(tmp_path)
    argv = [sys.executable, "-m", "respaldo.cli.main", "--config", str(config), "serve"]
    serve = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    said: list[str] = []
    try:
        listening_port(serve)
        assert serve.stderr is not None
        drain = threading.Thread(target=lambda: said.extend(serve.stderr or []), daemon=True)
        drain.start()
        started = datetime.now(UTC)
        # The step: an hour back, less what puts the stepped clock at 50 s past a minute.
        # The monitor replans the every-minute schedule at its next look (3 s), and the
        # run is due 10 s after the step instead of at whatever was left of the minute
        # (30 s on average, a minute at worst). A look later than that on a loaded
        # machine costs one minute more, as before; it never fails the test.
        clock.write_text(f"{-3600 + round(50 - time.time()) % 60}\n")
        dead = subprocess.run(
            [sys.executable, "-c", DIES, str(config)], capture_output=True, text=True
        )
        assert dead.returncode == 9, dead.stderr
        job_id = int(dead.stdout.split()[0])
        catalog = open_catalog(load_settings(config).catalog.url)
        try:

            def status() -> JobStatus:
                assert serve.poll() is None, "".join(said)
                with catalog.read() as session:
                    return Jobs(session).get(job_id).status

            # No premise that it still runs here: the monitor realigns the sweep within
            # 3 s of the step and it sweeps every 2 s from then on, while this process
            # takes seconds to start and die on a loaded machine (seen: swept already
            # when read 2.5 s after its death). The log line at the end says who swept.
            # Swept every 2 s before the step; after it, within a look of the monitor.
            # Without the realignment it stays running for the hour the clock went back.
            wait_for("serve to sweep the lost job", lambda: status() is JobStatus.FAILED)

            def fired_after_the_step() -> bool:
                assert serve.poll() is None, "".join(said)
                with catalog.read() as session:
                    found = Jobs(session).list(limit=50, requested_by="restore_test:erp")
                return any(
                    job.scheduled_for is not None
                    and job.scheduled_for < started - timedelta(minutes=30)
                    for job in found
                )

            # A minute of the new clock at most, and a look of the monitor. Without the
            # replanning, no run until the clock is back at the old time.
            wait_for("a run at a time of the stepped-back clock", fired_after_the_step)
        finally:
            catalog.close()
    finally:
        serve.terminate()
        serve.wait()
    drain.join()
    assert any("the clock went back" in line for line in said), "".join(said)

"""``respaldo schedule`` in the second pass of a fall-back's repeated hour lists the runs
the service will make: not a wall time that already ran in the first pass.

Madrid, 25 October 2026: 02:00-03:00 happens twice (CEST, then CET). A ``30 2 * * *``
backup runs once, at 02:30 CEST (00:30 UTC); the service, going on from that run, next
runs it on the 26th. At 02:15 CET (01:15 UTC) the listing said "2026-10-25 02:30 CET"
as next, a run that never came.

Real processes on a real SQLite catalog, their clocks set by libfaketime: one records
the schedule's run as the service does (its fire time, at 02:30 CEST), then the command
lists at 02:15 CET.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from respaldo.config import load_settings
from respaldo.operations.initialize import initialize
from tests.configs import local_config
from tests.faketime import faketime_env
from tests.integration.logical.conftest import FAST_KDF

pytestmark = pytest.mark.integration

# Records a job of schedule argv[2] fired for argv[3] (ISO), as the service records one.
FIRED = """
import sys
from datetime import datetime
from respaldo.config import load_settings
from respaldo.domain import JobKind, TriggeredBy
from respaldo.operations import jobs
from respaldo.operations.context import Context
from respaldo.operations.jobs import JobRequest

with Context.open(load_settings(sys.argv[1])) as ctx:
    request = JobRequest(JobKind.BACKUP, "erp", TriggeredBy.SCHEDULE, sys.argv[2], {"type": "full"})
    jobs.submit(ctx, request, scheduled_for=datetime.fromisoformat(sys.argv[3]), here=True)
"""


def at(when: str) -> dict[str, str]:
    """The environment of a process whose clock says ``when`` (UTC), and goes on."""
    return faketime_env(FAKETIME=f"@{when}", TZ="UTC")


def test_the_listing_in_the_second_pass_skips_the_wall_time_run_in_the_first(
    tmp_path: Path,
) -> None:
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("repeated hour passphrase\n")
    passphrase.chmod(0o600)
    config = local_config(
        tmp_path,
        """
[[databases]]
name = "erp"
dsn = "postgresql://respaldo@127.0.0.1:1/erp"

[schedules]
time_zone = "Europe/Madrid"
full = "30 2 * * *"
""",
        settings=f'passphrase_file = "{passphrase}"',
    )
    initialize(load_settings(config), kdf=FAST_KDF)
    fired = [sys.executable, "-c", FIRED, str(config), "full:erp", "2026-10-25T00:30:00+00:00"]
    done = subprocess.run(
        fired, capture_output=True, text=True, check=False, env=at("2026-10-25 00:30:01")
    )
    assert done.returncode == 0, done.stderr
    argv = [sys.executable, "-m", "respaldo.cli.main", "--config", str(config)]
    listed = subprocess.run(
        [*argv, "schedule", "--json"],
        capture_output=True,
        text=True,
        check=False,
        env=at("2026-10-25 01:15:00"),  # 02:15 CET, the second pass
    )
    assert listed.returncode == 0, listed.stderr
    (full,) = [e for e in json.loads(listed.stdout) if e["name"] == "full:erp"]
    runs = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in full["nextRuns"]]
    # 02:30 CET on the 26th, then the 27th: not 02:30 CET on the 25th (01:30 UTC).
    assert runs[:2] == [
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),
        datetime(2026, 10, 27, 1, 30, tzinfo=UTC),
    ], full

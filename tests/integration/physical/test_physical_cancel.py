"""``respaldo jobs cancel`` of a physical backup while pg_basebackup streams: the child is
killed, nothing of the backup stays (no manifest, no record in progress, no replication
slot, no base backup running on the server), the job says ``cancelled``.

pg_basebackup is stopped (SIGSTOP) once a few megabytes have passed
(``stalled_basebackup.py``): respaldo then waits in a read of its pipe, mid-stream, and
only the cancellation can end the wait.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import pytest

from respaldo.operations.repositories import open_repository
from tests.integration.physical.conftest import Archiving

pytestmark = pytest.mark.integration

STALLED = Path(__file__).with_name("stalled_basebackup.py")
LIMIT = 4 * 1024 * 1024


def _wait_for(what: str, check: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _jobs(archiving: Archiving) -> list[dict[str, Any]]:
    run = archiving.run("jobs", "--json")
    assert run.code == 0, str(run)
    found: list[dict[str, Any]] = run.json()
    return found


def test_jobs_cancel_stops_a_streaming_physical_backup(archiving: Archiving) -> None:
    before = {r["id"] for r in archiving.run("list", "--json").json()}
    argv = [sys.executable, str(STALLED), str(LIMIT), "--config", str(archiving.config)]
    child = subprocess.Popen(
        [*argv, "backup", "erp", "--type", "incremental"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.startswith("stalled "), (line, child.communicate())
        pg_basebackup = psutil.Process(int(line.split()[1]))
        assert pg_basebackup.name() == "pg_basebackup"
        # The signal is sent; the program stops the next time the kernel schedules it.
        _wait_for("pg_basebackup to stop", lambda: pg_basebackup.status() == psutil.STATUS_STOPPED)
        job = _jobs(archiving)[0]
        assert (job["kind"], job["status"]) == ("backup", "running")
        run = archiving.run("jobs", "cancel", str(job["id"]))
        assert run.code == 0, str(run)
        _, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 1, err
    assert "cancelled" in err
    # Killed (a stopped process dies of SIGKILL only), and reaped by respaldo.
    assert not pg_basebackup.is_running()

    (job,) = [j for j in _jobs(archiving) if j["id"] == job["id"]]
    assert (job["status"], job["error"]) == ("cancelled", "cancelled by request")
    listed = archiving.run("list", "--json").json()
    (record,) = [r for r in listed if r["id"] not in before]
    assert job["resultId"] == record["id"]
    assert record["status"] == "failed"  # a backup's statuses have no "cancelled"
    assert record["errorMessage"] == "cancelled: cancelled by request"
    assert record["manifest"] is None
    repo = open_repository(archiving.settings())
    try:
        assert record["id"] not in repo.backup_ids()  # no manifest: no backup
    finally:
        repo.close()
    assert not [r for r in listed if r["status"] in ("pending", "in_progress")]
    # Nothing left on the server: the WAL reservation and the base backup ended with it.
    pg = archiving.pg
    _wait_for(
        "the server to end the cancelled base backup",
        lambda: not pg.scalar("SELECT count(*) FROM pg_catalog.pg_stat_progress_basebackup"),
    )
    assert not pg.scalar(
        "SELECT count(*) FROM pg_catalog.pg_replication_slots WHERE slot_name LIKE 'respaldo%'"
    )

    # The next physical backup is whole.
    assert archiving.backup()["status"] == "completed"

"""A physical restore killed half-way leaves a directory PostgreSQL refuses to start, and
the next restore into it removes what was left and finishes.

The restore reads its backup from a repository that stalls after a few megabytes
(``tests/integration/stalled_restore.py``): the data directory is then half-written
when the process is killed with SIGKILL.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.integration.physical.conftest import OS_USER, Archiving, chown_tree
from tests.integration.stalled_restore import kill_stalled_restore

pytestmark = pytest.mark.integration

MARKER = "respaldo-restore-incomplete"


def _as_server(argv: list[str]) -> list[str]:
    return ["runuser", "-u", OS_USER, "--", *argv] if os.geteuid() == 0 else argv


def test_a_killed_physical_restore(archiving: Archiving) -> None:
    record = archiving.backup()
    datadir = archiving.new_datadir()
    kill_stalled_restore(
        archiving.config, [record["id"], "--target-datadir", str(datadir)], 4_000_000
    )

    # Half a data directory: marked, and without PG_VERSION, so no server starts on it,
    # even once someone has given it to the server's user.
    assert (datadir / MARKER).is_file()
    assert (datadir / "global").is_dir()
    assert not (datadir / "PG_VERSION").exists()
    chown_tree(datadir)
    log = datadir.parent / "attempt.log"
    chown_tree(datadir.parent)
    pg_ctl = str(archiving.pg.bindir / "pg_ctl")
    started = subprocess.run(
        _as_server([pg_ctl, "start", "-D", str(datadir), "-l", str(log), "-w", "-t", "60"]),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    try:
        assert started.returncode != 0
        said = started.stderr + (log.read_text() if log.exists() else "")
        # pg_ctl looks for PG_VERSION before it starts anything.
        assert "is not a database cluster directory" in said, said
    finally:
        if (datadir / "postmaster.pid").exists():
            subprocess.run(
                _as_server([pg_ctl, "stop", "-D", str(datadir), "-m", "immediate"]), check=False
            )

    # The next restore into the same directory removes the partial one and completes.
    run = archiving.run("restore", record["id"], "--target-datadir", str(datadir), "--immediate")
    assert run.code == 0, str(run)
    assert "incomplete restore" in run.err
    assert not (datadir / MARKER).exists()
    assert (datadir / "PG_VERSION").read_text().strip().isdigit()
    assert not (datadir / "PG_VERSION.respaldo-incomplete").exists()

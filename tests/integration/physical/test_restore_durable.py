"""A physical restore puts the data directory on disk before PostgreSQL may start on it.

A power cut cannot be played: the real CLI runs under strace (tests/integration/synced.py)
and the files it fsynced before it put ``PG_VERSION`` in place are compared with the
data directory it wrote.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from respaldo.operations.targets import MARKER
from tests.integration.physical.conftest import Archiving
from tests.integration.synced import synced_before, traced, tree

pytestmark = pytest.mark.integration


def test_a_restored_data_directory_is_on_disk_before_it_gets_its_pg_version(
    archiving: Archiving,
) -> None:
    # Without the fsyncs, PG_VERSION's rename and the marker's removal (both fsynced)
    # could reach the disk before the relation files did: after a power cut, a data
    # directory that PostgreSQL starts on, with files empty or short, and tables that
    # silently lack rows (a short file is fewer blocks, not an error).
    record = archiving.backup()
    datadir = archiving.new_datadir()
    log = archiving.base / f"strace-{record['id']}.log"
    respaldo = str(Path(sys.executable).with_name("respaldo"))
    restore = [respaldo, "--config", str(archiving.config), "restore", record["id"]]
    done = traced([*restore, "--target-datadir", str(datadir)], log, timeout=300)
    assert done.returncode == 0, done.stderr
    synced = synced_before(log, '/PG_VERSION"')  # the rename that lets it start
    written = tree(datadir) - {str(datadir / MARKER)} - {str(datadir / "PG_VERSION")}
    assert str(datadir / "global" / "pg_control") in written
    assert synced.missing(written)[:10] == []

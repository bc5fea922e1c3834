"""A physical backup opens one database session besides pg_basebackup's replication
connection: the server's version and identity are read on the session that then holds
the WAL reservation (each session costs a backend and an authentication: about 30 ms of
a small cluster's backup on a loaded machine). The reservation still ends with the
backup: no slot is left behind."""

from __future__ import annotations

import time

import pytest

from tests.integration.physical.conftest import SHOP, Archiving

pytestmark = pytest.mark.integration


def _sessions(archiving: Archiving) -> int:
    """Sessions ever opened on SHOP, once none is open (a backend's figures reach the
    statistics before it leaves pg_stat_activity). Asked on another database, so that
    asking adds none."""
    pg = archiving.pg
    deadline = time.monotonic() + 120
    while pg.scalar(
        f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{SHOP}'", dbname="postgres"
    ):
        assert time.monotonic() < deadline, "sessions of the backup still open"
        time.sleep(0.05)  # polling what the server shows, not waiting for time
    return int(
        pg.scalar(
            f"SELECT sessions FROM pg_stat_database WHERE datname = '{SHOP}'", dbname="postgres"
        )
    )


def test_a_physical_backup_opens_one_session_and_leaves_no_slot(archiving: Archiving) -> None:
    archiving.backup()  # the first of this cluster (records which cluster it is)
    before = _sessions(archiving)
    record = archiving.backup()
    after = _sessions(archiving)
    assert record["status"] == "completed"
    assert after - before == 1
    assert archiving.pg.scalar("SELECT count(*) FROM pg_replication_slots") == 0

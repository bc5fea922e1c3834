"""A physical backup when the server cannot give it a replication slot.

The WAL reservation (a temporary slot) is made on the backup's one database session,
the session that read the server's identity before. When every ``max_replication_slots``
is taken, creating it fails on that session: the backup must go on without it, as
pg_basebackup alone would (the WAL it fetches is still checked to be all there), say so,
and leave the session and the server's slots as they were.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from respaldo.operations.repositories import open_repository
from tests.integration.physical.conftest import Archiving

pytestmark = pytest.mark.integration


@pytest.fixture
def no_free_slot(archiving: Archiving) -> Iterator[list[str]]:
    """Every replication slot of the server taken (by slots that reserve no WAL), for
    the test's duration; yields their names."""
    pg = archiving.pg
    free = int(pg.scalar("SHOW max_replication_slots")) - int(
        pg.scalar("SELECT count(*) FROM pg_replication_slots")
    )
    names = [f"respaldo_test_full_{i}" for i in range(free)]
    try:
        for name in names:
            pg.execute(f"SELECT pg_create_physical_replication_slot('{name}')")
        yield names
    finally:
        for name in names:
            pg.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                f" WHERE slot_name = '{name}'"
            )


def test_a_backup_goes_on_without_a_slot_when_none_is_free(
    archiving: Archiving, no_free_slot: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    pg = archiving.pg
    caplog.set_level(logging.WARNING, logger="respaldo.postgres.basebackup")
    run = archiving.run("backup", "erp", "--type", "incremental", "--json")
    assert run.code == 0, str(run)
    record = run.json()
    assert record["status"] == "completed"
    warned = [r.getMessage() for r in caplog.records if r.name == "respaldo.postgres.basebackup"]
    assert any("cannot reserve WAL for the backup" in m for m in warned), warned
    meta = open_repository(archiving.settings()).load_manifest(record["id"]).meta
    assert meta["wal_reserved_by_slot"] is False
    # The WAL from the backup's start to its end is in it (checked while it streamed).
    assert meta["wal_segments"]
    slots = pg.query("SELECT slot_name FROM pg_replication_slots ORDER BY slot_name")
    assert sorted(row[0] for row in slots) == sorted(no_free_slot)
    assert archiving.run("verify", record["id"]).code == 0

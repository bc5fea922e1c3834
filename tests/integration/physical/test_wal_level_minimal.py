"""``wal_level = minimal`` for a while after a physical backup (with ``archive_mode = off``
and ``max_wal_senders = 0``, as PostgreSQL's docs advise for a bulk load), then archiving
again. The WAL archived afterwards has no gap when the episode wrote little WAL (a bulk
load under ``minimal`` is not WAL-logged), but it holds the server's switch to
``minimal``, past which archive recovery refuses to replay: point-in-time recovery from
the backup taken before ends there. The status used to be green (and the restore test of
that backup passed); ``wal-push`` now finds the switch and records it, and the status's
WAL item is red until a physical backup starts after it.
"""

from __future__ import annotations

import pytest
from sample.cluster import TempCluster

from respaldo.operations.wal import open_wal_repository
from respaldo.repository.wal import read_cluster
from tests.integration.physical.conftest import (
    SHOP,
    Archiving,
    archive_verdict,
)

pytestmark = pytest.mark.integration


def test_a_switch_to_wal_level_minimal_after_a_backup_is_red_until_the_next_backup(
    archiving_alone: Archiving, restored_servers: list[TempCluster]
) -> None:
    archiving = archiving_alone
    pg = archiving.pg
    before = archiving.backup()["id"]
    pg.execute("CREATE TABLE loaded (v text); INSERT INTO loaded VALUES ('before')", dbname=SHOP)
    before_switch = str(pg.scalar("SELECT pg_current_wal_insert_lsn()"))
    for setting, value in (("archive_mode", "off"), ("wal_level", "minimal")):
        pg.execute(f"ALTER SYSTEM SET {setting} = {value}")
    pg.execute("ALTER SYSTEM SET max_wal_senders = 0")
    pg.restart()
    # The bulk load: a table created and filled in one transaction is not WAL-logged.
    pg.execute(
        "BEGIN; CREATE TABLE bulk AS SELECT g FROM generate_series(1, 10000) g; COMMIT",
        dbname=SHOP,
    )
    for setting in ("archive_mode", "wal_level", "max_wal_senders"):
        pg.execute(f"ALTER SYSTEM RESET {setting}")
    pg.restart()
    pg.execute("INSERT INTO loaded VALUES ('after')", dbname=SHOP)
    archiving.switch_and_archive()

    level, reason = archive_verdict(archiving.run("status", "--json"))
    assert level == "red", reason
    record = read_cluster(open_wal_repository(archiving.settings()), "erp")
    assert record is not None and record.minimal_wal is not None
    assert reason.startswith(
        f"the server ran with wal_level = minimal (switched at {record.minimal_wal}): "
        f"recovery from the newest physical backup {before} stops there with an error"
    ), reason
    assert "take a physical backup now" in reason
    # What the status says: recovery from that backup cannot pass the switch (PostgreSQL
    # stops there: FATAL). A restore to the end is refused before anything is written (it
    # started the server, which stopped, and the hint spoke of gaps), as is a target
    # after it; one before it is reached.
    datadir = archiving.new_datadir()
    run = archiving.run("restore", before, "--target-datadir", str(datadir))
    assert run.code == 1, str(run)
    assert f"the server switched to wal_level = minimal at {record.minimal_wal}" in run.err
    assert "recovery to the end of the archived WAL would stop there with an error" in run.err
    assert "restore a physical backup taken after it" in run.err
    assert not datadir.exists() or not any(datadir.iterdir())
    drill = archiving.run("drill", before)
    assert drill.code == 3, str(drill)
    assert f"the server switched to wal_level = minimal at {record.minimal_wal}" in drill.err
    restored, _, _ = archiving.restore_started(
        before, restored_servers, "--target-lsn", before_switch
    )
    assert restored.query("SELECT v FROM loaded", dbname=SHOP) == [("before",)]

    # A physical backup after the switch: recovery from it reaches the present again.
    after = archiving.backup()["id"]
    level, reason = archive_verdict(archiving.run("status", "--json"))
    assert level == "green", reason
    pg.execute("INSERT INTO loaded VALUES ('later')", dbname=SHOP)
    archiving.switch_and_archive()
    restored, _, _ = archiving.restore_started(after, restored_servers, to_the_end=True)
    rows = restored.query("SELECT v FROM loaded ORDER BY v", dbname=SHOP)
    assert rows == [("after",), ("before",), ("later",)]
    assert restored.scalar("SELECT count(*) FROM bulk", dbname=SHOP) == 10000

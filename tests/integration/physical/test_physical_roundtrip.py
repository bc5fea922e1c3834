"""Physical backups of a real cluster: restore, start, same data; PITR; dedup between backups.

The witness is independent of respaldo: table checksums read with psycopg, and
``pg_verifybackup`` (PostgreSQL's own checker) run on a restored data directory.
"""

from __future__ import annotations

import os
import stat
import subprocess
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from psycopg import sql
from sample.cluster import TempCluster
from sample.day_of_work import day_of_work

from respaldo.operations.wal import open_wal_repository
from tests.integration.logical.support import table_checksums
from tests.integration.physical.conftest import OS_USER, SEED, SHOP, Archiving

pytestmark = pytest.mark.integration


def _table(archiving: Archiving) -> sql.Identifier:
    name = sql.Identifier(f"t_{uuid.uuid4().hex[:10]}")
    archiving.pg.execute(
        sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, note text)").format(name), dbname=SHOP
    )
    return name


def test_restore_then_start_gives_the_same_data(
    archiving: Archiving, restored_servers: list[TempCluster]
) -> None:
    pg = archiving.pg
    before = table_checksums(pg, SHOP)
    assert sum(count for count, _ in before.values()) > 1000
    record = archiving.backup()
    assert record["backupType"] == "incremental"
    assert record["status"] == "completed"
    # No --respaldo-command: the installed respaldo (here the venv's, built as make
    # install builds /opt/respaldo) is one the server's user can run.
    restored, _, run = archiving.restore_started(record["id"], restored_servers)
    assert "promoted" in run.err
    assert restored.scalar("SELECT pg_is_in_recovery()") is False
    assert table_checksums(restored, SHOP) == before
    system_id = "SELECT system_identifier FROM pg_control_system()"
    assert restored.scalar(system_id) == pg.scalar(system_id)
    # A restored copy does not archive into the original's repository.
    assert restored.scalar("SHOW archive_mode") == "off"


def test_restored_directory_passes_pg_verifybackup(archiving: Archiving) -> None:
    record = archiving.backup()
    # The backup's end: the earliest target it can reach (an earlier one is refused).
    manifest = open_wal_repository(archiving.settings()).load_manifest(record["id"])
    stop_lsn = str(manifest.meta["stop_lsn"])
    datadir = archiving.new_datadir()
    run = archiving.run(
        "restore",
        record["id"],
        "--target-datadir",
        str(datadir),
        "--target-lsn",
        stop_lsn,
        "--respaldo-command",
        archiving.respaldo_command,
    )
    assert run.code == 0, str(run)
    info = datadir.stat()
    assert stat.S_IMODE(info.st_mode) == 0o700
    if os.geteuid() == 0:
        import pwd

        uid = pwd.getpwnam(OS_USER).pw_uid
        assert info.st_uid == uid
        assert {p.stat().st_uid for p in datadir.rglob("*")} == {uid}
    auto = (datadir / "postgresql.auto.conf").read_text()
    assert "wal-fetch --system-id" in auto
    assert f"recovery_target_lsn = '{stop_lsn}'" in auto
    assert "recovery_target_action = 'promote'" in auto
    assert (datadir / "recovery.signal").exists()
    # PostgreSQL's own checker: every file against backup_manifest, and the WAL parsed.
    prefix = ["runuser", "-u", OS_USER, "--"] if os.geteuid() == 0 else []
    done = subprocess.run(
        [*prefix, str(archiving.pg.bindir / "pg_verifybackup"), str(datadir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "successfully verified" in done.stdout


def test_point_in_time_recovery(archiving: Archiving, restored_servers: list[TempCluster]) -> None:
    # On PostgreSQL 18 (with 64 MiB segments): test_wal_segment_size.py.
    check_point_in_time_recovery(archiving, restored_servers)


def check_point_in_time_recovery(archiving: Archiving, restored_servers: list[TempCluster]) -> str:
    """Back up, write before and after a target time, recover to it: the rows before it
    and none after. Returns the backup's id."""
    pg = archiving.pg
    table = _table(archiving)
    insert = sql.SQL("INSERT INTO {} VALUES (%s, %s)").format(table)
    pg.execute(insert, (1, "before the backup"), dbname=SHOP)
    record = archiving.backup()
    pg.execute(insert, (2, "after the backup, before the target"), dbname=SHOP)
    time.sleep(0.3)
    target: datetime = pg.scalar("SELECT clock_timestamp()")
    time.sleep(0.3)
    pg.execute(insert, (3, "after the target"), dbname=SHOP)
    archiving.switch_and_archive()
    restored, _, run = archiving.restore_started(
        record["id"],
        restored_servers,
        "--target-time",
        target.isoformat(),
        "--respaldo-command",
        archiving.respaldo_command,
    )
    assert "recovery stopping before commit" in run.err
    ids = [
        row[0]
        for row in restored.query(
            sql.SQL("SELECT id FROM {} ORDER BY id").format(table), dbname=SHOP
        )
    ]
    assert ids == [1, 2]
    assert restored.scalar("SELECT pg_is_in_recovery()") is False
    # The original still has all three: the restore only read from it.
    assert pg.scalar(sql.SQL("SELECT count(*) FROM {}").format(table), dbname=SHOP) == 3
    return str(record["id"])


def test_target_before_the_backup_is_refused(archiving: Archiving) -> None:
    record = archiving.backup()
    datadir = archiving.new_datadir()
    run = archiving.run(
        "restore",
        record["id"],
        "--target-datadir",
        str(datadir),
        "--target-time",
        "2001-01-01T00:00:00+00:00",
    )
    assert run.code == 1
    assert "before backup" in run.err
    assert not datadir.exists()


def test_second_backup_stores_a_small_fraction(archiving: Archiving) -> None:
    pg = archiving.pg
    first = archiving.backup()
    changes = day_of_work(pg.conninfo_kwargs(SHOP), SEED, 1)
    assert sum(c.inserted + c.updated for c in changes.values()) > 0
    second = archiving.backup()
    share = second["storedNewBytes"] / first["sizeCompressed"]
    print(
        f"physical backup: {first['sizeBytes']} bytes, {first['sizeCompressed']} sealed; "
        f"after a day of work the next one stored {second['storedNewBytes']} new bytes "
        f"({share:.1%} of a whole backup)"
    )
    assert share < 0.25, (first, second)


def test_unusable_targets_are_refused(archiving: Archiving, tmp_path: Path) -> None:
    record = archiving.backup()
    datadir = archiving.new_datadir()
    datadir.mkdir()
    (datadir / "something").write_text("mine")
    run = archiving.run("restore", record["id"], "--target-datadir", str(datadir))
    assert run.code == 1
    assert "is not empty" in run.err
    assert [p.name for p in datadir.iterdir()] == ["something"]
    if os.geteuid() == 0:
        # pytest's tmp_path is closed to the server's user: refused before anything is written.
        run = archiving.run("restore", record["id"], "--target-datadir", str(tmp_path / "d"))
        assert run.code == 1
        assert f"{OS_USER} cannot reach" in run.err
        assert not (tmp_path / "d").exists()

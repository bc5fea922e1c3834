"""Point-in-time recovery from a mirror alone, after the primary repository is lost.

The copy to a secondary repository carries the archived WAL along with the backups
(incrementally), and a restore that reads from the mirror fetches WAL from it: with the
primary's directory deleted, a physical backup restores from the offsite copy to a target
after it, holding exactly the rows committed before the target.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from psycopg import sql
from sample.cluster import TempCluster

from respaldo.postgres.datadir import RECOVERY_LOG
from tests.integration.logical.support import flip_byte
from tests.integration.physical.conftest import (
    SHOP,
    Archiving,
)

pytestmark = pytest.mark.integration


def test_point_in_time_recovery_from_the_mirror_after_losing_the_primary(
    mirrored: Archiving, restored_servers: list[TempCluster]
) -> None:
    archiving = mirrored
    pg = archiving.pg
    table = sql.Identifier(f"t_{uuid.uuid4().hex[:10]}")
    pg.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY)").format(table), dbname=SHOP)
    insert = sql.SQL("INSERT INTO {} VALUES (%s)").format(table)
    pg.execute(insert, (1,), dbname=SHOP)
    record = archiving.backup()  # copied to offsite at its end, with the WAL so far
    pg.execute(insert, (2,), dbname=SHOP)
    # The insert position: past row 2's commit record even with synchronous_commit off
    # (the test cluster's), where the write position may still be before it.
    target = str(pg.scalar("SELECT pg_current_wal_insert_lsn()"))
    pg.execute(insert, (3,), dbname=SHOP)
    archiving.switch_and_archive()
    # The WAL archived since the backup reaches the mirror with the next copy.
    run = archiving.run("copy", "--all", "--to", "offsite")
    assert run.code == 0, str(run)
    assert "archived WAL:" in run.err and "files new in offsite" in run.err
    shutil.rmtree(archiving.repo_dir)  # the machine with the primary is lost
    restored, datadir, run = archiving.restore_started(
        str(record["id"]),
        restored_servers,
        "--target-lsn",
        target,
        "--respaldo-command",
        archiving.respaldo_command,
    )
    assert "repository local cannot be read" in run.err
    # Said plainly: recovery ends at the mirror's last WAL, maybe before the primary's.
    warned = " ".join(run.err.split())
    assert "WAL comes from repository offsite: the primary repository local could not be" in warned
    assert "recovery may end before the newest WAL archived in local" in warned
    assert "--repository offsite" in (datadir / "postgresql.auto.conf").read_text()
    ids = [
        row[0]
        for row in restored.query(
            sql.SQL("SELECT id FROM {} ORDER BY id").format(table), dbname=SHOP
        )
    ]
    assert ids == [1, 2]
    # Every fetch tried the lost primary first and fell back: said once in the server's
    # log, not once per file recovery fetched (hundreds in a long recovery).
    log = (datadir / RECOVERY_LOG).read_text()
    assert log.count("reading it from offsite: the primary repository local") == 1, log


def test_a_mirror_serves_what_the_primary_cannot_and_a_damage_only_in_it_stops_recovery(
    mirrored: Archiving, restored_servers: list[TempCluster], tmp_path: Path
) -> None:
    """Three checks on one mirrored cluster and one backup (each built its own), in the
    order that keeps them apart: the restore reads the undamaged repositories, and each
    damage is to a segment of its own."""
    archiving = mirrored
    record = archiving.backup()  # copied to offsite at its end, with the WAL so far

    # ``restore --repository offsite`` while the primary is fine: the backup and the WAL
    # recovery fetches come from the mirror, and a warning says where recovery ends.
    restored, datadir, run = archiving.restore_started(
        str(record["id"]),
        restored_servers,
        "--immediate",
        "--repository",
        "offsite",
        "--respaldo-command",
        archiving.respaldo_command,
    )
    assert "cannot be read" not in run.err
    warned = " ".join(run.err.split())
    assert "WAL comes from repository offsite, as asked" in warned, run.err
    assert "--repository offsite" in (datadir / "postgresql.auto.conf").read_text()
    assert restored.scalar("SELECT 1", dbname=SHOP) == 1

    # As a restore takes a damaged chunk from a mirror, the WAL a recovery fetches is
    # taken from a mirror when the primary's copy is damaged ("If only the local
    # repository is damaged: nothing to do by hand"); it stopped recovery instead.
    system_id = str(archiving.pg.scalar("SELECT system_identifier FROM pg_control_system()"))
    primary = archiving.repo_dir / "wal" / system_id
    offsite = archiving.base / "offsite" / "wal" / system_id
    both = sorted(
        p.relative_to(primary)
        for p in primary.rglob("*")
        if p.is_file() and len(p.name) == 24 and (offsite / p.relative_to(primary)).is_file()
    )
    assert both, "no segment was copied to the mirror"
    stored = primary / both[-1]
    flip_byte(stored, stored.stat().st_size // 2)
    segment = both[-1].name
    into = archiving.new_datadir().parent / segment  # where the server's user may write
    # As the server runs it: its own process, its messages on stderr (the server's log).
    run = archiving.run_as_server("wal-fetch", "--system-id", system_id, segment, str(into))
    assert run.code == 0, str(run)
    assert "damaged" in run.err and "offsite" in run.err, run.err
    assert into.stat().st_size == 16 * 1024 * 1024

    # ``--primary-first``: the primary has the file but damaged, the mirror has no copy
    # yet. "Not archived" (exit 1) would end recovery there and promote without the WAL
    # after it; the damage must stop recovery instead (exit above 125), as a fetch from
    # the primary alone does.
    archiving.pg.execute("CREATE TABLE after_the_copy (id int)", dbname=SHOP)
    segment = archiving.switch_and_archive()  # into the primary only
    stored = archiving.repo_dir / "wal" / system_id / segment[:8] / segment
    flip_byte(stored, stored.stat().st_size // 2)
    args = ["wal-fetch", "--system-id", system_id, "--repository", "offsite"]
    run = archiving.run(*args, "--primary-first", segment, str(tmp_path / segment))
    assert run.code == 255, str(run)
    assert segment in run.err
    assert not (tmp_path / segment).exists()
    # Only in neither: the normal end of recovery.
    later = f"{segment[:16]}{int(segment[16:], 16) + 5:08X}"
    run = archiving.run(*args, "--primary-first", later, str(tmp_path / later))
    assert run.code == 1, str(run)


def test_wal_fetch_from_the_mirror_tries_the_primary_first(
    mirrored: Archiving, restored_servers: list[TempCluster]
) -> None:
    """The primary could not be opened when the restore ran (so it read the mirror), but
    opens again while the restored server recovers: the WAL archived in the primary
    after the mirror's last copy is fetched from it, and recovery does not end (and
    promote) at the mirror's last copy, without the rows committed since."""
    archiving = mirrored
    pg = archiving.pg
    table = sql.Identifier(f"t_{uuid.uuid4().hex[:10]}")
    pg.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY)").format(table), dbname=SHOP)
    insert = sql.SQL("INSERT INTO {} VALUES (%s)").format(table)
    pg.execute(insert, (1,), dbname=SHOP)
    record = archiving.backup()  # copied to offsite at its end, with the WAL so far
    pg.execute(insert, (2,), dbname=SHOP)
    archiving.switch_and_archive()  # into the primary only: no copy ran since
    away = archiving.repo_dir.with_name("repo.away")
    archiving.repo_dir.rename(away)  # the primary cannot be opened for a while
    datadir = archiving.new_datadir()
    run = archiving.run(
        "restore",
        str(record["id"]),
        "--target-datadir",
        str(datadir),
        "--respaldo-command",
        archiving.respaldo_command,
    )
    assert run.code == 0, str(run)
    assert "repository local cannot be read" in run.err
    warned = " ".join(run.err.split())
    assert "tries local first" in warned, run.err
    away.rename(archiving.repo_dir)  # back before the server recovers
    restored = archiving.start_as_printed(run, restored_servers)
    ids = [
        row[0]
        for row in restored.query(
            sql.SQL("SELECT id FROM {} ORDER BY id").format(table), dbname=SHOP
        )
    ]
    assert ids == [1, 2]

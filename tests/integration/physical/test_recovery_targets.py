"""Recovery targets that the archived WAL cannot reach are refused before anything is written.

A backup is consistent only from its end (its stop LSN), and recovery goes on only as far
as the archived WAL is continuous: a segment missing from the archive ends recovery there,
and PostgreSQL then promotes a server without what came after, as if that were all. The
archive of the real archiving cluster is damaged here by moving one segment aside in the
repository, as a lost object or a deletion by hand would leave it.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from psycopg import sql
from sample.cluster import TempCluster

from respaldo.cli.main import invoke
from respaldo.operations import alerts
from respaldo.operations.context import Context
from respaldo.operations.drill import run_drill
from respaldo.operations.physical_restore import START_LOG
from respaldo.operations.scheduled import verify_slice
from respaldo.operations.verify import WAL_GAPS
from respaldo.operations.wal import open_wal_repository
from respaldo.operations.wal_coverage import earliest_target_time
from respaldo.postgres.wal import format_lsn, parse_lsn
from respaldo.repository.wal import get_wal, put_wal
from tests.faketime import faketime_env
from tests.integration.majors import ON_EVERY_MAJOR
from tests.integration.physical.conftest import (
    SHOP,
    Archiving,
    free_port,
    madrid_summer_target,
    rows_around,
    rows_around_an_instant,
)

pytestmark = pytest.mark.integration


def _system_id(archiving: Archiving) -> str:
    return str(archiving.pg.scalar("SELECT system_identifier FROM pg_control_system()"))


def _meta(archiving: Archiving, backup_id: str) -> dict[str, object]:
    return dict(open_wal_repository(archiving.settings()).load_manifest(backup_id).meta)


def _two_segments_after_a_backup(archiving: Archiving) -> tuple[str, str, sql.Identifier]:
    """A backup, then two archived segments each holding a row: (backup id, the first
    of the segments, the table)."""
    pg = archiving.pg
    table = sql.Identifier(f"t_{uuid.uuid4().hex[:10]}")
    pg.execute(sql.SQL("CREATE TABLE {} (id int)").format(table), dbname=SHOP)
    record = archiving.backup()
    pg.execute(sql.SQL("INSERT INTO {} VALUES (1)").format(table), dbname=SHOP)
    first = archiving.switch_and_archive()
    pg.execute(sql.SQL("INSERT INTO {} VALUES (2)").format(table), dbname=SHOP)
    archiving.switch_and_archive()
    return str(record["id"]), first, table


@contextmanager
def _moved_aside(archiving: Archiving, segment: str) -> Iterator[None]:
    """Archived ``segment`` missing from the repository within the block, as a lost
    object, a deletion by hand or a prune would leave it; put back at the end."""
    stored = archiving.repo_dir / "wal" / _system_id(archiving) / "00000001" / segment
    aside = stored.with_name(f"{segment}.aside")
    stored.rename(aside)
    try:
        yield
    finally:
        aside.rename(stored)


@pytest.fixture
def gap(archiving: Archiving) -> Iterator[tuple[str, str, sql.Identifier]]:
    """A backup, then two archived segments each holding a row; the first of them moved
    aside in the repository (put back at the end). (backup id, missing segment, table)"""
    backup_id, missing, table = _two_segments_after_a_backup(archiving)
    with _moved_aside(archiving, missing):
        yield backup_id, missing, table


def test_a_gap_in_the_archive_refuses_recovery_to_the_end_of_the_wal(
    archiving: Archiving, gap: tuple[str, str, sql.Identifier], restored_servers: list[TempCluster]
) -> None:
    backup_id, missing, table = gap
    datadir = archiving.new_datadir()
    port = free_port()
    restore = ("restore", backup_id, "--target-datadir", str(datadir))
    run = archiving.run(*restore, "--start", "--port", str(port))
    assert run.code == 1, str(run)
    assert f"{missing} is missing from the archive" in run.err
    assert "hint:" in run.err
    assert not datadir.exists()
    # A target before the gap is what can be had: it is restored as asked.
    run = archiving.run(*restore, "--immediate", "--start", "--port", str(port))
    assert run.code == 0, str(run)
    restored = archiving.restored(datadir, port)
    restored_servers.append(restored)
    assert restored.query(sql.SQL("SELECT id FROM {}").format(table), dbname=SHOP) == []


def test_a_target_lsn_after_the_gap_is_refused(
    archiving: Archiving, gap: tuple[str, str, sql.Identifier]
) -> None:
    backup_id, missing, _ = gap
    datadir = archiving.new_datadir()
    after = format_lsn(parse_lsn(str(archiving.pg.scalar("SELECT pg_current_wal_lsn()"))) - 1)
    run = archiving.run(
        "restore", backup_id, "--target-datadir", str(datadir), "--target-lsn", after
    )
    assert run.code == 1, str(run)
    assert f"{missing} is missing from the archive" in run.err
    assert not datadir.exists()


def test_a_target_lsn_beyond_the_archived_wal_is_refused(archiving: Archiving) -> None:
    record = archiving.backup()
    datadir = archiving.new_datadir()
    run = archiving.run(
        "restore", record["id"], "--target-datadir", str(datadir), "--target-lsn", "F/0"
    )
    assert run.code == 1, str(run)
    assert "is not archived" in run.err
    assert "pg_switch_wal()" in run.err  # the hint: how to get the WAL archived
    assert not datadir.exists()


def test_targets_before_the_backup_started_are_refused(archiving: Archiving) -> None:
    record = archiving.backup()
    meta = _meta(archiving, record["id"])
    datadir = archiving.new_datadir()
    restore = ("restore", record["id"], "--target-datadir", str(datadir))
    before_stop = format_lsn(parse_lsn(str(meta["stop_lsn"])) - 1)
    run = archiving.run(*restore, "--target-lsn", before_stop)
    assert run.code == 1, str(run)
    assert "before backup" in run.err and str(meta["stop_lsn"]) in run.err
    assert not datadir.exists()
    started = datetime.fromisoformat(record["startedAt"])
    # respaldo's start is before the server's checkpoint: commits between the two are in
    # the backup's files, and a target among them is refused too (by START TIME).
    for before in (started - timedelta(seconds=1), started):
        run = archiving.run(*restore, "--target-time", before.isoformat())
        assert run.code == 1, str(run)
        assert "before backup" in run.err and "started" in run.err
        assert "hint:" in run.err
        assert not datadir.exists()


def test_a_target_time_while_the_backup_ran_is_reached(
    archiving: Archiving, restored_servers: list[TempCluster]
) -> None:
    # The recorded stop time is read after pg_basebackup has exited (and older backups
    # have only respaldo's own completion time): later than the backup's real end. A
    # target between the backup's start and that time may be after its consistent point;
    # refusing it left a DROP shortly after the only backup's end unrecoverable.
    pg = archiving.pg
    table = sql.Identifier(f"t_{uuid.uuid4().hex[:10]}")
    pg.execute(sql.SQL("CREATE TABLE {} (id int)").format(table), dbname=SHOP)
    pg.execute(sql.SQL("INSERT INTO {} VALUES (1)").format(table), dbname=SHOP)
    record = archiving.backup()
    meta = _meta(archiving, record["id"])
    manifest = open_wal_repository(archiving.settings()).load_manifest(record["id"])
    # From the server's START TIME (its second) on: before it is refused (see the unit tests).
    earliest, on_server = earliest_target_time(manifest)
    stopped = datetime.fromisoformat(str(meta["stop_time"]))
    assert on_server and earliest <= stopped
    # The zone the label's time is written in, recorded by name (read without the window).
    assert meta["log_timezone"] == pg.scalar("SHOW log_timezone")
    during = earliest + (stopped - earliest) / 2
    pg.execute(sql.SQL("INSERT INTO {} VALUES (2)").format(table), dbname=SHOP)
    archiving.switch_and_archive()
    restored, _, _ = archiving.restore_started(
        record["id"], restored_servers, "--target-time", during.isoformat()
    )
    rows = restored.query(sql.SQL("SELECT id FROM {} ORDER BY id").format(table), dbname=SHOP)
    assert [r[0] for r in rows] == [1]


def test_the_end_of_the_backup_is_a_valid_target(
    archiving: Archiving, restored_servers: list[TempCluster]
) -> None:
    record = archiving.backup()
    meta = _meta(archiving, record["id"])
    archiving.switch_and_archive()  # WAL after the backup's end, as recovery reads on to it
    datadir = archiving.new_datadir()
    port = free_port()
    run = archiving.run(
        "restore", record["id"], "--target-datadir", str(datadir),
        "--target-lsn", str(meta["stop_lsn"]), "--start", "--port", str(port),
    )  # fmt: skip
    assert run.code == 0, str(run)
    restored = archiving.restored(datadir, port)
    restored_servers.append(restored)
    assert restored.scalar("SELECT pg_is_in_recovery()") is False


def test_a_drill_of_a_backup_before_a_gap_fails_its_wal_archive_check(
    archiving: Archiving, gap: tuple[str, str, sql.Identifier]
) -> None:
    # The backup restores to its end, but point-in-time recovery from it cannot go past
    # the gap: a restore test that passed would say the backup is fine for what it is for.
    backup_id, missing, _ = gap
    with Context.open(archiving.settings()) as ctx:
        result = run_drill(ctx, backup_id, respaldo_command=archiving.respaldo_command)
    checks = {c.name: c for c in result.checks}
    assert checks["restore"].ok and checks["recovery"].ok, result.checks
    assert not checks["wal archive"].ok
    assert f"{missing} is missing from the archive" in checks["wal archive"].detail
    assert not result.passed
    # Its verify read the backup whole and said "ok", nothing more, while its restore test
    # failed (and the status, once a later backup is taken, looks after that one only). It
    # warns, naming the hole and the backup, and still exits 0: nothing stored is damaged.
    run = archiving.run("verify", backup_id)
    assert run.code == 0, str(run)
    assert f"{missing} is missing from the archive" in run.err, str(run)
    assert f"point-in-time recovery of backup {backup_id} stops there" in run.err, str(run)
    # The daily verify reads a slice of the chunks (here one of 366: next to nothing) and
    # looks after every physical backup all the same; its job completes, and the warning
    # is a condition alerted on until a verify finds the gap mended.
    with Context.open(archiving.settings()) as ctx:
        daily = verify_slice(ctx, 366)
        primary = ctx.settings.repositories[0].name
        assert daily.ok, daily.problems
        # (Naming this backup, unless the module's earlier backups, which the gap cuts
        # too, leave it among the "N more".)
        assert [w for w in daily.warnings if f"{missing} is missing from the archive" in w]
        assert alerts.firing_keys(ctx, WAL_GAPS) == [WAL_GAPS + primary]
        # Put back (and moved aside again for the fixture to put back), the next resolves it.
        stored = archiving.repo_dir / "wal" / _system_id(archiving) / "00000001" / missing
        stored.with_name(f"{missing}.aside").rename(stored)
        try:
            mended = verify_slice(ctx, 366)
        finally:
            stored.rename(stored.with_name(f"{missing}.aside"))
        assert not [w for w in mended.warnings if "missing from the archive" in w]
        assert alerts.firing_keys(ctx, WAL_GAPS) == []


def _refused_with_and_without_start(archiving: Archiving, backup_id: str, target: str) -> list[str]:
    """``restore BACKUP_ID --target-time TARGET`` into a new data directory, without and
    with ``--start``: each refused (exit 1) before anything was written (no data
    directory); returns the two runs' stderr."""
    said = []
    for start in ((), ("--start", "--port", str(free_port()))):
        datadir = archiving.new_datadir()
        run = archiving.run(
            "restore", backup_id, "--target-datadir", str(datadir),
            "--target-time", target, *start,
        )  # fmt: skip
        assert run.code == 1, str(run)
        assert not datadir.exists()
        said.append(run.err)
    return said


def test_a_target_time_with_no_commit_archived_after_the_backup_is_refused_before_writing(
    archiving: Archiving,
) -> None:
    # Recovery to a target time stops only before a commit later than the target: with
    # none archived after the backup's end (a restore right after the backup, its last
    # segment not archived yet, or nothing committed since), every target fails in the
    # server ("recovery ended before configured recovery target was reached"). That was
    # only warned about: with --start the whole backup was written before the server
    # failed, without it the restore said it was done.
    record = archiving.backup()
    later = datetime.now(UTC)
    for err in _refused_with_and_without_start(archiving, record["id"], later.isoformat()):
        assert (
            f"the recovery target {later.isoformat()} cannot be reached: the archived WAL "
            f"after backup {record['id']} (up to "
        ) in err, err
        assert "holds no commit after the backup's end" in err
        assert "recover to the backup's end (--immediate) or give no target" in err
        assert "pg_switch_wal()" in err  # the hint


def _running(datadir: Path) -> bool:
    return (datadir / "postmaster.pid").exists()


def test_recovery_to_a_restore_point(
    archiving: Archiving, restored_servers: list[TempCluster]
) -> None:
    name = f"before o'{uuid.uuid4().hex[:6]}"  # a quote: written into postgresql.auto.conf
    record, table, _ = rows_around(
        archiving, lambda pg: pg.execute("SELECT pg_create_restore_point(%s)", (name,))
    )
    restored, _, _ = archiving.restore_started(
        record["id"], restored_servers, "--target-name", name
    )
    query = sql.SQL("SELECT id FROM {} ORDER BY 1").format(table)
    assert [row[0] for row in restored.query(query, dbname=SHOP)] == [1]


def test_recovery_ended_early_by_a_damaged_segment_fails_the_restore(
    archiving: Archiving, restored_servers: list[TempCluster]
) -> None:
    # A segment damaged before it was archived (its sealed copy authenticates): PostgreSQL
    # takes its first unreadable record for the end of the WAL and promotes there, without
    # the segments archived after it. The restore said it recovered "to the end of the
    # archived WAL", and the copy lacked both rows.
    pg = archiving.pg
    table = sql.Identifier(f"t_{uuid.uuid4().hex[:10]}")
    pg.execute(sql.SQL("CREATE TABLE {} (id int)").format(table), dbname=SHOP)
    record = archiving.backup()
    pg.execute(sql.SQL("INSERT INTO {} VALUES (1)").format(table), dbname=SHOP)
    damaged = archiving.switch_and_archive()
    pg.execute(sql.SQL("INSERT INTO {} VALUES (2)").format(table), dbname=SHOP)
    archiving.switch_and_archive()
    system_id = _system_id(archiving)
    repo = open_wal_repository(archiving.settings())
    data = bytearray(get_wal(repo, system_id, "00000001", damaged))
    data[48:56] = b"\xff" * 8  # the first record's xl_prev (after the 40-byte page header)
    stored = archiving.repo_dir / "wal" / system_id / "00000001" / damaged
    aside = stored.with_name(f"{damaged}.aside")
    stored.rename(aside)
    try:
        put_wal(repo, system_id, "00000001", damaged, bytes(data))
        datadir, port = archiving.new_datadir(), free_port()
        restore = ("restore", record["id"], "--target-datadir", str(datadir))
        run = archiving.run(*restore, "--start", "--port", str(port))
        if run.code == 0:  # stopped at the end of the test, not left running
            restored_servers.append(archiving.restored(datadir, port))
        assert run.code == 1, str(run)
        assert f"in segment {damaged}, but the WAL archived before" in run.err
        assert "hint:" in run.err
        assert not _running(datadir)
    finally:
        stored.unlink(missing_ok=True)
        aside.rename(stored)


def test_a_restore_point_that_is_not_in_the_wal_fails_naming_it(
    archiving: Archiving, restored_servers: list[TempCluster]
) -> None:
    # PostgreSQL replays every archived segment and stops: the restore said the archived
    # WAL ended before the target, and sent the user to pg_switch_wal() and to wait, for
    # a name misspelt (or created before the backup started) that no wait would bring.
    record = archiving.backup()
    archiving.pg.execute("SELECT pg_create_restore_point('antes de la migración')")
    archiving.switch_and_archive()
    datadir = archiving.new_datadir()
    port = free_port()
    run = archiving.run(
        "restore", record["id"], "--target-datadir", str(datadir),
        "--target-name", "antes de la migracion", "--start", "--port", str(port),
    )  # fmt: skip
    if run.code == 0:  # stopped at the end of the test, not left running
        restored_servers.append(archiving.restored(datadir, port))
    assert run.code == 1, str(run)
    first = run.err.splitlines()[0]
    assert (
        "recovery ended before the recovery target was reached: no restore point named "
        f"'antes de la migracion' is in the WAL archived after backup {record['id']}"
    ) in first, run.err
    assert "check the name (it is matched exactly" in run.err
    assert f"{datadir} is left as the server stopped" in run.err
    assert not _running(datadir)


def test_a_segment_deleted_after_the_restore_stops_recovery_instead_of_ending_it(
    archiving: Archiving, restored_servers: list[TempCluster]
) -> None:
    # Restored without --start, then a segment it needs deleted from the archive before
    # its server starts, as a prune that expires the backup deletes the WAL from its start
    # on: the server took the hole for the end of the WAL and promoted without the rows
    # after it, no error said. Now recovery stops there; once the segment is back, the
    # same command recovers everything.
    backup_id, missing, table = _two_segments_after_a_backup(archiving)
    datadir = archiving.new_datadir()
    port = free_port()
    run = archiving.run("restore", backup_id, "--target-datadir", str(datadir), "--port", str(port))
    assert run.code == 0, str(run)
    with _moved_aside(archiving, missing):
        found = re.search(r"start it with: (.+) \(it recovers", run.err)
        assert found is not None, str(run)
        command = shlex.split(found.group(1))
        restored_servers.append(archiving.restored(datadir, port))  # stopped if it started
        started = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        log = (datadir / START_LOG).read_text(errors="replace")
        assert started.returncode != 0, started.stdout + started.stderr + log
        assert f"{missing} is missing from the archive, which holds later WAL" in log, log
        # Not promoted: the data directory is still in archive recovery, nothing lost.
        state = subprocess.run(
            [str(archiving.pg.bindir / "pg_controldata"), str(datadir)],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout  # fmt: skip
        assert "in archive recovery" in state, state
    restored = archiving.start_as_printed(run, restored_servers)
    rows = restored.query(sql.SQL("SELECT id FROM {} ORDER BY id").format(table), dbname=SHOP)
    assert [r[0] for r in rows] == [1, 2]


def test_a_target_time_in_the_future_is_refused_before_anything_is_written(
    archiving: Archiving,
) -> None:
    # Tomorrow, in Mexico City's offset: a day typed wrong. Recovery could only replay
    # all the archived WAL and stop with "recovery ended before configured recovery
    # target was reached"; without --start the restore said it was done, and the server
    # failed when started as it printed.
    record = archiving.backup()
    tomorrow = datetime.now(timezone(timedelta(hours=-6))) + timedelta(days=1)
    for err in _refused_with_and_without_start(archiving, record["id"], tomorrow.isoformat()):
        assert f"the recovery target {tomorrow.isoformat()} is in the future" in err
        assert "this machine's clock says" in err and "-06:00" in err
        assert "hint:" in err and "give no target" in err


def test_a_target_offset_that_is_not_the_installations_is_warned_about(
    archiving: Archiving, restored_servers: list[TempCluster]
) -> None:
    # A Madrid installation; the target is given with the summer offset (+02:00) in
    # December (+01:00): it is the instant it names, an hour from what the wall clock said.
    target = madrid_summer_target(archiving)
    madrid_config, record, table = target.config, target.record, target.table
    between, summer = target.between, target.summer
    winter = between.astimezone(ZoneInfo("Europe/Madrid"))
    datadir = archiving.new_datadir()
    port = free_port()
    assert archiving.capsys is not None
    archiving.capsys.readouterr()
    code = invoke(
        ["--config", str(madrid_config), "restore", record["id"], "--target-datadir",
         str(datadir), "--target-time", summer.isoformat(), "--start", "--port", str(port)]
    )  # fmt: skip
    out, err = archiving.capsys.readouterr()
    assert code == 0, out + err
    restored = archiving.restored(datadir, port)
    restored_servers.append(restored)
    said = " ".join(err.split())
    assert (
        f"the recovery target {summer.isoformat(sep=' ')} is {winter:%Y-%m-%d %H:%M:%S} CET in "
        "Europe/Madrid ([schedules] time_zone), whose UTC offset then is +01:00, not +02:00"
    ) in said, err
    wall = summer.replace(tzinfo=None)
    assert f"{wall:%H:%M:%S} there is {wall.isoformat(sep=' ')}+01:00 (CET)" in said
    rows = restored.query(sql.SQL("SELECT id FROM {} ORDER BY id").format(table), dbname=SHOP)
    assert [r[0] for r in rows] == [1]  # the instant given, whatever the warning says
    # The installation's own offset, or UTC, is not warned about.
    for same in (winter, between.astimezone(UTC)):
        datadir = archiving.new_datadir()
        code = invoke(
            ["--config", str(madrid_config), "restore", record["id"], "--target-datadir",
             str(datadir), "--target-time", same.isoformat()]
        )  # fmt: skip
        out, err = archiving.capsys.readouterr()
        assert code == 0, out + err
        assert "[schedules] time_zone" not in err


def _behind(archiving: Archiving, seconds: int, *args: str) -> subprocess.CompletedProcess[str]:
    """respaldo ARGS in a process whose wall clock is ``seconds`` behind the server's
    (libfaketime preloaded, into its children too; its monotonic clock is moved as well:
    with it left alone, Python's sleeps in a child's wait failed with EINVAL)."""
    env = faketime_env(FAKETIME=f"-{seconds}")
    return subprocess.run(
        [sys.executable, "-m", "respaldo.cli.main", "--config", str(archiving.config), *args],
        capture_output=True, text=True, timeout=240, check=False, env=env,
    )  # fmt: skip


def test_a_target_by_the_servers_clock_ahead_of_respaldos_is_not_taken_for_the_future(
    archiving: Archiving, restored_servers: list[TempCluster]
) -> None:
    # respaldo's clock two hours behind the server's, at the backup and at the restore: a
    # target a moment ago by the server's clock (which commit times are on) is two hours
    # ahead of respaldo's, and was refused as in the future.
    pg = archiving.pg
    table = sql.Identifier(f"t_{uuid.uuid4().hex[:10]}")
    insert = sql.SQL("INSERT INTO {} VALUES (%s)").format(table)
    pg.execute(sql.SQL("CREATE TABLE {} (id int)").format(table), dbname=SHOP)
    done = _behind(archiving, 7200, "backup", "erp", "--type", "incremental", "--json")
    assert done.returncode == 0, done.stderr
    backup_id = json.loads(done.stdout)["id"]
    pg.execute(insert, (1,), dbname=SHOP)
    between = pg.scalar("SELECT clock_timestamp()")
    pg.execute(insert, (2,), dbname=SHOP)
    archiving.switch_and_archive()
    datadir = archiving.new_datadir()
    port = free_port()
    done = _behind(
        archiving, 7200, "restore", backup_id, "--target-datadir", str(datadir),
        "--target-time", between.isoformat(), "--start", "--port", str(port),
    )  # fmt: skip
    restored = archiving.restored(datadir, port)
    restored_servers.append(restored)
    assert done.returncode == 0, done.stderr
    rows = restored.query(sql.SQL("SELECT id FROM {} ORDER BY id").format(table), dbname=SHOP)
    assert [r[0] for r in rows] == [1]
    # A day ahead of the server is still the future.
    datadir = archiving.new_datadir()
    later = between + timedelta(days=1)
    done = _behind(
        archiving, 7200, "restore", backup_id, "--target-datadir", str(datadir),
        "--target-time", later.isoformat(),
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "is in the future" in done.stderr
    assert "(the server's was 2 h 0 min ahead of respaldo's at the backup)" in done.stderr, (
        done.stderr
    )
    assert not datadir.exists()


@ON_EVERY_MAJOR
def test_a_target_time_after_the_last_archived_commit_is_refused_before_anything_is_written(
    archiving: Archiving, restored_servers: list[TempCluster]
) -> None:
    # Commits after the backup, archived; then a target between the last of them and
    # now: not in the future, but no commit the archive holds is that late. Recovery
    # replayed all of it and stopped with "recovery ended before configured recovery
    # target was reached": with --start after the whole copy was written; without it the
    # restore said it was done, and the server failed when started as it printed.
    pg = archiving.pg
    record, table, between = rows_around_an_instant(archiving)
    # Every archived commit is before this: the archiver pushed it already.
    after = pg.scalar("SELECT clock_timestamp()").astimezone(timezone(timedelta(hours=-3)))
    for err in _refused_with_and_without_start(archiving, record["id"], after.isoformat()):
        said = re.search(
            rf"the recovery target {re.escape(after.isoformat())} is after the last "
            rf"transaction the archived WAL holds: its newest commit after backup "
            rf"{record['id']} is at (\S+) \(archived up to ",
            err,
        )
        assert said is not None, err
        # In the target's own offset, and no earlier than the second row's commit.
        newest = datetime.fromisoformat(said[1])
        assert newest.utcoffset() == timedelta(hours=-3)
        assert between < newest < after
        assert f"give a target before {said[1]}" in err
        assert "no target to recover all the archived WAL (that commit included)" in err
        newest_said = said[1]
    # At the newest commit's very time, which the hint said to give ("at or before" it):
    # recovery stops only before a commit later than the target, so PostgreSQL replayed
    # it and failed as above, after the whole copy was written (without --start, exit 0).
    for err in _refused_with_and_without_start(archiving, record["id"], newest_said):
        assert f"the recovery target {newest_said} is at the last transaction" in err, err
        assert f"its newest commit after backup {record['id']} is at {newest_said} " in err
    # A target before the last commit is restored as before.
    restored, _, _ = archiving.restore_started(
        record["id"], restored_servers, "--target-time", between.isoformat()
    )
    rows = restored.query(sql.SQL("SELECT id FROM {} ORDER BY id").format(table), dbname=SHOP)
    assert [r[0] for r in rows] == [1]

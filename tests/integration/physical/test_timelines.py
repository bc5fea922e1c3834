"""A restored copy that becomes the new primary archives a new timeline into the same
repository; a later restore of the same backup follows that timeline (as a failover
means), through the history file wal-fetch serves, and a segment missing from that
timeline is found before anything is written. A copy restored without
``--keep-archiving`` whose archiving is turned on after its promotion archives its new
timeline too (PostgreSQL never queued that timeline's history file).

Its own archiving cluster: the shared one's archive must keep a single timeline. Each
test's cluster is without the sample ERP: they read tables of their own.
"""

from __future__ import annotations

import time
import uuid

import pytest
from psycopg import sql
from sample.cluster import TempCluster

from respaldo.postgres.datadir import RECOVERY_LOG
from respaldo.postgres.wal import parse_segment_header
from tests.integration.physical.conftest import (
    SHOP,
    archive_verdict,
    archiving_cluster,
    chown_tree,
    free_port,
    write_config,
)

pytestmark = pytest.mark.integration


def _wait_archived(server: TempCluster, segment: str, timeout: float = 240.0) -> None:
    # Bounds a hang only: see Archiving.switch_and_archive.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = server.scalar("SELECT last_archived_wal FROM pg_stat_archiver")
        if last is not None and str(last)[8:] >= segment[8:] and str(last)[:8] == segment[:8]:
            return
        time.sleep(0.1)
    row = server.query(
        "SELECT last_archived_wal, last_failed_wal, failed_count FROM pg_stat_archiver"
    )
    log = server.datadir / RECOVERY_LOG
    raise AssertionError(f"{segment} was not archived: {row}\n{log.read_text()[-3000:]}")


def test_a_later_restore_follows_the_timeline_of_a_copy_that_kept_archiving(
    capsys: pytest.CaptureFixture[str], restored_servers: list[TempCluster]
) -> None:
    with archiving_cluster(None, sample_erp=False) as archiving:
        archiving.capsys = capsys
        pg = archiving.pg
        table = sql.Identifier(f"t_{uuid.uuid4().hex[:10]}")
        insert = sql.SQL("INSERT INTO {} VALUES (%s)").format(table)
        pg.execute(sql.SQL("CREATE TABLE {} (id int)").format(table), dbname=SHOP)
        pg.execute(insert, (1,), dbname=SHOP)
        record = archiving.backup()
        pg.execute(insert, (2,), dbname=SHOP)
        archiving.switch_and_archive()
        # The copy: recovered to the backup's end, promoted (timeline 2), archiving on.
        first, second = archiving.new_datadir(), archiving.new_datadir()
        port = free_port()
        run = archiving.run(
            "restore", record["id"], "--target-datadir", str(first), "--immediate",
            "--keep-archiving", "--start", "--port", str(port),
        )  # fmt: skip
        assert run.code == 0, str(run)
        copy = archiving.restored(first, port)
        restored_servers.append(copy)
        assert copy.scalar("SELECT timeline_id FROM pg_control_checkpoint()") == 2
        segments = []
        for row in (3, 4):
            copy.execute(insert, (row,), dbname=SHOP)
            segments.append(str(copy.scalar("SELECT pg_walfile_name(pg_switch_wal())")))
            _wait_archived(copy, segments[-1])
        system_id = str(pg.scalar("SELECT system_identifier FROM pg_control_system()"))
        timeline2 = archiving.repo_dir / "wal" / system_id / "00000002"
        assert (timeline2 / "00000002.history").exists()
        # A segment of timeline 2 missing: recovery follows timeline 2 and would stop
        # there (timeline 1's segment of that number does not stand in for it).
        stored = timeline2 / segments[0]
        aside = stored.with_name(f"{segments[0]}.aside")
        stored.rename(aside)
        try:
            run = archiving.run("restore", record["id"], "--target-datadir", str(second))
        finally:
            aside.rename(stored)
        assert run.code == 1, str(run)
        assert f"{segments[0]} is missing from the archive" in run.err
        assert not second.exists()
        # The same backup again, to the end of the archived WAL: timeline 2's end.
        port = free_port()
        run = archiving.run(
            "restore", record["id"], "--target-datadir", str(second),
            "--start", "--port", str(port),
        )  # fmt: skip
        assert run.code == 0, str(run)
        # Production wrote row 2 on timeline 1 after the copy branched off, and that
        # segment is archived: recovery replays the copy's timeline instead, and says so.
        assert "recovery follows timeline 2" in run.err
        assert "timeline 1 was archived on after" in run.err
        again = archiving.restored(second, port)
        restored_servers.append(again)
        ids = [
            r[0]
            for r in again.query(sql.SQL("SELECT id FROM {} ORDER BY 1").format(table), dbname=SHOP)
        ]
        assert ids == [1, 3, 4]
        assert again.scalar("SELECT timeline_id FROM pg_control_checkpoint()") == 3


@pytest.mark.parametrize("recycled", [False, True], ids=["first-segment", "recycled"])
def test_a_copy_restored_without_archiving_archives_its_timeline_once_archiving_is_on(
    capsys: pytest.CaptureFixture[str], restored_servers: list[TempCluster], recycled: bool
) -> None:
    # The copy is promoted with archive_mode = off: PostgreSQL does not queue
    # 00000002.history for archiving then, and never later. The user makes it the new
    # primary (archiving on, restart): its first segment, which starts with timeline 1's
    # pages, is archived with the history file found beside it in pg_wal. Or, if the
    # copy ran a while before (recycled), that segment is gone at its checkpoints and
    # every segment it archives starts with timeline 2's pages: the first of them
    # brings the history file along all the same.
    with archiving_cluster(None, sample_erp=False) as archiving:
        archiving.capsys = capsys
        record = archiving.backup()
        archiving.switch_and_archive()
        copy, datadir, _ = archiving.restore_started(record["id"], restored_servers)
        assert copy.scalar("SELECT timeline_id FROM pg_control_checkpoint()") == 2
        assert copy.scalar("SELECT current_setting('archive_mode')") == "off"
        first = str(copy.scalar("SELECT pg_walfile_name(pg_current_wal_lsn())"))
        header = parse_segment_header((datadir / "pg_wal" / first).read_bytes()[:64])
        assert first.startswith("00000002")
        assert header is not None
        assert header.timeline == 1  # the segment PostgreSQL copied at the promotion
        if recycled:
            for n in range(3):
                copy.execute(sql.SQL("CREATE TABLE {} ()").format(sql.Identifier(f"r{n}")))
                copy.execute("SELECT pg_switch_wal()")
                copy.execute("CHECKPOINT")
            assert not (datadir / "pg_wal" / first).exists()
        command = f"{archiving.respaldo_command} --config {archiving.config} wal-push %p"
        copy.execute("ALTER SYSTEM SET archive_mode = 'on'")
        copy.execute(sql.SQL("ALTER SYSTEM SET archive_command = {}").format(sql.Literal(command)))
        copy.restart(log=datadir / RECOVERY_LOG)
        current = str(copy.scalar("SELECT pg_walfile_name(pg_current_wal_lsn())"))
        assert (current == first) is not recycled
        copy.execute("CREATE TABLE after_archiving_on ()")
        assert str(copy.scalar("SELECT pg_walfile_name(pg_switch_wal())")) == current
        _wait_archived(copy, current)
        assert copy.scalar("SELECT failed_count FROM pg_stat_archiver") == 0
        system_id = str(copy.scalar("SELECT system_identifier FROM pg_control_system()"))
        timeline2 = archiving.repo_dir / "wal" / system_id / "00000002"
        assert (timeline2 / "00000002.history").exists()
        assert (timeline2 / current).exists()


def test_a_backup_of_a_delayed_standbys_configuration_recovers_without_the_delay(
    capsys: pytest.CaptureFixture[str], restored_servers: list[TempCluster]
) -> None:
    # A delayed standby's recovery_min_apply_delay (or the primary's, from a configuration
    # shared with it) is in the backup's postgresql.auto.conf, and PostgreSQL honours it in
    # archive recovery too: the restored copy held back every commit younger than the
    # delay and promoted only an hour later (a restore --start waited for it).
    with archiving_cluster(None, sample_erp=False) as archiving:
        archiving.capsys = capsys
        pg = archiving.pg
        table = sql.Identifier(f"t_{uuid.uuid4().hex[:10]}")
        insert = sql.SQL("INSERT INTO {} VALUES (%s)").format(table)
        pg.execute(sql.SQL("CREATE TABLE {} (id int)").format(table), dbname=SHOP)
        pg.execute(insert, (1,), dbname=SHOP)
        pg.execute("ALTER SYSTEM SET recovery_min_apply_delay = '1h'")  # a primary ignores it
        backup = archiving.backup()
        pg.execute(insert, (2,), dbname=SHOP)
        point = str(pg.scalar("SELECT pg_current_wal_insert_lsn()"))
        archiving.switch_and_archive()
        datadir = archiving.new_datadir()
        run = archiving.run("restore", backup["id"], "--target-datadir", str(datadir))
        assert run.code == 0, str(run)
        # What the start would read last (checked before starting: with the delay the
        # start waits an hour).
        written = (datadir / "postgresql.auto.conf").read_text()
        delays = [
            line.split("=", 1)[1].strip()
            for line in written.splitlines()
            if line.split("=", 1)[0].strip() == "recovery_min_apply_delay"
        ]
        assert delays[-1] == "'0'", written
        restored, _, _ = archiving.restore_started(
            backup["id"], restored_servers, "--target-lsn", point
        )
        query = sql.SQL("SELECT id FROM {} ORDER BY 1").format(table)
        assert [r[0] for r in restored.query(query, dbname=SHOP)] == [1, 2]
        assert restored.scalar("SHOW recovery_min_apply_delay") == "0"


def _last_setting(server: TempCluster, name: str) -> object:
    """What ``postgresql.auto.conf`` says last of ``name``: what the next start reads."""
    return server.scalar(
        "SELECT setting FROM pg_file_settings WHERE name = %s ORDER BY seqno DESC LIMIT 1",
        (name,),
    )


def test_a_backup_taken_after_a_copy_branched_off_restores_along_its_own_timeline(
    capsys: pytest.CaptureFixture[str], restored_servers: list[TempCluster]
) -> None:
    # A copy restored from an older backup with --keep-archiving was promoted and archived
    # timeline 2 (a failover rehearsal, or a failover undone); production went on on
    # timeline 1 and took a new backup. Timeline 2 branched off before that backup began:
    # following it ('latest'), PostgreSQL refused to start ("requested timeline 2 is not a
    # child of this server's history"), and the newest backup of production could be
    # neither restored nor restore-tested until timeline 2 was removed from the archive.
    with archiving_cluster(None, sample_erp=False) as archiving:
        archiving.capsys = capsys
        pg = archiving.pg
        table = sql.Identifier(f"t_{uuid.uuid4().hex[:10]}")
        insert = sql.SQL("INSERT INTO {} VALUES (%s)").format(table)
        query = sql.SQL("SELECT id FROM {} ORDER BY 1").format(table)
        pg.execute(sql.SQL("CREATE TABLE {} (id int)").format(table), dbname=SHOP)
        pg.execute(insert, (1,), dbname=SHOP)
        older = archiving.backup()
        copy, _, _ = archiving.restore_started(
            older["id"], restored_servers, "--immediate", "--keep-archiving"
        )
        # Its target is for that recovery only: postgresql.auto.conf outlives it, and a
        # standby made from the copy (pg_basebackup -R copies the file) kept 'immediate'
        # and 'promote', and promoted itself as soon as it was consistent.
        assert _last_setting(copy, "recovery_target") == ""
        copy.execute(insert, (2,), dbname=SHOP)
        _wait_archived(copy, str(copy.scalar("SELECT pg_walfile_name(pg_switch_wal())")))
        copy.stop("fast")
        pg.execute(insert, (3,), dbname=SHOP)
        newer = archiving.backup()
        pg.execute(insert, (4,), dbname=SHOP)
        archiving.switch_and_archive()
        system_id = str(pg.scalar("SELECT system_identifier FROM pg_control_system()"))
        assert (archiving.repo_dir / "wal" / system_id / "00000002" / "00000002.history").exists()

        drill = archiving.run("drill", newer["id"], "--json")
        assert drill.code == 0, str(drill)
        # To the end of the archived WAL: timeline 1's.
        datadir, port = archiving.new_datadir(), free_port()
        run = archiving.run(
            "restore", newer["id"], "--target-datadir", str(datadir), "--start",
            "--port", str(port),
        )  # fmt: skip
        assert run.code == 0, str(run)
        restored = archiving.restored(datadir, port)
        restored_servers.append(restored)
        assert "timeline 2: timeline 2 branched off timeline 1 at" in run.err, str(run)
        assert "recovery follows timeline 1 (recovery_target_timeline = 1)" in run.err
        assert [r[0] for r in restored.query(query, dbname=SHOP)] == [1, 3, 4]
        # Promoted to a timeline of its own, past the one the archive holds already.
        assert restored.scalar("SELECT timeline_id FROM pg_control_checkpoint()") == 3
        # Timeline 1 is for this recovery only: postgresql.auto.conf outlives it, and a
        # standby made from the copy (pg_basebackup -R copies the file) told to follow
        # timeline 1 never became consistent on the copy's timeline 3.
        assert _last_setting(restored, "recovery_target_timeline") == "latest"
        restored.stop("fast")
        # A target on timeline 1 after the switch is reached on timeline 1 too.
        lsn = str(pg.scalar("SELECT pg_current_wal_insert_lsn()"))
        pg.execute(insert, (5,), dbname=SHOP)
        archiving.switch_and_archive()
        restored, _, _ = archiving.restore_started(
            newer["id"], restored_servers, "--target-lsn", lsn
        )
        assert [r[0] for r in restored.query(query, dbname=SHOP)] == [1, 3, 4]
        assert _last_setting(restored, "recovery_target_lsn") == ""
        assert _last_setting(restored, "recovery_target_timeline") == "latest"


def test_a_point_in_time_recovery_that_became_the_primary_recovers_along_both_timelines(
    capsys: pytest.CaptureFixture[str], restored_servers: list[TempCluster]
) -> None:
    # One timeline switch serves two checks (it was built twice, in two tests): a
    # point-in-time recovery undoes rows 3 and 4 (timeline 1 -> 2); the restored server
    # is the new primary and archives timeline 2.
    #
    # 1. Its own backups are of timeline 2, their WAL and 00000002.history fetched as
    #    recovery asks for them, to a target on timeline 2.
    # 2. A target time after row 3's commit is after the branch point in the WAL but
    #    before timeline 2 existed: the data then was timeline 1's. Following timeline 2
    #    ('latest'), recovery stopped at the branch point (before timeline 2's first
    #    commit), without row 3, and said it had reached the target.
    with archiving_cluster(None, sample_erp=False) as archiving:
        archiving.capsys = capsys
        pg = archiving.pg
        table = sql.Identifier(f"t_{uuid.uuid4().hex[:10]}")
        insert = sql.SQL("INSERT INTO {} VALUES (%s)").format(table)
        query = sql.SQL("SELECT id FROM {} ORDER BY 1").format(table)
        pg.execute(sql.SQL("CREATE TABLE {} (id int)").format(table), dbname=SHOP)
        pg.execute(insert, (1,), dbname=SHOP)
        backup = archiving.backup()
        pg.execute(insert, (2,), dbname=SHOP)
        point = str(pg.scalar("SELECT pg_current_wal_insert_lsn()"))
        pg.execute(insert, (3,), dbname=SHOP)
        on_timeline_1 = pg.scalar("SELECT clock_timestamp()")
        pg.execute(insert, (4,), dbname=SHOP)
        archiving.switch_and_archive()
        pg.stop("fast")  # replaced by the point-in-time recovery below
        copy, _, run = archiving.restore_started(
            backup["id"], restored_servers, "--target-lsn", point, "--keep-archiving"
        )
        assert copy.scalar("SELECT timeline_id FROM pg_control_checkpoint()") == 2
        assert [r[0] for r in copy.query(query, dbname=SHOP)] == [1, 2], str(run)

        # 1. Settings of the copy's own that a restore of its backup must not recover with
        # (a standby's cleanup would delete WAL from its archive; an exclusive target or
        # the current timeline are not what the restore asks for).
        for setting, value in (
            ("archive_cleanup_command", "false"),
            ("recovery_end_command", "false"),
            ("recovery_target_inclusive", "off"),
            ("recovery_target_timeline", "current"),
        ):
            copy.execute(f"ALTER SYSTEM SET {setting} = '{value}'")
        # respaldo now backs up the copy: the same cluster, on timeline 2.
        write_config(archiving.base, copy)
        chown_tree(archiving.base)
        second = archiving.backup()
        copy.execute(insert, (10,), dbname=SHOP)
        on_timeline_2 = copy.scalar("SELECT clock_timestamp()")
        copy.execute(insert, (11,), dbname=SHOP)
        _wait_archived(copy, str(copy.scalar("SELECT pg_walfile_name(pg_switch_wal())")))
        copy.stop("fast")
        restored, _, _ = archiving.restore_started(
            second["id"], restored_servers, "--target-time", on_timeline_2.isoformat()
        )
        assert [r[0] for r in restored.query(query, dbname=SHOP)] == [1, 2, 10]
        assert restored.scalar("SELECT timeline_id FROM pg_control_checkpoint()") == 3
        for setting, value in (
            ("archive_cleanup_command", ""),
            ("recovery_end_command", ""),
            ("recovery_target_inclusive", "on"),
            ("recovery_target_timeline", "latest"),
        ):
            assert restored.scalar(f"SHOW {setting}") == value, setting
        restored.stop("fast")

        # 2. The backup of timeline 1, to a time before timeline 2 began.
        restored, _, run = archiving.restore_started(
            backup["id"], restored_servers, "--target-time", on_timeline_1.isoformat()
        )
        assert [r[0] for r in restored.query(query, dbname=SHOP)] == [1, 2, 3], str(run)
        assert "recovery follows timeline 1 (recovery_target_timeline = 1)" in run.err
        assert "timeline 2 began at" in run.err
        # Promoted past the archive's newest timeline, and back to 'latest' for later.
        assert restored.scalar("SELECT timeline_id FROM pg_control_checkpoint()") == 3
        assert _last_setting(restored, "recovery_target_timeline") == "latest"
        restored.stop("fast")
        # A time after timeline 2 began is on timeline 2.
        restored, _, run = archiving.restore_started(
            backup["id"], restored_servers, "--target-time", on_timeline_2.isoformat()
        )
        assert [r[0] for r in restored.query(query, dbname=SHOP)] == [1, 2, 10], str(run)
        assert "timeline 2 began at" not in run.err


def test_a_restored_copy_archiving_a_timeline_of_its_own_is_red_in_the_status(
    capsys: pytest.CaptureFixture[str], restored_servers: list[TempCluster]
) -> None:
    # The classic hazard: a copy restored (a look at old data on another machine, say)
    # and started with archiving on pushes its timeline 2 into production's archive,
    # under production's identity, while production goes on on timeline 1. Every push is
    # accepted (a copy that is the new primary pushes alike), and a later restore to the
    # end of the WAL follows timeline 2, the copy's data: the status said green.
    with archiving_cluster(None, sample_erp=False) as archiving:
        archiving.capsys = capsys
        backup = archiving.backup()
        archiving.switch_and_archive()
        level, reason = archive_verdict(archiving.run("status", "--json"))
        assert level == "green", reason
        copy, _, _ = archiving.restore_started(backup["id"], restored_servers, "--keep-archiving")
        copy.execute("CREATE TABLE on_the_copy ()")
        _wait_archived(copy, str(copy.scalar("SELECT pg_walfile_name(pg_switch_wal())")))
        archiving.switch_and_archive()  # production archives on, on timeline 1
        level, reason = archive_verdict(archiving.run("status", "--json"))
        assert level == "red", reason
        assert "the server archives timeline 1, but timeline 2 of this cluster" in reason

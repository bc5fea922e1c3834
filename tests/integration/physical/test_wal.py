"""WAL archiving through the real CLI: idempotent pushes, conflicts, other clusters, fetch.

The archiving cluster pushes its own WAL (archive_command runs ``respaldo wal-push`` as
the server's user); these tests push and fetch files by hand on top of that.
"""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path

import pytest
from sample.cluster import TempCluster

from respaldo.operations.wal import open_wal_repository
from respaldo.repository.wal import get_wal, list_wal, read_cluster
from tests.integration.physical.conftest import Archiving, chown_tree

pytestmark = pytest.mark.integration


def _system_id(archiving: Archiving) -> str:
    return str(archiving.pg.scalar("SELECT system_identifier FROM pg_control_system()"))


def test_archive_command_archived_the_segments(archiving: Archiving) -> None:
    segment = archiving.switch_and_archive()
    repo = open_wal_repository(archiving.settings())
    system_id = _system_id(archiving)
    names = list_wal(repo, system_id)
    assert f"wal/{system_id}/00000001/{segment}" in names
    record = read_cluster(repo, "erp")
    assert record is not None and record.system_identifier == system_id
    assert record.recorded_by == "wal-push"


def test_push_again_is_accepted_only_with_the_same_content(
    archiving: Archiving, tmp_path: Path
) -> None:
    segment = archiving.switch_and_archive()
    system_id = _system_id(archiving)
    copy = tmp_path / segment
    run = archiving.run("wal-fetch", "--system-id", system_id, segment, str(copy))
    assert run.code == 0, str(run)
    stored = archiving.repo_dir / "wal" / system_id / "00000001" / segment
    mtime = stored.stat().st_mtime_ns
    assert archiving.run("wal-push", str(copy)).code == 0
    assert stored.stat().st_mtime_ns == mtime  # nothing rewritten
    data = bytearray(copy.read_bytes())
    data[100_000] ^= 0xFF
    copy.write_bytes(bytes(data))
    run = archiving.run("wal-push", str(copy))
    assert run.code == 1
    assert "archived already with other content" in run.err
    repo = open_wal_repository(archiving.settings())
    assert get_wal(repo, system_id, "00000001", segment) != bytes(data)
    assert stored.stat().st_mtime_ns == mtime


def test_wal_of_another_cluster_is_refused(
    archiving: Archiving, pg: TempCluster, tmp_path: Path
) -> None:
    foreign = str(pg.scalar("SELECT pg_walfile_name(pg_switch_wal())"))
    copy = tmp_path / foreign
    shutil.copyfile(pg.datadir / "pg_wal" / foreign, copy)
    run = archiving.run("wal-push", str(copy))
    assert run.code == 1
    assert "is not the cluster the repository records for database erp" in run.err
    other_id = str(pg.scalar("SELECT system_identifier FROM pg_control_system()"))
    assert list_wal(open_wal_repository(archiving.settings()), other_id) == []


def test_files_that_are_not_wal_are_refused(archiving: Archiving, tmp_path: Path) -> None:
    junk = tmp_path / "000000010000000000000099"
    junk.write_bytes(b"not a segment" * 1000)
    run = archiving.run("wal-push", str(junk))
    assert run.code == 1
    assert "does not start with a WAL segment header" in run.err
    odd = tmp_path / "postmaster.pid"
    odd.write_text("1\n")
    run = archiving.run("wal-push", str(odd))
    assert run.code == 1
    assert "is not the name of a WAL file" in run.err


def test_history_files_round_trip(archiving: Archiving, tmp_path: Path) -> None:
    history = tmp_path / "pg_wal" / "0000000A.history"
    history.parent.mkdir()
    history.write_text("9\t0/9000000\tbefore transaction 1234\n")
    assert archiving.run("wal-push", str(history)).code == 0
    back = tmp_path / "back"
    run = archiving.run(
        "wal-fetch", "--system-id", _system_id(archiving), "0000000A.history", str(back)
    )
    assert run.code == 0, str(run)
    assert back.read_bytes() == history.read_bytes()


@pytest.mark.parametrize(
    ("content", "why"),
    [
        # A parent that cannot be one: timeline 7 is not before timeline 3.
        ("1\t0/3000000\tno recovery target specified\n7\t0/5000000\tx\n", "timeline 7"),
        ("2\t0/3000000\tx\n1\t0/5000000\tx\n", "increasing"),
        ("1\t0/5000000\tx\n2\t0/3000000\tx\n", "before the switch point"),
        ("1\n", "not a timeline history line"),
        ("0\t0/3000000\tx\n", "timeline 0"),
        ("# only a comment\n", "names no parent timeline"),
    ],
)
def test_a_malformed_history_file_is_refused_and_not_stored(
    archiving: Archiving, tmp_path: Path, content: str, why: str
) -> None:
    # PostgreSQL's recovery reads <TLI>.history as "parent, switch point, reason" lines,
    # parents increasing and before the file's own timeline: a file breaking that would
    # be archived, then end a later restore early (on the wrong timeline) or stop it.
    history = tmp_path / "00000003.history"
    history.write_text(content)
    run = archiving.run("wal-push", str(history))
    assert run.code == 1, str(run)
    assert "00000003.history is not a valid timeline history file" in run.err, str(run)
    assert why in run.err, str(run)
    stored = archiving.repo_dir / "wal" / _system_id(archiving) / "00000003"
    assert not (stored / "00000003.history").exists()


def test_a_history_file_branching_past_the_archived_wal_is_accepted(
    archiving: Archiving, tmp_path: Path
) -> None:
    # A promotion writes the history file before the new timeline's segments, and the
    # archiver takes history files before the old timeline's last ready segments: a
    # switch point past everything archived so far is what PostgreSQL itself sends.
    history = tmp_path / "000000C8.history"
    history.write_text("1\t0/90000000\tno recovery target specified\n")
    run = archiving.run("wal-push", str(history))
    assert run.code == 0, str(run)
    stored = archiving.repo_dir / "wal" / _system_id(archiving) / "000000C8" / history.name
    assert stored.exists()


def test_fetch_exit_status_as_the_server_sees_it(archiving: Archiving) -> None:
    """1 for "not archived" (recovery ends normally), 255 for failures (recovery stops)."""
    target = archiving.base / "fetched"
    system_id = _system_id(archiving)
    missing = archiving.run_as_server(
        "wal-fetch", "--system-id", system_id, "0000000100000000000000FE", str(target)
    )
    assert missing.code == 1, str(missing)
    assert "is not in the archive" in missing.err
    broken = archiving.base / "broken.toml"
    broken.write_text(
        archiving.config.read_text().replace(
            f"file://{archiving.repo_dir}", f"file://{archiving.base}/no-such-repository"
        )
    )
    chown_tree(broken)
    done = archiving.run_as_server(
        "--config",
        str(broken),
        "wal-fetch",
        "--system-id",
        system_id,
        "000000010000000000000001",
        str(target),
    )
    assert done.code == 255, str(done)
    assert "no repository" in done.err
    usage = archiving.run_as_server("wal-fetch", "only-one-argument")
    assert usage.code == 255, str(usage)
    assert not target.exists()


def test_a_segment_missing_before_archived_ones_is_a_hole_not_the_end(
    archiving: Archiving,
) -> None:
    """Segment 0 of the first log file is never archived, and later ones are: a hole,
    which stops recovery (255), unless the server can do without the answer."""
    archiving.switch_and_archive()
    pg_wal = archiving.base / f"hole-{uuid.uuid4().hex[:8]}" / "data" / "pg_wal"
    pg_wal.mkdir(parents=True)
    chown_tree(pg_wal.parent.parent)
    target = pg_wal / "RECOVERYXLOG"
    fetch = ("wal-fetch", "--system-id", _system_id(archiving), "000000010000000000000000")
    hole = archiving.run_as_server(*fetch, str(target))
    assert hole.code == 255, str(hole)
    assert "000000010000000000000000 is missing from the archive, which holds later" in hole.err
    assert "hint:" in hole.err and "respaldo pin" in hole.err
    # A standby waits for a segment and never promotes on a miss: "not archived" as before.
    (pg_wal.parent / "standby.signal").touch()
    assert archiving.run_as_server(*fetch, str(target)).code == 1
    (pg_wal.parent / "standby.signal").unlink()
    # Recovering to a target: the server reads ahead of where it stops, and a target
    # past the end of the WAL it can fetch is an error of its own.
    auto = pg_wal.parent / "postgresql.auto.conf"
    auto.write_text("recovery_target = 'immediate'\n")
    chown_tree(auto)
    assert archiving.run_as_server(*fetch, str(target)).code == 1
    auto.write_text("recovery_target = 'immediate'\nrecovery_target = ''\n")
    assert archiving.run_as_server(*fetch, str(target)).code == 255
    # The server has it in pg_wal (the backup's own WAL): it reads it from there next.
    (pg_wal / "000000010000000000000000").touch()
    assert archiving.run_as_server(*fetch, str(target)).code == 1
    assert not target.exists()


def test_async_archiving_with_a_background_pusher(archiving: Archiving) -> None:
    """A second cluster archives with ``wal-push --async`` into the same repository."""
    spool = archiving.base / "spool-async"
    config = archiving.base / "async.toml"
    config.write_text(archiving.config.read_text().replace('name = "erp"', 'name = "erp_async"'))
    chown_tree(config)
    command = (
        f"{archiving.respaldo_command} --config {config} wal-push --async "
        f"--spool {spool} --database erp_async %p"
    )
    cluster = TempCluster.create(settings={"archive_mode": "on", "archive_command": command})
    try:
        system_id = str(cluster.scalar("SELECT system_identifier FROM pg_control_system()"))
        cluster.execute("CREATE TABLE filler (v text)")
        segments = []
        for _ in range(3):
            cluster.execute(
                "INSERT INTO filler SELECT repeat('x', 500) FROM generate_series(1, 2000)"
            )
            segments.append(str(cluster.scalar("SELECT pg_walfile_name(pg_switch_wal())")))
        deadline = time.monotonic() + 240  # a hang only: a wal-push process per segment
        while time.monotonic() < deadline:
            last = cluster.scalar("SELECT last_archived_wal FROM pg_stat_archiver")
            if last is not None and str(last) >= segments[-1]:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(cluster.logfile.read_text()[-3000:])
        archived = list_wal(open_wal_repository(archiving.settings()), system_id)
        for segment in segments:
            assert f"wal/{system_id}/00000001/{segment}" in archived
        # Its verdicts and log in a directory of its own (servers may share a spool).
        assert len(list(spool.glob("server-*/pusher.log"))) == 1
        assert not list(spool.glob("**/*.error"))
        assert cluster.scalar("SELECT failed_count FROM pg_stat_archiver") == 0
    finally:
        cluster.destroy()

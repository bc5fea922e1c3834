"""The production server re-created under respaldo: a new ``initdb`` at the same data
directory and port (a rebuild, a logical restore onto a fresh cluster), so a new system
identifier, and WAL names beginning again at ``000000010000000000000001``, names the old
cluster archived already.

Until ``respaldo check erp --adopt``, ``wal-push`` refuses the new cluster's WAL and a
physical backup is refused; the status's WAL item must say so at once, also when
``archive_command`` is replaced by one that stores nothing (``true``, the usual quick fix
for the ``pg_wal`` that grows meanwhile): the names it "archives" are in the old cluster's
archive, and none of them is this server's. After the adoption the new cluster's WAL is
stored apart, nothing of the old one is overwritten, and a backup of the old cluster
still recovers with its own WAL.
"""

from __future__ import annotations

import pytest
from psycopg import sql
from sample.cluster import TempCluster

from tests.integration.physical.conftest import (
    SHOP,
    Archiving,
    archive_item,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def _system_id(pg: TempCluster) -> str:
    return str(pg.scalar("SELECT system_identifier FROM pg_control_system()"))


def _archived(pg: TempCluster) -> str | None:
    value = pg.scalar("SELECT last_archived_wal FROM pg_stat_archiver")
    return None if value is None else str(value)


def test_a_recreated_server_is_red_until_adopted_and_the_old_wal_stays_its_own(
    archiving_alone: Archiving, restored_servers: list[TempCluster]
) -> None:
    archiving = archiving_alone
    pg = archiving.pg
    old_id = _system_id(pg)
    old_backup = archiving.backup()["id"]
    pg.execute("CREATE TABLE mark (v text); INSERT INTO mark VALUES ('old')", dbname=SHOP)
    for _ in range(3):
        archiving.switch_and_archive()
    old_dir = archiving.repo_dir / "wal" / old_id / "00000001"
    old_files = {p.name: p.stat().st_mtime_ns for p in old_dir.iterdir()}

    pg.recreate()
    new_id = _system_id(pg)
    assert new_id != old_id
    pg.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(SHOP)))
    pg.execute("CREATE TABLE mark (v text); INSERT INTO mark VALUES ('new')", dbname=SHOP)
    pg.scalar("SELECT pg_switch_wal()")
    wait_for(
        "the new cluster's first push to fail",
        lambda: pg.scalar("SELECT failed_count FROM pg_stat_archiver") > 0,
    )
    refused = f"the server is cluster {new_id}, but the repository records cluster {old_id}"
    # respaldo's own archive_command: every push refused, nothing archived yet. This was
    # amber ("the last attempt failed") until a segment had waited 15 minutes.
    run = archiving.run("status", "--json")
    item = archive_item(run)
    assert item["level"] == "red", item
    assert item["reason"].startswith(refused), item
    assert "respaldo check erp --adopt" in item["reason"]
    assert run.code == 3
    refused_backup = archiving.run("backup", "erp", "--type", "incremental")
    assert refused_backup.code == 1
    assert "is not the cluster the repository records" in refused_backup.err

    # The quick fix for the pg_wal that grows meanwhile: names the old cluster archived
    # are "archived" again, stored nowhere. This was green.
    pg.execute("ALTER SYSTEM SET archive_command = 'true'")
    pg.scalar("SELECT pg_reload_conf()")
    # The segments refused so far wait; 'true' takes them at once.
    wait_for("'true' to archive the waiting segments", lambda: _archived(pg) is not None)
    assert _archived(pg) in old_files  # a name the old cluster archived
    item = archive_item(archiving.run("status", "--json"))
    assert item["level"] == "red", item
    assert item["reason"].startswith(refused), item
    assert {p.name: p.stat().st_mtime_ns for p in old_dir.iterdir()} == old_files

    # Adopted on purpose: the new cluster archives apart, the old archive is untouched.
    pg.execute("ALTER SYSTEM RESET archive_command")
    pg.scalar("SELECT pg_reload_conf()")
    adopted = archiving.run("check", "erp", "--adopt")
    assert "recorded the server's cluster as erp's" in adopted.err, str(adopted)
    assert "take a physical backup now" in adopted.err
    segment = archiving.switch_and_archive()
    assert (archiving.repo_dir / "wal" / new_id / "00000001" / segment).exists()
    assert {p.name: p.stat().st_mtime_ns for p in old_dir.iterdir()} == old_files
    # Archived, but onto no backup: the newest physical backup is the old cluster's, and
    # point-in-time recovery ends where that cluster ended. This was green.
    item = archive_item(archiving.run("status", "--json"))
    assert item["level"] == "red", item
    assert item["reason"].startswith(
        f"no physical backup of this cluster yet: the newest, {old_backup}, is of cluster "
        f"{old_id}, which this server's archived WAL cannot be replayed onto"
    ), item
    new_backup = archiving.backup()["id"]
    archiving.switch_and_archive()
    item = archive_item(archiving.run("status", "--json"))
    assert item["level"] == "green", item

    # The old cluster's backup recovers to the end of its own WAL, not the new one's.
    restored, _, _ = archiving.restore_started(old_backup, restored_servers, to_the_end=True)
    assert _system_id(restored) == old_id
    assert restored.query("SELECT v FROM mark", dbname=SHOP) == [("old",)]
    # And the new cluster's backup to the end of its own.
    restored, _, _ = archiving.restore_started(new_backup, restored_servers, to_the_end=True)
    assert _system_id(restored) == new_id
    assert restored.query("SELECT v FROM mark", dbname=SHOP) == [("new",)]


def test_async_verdicts_the_old_cluster_left_are_not_taken_for_the_new_ones(
    archiving_alone: Archiving,
) -> None:
    """``wal-push --async``: the old server's pusher pushed ahead of its archiver, and the
    server died before its archive commands took those verdicts (``<file>.ok`` in the
    spool directory of its ``pg_wal``'s path). The re-created server has the same
    ``pg_wal`` path and names its segments alike: its archive command took the old
    ``.ok`` for its own file, and the server recycled a segment never stored."""
    archiving = archiving_alone
    pg = archiving.pg
    spool = archiving.base / "spool"
    command = (
        f"{archiving.respaldo_command} --config {archiving.config} wal-push --async "
        f"--spool {spool} %p"
    )
    # The old server's archiver is held back while its pusher, started by one archive
    # command run by hand as the server would, pushes every file waiting in its queue.
    pg.execute("ALTER SYSTEM SET archive_command = '/bin/false'")
    pg.scalar("SELECT pg_reload_conf()")
    old_segments: list[str] = []
    for _ in range(5):
        pg.scalar("SELECT pg_logical_emit_message(false, 'test', 'switch')")
        old_segments.append(str(pg.scalar("SELECT pg_walfile_name(pg_switch_wal())")))
    first = pg.datadir / "pg_wal" / old_segments[0]
    wait_for(
        "the segments to wait in the queue",
        lambda: (first.parent / "archive_status" / f"{first.name}.ready").exists(),
    )
    by_hand = archiving.run_as_server("wal-push", "--async", "--spool", str(spool), str(first))
    assert by_hand.code == 0, str(by_hand)
    old_id = _system_id(pg)
    old_dir = archiving.repo_dir / "wal" / old_id / "00000001"
    wait_for(
        "the old pusher to push its waiting segments",
        lambda: all((old_dir / s).exists() for s in old_segments),
    )

    pg.recreate()
    new_id = _system_id(pg)
    pg.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(SHOP)))
    adopted = archiving.run("check", "erp", "--adopt")
    assert "recorded the server's cluster as erp's" in adopted.err, str(adopted)
    pg.execute(f"ALTER SYSTEM SET archive_command = '{command}'")
    pg.scalar("SELECT pg_reload_conf()")
    new_segments: list[str] = []
    while not new_segments or new_segments[-1] < old_segments[-1]:
        pg.scalar("SELECT pg_logical_emit_message(false, 'test', 'switch')")
        new_segments.append(str(pg.scalar("SELECT pg_walfile_name(pg_switch_wal())")))
    # The point of the test: the new segments bear names the old pusher left verdicts for.
    assert set(old_segments[1:]) <= set(new_segments), (old_segments, new_segments)
    wait_for(
        "the new server to archive its segments",
        lambda: (_archived(pg) or "") >= new_segments[-1],
        timeout=240,
    )
    new_dir = archiving.repo_dir / "wal" / new_id / "00000001"
    missing = [s for s in new_segments if not (new_dir / s).exists()]
    assert not missing, f"the new server was told these were archived: {missing}"

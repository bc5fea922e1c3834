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

from collections.abc import Iterator
from typing import Any

import pytest
from psycopg import sql
from sample.cluster import TempCluster

from tests.integration.physical.conftest import (
    SHOP,
    Archiving,
    Run,
    archiving_cluster,
    free_port,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def archiving_alone(
    pg_major: int | None, capsys: pytest.CaptureFixture[str]
) -> Iterator[Archiving]:
    """An archiving cluster of this test alone: it is re-created."""
    with archiving_cluster(pg_major) as archiving:
        archiving.capsys = capsys
        yield archiving


def _archive_item(run: Run) -> dict[str, Any]:
    databases: list[dict[str, Any]] = run.json()["databases"]
    (item,) = [i for db in databases for i in db["items"] if i["check"] == "archive"]
    return dict(item)


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
    item = _archive_item(run)
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
    item = _archive_item(archiving.run("status", "--json"))
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
    item = _archive_item(archiving.run("status", "--json"))
    assert item["level"] == "red", item
    assert item["reason"].startswith(
        f"no physical backup of this cluster yet: the newest, {old_backup}, is of cluster "
        f"{old_id}, which this server's archived WAL cannot be replayed onto"
    ), item
    new_backup = archiving.backup()["id"]
    archiving.switch_and_archive()
    item = _archive_item(archiving.run("status", "--json"))
    assert item["level"] == "green", item

    # The old cluster's backup recovers to the end of its own WAL, not the new one's.
    datadir = archiving.new_datadir()
    port = free_port()
    run = archiving.run(
        "restore", old_backup, "--target-datadir", str(datadir), "--start", "--port", str(port)
    )
    assert run.code == 0, str(run)
    restored = archiving.restored(datadir, port)
    restored_servers.append(restored)
    assert _system_id(restored) == old_id
    assert restored.query("SELECT v FROM mark", dbname=SHOP) == [("old",)]
    # And the new cluster's backup to the end of its own.
    datadir = archiving.new_datadir()
    port = free_port()
    run = archiving.run(
        "restore", new_backup, "--target-datadir", str(datadir), "--start", "--port", str(port)
    )
    assert run.code == 0, str(run)
    restored = archiving.restored(datadir, port)
    restored_servers.append(restored)
    assert _system_id(restored) == new_id
    assert restored.query("SELECT v FROM mark", dbname=SHOP) == [("new",)]

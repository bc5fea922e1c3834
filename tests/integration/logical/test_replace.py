"""``restore --replace`` swaps a database, and a failed restore leaves the original alone."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql
from sample.cluster import TempCluster

from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import (
    databases,
    large_objects,
    staging_databases,
    table_checksums,
)

pytestmark = pytest.mark.integration


def _spoil(pg: TempCluster, dbname: str) -> None:
    """A day of mistakes after the backup: deleted payments, a changed customer."""
    pg.execute(
        "DELETE FROM finanzas.pagos WHERE id % 3 = 0;"
        "UPDATE core.clientes SET razon_social = 'BORRADO' WHERE id = 1;"
        "INSERT INTO public.schema_migrations VALUES ('9999.99.99')",
        dbname=dbname,
    )


def _old_copies(pg: TempCluster, target: str) -> set[str]:
    return {name for name in databases(pg) if name.startswith(f"{target}_old_")}


def test_replace_keeps_the_old_database_or_drops_it(respaldo: Respaldo, pg: TempCluster) -> None:
    target = respaldo.dbname
    backed_up = table_checksums(pg, target)
    objects = large_objects(pg, target)
    backup_id = respaldo.backup()["id"]
    _spoil(pg, target)
    spoiled = table_checksums(pg, target)
    assert spoiled != backed_up
    # A session of the application that is still connected must not stop the swap.
    with pg.connect(target) as app_session:
        run = respaldo.restore(backup_id, target, "--replace")
        with pytest.raises(psycopg.OperationalError):
            app_session.execute("SELECT 1")  # it was terminated
    assert table_checksums(pg, target) == backed_up
    assert large_objects(pg, target) == objects
    (old,) = _old_copies(pg, target)
    assert re.fullmatch(rf"{target}_old_[0-9]{{14}}", old), old  # <name>_old_<UTC time>
    assert f"previous database kept as {old}" in run.err
    assert table_checksums(pg, old) == spoiled
    assert staging_databases(pg) == set()

    _spoil(pg, target)
    run = respaldo.restore(backup_id, target, "--replace", "--drop-old")
    assert "previous database dropped" in run.err
    assert table_checksums(pg, target) == backed_up
    assert _old_copies(pg, target) == {old}  # the first one is still kept; no new one
    assert staging_databases(pg) == set()


def test_a_failing_pre_restore_hook_leaves_the_database_alone(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    target = respaldo.dbname
    backup_id = respaldo.backup()["id"]
    _spoil(pg, target)
    spoiled = table_checksums(pg, target)
    before = databases(pg)
    # erp_hooked: the same server, with pre_restore_hook = ["false"].
    run = respaldo.run(
        "restore", backup_id, "--target-database", target, "--replace", "--database", "erp_hooked"
    )
    assert run.code == 1, str(run)
    assert run.err_lines == [
        "respaldo: error: pre-restore hook false failed with status 1",
        f"respaldo: hint: nothing was changed: {target} is as it was; "
        "fix pre_restore_hook and retry",
    ]
    assert table_checksums(pg, target) == spoiled  # untouched, and still working
    assert databases(pg) == before  # no staging, no old copy


def test_a_failing_post_restore_hook_says_the_swap_happened(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    target = respaldo.dbname
    backed_up = table_checksums(pg, target)
    backup_id = respaldo.backup()["id"]
    _spoil(pg, target)
    # erp_posthook: post_restore_hook fails after the swap, when nothing can be undone.
    run = respaldo.run(
        "restore", backup_id, "-t", target, "--replace", "--drop-old", "--database", "erp_posthook"
    )
    assert run.code == 1, str(run)
    (old,) = _old_copies(pg, target)
    assert run.err_lines == [
        "respaldo: error: post-restore hook sh failed with status 4: erp will not start",
        f"respaldo: hint: the restore itself is done: {target} holds the backup and the "
        f"previous database is kept as {old}; finish the post-restore steps by hand",
    ]
    assert table_checksums(pg, target) == backed_up
    assert staging_databases(pg) == set()


def test_a_restore_that_fails_midway_leaves_the_database_alone(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    target = respaldo.dbname
    backup_id = respaldo.backup()["id"]
    _spoil(pg, target)
    spoiled = table_checksums(pg, target)
    before = databases(pg)
    pack = respaldo.damage_dump(backup_id)
    run = respaldo.run("restore", backup_id, "--target-database", target, "--replace")
    assert run.code == 1, str(run)
    assert run.err_lines[0].startswith("respaldo: error: chunk "), run.err
    assert f"[backup {backup_id}] [object {pack}]" in run.err_lines[0]
    assert table_checksums(pg, target) == spoiled
    assert databases(pg) == before


def test_an_old_copy_of_the_same_second_does_not_stop_a_replace(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    """Two replaces of one database within a second: the second must not fail on the name."""
    target = respaldo.dbname
    backup_id = respaldo.backup()["id"]
    now = datetime.now(UTC)
    taken = {f"{target}_old_{now + timedelta(seconds=s):%Y%m%d%H%M%S}" for s in range(3)}
    for name in taken:
        pg.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    run = respaldo.restore(backup_id, target, "--replace")
    (new_old,) = _old_copies(pg, target) - taken
    assert f"previous database kept as {new_old}" in run.err
    assert table_checksums(pg, new_old) == table_checksums(pg, target)


def test_any_name_postgresql_keeps_restores_and_replaces(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    """The rule of names is PostgreSQL's (up to 63 bytes), for -t as for backup and drill."""
    backed_up = table_checksums(pg, respaldo.dbname)
    backup_id = respaldo.backup()["id"]
    # One backup restored under each name: a space, an accent, 63 bytes of two-byte letters.
    for target in ["my db", "Nómina 2024", "ñ" * 31 + "x"]:
        respaldo.restore(backup_id, target)
        assert table_checksums(pg, target) == backed_up
        _spoil(pg, target)
        before = databases(pg)
        run = respaldo.run("restore", backup_id, "-t", target, "--replace")
        assert run.code == 0, str(run)
        assert table_checksums(pg, target) == backed_up
        (old,) = databases(pg) - before
        assert len(old.encode()) <= 63
        assert f"previous database kept as {old}" in run.err
        assert table_checksums(pg, old) != backed_up  # the spoiled one, under a name that exists


def test_a_name_postgresql_would_change_is_refused_before_anything_happens(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    backup_id = respaldo.backup()["id"]
    for target, why in [("x" * 64, "64 bytes"), ("a\nb", "line break"), ("", "empty")]:
        before = databases(pg)
        run = respaldo.run("restore", backup_id, "--target-database", target)
        assert run.code == 1, str(run)
        assert run.err_lines[0].startswith("respaldo: error: invalid database name"), run.err
        assert why in run.err_lines[0]
        assert run.err_lines[1].startswith("respaldo: hint: "), run.err
        assert databases(pg) == before


def test_replace_of_a_database_whose_sessions_reconnect_at_once(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    # An application's connection pool reconnects as soon as its sessions are ended, and
    # PostgreSQL renames no database with sessions: every --replace of a database in use
    # failed ('is being accessed by other users'). The database refuses new connections
    # while it is swapped, and accepts them again afterwards, under its old name.
    target = respaldo.dbname
    backup_id = respaldo.backup()["id"]
    before = databases(pg)
    stop = threading.Event()
    connected = [threading.Event() for _ in range(3)]

    def pool(seen: threading.Event) -> None:
        while not stop.is_set():
            try:
                with pg.connect(target) as conn:
                    seen.set()
                    while not stop.is_set():
                        conn.execute("SELECT 1")
            except psycopg.Error:
                continue  # ended, or refused: at once again, as a pool does

    threads = [threading.Thread(target=pool, args=(seen,)) for seen in connected]
    for thread in threads:
        thread.start()
    try:
        assert all(seen.wait(30) for seen in connected)
        run = respaldo.run("restore", backup_id, "-t", target, "--replace")
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert run.code == 0, str(run)
    [old] = databases(pg) - before
    allowed = "SELECT datallowconn FROM pg_catalog.pg_database WHERE datname = %s"
    assert pg.scalar(allowed, [old]) is True
    assert pg.scalar(allowed, [target]) is True
    assert table_checksums(pg, target) == table_checksums(pg, old)

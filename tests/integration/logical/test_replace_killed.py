"""A ``restore --replace`` killed (kill -9) at each point of its swap: once its job is
known dead, the next reading of the status (``respaldo status``, the watchdog, the page)
undoes what it left, as the restore undoes a swap that fails: the user's database back
under its name, accepting connections, nothing lost. What cannot be undone stays red, with
how to do it by hand."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql
from sample.cluster import TempCluster

from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import databases, script_child, table_checksums

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SWAP_KILLED = Path(__file__).with_name("swap_killed.py")


def _swap_items(respaldo: Respaldo, *, servers: bool = True) -> list[dict[str, Any]]:
    run = respaldo.run("status", "--json", *([] if servers else ["--no-servers"]))
    report = run.json()
    items = [*report["general"], *(i for db in report["databases"] for i in db["items"])]
    return [i for i in items if i["check"] == "swap"]


def _kill_mid_swap(respaldo: Respaldo, backup_id: str, target: str, point: str) -> list[str]:
    """Run the restore --replace in a child, kill it -9 at ``point`` of its swap
    (swap_killed.py); the words of the line it printed there."""
    args = [point, str(respaldo.config), backup_id, "-t", target, "--replace"]
    with script_child(SWAP_KILLED, *args) as child:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.startswith(f"{point} "), (line, child.communicate())
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    return line.split()


def _allowed(pg: TempCluster) -> dict[str, bool]:
    rows = pg.query("SELECT datname, datallowconn FROM pg_catalog.pg_database")
    return {str(r[0]): bool(r[1]) for r in rows}


def test_a_replace_killed_between_its_renames_is_undone_by_the_status(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    target = respaldo.dbname
    backup_id = respaldo.backup()["id"]
    pg.execute("INSERT INTO public.schema_migrations VALUES ('after the backup')", dbname=target)
    before = table_checksums(pg, target)
    _, _, old = _kill_mid_swap(respaldo, backup_id, target, "renamed")
    # What the crash left: the application's database gone from its name, and shut.
    assert target not in databases(pg)
    assert _allowed(pg)[old] is False

    assert _swap_items(respaldo) == []  # undone, nothing left to say
    allowed = _allowed(pg)
    assert allowed[target] is True
    assert old not in allowed
    assert table_checksums(pg, target) == before  # the replaced data, not the backup's
    # And a restore --replace runs again.
    respaldo.restore(backup_id, target, "--replace", "--drop-old")
    assert _allowed(pg)[target] is True


def test_a_replace_killed_once_the_database_was_shut_is_opened_by_the_status(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    target = respaldo.dbname
    backup_id = respaldo.backup()["id"]
    before = table_checksums(pg, target)
    _kill_mid_swap(respaldo, backup_id, target, "shut")
    assert _allowed(pg)[target] is False

    assert _swap_items(respaldo) == []
    assert _allowed(pg)[target] is True
    assert table_checksums(pg, target) == before


def test_a_replace_killed_after_its_renames_opens_the_kept_copy(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    target = respaldo.dbname
    backup_id = respaldo.backup()["id"]
    before = table_checksums(pg, target)
    _kill_mid_swap(respaldo, backup_id, target, "swapped")
    allowed = _allowed(pg)
    assert allowed[target] is True  # the restored copy, in place
    (old,) = (n for n in allowed if n.startswith(f"{target}_old_"))
    assert allowed[old] is False

    assert _swap_items(respaldo) == []
    assert _allowed(pg)[old] is True
    assert table_checksums(pg, old) == before


def test_a_status_that_leaves_the_servers_alone_only_tells(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    target = respaldo.dbname
    backup_id = respaldo.backup()["id"]
    before = table_checksums(pg, target)
    _, _, old = _kill_mid_swap(respaldo, backup_id, target, "renamed")
    (item,) = _swap_items(respaldo, servers=False)
    assert item["level"] == "red"
    assert f'ALTER DATABASE "{old}" RENAME TO "{target}"' in item["reason"]
    assert f'ALTER DATABASE "{target}" ALLOW_CONNECTIONS true' in item["reason"]
    assert target not in databases(pg)
    assert _swap_items(respaldo) == []  # with the servers: undone
    assert table_checksums(pg, target) == before


def test_a_replace_killed_mid_swap_is_cleared_by_a_later_restore(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    target = respaldo.dbname
    backup_id = respaldo.backup()["id"]
    before = table_checksums(pg, target)
    _, _, old = _kill_mid_swap(respaldo, backup_id, target, "renamed")

    respaldo.restore(backup_id, target)  # the name is free: restored anew
    assert _swap_items(respaldo) == []
    assert table_checksums(pg, target) == before
    # The old copy is the user's to drop, or to open again: it was shut for the swap.
    pg.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(old)))
    assert table_checksums(pg, old) == before


def test_a_replace_killed_mid_swap_is_undone_from_a_read_only_maintenance_database(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    # The status undoes the swap from "postgres" (the target is missing): made read-only
    # there, as the restore's own sessions it writes whatever that default says.
    target = respaldo.dbname
    backup_id = respaldo.backup()["id"]
    before = table_checksums(pg, target)
    _kill_mid_swap(respaldo, backup_id, target, "renamed")
    pg.execute("ALTER DATABASE postgres SET default_transaction_read_only = on")
    try:
        assert _swap_items(respaldo) == []
    finally:
        pg.execute(
            "ALTER DATABASE postgres RESET default_transaction_read_only", dbname="template1"
        )
    assert _allowed(pg)[target] is True
    assert table_checksums(pg, target) == before

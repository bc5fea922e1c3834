"""A ``restore --replace`` killed between the two renames of its swap: the user's database
is left under its ``_old_`` name, and the status says so, with how to rename it back, until
it is resolved (renamed back, or restored again)."""

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


def _swap_items(respaldo: Respaldo) -> list[dict[str, Any]]:
    run = respaldo.run("status", "--json")
    report = run.json()
    items = [*report["general"], *(i for db in report["databases"] for i in db["items"])]
    return [i for i in items if i["check"] == "swap"]


def _kill_mid_swap(respaldo: Respaldo, backup_id: str, target: str) -> str:
    """Run the restore --replace in a child, kill it -9 after the first rename; the old name."""
    args = [str(respaldo.config), backup_id, "-t", target, "--replace"]
    with script_child(SWAP_KILLED, *args) as child:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.startswith(f"renamed {target} "), (line, child.communicate())
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    return line.split()[2]


def test_a_replace_killed_mid_swap_is_in_the_status_until_renamed_back(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    target = respaldo.dbname
    backup_id = respaldo.backup()["id"]
    before = table_checksums(pg, target)
    old = _kill_mid_swap(respaldo, backup_id, target)
    assert target not in databases(pg)
    assert old in databases(pg)

    (item,) = _swap_items(respaldo)
    assert item["level"] == "red"
    assert item["database"] == "erp"
    reason = item["reason"]
    assert f"database {target} is missing" in reason
    assert f"previous contents are in {old}" in reason
    assert f'ALTER DATABASE "{old}" RENAME TO "{target}"' in reason
    # It was shut for the swap (an application would have reconnected before the rename).
    assert f'ALTER DATABASE "{target}" ALLOW_CONNECTIONS true' in reason
    assert _swap_items(respaldo) == [item]  # said again, until resolved

    rename = sql.SQL("ALTER DATABASE {} RENAME TO {}")
    pg.execute(rename.format(sql.Identifier(old), sql.Identifier(target)))
    (item,) = _swap_items(respaldo)  # back under its name, still shut
    assert f"database {target} refuses every connection" in item["reason"]
    assert f'ALTER DATABASE "{target}" ALLOW_CONNECTIONS true' in item["reason"]
    pg.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(target)))
    assert table_checksums(pg, target) == before  # nothing lost
    assert _swap_items(respaldo) == []


def test_a_replace_killed_mid_swap_is_cleared_by_a_later_restore(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    target = respaldo.dbname
    backup_id = respaldo.backup()["id"]
    before = table_checksums(pg, target)
    old = _kill_mid_swap(respaldo, backup_id, target)
    assert len(_swap_items(respaldo)) == 1

    respaldo.restore(backup_id, target)  # the name is free: restored anew
    assert _swap_items(respaldo) == []
    assert table_checksums(pg, target) == before
    # The old copy is the user's to drop, or to open again: it was shut for the swap.
    pg.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(old)))
    assert table_checksums(pg, old) == before

"""The client programs that fit each server: a database's ``pg_bin_dir``, the system's
installations, the ``respaldo[pg18]`` extra; the manifest records which ran.

The servers here are the system's (Debian 12: 15); PostgreSQL 18's programs come from
the extra that ``make setup`` installs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sample.cluster import TempCluster

from respaldo.postgres.toolsets import bundled_bindir
from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import databases
from tests.integration.logical.test_errors import assert_error

pytestmark = pytest.mark.integration


def add_database(respaldo: Respaldo, name: str, pg_bin_dir: Path) -> None:
    """Another configured database on the same server and database, with ``pg_bin_dir``."""
    erp = respaldo.settings().database("erp")
    assert erp.password_file is not None
    with respaldo.config.open("a") as fh:
        fh.write(
            f'\n[[databases]]\nname = "{name}"\ndsn = "{erp.dsn}"\n'
            f'password_file = "{erp.password_file}"\npg_bin_dir = "{pg_bin_dir}"\n'
        )


def server_major(pg: TempCluster) -> int:
    return int(pg.scalar("SHOW server_version_num")) // 10000


def test_the_manifest_records_the_programs_that_dumped(respaldo: Respaldo, pg: TempCluster) -> None:
    backup_id = respaldo.backup()["id"]
    tools = respaldo.repository().load_manifest(backup_id).meta["client_tools"]
    major = server_major(pg)
    # The system's own installation of the server's major: the closest fit.
    assert tools["origin"] == "system"
    assert tools["bindir"] == f"/usr/lib/postgresql/{major}/bin"
    assert tools["pg_dump"].startswith(f"pg_dump (PostgreSQL) {major}.")
    assert tools["pg_dumpall"].startswith(f"pg_dumpall (PostgreSQL) {major}.")


def test_pg_bin_dir_is_used_and_its_newer_dump_is_not_restored_into_an_older_server(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    pg18 = bundled_bindir()
    assert pg18 is not None, "make setup installs respaldo[pg18]"
    add_database(respaldo, "erp_pg18_tools", pg18)
    record = respaldo.backup("erp_pg18_tools")
    tools = respaldo.repository().load_manifest(record["id"]).meta["client_tools"]
    assert (tools["origin"], tools["bindir"]) == ("pg_bin_dir", str(pg18))
    assert tools["pg_dump"].startswith("pg_dump (PostgreSQL) 18.")
    # pg_restore 18 writes settings a 15 server refuses (transaction_timeout): refused
    # before anything is created, instead of failing half-way.
    major = server_major(pg)
    assert major < 18
    before = databases(pg)
    run = respaldo.run("restore", record["id"], "-t", new_dbname, "--database", "erp")
    assert_error(
        run,
        f"was dumped by pg_dump 18, newer than the PostgreSQL {major} server",
        "leave pg_bin_dir of 'erp' unset",
    )
    assert databases(pg) == before


def test_a_pg_bin_dir_without_the_programs_fails_before_anything_is_stored(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    empty = respaldo.tmp / "no-postgresql" / "bin"
    empty.mkdir(parents=True)
    add_database(respaldo, "erp_bad_tools", empty)
    major = server_major(pg)
    run = respaldo.run("backup", "erp_bad_tools")
    assert_error(
        run,
        f"pg_dump/pg_restore of PostgreSQL {major} or newer not found (looked in {empty}: "
        "no pg_dump, pg_dumpall, pg_restore, psql)",
        f"point [[databases]] pg_bin_dir of 'erp_bad_tools' at a PostgreSQL {major} bin",
    )
    assert "point bindir" not in run.err
    (record,) = respaldo.records()
    assert record.status == "failed"
    assert respaldo.repository().backup_ids() == []
    # A restore through that database fails before it creates anything.
    backup_id = respaldo.backup()["id"]
    before = databases(pg)
    restore = respaldo.run("restore", backup_id, "-t", new_dbname, "--database", "erp_bad_tools")
    assert_error(restore, "not found", "pg_bin_dir of 'erp_bad_tools'")
    assert databases(pg) == before

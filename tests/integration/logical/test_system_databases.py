"""System databases are not restore targets unless forced, and a contaminated template0
(staging databases are created from it) stops a restore instead of slipping into it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from psycopg import sql
from sample.cluster import TempCluster

from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import databases, staging_databases, table_checksums

pytestmark = pytest.mark.integration


def _objects(pg: TempCluster, dbname: str) -> int:
    return int(
        pg.scalar("SELECT count(*) FROM pg_catalog.pg_class WHERE oid >= 16384", dbname=dbname)
    )


@pytest.mark.parametrize("target", ["postgres", "template1", "template0"])
@pytest.mark.parametrize("replace", [True, False])
def test_system_databases_are_refused(
    respaldo: Respaldo, pg: TempCluster, target: str, replace: bool
) -> None:
    backup_id = respaldo.backup()["id"]
    before = databases(pg)
    objects = _objects(pg, "template1")
    options = ["--replace"] if replace else []
    run = respaldo.run("restore", backup_id, "-t", target, *options)
    assert run.code == 1, str(run)
    assert run.err_lines[0] == (
        f"respaldo: error: {target} is a system database of the cluster; "
        "restoring into it is refused"
    ), run.err
    if target == "template0":
        assert "never" in run.err_lines[1], run.err
    else:
        assert "--force-system-database" in run.err_lines[1], run.err
    assert databases(pg) == before  # no staging, no old copy, nothing renamed
    assert _objects(pg, "template1") == objects


def test_template0_is_refused_even_when_forced(respaldo: Respaldo, pg: TempCluster) -> None:
    backup_id = respaldo.backup()["id"]
    before = databases(pg)
    run = respaldo.run(
        "restore", backup_id, "-t", "template0", "--replace", "--force-system-database"
    )
    assert run.code == 1, str(run)
    assert "template0 is a system database" in run.err_lines[0], run.err
    assert databases(pg) == before


def test_a_forced_replace_of_postgres_swaps_it(respaldo: Respaldo, pg: TempCluster) -> None:
    backup_id = respaldo.backup()["id"]
    pg.execute("CREATE TABLE public.marca_de_postgres (x int)")
    before = databases(pg)
    try:
        run = respaldo.run(
            "restore", backup_id, "-t", "postgres", "--replace", "--force-system-database"
        )
        assert run.code == 0, str(run)
        (old,) = databases(pg) - before
        assert f"previous database kept as {old}" in run.err
        assert table_checksums(pg, "postgres") == table_checksums(pg, respaldo.dbname)
        kept = pg.scalar("SELECT to_regclass('public.marca_de_postgres') IS NOT NULL", dbname=old)
        assert kept is True
    finally:
        # Put the cluster's own postgres database back for the tests that follow.
        with pg.connect("template1") as conn:
            for name in databases(pg) - before:
                conn.execute(sql.SQL("DROP DATABASE postgres WITH (FORCE)"))
                conn.execute(
                    sql.SQL("ALTER DATABASE {} RENAME TO postgres").format(sql.Identifier(name))
                )
        pg.execute("DROP TABLE public.marca_de_postgres")


@pytest.fixture
def contaminated_template0(pg: TempCluster) -> Iterator[str]:
    """template0 with a table in it (as a mistaken ALLOW_CONNECTIONS session leaves it);
    cleaned and closed again afterwards."""
    pg.execute("ALTER DATABASE template0 ALLOW_CONNECTIONS true")
    try:
        pg.execute("CREATE TABLE public.intrusa (x int)", dbname="template0")
        pg.execute("ALTER DATABASE template0 ALLOW_CONNECTIONS false")
        yield "public.intrusa"
    finally:
        pg.execute("ALTER DATABASE template0 ALLOW_CONNECTIONS true")
        pg.execute("DROP TABLE IF EXISTS public.intrusa", dbname="template0")
        pg.execute("ALTER DATABASE template0 ALLOW_CONNECTIONS false")


def test_a_contaminated_template0_stops_the_restore(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str, contaminated_template0: str
) -> None:
    backup_id = respaldo.backup()["id"]
    before = databases(pg)
    run = respaldo.run("restore", backup_id, "-t", new_dbname)
    assert run.code == 1, str(run)
    assert run.err_lines[0].startswith(
        "respaldo: error: template0 is not empty: a database created from it holds "
    ), run.err
    assert contaminated_template0 in run.err_lines[0]
    assert "template0" in run.err_lines[1] and "nothing was restored" in run.err_lines[1]
    assert databases(pg) == before
    assert staging_databases(pg) == set()


def test_a_contaminated_template0_fails_a_drill(
    respaldo: Respaldo, pg: TempCluster, contaminated_template0: str
) -> None:
    respaldo.backup()
    before = databases(pg)
    run = respaldo.run("drill", "erp")
    assert run.code != 0, str(run)
    assert "template0 is not empty" in run.out + run.err, str(run)
    assert databases(pg) == before

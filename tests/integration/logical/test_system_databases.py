"""System databases are not restore targets unless forced, and a contaminated template0
(staging databases are created from it) stops a restore instead of slipping into it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from psycopg import sql
from sample.cluster import TempCluster

from respaldo.errors import RestoreError
from respaldo.operations.restore import create_empty_database
from respaldo.postgres import unexpected_objects
from respaldo.postgres.scratchdb import STAGING_PREFIX, scratch_name
from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import databases, staging_databases, table_checksums

pytestmark = pytest.mark.integration


def _objects(pg: TempCluster, dbname: str) -> int:
    return int(
        pg.scalar("SELECT count(*) FROM pg_catalog.pg_class WHERE oid >= 16384", dbname=dbname)
    )


def test_system_databases_are_refused(respaldo: Respaldo, pg: TempCluster) -> None:
    # One backup for every system database, replaced or not: each refusal is checked
    # to change nothing.
    backup_id = respaldo.backup()["id"]
    for target in ["postgres", "template1", "template0"]:
        for replace in [True, False]:
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
        yield "table public.intrusa"
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


# --- what the check finds, kind by kind, on a throwaway cluster ----------------------------
#
# Each case changes a copy of template0 the way a session in template0 itself would; some
# changes (a built-in replaced in place) cannot be undone exactly, so the shared cluster is
# never touched: one cluster of their own serves these tests and is thrown away after.


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[TempCluster]:
    with TempCluster.create() as cluster:
        yield cluster


_CONTAMINATIONS = {
    "default privileges": (
        "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC",
        "default acl",
    ),
    "privileges of a system schema": ("GRANT CREATE ON SCHEMA public TO PUBLIC", "schema public"),
    "privileges of a catalog column": (
        "GRANT SELECT (rolpassword) ON pg_catalog.pg_authid TO PUBLIC",
        "privileges of table column pg_catalog.pg_authid.rolpassword",
    ),
    "cast": (
        "CREATE CAST (text AS int4) WITH INOUT AS IMPLICIT",
        "cast (pg_catalog.text AS integer)",
    ),
    "operator": (
        "CREATE OPERATOR pg_catalog.=== (FUNCTION = pg_catalog.texteq,"
        " LEFTARG = text, RIGHTARG = text)",
        "operator pg_catalog.===(pg_catalog.text,pg_catalog.text)",
    ),
    "operator class": (
        "CREATE OPERATOR CLASS pg_catalog.otra FOR TYPE int4 USING btree"
        " AS OPERATOR 1 <, FUNCTION 1 btint4cmp(int4, int4)",
        "operator class pg_catalog.otra USING btree",
    ),
    "collation": ('CREATE COLLATION pg_catalog.otra FROM "C"', "collation pg_catalog.otra"),
    "conversion": (
        "CREATE CONVERSION pg_catalog.otra FOR 'LATIN1' TO 'UTF8' FROM iso8859_1_to_utf8",
        "conversion pg_catalog.otra",
    ),
    "text search": (
        "CREATE TEXT SEARCH CONFIGURATION pg_catalog.otra (COPY = pg_catalog.simple)",
        "text search configuration pg_catalog.otra",
    ),
    "foreign data wrapper": ("CREATE FOREIGN DATA WRAPPER otro", "foreign-data wrapper otro"),
    "built-in function replaced": (
        "CREATE OR REPLACE FUNCTION pg_catalog.lower(text) RETURNS text LANGUAGE internal"
        " IMMUTABLE STRICT PARALLEL SAFE AS 'upper'",
        "function pg_catalog.lower(pg_catalog.text)",
    ),
    "table": ("CREATE TABLE public.intrusa (x int)", "table public.intrusa"),
}


def test_a_database_fresh_from_template0_shows_nothing(own_cluster: TempCluster) -> None:
    own_cluster.execute("CREATE DATABASE limpia TEMPLATE template0")
    try:
        assert unexpected_objects(own_cluster.conninfo("limpia")) == []
    finally:
        own_cluster.execute("DROP DATABASE limpia")


@pytest.mark.parametrize("kind", sorted(_CONTAMINATIONS))
def test_every_kind_of_change_to_template0_is_found(own_cluster: TempCluster, kind: str) -> None:
    statement, expected = _CONTAMINATIONS[kind]
    own_cluster.execute("CREATE DATABASE copia TEMPLATE template0")
    try:
        own_cluster.execute(statement, dbname="copia")
        found = unexpected_objects(own_cluster.conninfo("copia"))
        assert any(expected in what for what in found), found
    finally:
        own_cluster.execute("DROP DATABASE copia")


def test_a_built_in_replaced_in_template0_stops_the_staging_database(
    own_cluster: TempCluster,
) -> None:
    # Last in the module: template0 of this cluster stays changed (it is thrown away).
    statement, expected = _CONTAMINATIONS["built-in function replaced"]
    before = {row[0] for row in own_cluster.query("SELECT datname FROM pg_database")}
    own_cluster.execute("ALTER DATABASE template0 ALLOW_CONNECTIONS true")
    own_cluster.execute(statement, dbname="template0")
    own_cluster.execute("ALTER DATABASE template0 ALLOW_CONNECTIONS false")
    with pytest.raises(RestoreError) as caught:
        # A staging database's name: only those may be dropped again (drop_scratch).
        create_empty_database(own_cluster.conninfo(), scratch_name(STAGING_PREFIX))
    assert str(caught.value).startswith(
        f"template0 is not empty: a database created from it holds {expected}"
    ), caught.value
    assert "nothing was restored" in (caught.value.hint or "")
    after = {row[0] for row in own_cluster.query("SELECT datname FROM pg_database")}
    assert after == before


@pytest.mark.parametrize("target", ["respaldo_staging_0123abcd", "respaldo_drill_0123456789ab"])
def test_scratch_database_names_are_refused_as_targets(
    respaldo: Respaldo, pg: TempCluster, target: str
) -> None:
    # Every restore and drill drops such a database as abandoned once nobody holds it:
    # a restore into one would be lost at the next restore.
    backup_id = respaldo.backup()["id"]
    before = databases(pg)

    run = respaldo.run("restore", backup_id, "-t", target)

    assert run.code == 1, str(run)
    error, hint = run.err_lines
    assert target in error and "scratch" in error
    assert "another name" in hint
    assert databases(pg) == before


def test_a_name_only_starting_like_a_scratch_one_is_an_ordinary_target(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    # Never swept (postgres.scratchdb): a restore into it stays through later restores.
    target = "respaldo_staging_ventas"
    backup_id = respaldo.backup()["id"]
    try:
        respaldo.restore(backup_id, target)
        respaldo.restore(backup_id, f"{target}_2")
        assert {target, f"{target}_2"} <= databases(pg)
    finally:
        for name in (target, f"{target}_2"):
            pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

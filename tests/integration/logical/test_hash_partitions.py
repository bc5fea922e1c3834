"""A table hash-partitioned on an enum column restores, and is checked by its total.

pg_dump loads such a table's partitions through the partitioned table (PostgreSQL
commit 012ffb365): the hash of an enum value follows its OID, which the new database
gives anew, so the rows may land in other partitions than in the source. Each
partition's count then differs from the backup's while the table is whole: before, the
restore (and every restore test of that database) failed with "restored row counts
differ from the backup's".

pg_dump does that only for a key that is an enum or a domain over one. A key holding an
enum inside an array, a composite, a range or a multirange it dumped partition by
partition, and the new database refused the rows ("violates partition constraint"):
respaldo's backup now tells pg_dump to load through the partitioned tables then.

A key of an OID alias type (``regtype``: dumped as a name, restored as the new type's
OID) and an expression key over an enum (``ARRAY[k]``: the catalog holds its operator
class, not its type) were dumped partition by partition too, and failed the same way.
So was a key of an operator class of the user's own (its hash may be anything); a key
under a nondeterministic ICU collation is loaded through its root too (another ICU
version may hash it otherwise).

One partition of such a table restored alone (``--table``) fails: its rows come through
the partitioned table, and the new hash sends them to partitions not restored. The
error now says so, and to restore the partitioned table.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from psycopg import sql
from sample.cluster import TempCluster

from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import databases, staging_databases

pytestmark = pytest.mark.integration


@pytest.fixture
def erp_db(pg: TempCluster) -> Iterator[str]:
    """``respaldo``'s source database here: an empty one, not a copy of the sample ERP.
    These tests restore the tables they make; the ERP's 3 MB of rows proved nothing of
    them and made each backup, restore and drill of the module several times longer."""
    name = f"vacia_{uuid.uuid4().hex[:12]}"
    pg.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        pg.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# 24 values: that the new database's OIDs put every one in the same partition as the
# source's does (one chance in 3**24) would leave the test nothing to show.
_COLORS = ", ".join(f"'tono{i:02}'" for i in range(24))
_TABLE = (
    f"CREATE TYPE public.color AS ENUM ({_COLORS})",
    "CREATE TABLE public.pinturas (color public.color, n int) PARTITION BY HASH (color)",
    *(
        f"CREATE TABLE public.pinturas_{r} PARTITION OF public.pinturas"
        f" FOR VALUES WITH (MODULUS 3, REMAINDER {r})"
        for r in range(3)
    ),
    "INSERT INTO public.pinturas"
    " SELECT (enum_range(NULL::public.color))[1 + i % 24], i FROM generate_series(1, 6000) i",
)
_ROWS = "SELECT color::text, n FROM public.pinturas ORDER BY n"
_PLACES = "SELECT DISTINCT color::text, tableoid::regclass::text FROM public.pinturas ORDER BY 1"


def _backed_up(respaldo: Respaldo, pg: TempCluster, statements: tuple[str, ...]) -> str:
    """The id of a backup of the source database after ``statements`` ran in it."""
    for statement in statements:
        pg.execute(statement, dbname=respaldo.dbname)
    backup_id: str = respaldo.backup()["id"]
    return backup_id


def test_a_table_hash_partitioned_on_an_enum_restores_and_passes_a_restore_test(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    # One backup for both restores (serial, parallel) and the drill: what differs is
    # how each loads it.
    backup_id = _backed_up(respaldo, pg, _TABLE)

    for jobs in ("1", "2"):
        target = f"{new_dbname}_{jobs}"
        run = respaldo.restore(backup_id, target, "--jobs", jobs)

        assert "tables' row counts checked" in run.err
        assert pg.query(_ROWS, dbname=target) == pg.query(_ROWS, dbname=respaldo.dbname)
        # What the check allowed: the same rows, some in other partitions (the old check
        # failed).
        places = pg.query(_PLACES, dbname=target)
        assert places != pg.query(_PLACES, dbname=respaldo.dbname), places
        assert staging_databases(pg) == set()
    drill = respaldo.run("drill", backup_id)
    assert drill.code == 0, str(drill)
    assert staging_databases(pg) == set()


def test_a_hash_partitioned_table_whose_total_differs_is_refused(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    backup_id = _backed_up(respaldo, pg, _TABLE)

    def forge(meta: dict[str, Any]) -> None:
        meta["row_counts"]["public.pinturas_1"] += 1

    # The same streams under a new id, whose snapshot recorded one row more in one
    # partition than the dump holds: the tree's total differs.
    forged = respaldo.as_older(backup_id, forge)

    for jobs in ("1", "2"):
        run = respaldo.run("restore", forged, "--target-database", new_dbname, "--jobs", jobs)

        assert run.code == 1, str(run)
        assert "restored row counts differ from the backup's" in run.err, run.err
        assert "public.pinturas_" in run.err, run.err
        assert new_dbname not in databases(pg)
        assert staging_databases(pg) == set()


_TYPES = (
    "CREATE TYPE public.tono AS ENUM ('rojo', 'verde', 'azul', 'negro', 'blanco', 'gris')",
    "CREATE TYPE public.par AS (t public.tono, x int)",
    "CREATE TYPE public.tonos AS RANGE (subtype = public.tono)",
)


def _muestras(key: str, by: str, value: str) -> tuple[str, ...]:
    """public.muestras with column ``key``, hash-partitioned by ``by`` into three
    partitions, and 3,000 rows of ``value`` (an expression of ``i``)."""
    return (
        f"CREATE TABLE public.muestras ({key}, n int) PARTITION BY HASH ({by})",
        *(
            f"CREATE TABLE public.muestras_{r} PARTITION OF public.muestras"
            f" FOR VALUES WITH (MODULUS 3, REMAINDER {r})"
            for r in range(3)
        ),
        f"INSERT INTO public.muestras SELECT {value}, i FROM generate_series(1, 3000) i",
    )


_NESTED = {
    "array": ("public.tono[]", "ARRAY[(enum_range(NULL::public.tono))[1 + i % 6]]"),
    "composite": (
        "public.par",
        "ROW((enum_range(NULL::public.tono))[1 + i % 6], i % 2)::public.par",
    ),
    "range": (
        "public.tonos",
        "public.tonos((enum_range(NULL::public.tono))[1 + i % 3], "
        "(enum_range(NULL::public.tono))[4 + i % 3])",
    ),
    "multirange": (
        "public.tonos_multirange",
        "public.tonos_multirange(public.tonos((enum_range(NULL::public.tono))[1 + i % 3], "
        "(enum_range(NULL::public.tono))[4 + i % 3]))",
    ),
}


@pytest.mark.parametrize("key", sorted(_NESTED))
def test_a_hash_key_holding_an_enum_inside_another_type_restores(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str, key: str
) -> None:
    key_type, value = _NESTED[key]
    backup_id = _backed_up(respaldo, pg, (*_TYPES, *_muestras(f"k {key_type}", "k", value)))
    meta = respaldo.repository().load_manifest(backup_id).meta
    assert meta["load_via_partition_root"] == ["public.muestras"]

    rows = "SELECT k::text, n FROM public.muestras ORDER BY n"
    for jobs in ("1", "2"):
        target = f"{new_dbname}_{jobs}"
        run = respaldo.restore(backup_id, target, "--jobs", jobs)

        assert "tables' row counts checked" in run.err
        assert pg.query(rows, dbname=target) == pg.query(rows, dbname=respaldo.dbname)
    drill = respaldo.run("drill", backup_id)
    assert drill.code == 0, str(drill)
    assert staging_databases(pg) == set()


_REFUSALS = {
    "C": 'no partition of relation "pinturas" found for row',
    # The server's refusal was looked for in English: in Spanish, no hint.
    "es_ES.UTF-8": "no se encontró una partición de «pinturas» para el registro",
}


def test_one_partition_of_it_alone_is_refused_saying_to_restore_the_table(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    backup_id = _backed_up(respaldo, pg, _TABLE)
    # The partition of the most values (8 or more of the 24): its rows come through
    # public.pinturas, and that the new OIDs hash all its values to it again has at most
    # one chance in 3**8.
    leaf = pg.scalar(
        "SELECT 'public.' || c.relname FROM public.pinturas p"
        " JOIN pg_catalog.pg_class c ON c.oid = p.tableoid"
        " GROUP BY c.relname ORDER BY count(DISTINCT p.color) DESC LIMIT 1",
        dbname=respaldo.dbname,
    )
    # The server's messages in each language, from one backup.
    for lc_messages, refusal in _REFUSALS.items():
        pg.execute(sql.SQL("ALTER SYSTEM SET lc_messages = {}").format(sql.Literal(lc_messages)))
        pg.execute("SELECT pg_catalog.pg_reload_conf()")
        try:
            run = respaldo.run(
                "restore", backup_id, "--target-database", new_dbname, "--table", str(leaf)
            )
        finally:
            pg.execute("ALTER SYSTEM RESET lc_messages")
            pg.execute("SELECT pg_catalog.pg_reload_conf()")

        assert run.code == 1, str(run)
        assert refusal in run.err, run.err
        assert "through their partitioned table (public.pinturas" in run.err, run.err
        assert new_dbname not in databases(pg)
        assert staging_databases(pg) == set()
    # What the hint says to do: the whole table, its rows as in the source.
    run = respaldo.restore(backup_id, new_dbname, "--table", "public.pinturas")
    assert "3 tables' row counts checked" in run.err, run.err
    assert pg.query(_ROWS, dbname=new_dbname) == pg.query(_ROWS, dbname=respaldo.dbname)


# Keys pg_dump writes partition by partition whose hash a new database changes: an
# expression over an enum (its type is not in the catalog), an OID alias of a type.
_RENUMBERED = {
    "expression": ("k public.tono", "(ARRAY[k])", "(enum_range(NULL::public.tono))[1 + i % 6]"),
    "regtype": (
        "k regtype",
        "k",
        "(ARRAY['public.tono', 'public.par', 'public.tonos', 'int4'])[1 + i % 4]::regtype",
    ),
}


@pytest.mark.parametrize("key", sorted(_RENUMBERED))
def test_a_hash_key_a_new_database_numbers_anew_restores(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str, key: str
) -> None:
    column, by, value = _RENUMBERED[key]
    backup_id = _backed_up(respaldo, pg, (*_TYPES, *_muestras(column, by, value)))

    rows = "SELECT k::text, n FROM public.muestras ORDER BY n"
    for jobs in ("1", "2"):
        target = f"{new_dbname}_{jobs}"
        # Before, "violates partition constraint" (for a regtype, when the new OIDs of
        # the three types moved a row).
        run = respaldo.restore(backup_id, target, "--jobs", jobs)
        assert "tables' row counts checked" in run.err
        assert pg.query(rows, dbname=target) == pg.query(rows, dbname=respaldo.dbname)
    drill = respaldo.run("drill", backup_id)
    assert drill.code == 0, str(drill)
    assert staging_databases(pg) == set()
    meta = respaldo.repository().load_manifest(backup_id).meta
    assert meta["load_via_partition_root"] == ["public.muestras"]


# Keys hashed by what a new server may compute otherwise. An operator class of the
# user's own: here its hash is the OID of the table a value names, which the new
# database gives anew (before, "violates partition constraint"). A nondeterministic ICU
# collation: its hash is ICU's sort key, which another ICU version may change (a restore
# onto a newer system); one machine cannot show that, only that such a key is loaded
# through its root, and restores.
_TABLE_NAMES = ", ".join(f"'public.tabla_{i:02}'" for i in range(12))
_TABLE_NAME = f"(ARRAY[{_TABLE_NAMES}])[1 + i % 12]"
_FOREIGN_HASH = {
    "operator class": (
        *(f"CREATE TABLE public.tabla_{i:02} ()" for i in range(12)),
        "CREATE FUNCTION public.hash_tabla(text) RETURNS int IMMUTABLE LANGUAGE sql"
        " AS $$ SELECT pg_catalog.hashoid(pg_catalog.to_regclass($1)::oid) $$",
        "CREATE FUNCTION public.hash_tabla(text, bigint) RETURNS bigint IMMUTABLE"
        " LANGUAGE sql"
        " AS $$ SELECT pg_catalog.hashoidextended(pg_catalog.to_regclass($1)::oid, $2) $$",
        "CREATE OPERATOR CLASS public.tabla_ops FOR TYPE text USING hash AS"
        " OPERATOR 1 pg_catalog.= (text, text),"
        " FUNCTION 1 public.hash_tabla(text), FUNCTION 2 public.hash_tabla(text, bigint)",
        *_muestras("k text", "k public.tabla_ops", _TABLE_NAME),
    ),
    "ICU collation": (
        "CREATE COLLATION public.sin_mayusculas"
        " (provider = icu, locale = 'und-u-ks-level2', deterministic = false)",
        *_muestras("k text COLLATE public.sin_mayusculas", "k", _TABLE_NAME),
    ),
}


@pytest.mark.parametrize("key", sorted(_FOREIGN_HASH))
def test_a_hash_key_another_server_may_hash_otherwise_restores(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str, key: str
) -> None:
    backup_id = _backed_up(respaldo, pg, _FOREIGN_HASH[key])
    meta = respaldo.repository().load_manifest(backup_id).meta
    assert meta["load_via_partition_root"] == ["public.muestras"]

    rows = "SELECT k, n FROM public.muestras ORDER BY n"
    run = respaldo.restore(backup_id, new_dbname, "--jobs", "2")
    assert "tables' row counts checked" in run.err
    assert pg.query(rows, dbname=new_dbname) == pg.query(rows, dbname=respaldo.dbname)
    drill = respaldo.run("drill", backup_id)
    assert drill.code == 0, str(drill)
    assert staging_databases(pg) == set()

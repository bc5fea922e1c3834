"""Unusual but legal schema objects round-trip: backup, restore (--jobs 1 and 2), drill.

Each object bears on what a restore checks, table by table, against the backup's row
counts (``count(*) FROM ONLY``, keyed by quoted names): rows in an inheritance parent
and in its children; names with dots, double quotes, spaces, upper case and non-ASCII
letters; a table with no columns but rows; an unlogged table; a table whose forced
row-level security hides every row from its owner; a range → list tree with default
partitions; a hash tree on an enum under a range partition, and one hashed on a domain
over an enum (whose rows a new database routes to other leaves). The sample ERP has
none of them. Every object is in one database, so that one backup covers them all.
"""

from __future__ import annotations

import pytest
from sample.cluster import TempCluster

from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import staging_databases

pytestmark = pytest.mark.integration

_ODD = '"Año. ""raro"" é"'
_TONO = "(enum_range(NULL::public.tono))[1 + i % 6]"

_SCHEMA = (
    # Inheritance: rows in the parent and in both children.
    "CREATE TABLE public.animal (id int, name text)",
    "CREATE TABLE public.perro (raza text) INHERITS (public.animal)",
    "CREATE TABLE public.gato () INHERITS (public.animal)",
    "INSERT INTO public.animal SELECT i, 'a' || i FROM generate_series(1, 10) i",
    "INSERT INTO public.perro SELECT i, 'p' || i, 'x' FROM generate_series(11, 30) i",
    "INSERT INTO public.gato SELECT i, 'g' || i FROM generate_series(31, 35) i",
    # Names that need quoting, and two tables whose unquoted keys would be alike.
    f"CREATE SCHEMA {_ODD}",
    f'CREATE TABLE {_ODD}."Tabla. ñ ""x"" É" ("Col ñ" int, "a.b" text)',
    f'INSERT INTO {_ODD}."Tabla. ñ ""x"" É" SELECT i, \'v\' || i FROM generate_series(1, 50) i',
    'CREATE TABLE public."UPPER" (id int)',
    'INSERT INTO public."UPPER" SELECT generate_series(1, 7)',
    'CREATE TABLE public."a.b" (id int)',
    'INSERT INTO public."a.b" SELECT generate_series(1, 3)',
    f'CREATE TABLE {_ODD}."a.b" (id int)',
    f'INSERT INTO {_ODD}."a.b" SELECT generate_series(1, 5)',
    # No columns, three rows.
    "CREATE TABLE public.z ()",
    "INSERT INTO public.z DEFAULT VALUES",
    "INSERT INTO public.z DEFAULT VALUES",
    "INSERT INTO public.z DEFAULT VALUES",
    "CREATE UNLOGGED TABLE public.efimera (id int PRIMARY KEY, t text)",
    "INSERT INTO public.efimera SELECT i, 't' || i FROM generate_series(1, 500) i",
    # Forced row-level security whose policy hides half the rows from the table's owner.
    "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'unusual_owner')"
    " THEN CREATE ROLE unusual_owner; END IF; END$$",
    "CREATE TABLE public.secretos (id int, visible bool)",
    "INSERT INTO public.secretos SELECT i, i % 2 = 0 FROM generate_series(1, 100) i",
    "ALTER TABLE public.secretos OWNER TO unusual_owner",
    "ALTER TABLE public.secretos ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE public.secretos FORCE ROW LEVEL SECURITY",
    "CREATE POLICY solo_visibles ON public.secretos USING (visible)",
    # Range → list, with a default partition at both levels.
    "CREATE TABLE public.ev (d date, k text, n int) PARTITION BY RANGE (d)",
    "CREATE TABLE public.ev_2024 PARTITION OF public.ev"
    " FOR VALUES FROM ('2024-01-01') TO ('2025-01-01') PARTITION BY LIST (k)",
    "CREATE TABLE public.ev_2024_a PARTITION OF public.ev_2024 FOR VALUES IN ('a')",
    "CREATE TABLE public.ev_2024_def PARTITION OF public.ev_2024 DEFAULT",
    "CREATE TABLE public.ev_def PARTITION OF public.ev DEFAULT",
    "INSERT INTO public.ev SELECT DATE '2023-06-01' + i, chr(97 + i % 3), i"
    " FROM generate_series(1, 900) i",
    # Hash on an enum one level down (the tree's root is a range partition), and hash on
    # a domain over an enum: pg_dump loads both through the root.
    "CREATE TYPE public.tono AS ENUM ('a', 'b', 'c', 'd', 'e', 'f')",
    "CREATE TABLE public.rh (d int, k public.tono, n int) PARTITION BY RANGE (d)",
    "CREATE TABLE public.rh_lo PARTITION OF public.rh FOR VALUES FROM (0) TO (300)"
    " PARTITION BY HASH (k)",
    "CREATE TABLE public.rh_hi PARTITION OF public.rh FOR VALUES FROM (300) TO (1000)",
    *(
        f"CREATE TABLE public.rh_lo_{r} PARTITION OF public.rh_lo"
        f" FOR VALUES WITH (MODULUS 3, REMAINDER {r})"
        for r in range(3)
    ),
    f"INSERT INTO public.rh SELECT i, {_TONO}, i FROM generate_series(1, 600) i",
    "CREATE DOMAIN public.tono_d AS public.tono",
    "CREATE TABLE public.hd (k public.tono_d, n int) PARTITION BY HASH (k)",
    *(
        f"CREATE TABLE public.hd_{r} PARTITION OF public.hd"
        f" FOR VALUES WITH (MODULUS 3, REMAINDER {r})"
        for r in range(3)
    ),
    f"INSERT INTO public.hd SELECT {_TONO}, i FROM generate_series(1, 600) i",
)

_CONTENT = (
    "SELECT tableoid::regclass::text, * FROM public.animal ORDER BY id",
    f'SELECT * FROM {_ODD}."Tabla. ñ ""x"" É" ORDER BY 1',
    'SELECT count(*) FROM public."UPPER"',
    'SELECT count(*) FROM public."a.b"',
    f'SELECT count(*) FROM {_ODD}."a.b"',
    "SELECT count(*) FROM public.z",
    "SELECT * FROM public.efimera ORDER BY id",
    "SELECT relpersistence FROM pg_class WHERE relname = 'efimera'",
    "SELECT * FROM public.secretos ORDER BY id",
    "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = 'secretos'",
    "SELECT tableoid::regclass::text, * FROM public.ev ORDER BY n",
    "SELECT k::text, n FROM public.rh ORDER BY n",
    "SELECT k::text, n FROM public.hd ORDER BY n",
)


def test_unusual_schema_objects_restore_whole_and_pass_a_restore_test(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    for statement in _SCHEMA:
        pg.execute(statement, dbname=respaldo.dbname)
    backup_id = respaldo.backup()["id"]

    for jobs in ("1", "2"):
        target = f"{new_dbname}_{jobs}"
        run = respaldo.restore(backup_id, target, "--jobs", jobs)
        assert "tables' row counts checked" in run.err, run.err
        for query in _CONTENT:
            restored = pg.query(query, dbname=target)
            assert restored == pg.query(query, dbname=respaldo.dbname), (jobs, query)
    drill = respaldo.run("drill", backup_id)
    assert drill.code == 0, str(drill)
    assert staging_databases(pg) == set()

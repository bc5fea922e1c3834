"""Schema objects a restore brings back whole, and one it cannot, reported with its reason.

A hunt through objects that bear on what a dump holds and a restore rebuilds: identity,
generated and serial columns and sequences in each state (called or not, cycled,
descending); large objects with a comment and a grant; bytea with every byte value,
rows TOASTed many times over; materialized views populated and WITH NO DATA; an event
trigger, a publication with a row filter, column grants, default privileges, a rule, a
trigger, a NOT VALID check; a non-deterministic ICU collation under a primary key; a
self-referencing key and two deferred keys in a cycle; an exclusion constraint and a
domain; a table's settings column by column and its extended statistics; a typed
table, a multirange, an enum grown before and after its values; an aggregate, a
procedure, a BEGIN ATOMIC function under an index; a NO INHERIT check; triggers enabled
for replicas and disabled; a foreign table; values whose text form is easy to get wrong
(NaN, -0, xml, intervals). Each comes back equal (pg_dump --schema-only, every table's
rows, sequences, large objects) through a restore with one job and with two, and a
restore test passes.

What pg_dump cannot restore: an index, a CHECK or a materialized view calling a function
whose body names a table or function without its schema. The dump's statements run with
an empty search_path, so the restore (and every restore test) fails; respaldo says so
with the server's reason, which the lines after it used to push out of the message.
"""

from __future__ import annotations

import pytest
from sample.cluster import TempCluster

from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import (
    databases,
    large_objects,
    schema_dump,
    sequence_values,
    staging_databases,
    table_checksums,
)

pytestmark = pytest.mark.integration

_ROLE = "objects_reader"
_OBJECTS = (
    f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{_ROLE}')"
    f" THEN CREATE ROLE {_ROLE}; END IF; END$$",
    # Identity, generated and serial columns; sequences in every state.
    "CREATE TABLE public.gen (id int GENERATED ALWAYS AS IDENTITY (START 100 INCREMENT 7),"
    " x int, y int GENERATED ALWAYS AS (x * 2) STORED)",
    "INSERT INTO public.gen (x) SELECT generate_series(1, 50)",
    "CREATE TABLE public.owned (id serial, t text)",
    "INSERT INTO public.owned (t) SELECT 'x' FROM generate_series(1, 5)",
    "CREATE SEQUENCE public.s_uncalled START 42",
    "CREATE SEQUENCE public.s_set",
    "SELECT setval('public.s_set', 77, false)",
    "CREATE SEQUENCE public.s_cycle MAXVALUE 3 CYCLE",
    "SELECT nextval('public.s_cycle') FROM generate_series(1, 4)",
    "CREATE SEQUENCE public.s_desc INCREMENT -1",
    "SELECT nextval('public.s_desc') FROM generate_series(1, 3)",
    # Large objects, one with a comment and a grant.
    "SELECT lo_from_bytea(424242, '\\x00ff'::bytea)",
    "SELECT lo_from_bytea(424243, decode(repeat('ab', 100000), 'hex'))",
    "COMMENT ON LARGE OBJECT 424242 IS 'un objeto'",
    f"GRANT SELECT ON LARGE OBJECT 424242 TO {_ROLE}",
    # Every byte value; rows TOASTed many times over; text COPY must escape.
    "CREATE TABLE public.bin (id int, b bytea, t text)",
    "INSERT INTO public.bin SELECT 1, (SELECT string_agg(set_byte('\\x00'::bytea, 0, i),"
    " ''::bytea) FROM generate_series(0, 255) i), ''",
    "INSERT INTO public.bin SELECT i, decode(repeat(md5(i::text), 20000), 'hex'),"
    " repeat(md5(i::text), 50000) FROM generate_series(2, 4) i",
    "INSERT INTO public.bin VALUES (7, NULL, E'tab\\tnl\\nback\\\\ cr\\r'), (8, '', NULL)",
    # Materialized views: populated, and WITH NO DATA (which the backup cannot count).
    "CREATE TABLE public.mv_src (id int)",
    "INSERT INTO public.mv_src SELECT generate_series(1, 20)",
    "CREATE MATERIALIZED VIEW public.mv_full AS SELECT id * 2 AS d FROM public.mv_src",
    "CREATE MATERIALIZED VIEW public.mv_empty AS SELECT id FROM public.mv_src WITH NO DATA",
    # Objects of the post-data section and privileges.
    "CREATE FUNCTION public.et_fn() RETURNS event_trigger LANGUAGE plpgsql"
    " AS $$ BEGIN RAISE NOTICE 'ddl'; END $$",
    "CREATE EVENT TRIGGER et ON ddl_command_end EXECUTE FUNCTION public.et_fn()",
    "CREATE TABLE public.pubt (id int PRIMARY KEY, t text)",
    "INSERT INTO public.pubt SELECT i, 'x' FROM generate_series(1, 10) i",
    "CREATE PUBLICATION objects_pub FOR TABLE public.pubt WHERE (id > 3)",
    f"GRANT SELECT (id) ON public.pubt TO {_ROLE}",
    f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {_ROLE}",
    "CREATE TABLE public.trg (id int, n int)",
    "CREATE FUNCTION public.trg_fn() RETURNS trigger LANGUAGE plpgsql"
    " AS $$ BEGIN NEW.n := NEW.n + 1; RETURN NEW; END $$",
    "CREATE TRIGGER trg_b BEFORE INSERT ON public.trg FOR EACH ROW"
    " EXECUTE FUNCTION public.trg_fn()",
    "INSERT INTO public.trg SELECT i, i FROM generate_series(1, 10) i",
    "CREATE TABLE public.ruled (id int)",
    "INSERT INTO public.ruled SELECT generate_series(1, 10)",
    "CREATE RULE nada AS ON INSERT TO public.ruled DO INSTEAD NOTHING",
    "CREATE TABLE public.nv (id int)",
    "INSERT INTO public.nv VALUES (-1), (1)",
    "ALTER TABLE public.nv ADD CONSTRAINT pos CHECK (id > 0) NOT VALID",
    # A non-deterministic collation under a primary key.
    "CREATE COLLATION public.ci (provider = icu, locale = 'und-u-ks-level2',"
    " deterministic = false)",
    "CREATE TABLE public.ci_t (t text COLLATE public.ci PRIMARY KEY)",
    "INSERT INTO public.ci_t VALUES ('Árbol'), ('casa'), ('ZETA')",
    # Keys: to the same table, and two deferred ones in a cycle.
    "CREATE TABLE public.nodo (id int PRIMARY KEY, padre int REFERENCES public.nodo)",
    "INSERT INTO public.nodo VALUES (1, NULL), (2, 1), (3, 2)",
    "CREATE TABLE public.ca (id int PRIMARY KEY, b int)",
    "CREATE TABLE public.cb (id int PRIMARY KEY,"
    " a int REFERENCES public.ca DEFERRABLE INITIALLY DEFERRED)",
    "ALTER TABLE public.ca ADD FOREIGN KEY (b) REFERENCES public.cb DEFERRABLE INITIALLY DEFERRED",
    "BEGIN; INSERT INTO public.ca VALUES (1, 1); INSERT INTO public.cb VALUES (1, 1); COMMIT",
    # An exclusion constraint, a domain with a check.
    "CREATE EXTENSION IF NOT EXISTS btree_gist",
    "CREATE TABLE public.reservas (sala int, r tsrange,"
    " EXCLUDE USING gist (sala WITH =, r WITH &&))",
    "INSERT INTO public.reservas VALUES (1, '[2024-01-01,2024-01-02)'),"
    " (1, '[2024-01-02,2024-01-03)')",
    "CREATE DOMAIN public.posi AS int CHECK (VALUE > 0)",
    "CREATE TABLE public.dom_t (v public.posi)",
    "INSERT INTO public.dom_t VALUES (1), (2)",
    # A table's settings, column by column; extended statistics.
    "CREATE TABLE public.st (id int PRIMARY KEY, a text, b int, c text)",
    "INSERT INTO public.st SELECT i, repeat('x', i), i % 7, 'c' FROM generate_series(1, 200) i",
    "ALTER TABLE public.st ALTER COLUMN b SET STATISTICS 500",
    "ALTER TABLE public.st ALTER COLUMN a SET STORAGE EXTERNAL",
    "ALTER TABLE public.st ALTER COLUMN c SET COMPRESSION lz4",
    "ALTER TABLE public.st CLUSTER ON st_pkey",
    "ALTER TABLE public.st REPLICA IDENTITY FULL",
    "ALTER TABLE public.st SET (fillfactor = 70, autovacuum_enabled = false)",
    "CREATE STATISTICS public.st_stats (dependencies, ndistinct) ON b, c FROM public.st",
    # Types: a typed table, a range and its multirange, an enum grown before and after.
    "CREATE TYPE public.pair AS (x int, y text)",
    "CREATE TABLE public.typed OF public.pair",
    "INSERT INTO public.typed VALUES (1, 'a')",
    "CREATE TYPE public.fl AS RANGE (subtype = float8)",
    "CREATE TABLE public.rng (r public.fl, m public.fl_multirange)",
    "INSERT INTO public.rng VALUES ('[1.5,2.5)', '{[1,2), [3,4)}')",
    "CREATE TYPE public.estado AS ENUM ('b', 'd')",
    "ALTER TYPE public.estado ADD VALUE 'a' BEFORE 'b'",
    "ALTER TYPE public.estado ADD VALUE 'c' AFTER 'b'",
    "CREATE TABLE public.est (e public.estado PRIMARY KEY)",
    "INSERT INTO public.est VALUES ('a'), ('b'), ('c'), ('d')",
    # Routines: an aggregate, a procedure, a BEGIN ATOMIC function under an index (its
    # body is parsed when created, so it restores where a quoted body would not).
    "CREATE AGGREGATE public.mi_suma(int) (sfunc = int4pl, stype = int, initcond = '0')",
    "CREATE PROCEDURE public.proc() LANGUAGE sql BEGIN ATOMIC SELECT 1; END",
    "CREATE FUNCTION public.atomic_q(int) RETURNS int LANGUAGE sql IMMUTABLE"
    " BEGIN ATOMIC SELECT $1 * 2; END",
    "CREATE INDEX ON public.st (public.atomic_q(b))",
    "CREATE TEXT SEARCH CONFIGURATION public.es (COPY = pg_catalog.spanish)",
    # A check its child does not inherit, and a child row that violates it.
    "CREATE TABLE public.pa (id int, CONSTRAINT pa_pos CHECK (id > 0) NO INHERIT)",
    "CREATE TABLE public.hi () INHERITS (public.pa)",
    "INSERT INTO public.hi VALUES (-5)",
    # Triggers enabled for replicas only, and disabled.
    "CREATE TABLE public.trs (id int)",
    "CREATE FUNCTION public.nada() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
    "CREATE TRIGGER t_rep BEFORE INSERT ON public.trs FOR EACH ROW EXECUTE FUNCTION public.nada()",
    "ALTER TABLE public.trs ENABLE REPLICA TRIGGER t_rep",
    "CREATE TRIGGER t_off BEFORE INSERT ON public.trs FOR EACH ROW EXECUTE FUNCTION public.nada()",
    "ALTER TABLE public.trs DISABLE TRIGGER t_off",
    # A foreign table (no rows in the dump, none counted).
    "CREATE EXTENSION IF NOT EXISTS postgres_fdw",
    "CREATE SERVER lejos FOREIGN DATA WRAPPER postgres_fdw"
    " OPTIONS (host 'localhost', dbname 'nada')",
    "CREATE FOREIGN TABLE public.ft (id int) SERVER lejos",
    # Values whose text form is easy to get wrong.
    "CREATE TABLE public.valores (p point, b box, i inet, m macaddr8, x xml, j jsonb,"
    " ts tsvector, a int[][], bits bit varying(10), iv interval, f float8, r real, n numeric)",
    "INSERT INTO public.valores VALUES ('(1,2)', '((0,0),(1,1))', '10.0.0.1/8',"
    " '08:00:2b:01:02:03:04:05', '<a>ñ</a>', '{\"k\": [1, 2.50, null]}', 'a fat cat',"
    " '{{1,2},{3,4}}', B'101', '1 year 2 mons -3 days 04:05:06.789', 'NaN', '-Infinity',"
    " 'NaN'), (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '-0', 1e-40,"
    " 12345678901234567890.123456789012345678)",
)

# What pg_dump --schema-only leaves out of large objects.
_LARGE_OBJECTS = (
    "SELECT oid, obj_description(oid, 'pg_largeobject'), lomacl::text"
    " FROM pg_largeobject_metadata ORDER BY 1"
)


def test_schema_objects_restore_equal_and_pass_a_restore_test(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    source = respaldo.dbname
    for statement in _OBJECTS:
        pg.execute(statement, dbname=source)
    backup_id = respaldo.backup()["id"]

    for jobs in ("1", "2"):
        target = f"{new_dbname}_{jobs}"
        run = respaldo.restore(backup_id, target, "--jobs", jobs)
        assert "tables' row counts checked" in run.err, run.err
        assert schema_dump(pg, target) == schema_dump(pg, source), jobs
        assert table_checksums(pg, target) == table_checksums(pg, source), jobs
        assert sequence_values(pg, target) == sequence_values(pg, source), jobs
        assert large_objects(pg, target) == large_objects(pg, source), jobs
        assert pg.query(_LARGE_OBJECTS, dbname=target) == pg.query(_LARGE_OBJECTS, dbname=source)
    drill = respaldo.run("drill", backup_id)
    assert drill.code == 0, str(drill)
    assert staging_databases(pg) == set()


_UNQUALIFIED = {
    "index": (
        (
            "CREATE TABLE public.tarifas (k int PRIMARY KEY, v int)",
            "INSERT INTO public.tarifas VALUES (1, 10), (2, 20)",
            "CREATE FUNCTION public.tarifa(int) RETURNS int LANGUAGE sql IMMUTABLE"
            " AS $$ SELECT v FROM tarifas WHERE k = $1 $$",
            "CREATE TABLE public.ped (id int, k int)",
            "INSERT INTO public.ped SELECT i, 1 + i % 2 FROM generate_series(1, 100) i",
            "CREATE INDEX ped_tarifa ON public.ped (public.tarifa(k))",
        ),
        'relation "tarifas" does not exist',
    ),
    "check": (
        (
            "CREATE FUNCTION public.suma(int, int) RETURNS int LANGUAGE sql IMMUTABLE"
            " AS $$ SELECT $1 + $2 $$",
            "CREATE FUNCTION public.doble(int) RETURNS int LANGUAGE plpgsql IMMUTABLE"
            " AS $$ BEGIN RETURN suma($1, $1); END $$",
            "CREATE TABLE public.chk (id int CHECK (public.doble(id) >= 0))",
            "INSERT INTO public.chk SELECT generate_series(1, 100)",
        ),
        "function suma(integer, integer) does not exist",
    ),
}


@pytest.mark.parametrize("user", sorted(_UNQUALIFIED))
def test_a_function_naming_objects_without_their_schema_fails_the_restore_with_why(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str, user: str
) -> None:
    statements, reason = _UNQUALIFIED[user]
    for statement in statements:
        pg.execute(statement, dbname=respaldo.dbname)
    backup_id = respaldo.backup()["id"]

    for jobs in ("1", "2"):
        run = respaldo.run("restore", backup_id, "--target-database", new_dbname, "--jobs", jobs)
        assert run.code == 1, str(run)
        assert reason in run.err, run.err
        assert "empty search_path" in run.err, run.err
        assert new_dbname not in databases(pg)
    drill = respaldo.run("drill", backup_id)
    assert drill.code == 3, str(drill)
    assert reason in drill.out + drill.err, str(drill)
    assert staging_databases(pg) == set()

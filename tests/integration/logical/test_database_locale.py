"""A restored database has the backed-up database's encoding and locale (collation,
character classes), not the server's defaults: text sorts, compares and converts as it
did. The test cluster is UTF8 with locale C; the backed-up databases differ from it."""

from __future__ import annotations

import uuid

import pytest
from psycopg import sql
from sample.cluster import TempCluster

from respaldo.operations.backup import ENCODING
from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import databases, staging_databases
from tests.integration.majors import ON_EVERY_MAJOR

pytestmark = pytest.mark.integration

_SETTINGS = (
    "SELECT pg_catalog.pg_encoding_to_char(encoding), datcollate, datctype"
    " FROM pg_catalog.pg_database WHERE datname = %s"
)


def _recreate(pg: TempCluster, dbname: str, options: str) -> None:
    """Make ``dbname`` (the configured database) anew with ``options``."""
    pg.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(dbname)))
    pg.execute(
        sql.SQL("CREATE DATABASE {} TEMPLATE template0 " + options).format(sql.Identifier(dbname))
    )
    pg.execute(
        "CREATE TABLE public.schema_migrations (version text);"
        "INSERT INTO public.schema_migrations VALUES ('1');"
        "CREATE TABLE public.palabras (p text);"
        "INSERT INTO public.palabras VALUES ('zeta'), ('Zeta'), ('a');",
        dbname=dbname,
    )


@pytest.mark.parametrize(
    "options",
    ["ENCODING 'LATIN1' LOCALE 'C'", "LC_COLLATE 'C.utf8' LC_CTYPE 'C'", "LOCALE 'C.utf8'"],
)
def test_the_restored_database_has_the_backed_up_encoding_and_locale(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str, options: str
) -> None:
    _recreate(pg, respaldo.dbname, options)
    source = pg.query(_SETTINGS, [respaldo.dbname])
    assert source != pg.query(_SETTINGS, ["template0"]), "the test must differ from the server"
    backup_id = respaldo.backup()["id"]

    respaldo.restore(backup_id, new_dbname)
    assert pg.query(_SETTINGS, [new_dbname]) == source
    table = f"{new_dbname}_t"
    respaldo.restore(backup_id, table, "--table", "public.palabras")
    assert pg.query(_SETTINGS, [table]) == source
    assert not staging_databases(pg)


def _roles(pg: TempCluster) -> set[str]:
    return {str(r[0]) for r in pg.query("SELECT rolname FROM pg_catalog.pg_roles")}


@pytest.mark.parametrize("with_globals", [False, True], ids=["database", "globals"])
def test_a_locale_the_server_lacks_stops_the_restore_before_it_starts(
    respaldo: Respaldo,
    pg: TempCluster,
    new_dbname: str,
    monkeypatch: pytest.MonkeyPatch,
    with_globals: bool,
) -> None:
    _recreate(pg, respaldo.dbname, "LOCALE 'C.utf8'")
    # A role of the backup that the server has lost since: --globals must not create it
    # when the restore cannot happen.
    role = f"erp_perdido_{uuid.uuid4().hex[:8]}"
    pg.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role)))
    try:
        backup_id = respaldo.backup()["id"]
    finally:
        pg.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    # The backup as if taken on a server with a locale this one lacks.
    from respaldo.postgres import dbprops

    parse = dbprops.parse_properties

    def elsewhere(script: str) -> dbprops.DatabaseProperties:
        return parse(script.replace("'C.utf8'", "'xx_XX.UTF-8'"))

    monkeypatch.setattr(dbprops, "parse_properties", elsewhere)
    before = databases(pg), _roles(pg)

    options = ["--globals"] if with_globals else []
    try:
        run = respaldo.run("restore", backup_id, "--target-database", new_dbname, *options)
    finally:
        pg.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))

    assert run.code == 1, str(run)
    assert len(run.err_lines) == 2, str(run)
    error, hint = run.err_lines
    assert "xx_XX.UTF-8" in error
    assert "locale" in hint and "nothing was changed" in hint
    assert (databases(pg), _roles(pg)) == before


_LOCALE_COLUMNS = (
    "SELECT (pg_catalog.to_jsonb(d) - ARRAY['oid', 'datname', 'datacl', 'datfrozenxid',"
    " 'datminmxid', 'datlastsysoid', 'dathasloginevt', 'datcollversion'])::text"
    " FROM pg_catalog.pg_database d WHERE datname = %s"
)


@ON_EVERY_MAJOR
def test_a_database_of_another_locale_provider_comes_back_with_it(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str, pg_major: int | None
) -> None:
    # ICU on the system's PostgreSQL (built with it); the builtin provider (17+) on the
    # bundled 18, which is built without ICU.
    icu = pg_major is None
    options = (
        "LOCALE_PROVIDER icu ICU_LOCALE 'es-ES' LOCALE 'C'"
        if icu
        else "LOCALE_PROVIDER builtin BUILTIN_LOCALE 'C.UTF-8' LOCALE 'C'"
    )
    _recreate(pg, respaldo.dbname, options)
    order = "SELECT string_agg(p, ' ' ORDER BY p) FROM public.palabras"
    expected_order = "a zeta Zeta" if icu else "Zeta a zeta"
    assert pg.scalar(order, dbname=respaldo.dbname) == expected_order
    backup_id = respaldo.backup()["id"]

    respaldo.restore(backup_id, new_dbname)

    assert pg.query(_LOCALE_COLUMNS, [new_dbname]) == pg.query(_LOCALE_COLUMNS, [respaldo.dbname])
    assert pg.scalar(order, dbname=new_dbname) == expected_order


def test_a_sql_ascii_database_is_backed_up_and_restored_byte_for_byte(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    # SQL_ASCII stores any bytes, and psycopg returns its text as bytes unless the
    # client encoding says otherwise: the backup's row count read "b'public'" as the
    # schema's name and failed.
    _recreate(pg, respaldo.dbname, "ENCODING 'SQL_ASCII' LOCALE 'C'")
    pg.execute(
        "INSERT INTO public.palabras"
        " SELECT pg_catalog.convert_from('\\xe16e6f'::bytea, 'SQL_ASCII')",
        dbname=respaldo.dbname,
    )
    backup_id = respaldo.backup()["id"]

    respaldo.restore(backup_id, new_dbname)
    raw = (
        "SELECT string_agg(pg_catalog.convert_to(p, 'SQL_ASCII')::text, ',' ORDER BY p)"
        " FROM public.palabras"
    )
    assert pg.query(raw, dbname=new_dbname) == pg.query(raw, dbname=respaldo.dbname)

    drill = respaldo.run("drill", backup_id)
    assert drill.code == 0, str(drill)


def _latin1_names(respaldo: Respaldo, pg: TempCluster, jobs: int = 1) -> str:
    """A backup of a LATIN1 database whose schema and table names are not ASCII."""
    # pg_restore --list prints names in the dump's encoding (here byte F1 for ñ).
    _recreate(pg, respaldo.dbname, "ENCODING 'LATIN1' LOCALE 'C'")
    with pg.connect(respaldo.dbname) as conn:
        conn.execute(b"SET client_encoding = 'UTF8'")
        conn.execute(
            'CREATE SCHEMA "compañía"; CREATE TABLE "compañía"."año" (v text);'
            "INSERT INTO \"compañía\".\"año\" VALUES ('x'), ('y')".encode()
        )
    run = respaldo.run("backup", "erp", "--jobs", str(jobs), "--json")
    assert run.code == 0, str(run)
    return str(run.json()["id"])


def _as_before_the_encoding_was_recorded(respaldo: Respaldo, backup_id: str) -> str:
    """The same streams under a new id, with a manifest as respaldo wrote it before
    2026-12-05 (no ``meta.encoding``)."""
    return respaldo.as_older(backup_id, lambda meta: meta.pop(ENCODING))


@pytest.mark.parametrize("jobs", [1, 2], ids=["custom", "directory"])
@pytest.mark.parametrize("older", [False, True], ids=["recorded", "older-respaldo"])
def test_names_of_a_latin1_database_are_read_from_its_dump_in_its_encoding(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str, older: bool, jobs: int
) -> None:
    backup_id = _latin1_names(respaldo, pg, jobs)
    if older:
        # A backup of an older respaldo: the dump itself says which encoding it is in
        # (read as UTF-8, 'año' was 'a\ufffdo': no row count, and --table refused it).
        backup_id = _as_before_the_encoding_was_recorded(respaldo, backup_id)

    listing = respaldo.run("ls", backup_id, "--json").json()
    assert {"schema": "compañía", "name": "año", "rows": 2} in [
        {k: t[k] for k in ("schema", "name", "rows")} for t in listing["tables"]
    ]
    run = respaldo.restore(backup_id, new_dbname, "--table", "compañía.año")
    assert "1 table's row count checked" in run.err
    with pg.connect(new_dbname) as conn:
        conn.execute(b"SET client_encoding = 'UTF8'")
        assert conn.execute('SELECT count(*) FROM "compañía"."año"'.encode()).fetchall() == [(2,)]


def test_a_dump_without_a_locale_provider_comes_back_libc_on_an_icu_server() -> None:
    # pg_dump before 15 names no provider: every database was libc. On a 15+ server
    # whose template0 is ICU, the locale alone would give an ICU database.
    from respaldo.operations.restore import match_locale
    from respaldo.postgres.dbprops import parse_properties

    dump_14 = "CREATE DATABASE erp WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE = 'C';\n"
    icu = ("--locale-provider=icu", "--icu-locale=en-US")
    with TempCluster.create(initdb_options=icu) as cluster:
        cluster.execute("CREATE DATABASE probe TEMPLATE template0")
        provider = "SELECT datlocprovider FROM pg_catalog.pg_database WHERE datname = 'probe'"
        assert cluster.scalar(provider) == "i", "the test needs an ICU template0"

        match_locale(cluster.conninfo(), "probe", parse_properties(dump_14).create_options)

        assert cluster.scalar(provider) == "c"
        order = (
            "SELECT string_agg(p, ' ' ORDER BY p) FROM (VALUES ('zeta'), ('Zeta'), ('a')) AS t (p)"
        )
        assert cluster.scalar(order, dbname="probe") == "Zeta a zeta"  # as libc C sorts


def _utf8(pg: TempCluster, dbname: str, query: sql.Composable) -> list[tuple[object, ...]]:
    """Run ``query`` on ``dbname`` with client encoding UTF8 (the names of roles are
    stored in the encoding of the database they were created from, LATIN1 here)."""
    with pg.connect(dbname) as conn:
        conn.execute(b"SET client_encoding = 'UTF8'")
        cur = conn.execute(query.as_string(conn).encode())
        return cur.fetchall() if cur.description else []


def _description(pg: TempCluster, dbname: str, name: str) -> list[tuple[object, ...]]:
    query = sql.SQL(
        "SELECT pg_catalog.shobj_description(oid, 'pg_database')"
        " FROM pg_catalog.pg_database WHERE datname = {}"
    ).format(sql.Literal(name))
    return _utf8(pg, dbname, query)


def test_a_latin1_database_with_non_ascii_properties_and_roles_restores_and_drills(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    # pg_restore renders the database's comment in the dump's encoding, and pg_dumpall
    # (started in this LATIN1 database) writes role names in it: both were read as UTF-8
    # and the restore failed, while the drill (which read neither) passed.
    _recreate(pg, respaldo.dbname, "ENCODING 'LATIN1' LOCALE 'C'")
    db = respaldo.dbname
    role = f"contable_año_{uuid.uuid4().hex[:6]}"
    drop = sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role))
    roles = sql.SQL("SELECT rolname FROM pg_catalog.pg_roles WHERE rolname = {}").format(
        sql.Literal(role)
    )
    _utf8(
        pg,
        db,
        sql.SQL("COMMENT ON DATABASE {} IS 'compañía'; CREATE ROLE {}").format(
            sql.Identifier(db), sql.Identifier(role)
        ),
    )
    try:
        backup_id = respaldo.backup()["id"]
    finally:
        _utf8(pg, db, drop)

    try:
        respaldo.restore(backup_id, new_dbname, "--globals")
        assert _utf8(pg, db, roles) == [(role,)]
    finally:
        _utf8(pg, db, drop)
    assert _description(pg, db, new_dbname) == [("compañía",)]

    drill = respaldo.run("drill", backup_id)
    assert drill.code == 0, str(drill)


def test_a_drill_of_a_backup_whose_locale_the_server_lacks_fails(
    respaldo: Respaldo, pg: TempCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    _recreate(pg, respaldo.dbname, "LOCALE 'C.utf8'")
    backup_id = respaldo.backup()["id"]
    from respaldo.postgres import dbprops

    parse = dbprops.parse_properties

    def elsewhere(script: str) -> dbprops.DatabaseProperties:
        return parse(script.replace("'C.utf8'", "'xx_XX.UTF-8'"))

    monkeypatch.setattr(dbprops, "parse_properties", elsewhere)

    drill = respaldo.run("drill", backup_id)

    assert drill.code == 3, str(drill)
    assert "FAIL restore: this server cannot create a database" in drill.err, str(drill)
    assert "xx_XX.UTF-8" in drill.err
    assert respaldo.run("show", backup_id, "--json").json()["isVerified"] is False
    assert not [d for d in databases(pg) if d.startswith("respaldo_drill_")]


@pytest.mark.parametrize("jobs", [1, 2], ids=["custom", "directory"])
def test_a_client_encoding_in_the_environment_does_not_change_the_dumps_names(
    respaldo: Respaldo, pg: TempCluster, monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    # pg_dump gets the PG… variables: with PGCLIENTENCODING it wrote its table of
    # contents in that encoding, while the backup recorded the database's.
    _recreate(pg, respaldo.dbname, "ENCODING 'LATIN1' LOCALE 'C'")
    _utf8(
        pg,
        respaldo.dbname,
        sql.SQL('CREATE TABLE public."año" (v text); INSERT INTO public."año" VALUES (\'x\')'),
    )
    monkeypatch.setenv("PGCLIENTENCODING", "UTF8")
    run = respaldo.run("backup", "erp", "--jobs", str(jobs), "--json")
    assert run.code == 0, str(run)
    backup_id = run.json()["id"]

    listing = respaldo.run("ls", backup_id, "--json").json()
    assert {"schema": "public", "name": "año", "rows": 1} in [
        {k: t[k] for k in ("schema", "name", "rows")} for t in listing["tables"]
    ]


def test_a_sql_ascii_database_with_a_name_that_is_not_utf8_is_refused_with_a_hint(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    # respaldo reads names as UTF-8; a SQL_ASCII database stores whatever bytes a client
    # sent (here a table named in LATIN1), which the server will not send as UTF-8.
    _recreate(pg, respaldo.dbname, "ENCODING 'SQL_ASCII' LOCALE 'C'")
    with pg.connect(respaldo.dbname) as conn:
        conn.execute(b'CREATE TABLE public."caf\xe9" (v text)')
    before = respaldo.run("list", "--json").json()

    run = respaldo.run("backup", "erp")

    assert run.code == 1, str(run)
    assert len(run.err_lines) == 2, str(run)
    error, hint = run.err_lines
    assert "SQL_ASCII" in error and "not UTF-8" in error, error
    assert "UTF8" in hint and "rename" in hint, hint
    after = respaldo.run("list", "--json").json()
    assert [b["status"] for b in after if b not in before] == ["failed"], after

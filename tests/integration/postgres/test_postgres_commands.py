"""pg_dump, pg_dumpall, pg_restore and psql wrappers against a real cluster."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sample.cluster import TempCluster

from respaldo.errors import PostgresError, ToolNotFound
from respaldo.postgres import (
    create_database,
    exported_snapshot,
    find_bindir,
    pg_dump,
    pg_dumpall_globals,
    pg_restore,
    psql,
    tool_path,
    tool_version,
)
from respaldo.postgres.commands import parse_tool_version, pg_dump_directory

pytestmark = pytest.mark.integration


def _counts(pg: TempCluster, dbname: str) -> dict[str, int]:
    with exported_snapshot(pg.conninfo(dbname)) as (_, counts):
        return counts


def test_tool_version_reports_the_major_of_the_bindir(pg: TempCluster) -> None:
    version = tool_version("pg_dump", bindir=pg.bindir)
    server_major = int(pg.scalar("SELECT current_setting('server_version_num')::int")) // 10000
    assert version.major == server_major
    assert version.program == "pg_dump"
    assert "PostgreSQL" in version.text


def test_parse_tool_version_reads_release_and_development_versions() -> None:
    assert parse_tool_version("pg_dump", "pg_dump (PostgreSQL) 15.4 (Debian 15.4-1)").major == 15
    assert parse_tool_version("pg_dump", "pg_dump (PostgreSQL) 17devel").major == 17
    assert parse_tool_version("psql", "psql (PostgreSQL) 9.6.24").minor == 6
    with pytest.raises(PostgresError):
        parse_tool_version("pg_dump", "no digits here")


def test_bindir_defaults_to_an_installed_one_and_rejects_a_wrong_one(tmp_path: Path) -> None:
    assert (find_bindir() / "pg_dump").is_file()
    with pytest.raises(ToolNotFound, match="pg_dump not found"):
        find_bindir(tmp_path)
    with pytest.raises(ToolNotFound):
        tool_path("pg_no_such_program")


def test_dump_streams_into_a_restore_of_an_equal_database(
    pg: TempCluster, erp_db: str, new_dbname: str
) -> None:
    create_database(pg.conninfo(), new_dbname)
    digest = hashlib.sha256()
    first = b""
    with pg_dump(pg.conninfo(erp_db)) as dump, pg_restore(pg.conninfo(new_dbname)) as restore:
        while chunk := dump.stdout.read(64 * 1024):
            first = first or chunk
            digest.update(chunk)
            restore.stdin.write(chunk)
    assert first.startswith(b"PGDMP")  # custom format
    assert dump.returncode == 0 and restore.returncode == 0

    assert _counts(pg, new_dbname) == _counts(pg, erp_db)
    # What a row count does not show: large objects, the materialized view's data,
    # the owner of the tables, enum types, extensions.
    q = "SELECT count(*) FROM pg_largeobject_metadata"
    assert pg.scalar(q, dbname=new_dbname) == pg.scalar(q, dbname=erp_db) > 0
    q = "SELECT count(*) FROM finanzas.mv_facturacion_mensual"
    assert pg.scalar(q, dbname=new_dbname) == pg.scalar(q, dbname=erp_db) > 0
    q = "SELECT tableowner FROM pg_tables WHERE tablename = 'facturas'"
    assert pg.scalar(q, dbname=new_dbname) == "erp_propietario"
    q = "SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension"
    assert pg.scalar(q, dbname=new_dbname) == "citext,pg_trgm,plpgsql"
    q = "SELECT md5(string_agg(datos::text, '' ORDER BY id)) FROM docs.fotos"
    assert pg.scalar(q, dbname=new_dbname) == pg.scalar(q, dbname=erp_db)


def test_restore_from_a_file_in_parallel_without_owners(
    pg: TempCluster, erp_db: str, new_dbname: str, tmp_path: Path
) -> None:
    archive = tmp_path / "erp.dump"
    with pg_dump(pg.conninfo(erp_db)) as dump, archive.open("wb") as out:
        while chunk := dump.stdout.read(1 << 16):
            out.write(chunk)
    create_database(pg.conninfo(), new_dbname)
    with pg_restore(pg.conninfo(new_dbname), source=archive, jobs=2, no_owner=True):
        pass
    assert _counts(pg, new_dbname) == _counts(pg, erp_db)
    q = "SELECT tableowner FROM pg_tables WHERE tablename = 'facturas'"
    assert pg.scalar(q, dbname=new_dbname) == pg.superuser


def test_parallel_restore_needs_a_file(pg: TempCluster) -> None:
    with pytest.raises(ValueError, match="needs a file"):
        pg_restore(pg.conninfo("postgres"), jobs=4)


def test_pg_restore_of_garbage_fails_with_its_stderr(pg: TempCluster, new_dbname: str) -> None:
    create_database(pg.conninfo(), new_dbname)
    # The error comes when pg_restore is waited for, at the exit of its block.
    with pytest.raises(PostgresError) as caught, pg_restore(pg.conninfo(new_dbname)) as restore:
        restore.stdin.write(b"this is not a pg_dump archive\n" * 10)
    assert caught.value.program == "pg_restore"
    assert caught.value.returncode != 0
    assert "archive" in caught.value.stderr
    assert "pg_restore exited with status" in str(caught.value)


def test_pg_restore_stops_at_the_first_error(pg: TempCluster, erp_db: str) -> None:
    # Restoring into the database the dump came from: the first CREATE fails, and
    # --exit-on-error makes that fatal instead of a warning at the end.
    with (
        pytest.raises(PostgresError, match="already exists") as caught,
        pg_dump(pg.conninfo(erp_db)) as dump,
        pg_restore(pg.conninfo(erp_db)) as restore,
    ):
        while chunk := dump.stdout.read(1 << 16):
            restore.stdin.write(chunk)
    assert caught.value.program == "pg_restore"


def test_a_dump_left_unread_fails_instead_of_hanging(pg: TempCluster, erp_db: str) -> None:
    with pytest.raises(PostgresError) as caught, pg_dump(pg.conninfo(erp_db)) as dump:
        dump.stdout.read(100)
    assert caught.value.program == "pg_dump"
    assert caught.value.returncode != 0


def test_an_error_in_the_callers_block_kills_the_child(pg: TempCluster, erp_db: str) -> None:
    with pytest.raises(RuntimeError, match="caller gave up"), pg_dump(pg.conninfo(erp_db)) as dump:
        dump.stdout.read(100)
        raise RuntimeError("caller gave up")
    assert dump.returncode is not None


def test_globals_dump_holds_the_sample_roles(pg: TempCluster, erp_db: str) -> None:
    with pg_dumpall_globals(pg.conninfo(erp_db)) as dumpall:
        text = dumpall.stdout.read().decode()
    for role in ("erp_propietario", "erp_lectura", "erp_app", "erp_contabilidad", "erp_backup"):
        assert f"CREATE ROLE {role};" in text
    assert "GRANT erp_lectura TO erp_contabilidad" in text
    # Globals only: no table of the database is in it.
    assert "CREATE TABLE" not in text


def test_psql_runs_sql_from_a_string_and_from_a_file(pg: TempCluster, tmp_path: Path) -> None:
    done = psql(pg.conninfo(), sql="SELECT 40 + 2;", tuples_only=True)
    assert done.text.strip() == "42"
    script = tmp_path / "query.sql"
    script.write_text("SELECT :'who' || ' en la obra';\n")
    done = psql(pg.conninfo(), file=script, variables={"who": "Ana"}, tuples_only=True)
    assert done.text.strip() == "Ana en la obra"


def test_psql_error_becomes_postgres_error_with_the_server_message(pg: TempCluster) -> None:
    with pytest.raises(PostgresError) as caught:
        psql(pg.conninfo(), sql="SELECT * FROM no_such_table;")
    error = caught.value
    assert error.program == "psql"
    assert error.returncode == 3  # psql: a script error with ON_ERROR_STOP
    assert 'relation "no_such_table" does not exist' in error.stderr
    assert "no_such_table" in str(error)


def test_psql_stops_at_the_first_failing_statement(pg: TempCluster, new_dbname: str) -> None:
    create_database(pg.conninfo(), new_dbname)
    script = "CREATE TABLE antes (x int);\nSELECT 1 / 0;\nCREATE TABLE despues (x int);\n"
    with pytest.raises(PostgresError, match="division by zero"):
        psql(pg.conninfo(new_dbname), sql=script)
    tables = pg.query(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'", dbname=new_dbname
    )
    assert tables == [("antes",)]


def test_psql_needs_exactly_one_source(pg: TempCluster, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        psql(pg.conninfo())
    with pytest.raises(ValueError, match="exactly one"):
        psql(pg.conninfo(), sql="SELECT 1", file=tmp_path / "x.sql")


class _Lines:
    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def line(self, line: bytes) -> bool:
        self.lines.append(line)
        return True

    def end(self) -> None:
        pass


def test_a_parallel_dump_reports_in_english_whatever_the_callers_language(
    pg: TempCluster, erp_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # respaldo reads pg_dump's "finished item N TABLE DATA" to store each table's file
    # as soon as it is complete; an operator's Spanish locale must not translate it away
    # (then every file would wait in the spool until pg_dump ended).
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("LANGUAGE", "es")
    lines = _Lines()
    with pg_dump_directory(
        pg.conninfo(erp_db), tmp_path / "dump", jobs=2, progress=lines, bindir=pg.bindir
    ):
        pass
    finished = [line for line in lines.lines if line.startswith(b"pg_dump: finished item ")]
    assert len(finished) > 10, lines.lines[:5]


@pytest.mark.parametrize("program", ["pg_dump", "psql"])
def test_a_failing_program_reports_in_english_whatever_the_callers_language(
    pg: TempCluster, monkeypatch: pytest.MonkeyPatch, program: str
) -> None:
    # respaldo reads what PostgreSQL's programs and libpq say ("could not open large
    # object", "server closed the connection unexpectedly"): an operator's Spanish locale
    # translated them ("falló la conexión al servidor en …"), and their hints were lost.
    monkeypatch.setenv("LC_ALL", "es_ES.UTF-8")
    monkeypatch.setenv("LANGUAGE", "es")
    gone = pg.conninfo("no_such_database")
    with pytest.raises(PostgresError) as failed:
        if program == "pg_dump":
            with pg_dump(gone, bindir=pg.bindir) as dump:
                dump.stdout.read()
        else:
            psql(gone, sql="SELECT 1", bindir=pg.bindir)
    assert f'connection to server at "{pg.host}", port {pg.port} failed' in failed.value.stderr, (
        failed.value.stderr
    )

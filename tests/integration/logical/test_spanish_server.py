"""A server that answers in Spanish (``lc_messages = 'es_ES.UTF-8'``, as servers made with
``initdb --locale=es_ES.UTF-8`` on Debian, whose PostgreSQL ships Spanish catalogs, do):
its errors, a failed connection's included, are in Spanish, so respaldo does not read
what went wrong from their text."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from sample.cluster import TempCluster

from respaldo.errors import ConnectionFailed, PostgresError, QueryFailed, RespaldoError
from respaldo.postgres import counting_snapshot, create_database, pg_dump, server
from respaldo.postgres.basebackup import WAL_REMOVED_HINT, basebackup_hint, pg_basebackup
from respaldo.postgres.connection import ConnInfo
from respaldo.postgres.queries import readonly_value
from respaldo.postgres.server import WAITING_FOR_LOCKS, connect
from respaldo.repository import iter_stream
from tests.integration.logical.conftest import Respaldo, password_blind_reader
from tests.integration.logical.support import staging_databases, table_checksums
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def spanish(pg: TempCluster) -> Iterator[TempCluster]:
    """The session's cluster answering in Spanish for this test (its configuration's
    last word, postgresql.auto.conf, reset at the end)."""
    pg.execute("ALTER SYSTEM SET lc_messages = 'es_ES.UTF-8'")
    pg.execute("SELECT pg_catalog.pg_reload_conf()")
    try:
        # Proof that it answers in Spanish: otherwise the test proves nothing.
        kwargs = {**pg.conninfo_kwargs("postgres"), "dbname": "no_such_database"}
        with pytest.raises(psycopg.OperationalError, match="no existe la base de datos"):
            psycopg.connect(**kwargs).close()
        yield pg
    finally:
        pg.execute("ALTER SYSTEM RESET lc_messages")
        pg.execute("SELECT pg_catalog.pg_reload_conf()")


def test_restore_after_the_database_is_lost(
    respaldo: Respaldo, spanish: TempCluster, new_dbname: str
) -> None:
    # The configured database is gone: restore manages the target from "postgres"
    # instead, which it used to decide from the English "does not exist".
    source = respaldo.dbname
    tables = table_checksums(spanish, source)
    backup_id = respaldo.backup()["id"]
    spanish.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(source)))
    respaldo.restore(backup_id, new_dbname)
    assert table_checksums(spanish, new_dbname) == tables
    assert staging_databases(spanish) == set()


@pytest.fixture
def reader(spanish: TempCluster, respaldo: Respaldo) -> Iterator[str]:
    """The backup role of :func:`password_blind_reader`, on the Spanish server."""
    with password_blind_reader(spanish, respaldo) as role:
        yield role


def test_a_backup_role_that_cannot_read_role_passwords_backs_up_without_them(
    respaldo: Respaldo, spanish: TempCluster, reader: str
) -> None:
    # pg_dumpall fails, "permiso denegado a la tabla pg_authid": the roles are dumped
    # without passwords, which the backup used to do only for "permission denied".
    backup_id = respaldo.backup()["id"]
    manifest = respaldo.repository().load_manifest(backup_id)
    assert manifest.meta["globals_role_passwords"] is False
    globals_script = b"".join(iter_stream(respaldo.repository(), manifest, "globals"))
    assert f"CREATE ROLE {reader};".encode() in globals_script
    assert spanish.superuser.encode() in globals_script
    assert b"SCRAM-SHA-256$" not in globals_script


def test_a_backup_role_that_cannot_read_a_large_object_is_told_what_it_needs(
    respaldo: Respaldo, spanish: TempCluster, reader: str
) -> None:
    spanish.execute("ALTER SYSTEM RESET lo_compat_privileges")
    spanish.execute("SELECT pg_catalog.pg_reload_conf()")
    run = respaldo.run("backup", "erp")
    assert run.code == 1, str(run)
    assert len(run.err_lines) == 2, str(run)  # the error and its hint
    error, hint = run.err_lines
    # pg_dump's read of it or the backup's record of the large objects (in the snapshot's
    # session, beside the dump), whichever comes first: the other is stopped.
    said = ("could not open large object", "reading the snapshot's large objects failed")
    assert any(s in error for s in said) and "permiso denegado" in error, error
    assert "grant the role SELECT on them" in hint, hint


def _two_statements_and_a_typo(info: ConnInfo, typo_message: str) -> None:
    with pytest.raises(QueryFailed, match="it is more than one statement") as several:
        readonly_value(info, "SELECT 1; SELECT 2", timeout_seconds=5)
    assert several.value.sqlstate == "42601"
    with pytest.raises(QueryFailed) as typo:
        readonly_value(info, "SELEC 1", timeout_seconds=5)
    assert typo.value.sqlstate == "42601"
    assert "one statement" not in str(typo.value), typo.value
    assert typo_message in str(typo.value), typo.value
    assert readonly_value(info, "SELECT 40 + 2", timeout_seconds=5) == "42"


def test_a_validation_query_of_two_statements_is_told_apart_from_a_syntax_error(
    spanish: TempCluster,
) -> None:
    # Both are SQLSTATE 42601, and the refusal of two statements was told by its English
    # words: on a server answering in Spanish it read as PostgreSQL's own message.
    _two_statements_and_a_typo(spanish.conninfo("postgres"), "error de sintaxis en o cerca de")


def test_a_validation_query_of_two_statements_is_told_apart_in_english(pg: TempCluster) -> None:
    _two_statements_and_a_typo(pg.conninfo("postgres"), 'syntax error at or near "SELEC"')


_LOOKING = (
    "SELECT count(*) FROM pg_catalog.pg_stat_activity"
    " WHERE datname = %s AND pg_catalog.starts_with(query, %s)"
)


def _a_count_lost_before_pg_dump_imports_its_snapshot(
    pg: TempCluster, dbname: str, monkeypatch: pytest.MonkeyPatch
) -> RespaldoError:
    """The counts' session ends between two of its looks for pg_dump's locks (a minute
    apart here: the count's thread notes nothing before pg_dump fails); pg_dump then
    fails to import the snapshot. The block must fail with the count's error all the
    same, not with pg_dump's, which says nothing of why. Returns the block's error."""
    monkeypatch.setattr(server, "LOCK_POLL", 60.0)
    create_database(pg.conninfo(), dbname)
    pg.execute("CREATE TABLE a (x int)", dbname=dbname)
    info = pg.conninfo(dbname)
    with (
        pytest.raises(RespaldoError, match="counting the snapshot's rows") as failed,
        counting_snapshot(info, holder="respaldo test: locks nothing") as snapshot,
    ):
        wait_for(
            "the counts looking for the holder's locks",
            lambda: pg.scalar(_LOOKING, [dbname, WAITING_FOR_LOCKS]) == 1,
        )
        pg.execute(
            "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity"
            " WHERE datname = %s AND application_name = 'respaldo'",
            (dbname,),
        )
        wait_for("the counts' session gone", lambda: pg.scalar(_LOOKING, [dbname, ""]) == 0)
        with pg_dump(info, snapshot=snapshot.snapshot_id) as dump:
            dump.stdout.read()
    assert snapshot.failure is failed.value
    assert isinstance(failed.value.__cause__, PostgresError)  # pg_dump's, behind it
    return failed.value


def test_a_count_lost_before_pg_dump_imports_its_snapshot_is_the_error(
    spanish: TempCluster, new_dbname: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server's reason pg_dump relays was looked for in English: in Spanish ("no se
    # pudo importar el snapshot solicitado") the block failed with pg_dump's error, and
    # only once the count's thread had ended (here: after its minute between two looks).
    error = _a_count_lost_before_pg_dump_imports_its_snapshot(spanish, new_dbname, monkeypatch)
    assert "snapshot" in str(error.__cause__), error.__cause__


def test_a_count_lost_before_pg_dump_imports_its_snapshot_is_the_error_in_english(
    pg: TempCluster, new_dbname: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    error = _a_count_lost_before_pg_dump_imports_its_snapshot(pg, new_dbname, monkeypatch)
    assert "snapshot" in str(error.__cause__), error.__cause__


def _wal_removed_under_a_backup(pg: TempCluster) -> PostgresError:
    """A base backup whose WAL the server removes before sending it (no slot reserves it,
    wal_keep_size is 0): the backup's reader stops once the backup has started, so the
    server waits with it while checkpoints pass; then it reads on to pg_basebackup's end."""
    assert pg.scalar("SHOW wal_keep_size") == "0"
    with (
        pytest.raises(PostgresError) as failed,
        pg_basebackup(pg.conninfo(), label="respaldo test", bindir=pg.bindir) as command,
    ):
        assert command.stdout.read(65536)  # begun: its WAL starts before this
        for _ in range(3):
            pg.execute("CHECKPOINT")
            pg.execute("SELECT pg_catalog.pg_switch_wal()")
        pg.execute("CHECKPOINT")
        while command.stdout.read(1 << 20):
            pass
    return failed.value


def test_a_base_backup_whose_wal_was_removed_is_told_what_to_do(spanish: TempCluster) -> None:
    # The server's reason was read in English only ("requested WAL segment"): in
    # Spanish ('el segmento de WAL solicitado … ya ha sido eliminado') it got no hint.
    error = _wal_removed_under_a_backup(spanish)
    assert "ya ha sido eliminado" in error.stderr, error.stderr
    with spanish.connect("postgres") as conn:
        assert basebackup_hint(error.stderr, conn) == WAL_REMOVED_HINT, error.stderr


def test_a_base_backup_whose_wal_was_removed_is_told_what_to_do_in_english(
    pg: TempCluster,
) -> None:
    error = _wal_removed_under_a_backup(pg)
    assert "has already been removed" in error.stderr, error.stderr
    with pg.connect("postgres") as conn:
        assert basebackup_hint(error.stderr, conn) == WAL_REMOVED_HINT, error.stderr


def _refused_connections(pg: TempCluster) -> list[ConnectionFailed]:
    failures = []
    wrong_user = dataclasses.replace(pg.conninfo("postgres"), user="nadie")
    for info in (pg.conninfo("no_such_database"), wrong_user):
        with pytest.raises(ConnectionFailed) as failed:
            connect(info).close()
        failures.append(failed.value)
    return failures


def test_a_connection_the_server_refuses_is_not_blamed_on_a_server_down(
    spanish: TempCluster,
) -> None:
    # A refused connection has no SQLSTATE, and its English words were looked for: in
    # Spanish ("no existe la base de datos", "la autentificación password falló") the
    # hint asked whether the server was running, which had just answered.
    missing, wrong_user = _refused_connections(spanish)
    assert "no existe la base de datos" in str(missing), missing
    assert "autentificación" in str(wrong_user), wrong_user
    for failure in (missing, wrong_user):
        assert failure.hint is not None and "running" not in failure.hint, failure
        assert "the server answered and refused the connection" in failure.hint, failure


def test_a_connection_the_server_refuses_is_told_what_to_check_in_english(
    pg: TempCluster,
) -> None:
    missing, wrong_user = _refused_connections(pg)
    assert missing.hint == "check the database name in the DSN", missing
    assert wrong_user.hint is not None and "check the user and password" in wrong_user.hint


def test_a_server_not_reached_is_asked_about(pg: TempCluster) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])  # bound, not listening: refused
        info = dataclasses.replace(pg.conninfo("postgres"), host="127.0.0.1", port=port)
        with pytest.raises(ConnectionFailed) as failed:
            connect(info).close()
    assert failed.value.hint is not None and "server is running" in failed.value.hint

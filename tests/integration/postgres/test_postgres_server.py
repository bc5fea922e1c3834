"""Server checks, exported snapshots and database management against a real cluster."""

from __future__ import annotations

from dataclasses import replace

import psycopg
import pytest
from psycopg import sql
from pydantic import SecretStr
from sample.cluster import TempCluster

from respaldo.errors import (
    ConnectionFailed,
    DatabaseExists,
    DatabaseNotFound,
    PostgresError,
    QueryFailed,
    ToolVersionError,
)
from respaldo.postgres import (
    ConnInfo,
    check_pg_dump_version,
    check_tool_compatible,
    connect,
    create_database,
    database_exists,
    drop_database,
    exported_snapshot,
    pause_autovacuum,
    pg_dump,
    pg_restore,
    psql,
    rename_database,
    resume_autovacuum,
    server_info,
    terminate_connections,
)
from respaldo.postgres.server import SHORT_LOCK_WAIT, restore_sessions
from tests.ports import closed_port

pytestmark = pytest.mark.integration


def _real_counts(pg: TempCluster, dbname: str) -> dict[str, int]:
    tables = pg.query(
        "SELECT schemaname, tablename FROM pg_tables"
        " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
        dbname=dbname,
    )
    return {
        f"{schema}.{table}": int(
            pg.scalar(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table)),
                dbname=dbname,
            )
        )
        for schema, table in tables
    }


# --- versions ------------------------------------------------------------------------------


def test_server_info_matches_the_server(pg: TempCluster) -> None:
    info = server_info(pg.conninfo())
    assert info.version_num == int(pg.scalar("SHOW server_version_num"))
    assert info.version == pg.scalar("SHOW server_version")
    assert info.major == info.version_num // 10000 >= 10
    assert info.system_identifier == int(
        pg.scalar("SELECT system_identifier FROM pg_control_system()")
    )
    assert info.system_identifier > 0


def test_pg_dump_of_the_bindir_may_dump_the_server(pg: TempCluster) -> None:
    tool = check_pg_dump_version(pg.conninfo(), bindir=pg.bindir)
    assert tool.major >= server_info(pg.conninfo()).major


def test_an_older_pg_dump_is_refused_with_a_hint() -> None:
    with pytest.raises(ToolVersionError) as caught:
        check_tool_compatible("pg_dump", 14, 16)
    error = caught.value
    assert (error.program, error.tool_major, error.server_major) == ("pg_dump", 14, 16)
    assert "pg_dump 14 is older than the PostgreSQL 16 server" in str(error)
    assert "postgresql-client-16" in error.hint


def test_same_and_newer_tools_are_accepted() -> None:
    check_tool_compatible("pg_dump", 16, 16)
    check_tool_compatible("pg_dump", 17, 12)


# --- exported snapshots ----------------------------------------------------------------------


def test_snapshot_counts_equal_the_real_counts(pg: TempCluster, erp_db: str) -> None:
    with exported_snapshot(pg.conninfo(erp_db)) as (snapshot_id, counts):
        assert snapshot_id
        real = _real_counts(pg, erp_db)
    # Leaf partitions are counted, their partitioned parent (which holds no rows) is not.
    real.pop("obras.partes_trabajo")
    assert counts == real
    assert "obras.partes_trabajo_2020" in counts
    assert counts["finanzas.facturas"] > 0
    assert not any(name.startswith(("pg_catalog.", "information_schema.")) for name in counts)


def test_dump_with_the_snapshot_holds_exactly_the_counted_rows(
    pg: TempCluster, erp_db: str, new_dbname: str
) -> None:
    create_database(pg.conninfo(), new_dbname)
    with exported_snapshot(pg.conninfo(erp_db)) as (snapshot_id, counts):
        # Changes committed after the snapshot must not reach the dump.
        pg.execute(
            "INSERT INTO core.clientes (nif, razon_social, creado_en, actualizado_en)"
            " VALUES ('Z9999999Z', 'Cliente nuevo', now(), now());"
            " DELETE FROM obras.partes_trabajo WHERE fecha < '2020-01-01';",
            dbname=erp_db,
        )
        with (
            pg_dump(pg.conninfo(erp_db), snapshot=snapshot_id) as dump,
            pg_restore(pg.conninfo(new_dbname)) as restore,
        ):
            while chunk := dump.stdout.read(1 << 16):
                restore.stdin.write(chunk)
    with exported_snapshot(pg.conninfo(new_dbname)) as (_, restored):
        assert restored == counts
    live = _real_counts(pg, erp_db)
    assert live["core.clientes"] == counts["core.clientes"] + 1
    assert live["obras.partes_trabajo_2019"] == 0 < counts["obras.partes_trabajo_2019"]


def test_the_snapshot_is_gone_after_the_context(pg: TempCluster, erp_db: str) -> None:
    with exported_snapshot(pg.conninfo(erp_db)) as (snapshot_id, _):
        pass
    # The error comes when the dump is waited for, at the exit of its block.
    with (
        pytest.raises(PostgresError, match="snapshot"),
        pg_dump(pg.conninfo(erp_db), snapshot=snapshot_id) as dump,
    ):
        dump.stdout.read()


def test_snapshot_of_a_missing_database_is_a_connection_error(pg: TempCluster) -> None:
    with pytest.raises(ConnectionFailed) as caught, exported_snapshot(pg.conninfo("no_such_db")):
        pass
    assert "dbname=no_such_db" in str(caught.value)
    assert "database name" in caught.value.hint


# --- connections -----------------------------------------------------------------------------


def test_unreachable_port_is_a_clear_connection_error(pg: TempCluster) -> None:
    port = closed_port()
    target = ConnInfo(host="127.0.0.1", port=port, user="nadie", dbname="erp")
    with pytest.raises(ConnectionFailed) as caught:
        connect(target, connect_timeout=3)
    message = str(caught.value)
    assert f"host=127.0.0.1 port={port} dbname=erp user=nadie" in message
    assert "refused" in message.lower()
    assert "running" in caught.value.hint
    assert caught.value.target == target.describe()


def test_a_role_at_its_connection_limit_is_told_as_such(pg: TempCluster) -> None:
    """'too many connections' (the role's or database's CONNECTION LIMIT, the server's
    max_connections) is not a server that is down: the hint names the limits."""
    role = "limitado_cero"
    pg.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 0 PASSWORD 'Secr3t-no-slots'")
    try:
        target = ConnInfo(
            host=pg.host,
            port=pg.port,
            user=role,
            dbname="postgres",
            password=SecretStr("Secr3t-no-slots"),
        )
        with pytest.raises(ConnectionFailed) as caught:
            connect(target)
    finally:
        pg.execute(f"DROP ROLE {role}")
    assert "too many connections" in str(caught.value)
    assert "CONNECTION LIMIT" in caught.value.hint and "max_connections" in caught.value.hint
    assert "running" not in caught.value.hint


def test_connect_gives_a_working_connection(pg: TempCluster) -> None:
    with connect(pg.conninfo(), autocommit=True) as conn:
        row = conn.execute("SELECT current_user, current_setting('application_name')").fetchone()
    assert row == (pg.superuser, "respaldo")


# --- databases -------------------------------------------------------------------------------


def test_create_exists_rename_drop_with_an_awkward_name(pg: TempCluster, new_dbname: str) -> None:
    admin = pg.conninfo()
    awkward = f'Obra "Norte"; DROP DATABASE postgres; -- {new_dbname}'
    renamed = new_dbname  # dropped by the fixture should the test fail half-way
    assert not database_exists(admin, awkward)
    create_database(admin, awkward, owner="erp_propietario")
    assert database_exists(admin, awkward)
    owner = pg.scalar(
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (awkward,)
    )
    assert owner == "erp_propietario"
    with pytest.raises(DatabaseExists):
        create_database(admin, awkward)

    # A session on the database does not stop a forced rename or drop.
    with psycopg.connect(**pg.conninfo_kwargs(awkward)) as session:
        rename_database(admin, awkward, renamed)
        with pytest.raises(psycopg.OperationalError):
            session.execute("SELECT 1")
    assert database_exists(admin, renamed) and not database_exists(admin, awkward)
    with pytest.raises(DatabaseNotFound):
        rename_database(admin, awkward, "otra")

    with psycopg.connect(**pg.conninfo_kwargs(renamed)):
        drop_database(admin, renamed)
    assert not database_exists(admin, renamed)
    assert database_exists(admin, "postgres")

    drop_database(admin, renamed)  # idempotent
    with pytest.raises(DatabaseNotFound):
        drop_database(admin, renamed, missing_ok=False)


def test_rename_onto_an_existing_database_is_refused(
    pg: TempCluster, erp_db: str, new_dbname: str
) -> None:
    create_database(pg.conninfo(), new_dbname)
    with pytest.raises(DatabaseExists):
        rename_database(pg.conninfo(), new_dbname, erp_db)


def test_terminate_connections_ends_other_sessions(pg: TempCluster, erp_db: str) -> None:
    with (
        psycopg.connect(**pg.conninfo_kwargs(erp_db)) as one,
        psycopg.connect(**pg.conninfo_kwargs(erp_db)),
    ):
        assert terminate_connections(pg.conninfo(), erp_db) == 2
        with pytest.raises(psycopg.OperationalError):
            one.execute("SELECT 1")
    assert terminate_connections(pg.conninfo(), erp_db) == 0


def test_a_database_is_not_managed_from_inside_itself(pg: TempCluster, erp_db: str) -> None:
    with pytest.raises(ValueError, match="another database"):
        drop_database(pg.conninfo(erp_db), erp_db)


def test_a_failed_statement_becomes_query_failed(pg: TempCluster) -> None:
    with pytest.raises(QueryFailed) as caught:
        create_database(pg.conninfo(), "x" * 10, template="no_such_template")
    assert caught.value.sqlstate == "3D000"
    assert "no_such_template" in str(caught.value)
    assert caught.value.__context__ is None


# --- a restore's lock waits ------------------------------------------------------------------


def _deadlock_timeout(conninfo: ConnInfo) -> str:
    with connect(conninfo, autocommit=True) as conn:
        row = conn.execute("SHOW deadlock_timeout").fetchone()
    assert row is not None
    return str(row[0])


def test_a_superuser_restores_with_short_lock_waits_in_its_children_too(pg: TempCluster) -> None:
    short = restore_sessions(pg.conninfo())
    assert _deadlock_timeout(pg.conninfo()) == "1s"
    assert _deadlock_timeout(short) == SHORT_LOCK_WAIT
    # pg_restore and the other programs get it in their --dbname.
    shown = psql(short, sql="SHOW deadlock_timeout;", tuples_only=True)
    assert shown.text.strip() == SHORT_LOCK_WAIT


def test_short_lock_waits_keep_the_options_given(
    pg: TempCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    given = replace(pg.conninfo(), params={"options": "-c work_mem=5MB"})
    with connect(restore_sessions(given), autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_setting('work_mem'), current_setting('deadlock_timeout')"
        ).fetchone()
    assert row == ("5MB", SHORT_LOCK_WAIT)
    # Without options of its own, PGOPTIONS (which the options parameter replaces) is kept.
    monkeypatch.setenv("PGOPTIONS", "-c work_mem=6MB")
    with connect(restore_sessions(pg.conninfo()), autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_setting('work_mem'), current_setting('deadlock_timeout')"
        ).fetchone()
    assert row == ("6MB", SHORT_LOCK_WAIT)


def test_a_role_that_may_not_set_it_restores_with_the_servers_lock_waits(
    pg: TempCluster, request: pytest.FixtureRequest
) -> None:
    role, password = "sin_ajustes", "Secr3t-lock-waits"
    pg.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    request.addfinalizer(lambda: pg.execute(f"DROP ROLE {role}"))
    plain = ConnInfo(
        host=pg.host, port=pg.port, user=role, dbname="postgres", password=SecretStr(password)
    )
    # Not asked for: a connection asking for it would be refused.
    assert "deadlock_timeout" not in restore_sessions(plain).params.get("options", "")
    assert _deadlock_timeout(restore_sessions(plain)) == "1s"
    assert _deadlock_timeout(plain) == "1s"
    if server_info(pg.conninfo()).major >= 15:
        pg.execute(f"GRANT SET ON PARAMETER deadlock_timeout TO {role}")
        request.addfinalizer(
            lambda: pg.execute(f"REVOKE SET ON PARAMETER deadlock_timeout FROM {role}")
        )
        assert _deadlock_timeout(restore_sessions(plain)) == SHORT_LOCK_WAIT


# --- autovacuum paused for a restore's load -----------------------------------------------


def test_autovacuum_is_paused_and_resumed_for_more_tables_than_one_transaction_may_lock() -> None:
    # A server whose lock table holds a few hundred locks (max_locks_per_transaction x
    # connections): pg_dump dumps these 400 tables (one lock each), but one ALTER TABLE
    # each (the table's lock and its TOAST table's) in one transaction ran out of it.
    settings = {"max_locks_per_transaction": "10", "max_connections": "20"}
    with TempCluster.create(settings=settings) as cluster:
        cluster.execute("CREATE DATABASE many")
        for start in range(0, 400, 50):
            tables = range(start, start + 50)
            cluster.execute(
                "".join(f"CREATE TABLE t{n} (id int, body text);" for n in tables), dbname="many"
            )
        conninfo = cluster.conninfo("many")
        paused = pause_autovacuum(conninfo)
        assert len(paused) == 400
        off = "SELECT count(*) FROM pg_class WHERE reloptions = '{autovacuum_enabled=false}'"
        assert cluster.scalar(off, dbname="many") == 400
        resume_autovacuum(conninfo, paused)
        left = "SELECT count(*) FROM pg_class WHERE relname ~ '^t[0-9]+$' AND reloptions IS NULL"
        assert cluster.scalar(left, dbname="many") == 400

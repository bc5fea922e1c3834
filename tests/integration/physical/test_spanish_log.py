"""A restored server whose configuration logs in Spanish (``lc_messages = 'es_ES.UTF-8'``,
as a server made with ``initdb --locale=es_ES.UTF-8`` on Debian, whose PostgreSQL ships
Spanish catalogs, does): respaldo reads that log during ``restore --start`` to say where
recovery stopped and why it failed, so the server is started for it with
``-c lc_messages=C``, an option of that start only (the configuration keeps Spanish).
What the source server itself says to a backup is in Spanish too."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from psycopg import sql
from sample.cluster import TempCluster

from respaldo.operations.context import Context
from respaldo.operations.drill import run_drill
from tests.integration.physical.conftest import SHOP, Archiving, archiving_cluster, free_port

pytestmark = pytest.mark.integration

SPANISH = "es_ES.UTF-8"


@pytest.fixture(scope="module")
def spanish_session() -> Iterator[Archiving]:
    # The system's PostgreSQL: Debian's packages ship its Spanish message catalog.
    with archiving_cluster(
        None, initdb_options=(f"--locale={SPANISH}",), settings={"lc_messages": SPANISH}
    ) as archiving:
        # Proof that the source logs in Spanish: otherwise the tests prove nothing.
        with pytest.raises(Exception, match="división por cero"):
            archiving.pg.execute("SELECT 1 / 0")
        yield archiving


@pytest.fixture
def spanish(spanish_session: Archiving, capsys: pytest.CaptureFixture[str]) -> Iterator[Archiving]:
    spanish_session.capsys = capsys
    yield spanish_session
    spanish_session.capsys = None


def test_recovery_to_the_end_of_the_wal_says_where_it_stopped(
    spanish: Archiving, restored_servers: list[TempCluster]
) -> None:
    table = sql.Identifier(f"t_{uuid.uuid4().hex[:10]}")
    spanish.pg.execute(sql.SQL("CREATE TABLE {} (id int)").format(table), dbname=SHOP)
    record = spanish.backup()
    spanish.pg.execute(sql.SQL("INSERT INTO {} VALUES (1)").format(table), dbname=SHOP)
    spanish.switch_and_archive()
    restored, datadir, run = spanish.restore_started(
        record["id"], restored_servers, "--timeout", "120"
    )
    assert restored.query(sql.SQL("SELECT id FROM {}").format(table), dbname=SHOP) == [(1,)]
    # The log lines that say where recovery stopped are found, and shown.
    assert "archive recovery complete" in run.err, str(run)
    # English for this start only: the restored configuration still says Spanish.
    assert restored.scalar("SHOW lc_messages") == "C"
    assert f"lc_messages = '{SPANISH}'" in (datadir / "respaldo_test.conf").read_text()
    assert "lc_messages" not in (datadir / "postgresql.auto.conf").read_text()


def test_recovery_to_a_target_says_where_it_stopped(
    spanish: Archiving, restored_servers: list[TempCluster]
) -> None:
    record = spanish.backup()
    name = f"antes-{uuid.uuid4().hex[:6]}"
    spanish.pg.execute("SELECT pg_create_restore_point(%s)", (name,))
    spanish.switch_and_archive()
    _, _, run = spanish.restore_started(record["id"], restored_servers, "--target-name", name)
    assert f'recovery stopping at restore point "{name}"' in run.err, str(run)


def test_a_target_the_archived_wal_does_not_reach_fails_saying_so(spanish: Archiving) -> None:
    # A restore point no archived WAL holds: the server replays all of it and stops, in
    # Spanish (a target time after the newest archived commit, or with none archived, is
    # refused before anything is written: test_recovery_targets.py).
    record = spanish.backup()
    spanish.switch_and_archive()
    datadir = spanish.new_datadir()
    run = spanish.run(
        "restore", record["id"], "--target-datadir", str(datadir),
        "--target-name", "no existe", "--start", "--port", str(free_port()),
    )  # fmt: skip
    assert run.code == 1, str(run)
    assert "recovery ended before the recovery target was reached" in run.err, str(run)
    assert "no restore point named 'no existe' is in the WAL archived" in run.err
    assert not (datadir / "postmaster.pid").exists()


def test_a_taken_port_fails_saying_so(spanish: Archiving) -> None:
    record = spanish.backup()
    datadir = spanish.new_datadir()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = int(sock.getsockname()[1])
        run = spanish.run(
            "restore", record["id"], "--target-datadir", str(datadir),
            "--immediate", "--start", "--port", str(port),
        )  # fmt: skip
    assert run.code == 1, str(run)
    assert f"the restored server in {datadir} could not listen" in run.err, str(run)
    assert "Address already in use" in run.err
    assert "another process took the port" in run.err  # the hint


def test_a_drill_passes(spanish: Archiving) -> None:
    record = spanish.backup()
    with Context.open(spanish.settings()) as ctx:
        result = run_drill(ctx, record["id"], respaldo_command=spanish.respaldo_command)
    assert result.passed, result.checks


@contextmanager
def _role_without_replication(spanish: Archiving) -> Iterator[str]:
    """The configuration's role, for the block: one that reads every row and may not
    stream (no REPLICATION), with the password of the configuration's password file."""
    pg = spanish.pg
    name = f"lector_{uuid.uuid4().hex[:8]}"
    role = sql.Identifier(name)
    password = sql.Literal(pg.password.get_secret_value())
    pg.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(role, password))
    pg.execute(sql.SQL("GRANT pg_read_all_data TO {}").format(role))
    text = spanish.config.read_text()
    spanish.config.write_text(text.replace(f"{pg.superuser}@", f"{name}@"))
    try:
        yield name
    finally:
        spanish.config.write_text(text)
        pg.execute(sql.SQL("DROP ROLE {}").format(role))


def test_a_backup_role_without_replication_is_told_what_it_needs(spanish: Archiving) -> None:
    # The server's refusal is in Spanish ("debe ser superusuario o rol de replicación"):
    # the hint comes from asking the server about the role, not from the words.
    with _role_without_replication(spanish):
        run = spanish.run("backup", "erp", "--type", "incremental")
    assert run.code == 1, str(run)
    assert "rol de replicación" in run.err, str(run)
    assert "hint: grant the backup role REPLICATION" in run.err, str(run)


def test_check_tells_a_role_without_replication_how_to_connect_for_replication(
    spanish: Archiving,
) -> None:
    # The replication connection's fix was chosen from the English "replication role".
    with _role_without_replication(spanish) as name:
        run = spanish.run("check", "erp", "--json")
    assert run.code == 3, str(run)
    findings = {f["check"]: f for f in json.loads(run.out)}
    refused = findings["replication connection"]
    assert refused["status"] == "missing", refused
    assert "rol de replicación" in refused["value"], refused
    assert refused["fix"] == f'ALTER ROLE "{name}" WITH REPLICATION', refused


def test_a_server_refusing_replication_connections_is_told_what_it_needs(
    spanish: Archiving,
) -> None:
    pg = spanish.pg
    hba = pg.datadir / "pg_hba.conf"
    text = hba.read_text()
    lines = text.splitlines(keepends=True)
    hba.write_text("".join(line for line in lines if "replication" not in line))
    pg.execute("SELECT pg_catalog.pg_reload_conf()")
    try:
        run = spanish.run("backup", "erp", "--type", "incremental")
    finally:
        hba.write_text(text)
        pg.execute("SELECT pg_catalog.pg_reload_conf()")
    assert run.code == 1, str(run)
    assert "no hay una línea en pg_hba.conf" in run.err, str(run)
    assert "hint: allow replication connections in pg_hba.conf" in run.err, str(run)

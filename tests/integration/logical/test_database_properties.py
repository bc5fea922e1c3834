"""A restored database gets the backed-up database's own properties — owner, grants,
settings (its own and its roles'), comment, connection limit — as ``pg_dump --create``
would have recreated them; ``--replace`` never lets anyone in whom the replaced database
kept out."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql
from sample.cluster import TempCluster

from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import databases, staging_databases, table_checksums
from tests.integration.majors import ON_PG18

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Roles:
    owner: str
    app: str
    grantor: str
    reader: str
    outsider: str

    def all(self) -> list[str]:
        return [self.owner, self.app, self.grantor, self.reader, self.outsider]


@pytest.fixture
def roles(pg: TempCluster) -> Iterator[Roles]:
    """Login roles of this test only; whatever they own or were granted goes with them."""
    tag = uuid.uuid4().hex[:6]
    made = Roles(*(f"{kind}_{tag}" for kind in ("dueño", "app", "otorga", "lector", "ajeno")))
    for role in made.all():
        pg.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'x'").format(sql.Identifier(role)))
    yield made
    existing = {str(r[0]) for r in pg.query("SELECT rolname FROM pg_catalog.pg_roles")}
    names = sql.SQL(", ").join(sql.Identifier(r) for r in made.all() if r in existing)
    for dbname in databases(pg) - {"template0"}:
        with pg.connect(dbname) as conn:
            conn.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(names))
            conn.execute(sql.SQL("DROP OWNED BY {}").format(names))
    pg.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(names))


def give_properties(pg: TempCluster, dbname: str, roles: Roles) -> None:
    """Everything pg_dump --create records about a database itself."""
    db, r = sql.Identifier(dbname), {k: sql.Identifier(v) for k, v in roles.__dict__.items()}
    for statement in (
        sql.SQL("ALTER DATABASE {} OWNER TO {}").format(db, r["owner"]),
        sql.SQL("ALTER DATABASE {} SET search_path = public, \"mi esquema\", ''").format(db),
        sql.SQL("ALTER DATABASE {} SET work_mem = '8MB'").format(db),
        sql.SQL("ALTER ROLE {} IN DATABASE {} SET statement_timeout = '5s'").format(r["app"], db),
        sql.SQL("COMMENT ON DATABASE {} IS {}").format(
            db, sql.Literal("ERP de producción; it's ON DATABASE erp --")
        ),
        sql.SQL("ALTER DATABASE {} CONNECTION LIMIT 40").format(db),
        sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db),
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(db, r["app"]),
        sql.SQL("GRANT CONNECT, CREATE ON DATABASE {} TO {} WITH GRANT OPTION").format(
            db, r["grantor"]
        ),
    ):
        pg.execute(statement)
    with pg.connect() as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(r["grantor"]))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(db, r["reader"]))


# The header pg_dump writes above each entry; those about the database itself.
_HEADER = re.compile(r"^-- Name: (?P<name>.*); Type: (?P<type>[A-Z ]+); Schema: (?P<schema>[^;]*);")
_ABOUT_DATABASE = {"DATABASE", "DATABASE PROPERTIES", "COMMENT", "ACL", "SECURITY LABEL"}


def pg_dump_create(pg: TempCluster, dbname: str) -> list[str]:
    """The oracle: the statements ``pg_dump --create`` writes about the database itself
    (its entries, not its contents), the database's name replaced by DB."""
    env = {**os.environ, **pg.libpq_env(dbname)}
    done = subprocess.run(
        [str(pg.bindir / "pg_dump"), "--create", "--schema-only"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    lines: list[str] = []
    inside = False
    for line in done.stdout.splitlines():
        header = _HEADER.match(line)
        if header is not None:
            inside = (
                header["type"] in _ABOUT_DATABASE
                and header["schema"] == "-"
                and (header["name"] == dbname or header["name"].startswith("DATABASE "))
            )
            continue
        if inside and line.strip() and not line.startswith(("--", "\\")):
            lines.append(line.replace(dbname, "DB"))
    return lines


def catalog_view(pg: TempCluster, dbname: str) -> dict[str, object]:
    """The same properties read from the catalogs: settings, ACL, comment, owner, limit."""
    rows = pg.query(
        "SELECT pg_catalog.pg_get_userbyid(datdba), datconnlimit,"
        " pg_catalog.shobj_description(oid, 'pg_database'),"
        " (SELECT array_agg(a::text ORDER BY a::text)"
        "    FROM unnest(coalesce(datacl, pg_catalog.acldefault('d', datdba))) a),"
        " (SELECT array_agg(coalesce(r.rolname, '*') || ':' || s.setconfig::text"
        "          ORDER BY coalesce(r.rolname, '*'))"
        "    FROM pg_catalog.pg_db_role_setting s"
        "    LEFT JOIN pg_catalog.pg_roles r ON r.oid = s.setrole"
        "   WHERE s.setdatabase = d.oid)"
        " FROM pg_catalog.pg_database d WHERE datname = %s",
        [dbname],
    )
    owner, limit, comment, acl, settings = rows[0]
    return {"owner": owner, "limit": limit, "comment": comment, "acl": acl, "settings": settings}


def can_connect(pg: TempCluster, role: str, dbname: str) -> bool:
    return bool(
        pg.scalar("SELECT pg_catalog.has_database_privilege(%s, %s, 'CONNECT')", [role, dbname])
    )


def test_a_new_database_gets_the_backed_up_databases_properties(
    respaldo: Respaldo, pg: TempCluster, roles: Roles, new_dbname: str
) -> None:
    source = respaldo.dbname
    give_properties(pg, source, roles)
    oracle = pg_dump_create(pg, source)
    assert any("SET search_path" in line for line in oracle), oracle  # a witness that sees
    assert any(line.startswith("ALTER ROLE") for line in oracle), oracle
    assert "SET SESSION AUTHORIZATION" in " ".join(oracle)
    backup_id = respaldo.backup()["id"]

    respaldo.restore(backup_id, new_dbname)
    assert pg_dump_create(pg, new_dbname) == oracle
    assert catalog_view(pg, new_dbname) == catalog_view(pg, source)
    assert not can_connect(pg, roles.outsider, new_dbname)
    assert staging_databases(pg) == set()


def test_replace_restores_the_backups_properties_but_lets_nobody_new_in(
    respaldo: Respaldo, pg: TempCluster, roles: Roles
) -> None:
    target = respaldo.dbname
    give_properties(pg, target, roles)
    backed_up = catalog_view(pg, target)
    backup_id = respaldo.backup()["id"]
    # After the backup: the reader's access is revoked (it left the company), the outsider
    # gets CONNECT, the comment and a setting change.
    db = sql.Identifier(target)
    with pg.connect() as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(roles.grantor)))
        conn.execute(
            sql.SQL("REVOKE CONNECT ON DATABASE {} FROM {}").format(
                db, sql.Identifier(roles.reader)
            )
        )
    pg.execute(
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(db, sql.Identifier(roles.outsider))
    )
    pg.execute(sql.SQL("COMMENT ON DATABASE {} IS 'cambiado'").format(db))
    pg.execute(sql.SQL("ALTER DATABASE {} SET work_mem = '1MB'").format(db))

    run = respaldo.restore(backup_id, target, "--replace")
    after = catalog_view(pg, target)
    assert after["comment"] == backed_up["comment"]
    assert after["settings"] == backed_up["settings"]
    assert after["owner"] == roles.owner
    assert after["limit"] == 40
    # The reader's revocation holds: the backup's grant is not brought back...
    assert not can_connect(pg, roles.reader, target)
    # ...and the grant made since the backup is not carried over either.
    assert not can_connect(pg, roles.outsider, target)
    assert can_connect(pg, roles.app, target)
    warnings = " ".join(line for line in run.err_lines if line.startswith("warning:"))
    assert f"CONNECT to {roles.reader}" in warnings, run.err
    assert f"CONNECT to {roles.outsider}" in warnings, run.err
    assert staging_databases(pg) == set()


def test_replace_shuts_out_roles_the_old_database_shut_out(
    respaldo: Respaldo, pg: TempCluster, roles: Roles
) -> None:
    """The defect itself: a database nobody but the app could connect to was swapped for
    one that PUBLIC could connect to."""
    target = respaldo.dbname
    backup_id = respaldo.backup()["id"]  # the sample's default: PUBLIC may connect
    db = sql.Identifier(target)
    pg.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db))
    pg.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(db, sql.Identifier(roles.app)))
    assert not can_connect(pg, roles.outsider, target)

    run = respaldo.restore(backup_id, target, "--replace")
    assert not can_connect(pg, roles.outsider, target)
    with pytest.raises(psycopg.OperationalError, match="permission denied"):
        psycopg.connect(
            **{**pg.conninfo_kwargs(target), "user": roles.outsider, "password": "x"}
        ).close()
    assert "CONNECT to PUBLIC" in run.err, run.err


def test_a_role_missing_on_the_server_stops_the_restore_before_it_starts(
    respaldo: Respaldo, pg: TempCluster, roles: Roles, new_dbname: str
) -> None:
    source = respaldo.dbname
    give_properties(pg, source, roles)
    backup_id = respaldo.backup()["id"]
    # The reader role is dropped after the backup (its grant revoked by its grantor first).
    with pg.connect() as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(roles.grantor)))
        conn.execute(
            sql.SQL("REVOKE CONNECT ON DATABASE {} FROM {}").format(
                sql.Identifier(source), sql.Identifier(roles.reader)
            )
        )
    pg.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(roles.reader)))
    before = databases(pg)

    run = respaldo.run("restore", backup_id, "-t", new_dbname)
    assert run.code == 1, str(run)
    assert run.err_lines[0].startswith(
        "respaldo: error: the backed-up database's owner, grants or settings cannot be applied"
    ), run.err
    assert f'role "{roles.reader}" does not exist' in run.err_lines[0], run.err
    assert "--globals" in run.err_lines[1] and "nothing was changed" in run.err_lines[1]
    assert databases(pg) == before  # no staging left, no target
    # Over the existing database, the same: it stays exactly as it was.
    properties, tables = catalog_view(pg, source), table_checksums(pg, source)
    run = respaldo.run("restore", backup_id, "-t", source, "--replace")
    assert run.code == 1, str(run)
    assert f'role "{roles.reader}" does not exist' in run.err_lines[0], run.err
    assert catalog_view(pg, source) == properties
    assert table_checksums(pg, source) == tables
    assert databases(pg) == before

    # With the backup's roles restored first, it works and the grant is back.
    respaldo.restore(backup_id, new_dbname, "--globals")
    assert can_connect(pg, roles.reader, new_dbname)


def test_a_template_database_is_replaced_and_its_old_copy_dropped(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    """A database marked IS_TEMPLATE cannot be dropped as it is: --drop-old (and the
    cleanup of a failed restore) must unmark it first."""
    backup_id = respaldo.backup()["id"]
    pg.execute(sql.SQL("CREATE DATABASE {} IS_TEMPLATE true").format(sql.Identifier(new_dbname)))
    before = databases(pg)
    run = respaldo.run("restore", backup_id, "-t", new_dbname, "--replace", "--drop-old")
    assert run.code == 0, str(run)
    assert "previous database dropped" in run.err
    assert databases(pg) == before
    assert table_checksums(pg, new_dbname) == table_checksums(pg, respaldo.dbname)


def test_a_read_only_database_restores_under_a_new_name(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    """A database made read-only (an archive of past years' works) is the configured one
    the restore manages the server from: CREATE DATABASE of its staging copy failed ('in
    a read-only transaction') and no backup of it could be restored under a new name,
    while its restore tests, managed from postgres, passed. Its copy stays read-only."""
    pg.execute(
        sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(
            sql.Identifier(respaldo.dbname)
        )
    )
    backup_id = respaldo.backup()["id"]

    run = respaldo.run("restore", backup_id, "--target-database", new_dbname)

    assert run.code == 0, str(run)
    assert table_checksums(pg, new_dbname) == table_checksums(pg, respaldo.dbname)
    assert pg.scalar(
        "SELECT s.setconfig FROM pg_catalog.pg_db_role_setting s"
        " JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase"
        " WHERE d.datname = %s AND s.setrole = 0",
        [new_dbname],
    ) == ["default_transaction_read_only=on"]
    assert staging_databases(pg) == set()


def test_a_database_with_timeouts_for_its_application_backs_up_and_restores(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    """Timeouts a DBA sets for the application (statement_timeout, lock_timeout,
    idle_in_transaction_session_timeout) held respaldo's own sessions too, which pg_dump
    lifts for its own: the snapshot's transaction, idle while pg_dump starts and dumps,
    was ended, and a table that took longer to count than statement_timeout cancelled
    its count; every backup of such a database failed. The restored copy keeps them."""
    pg.execute(
        sql.SQL(
            "ALTER DATABASE {0} SET idle_in_transaction_session_timeout = '1ms';"
            "ALTER DATABASE {0} SET lock_timeout = '1ms'"
        ).format(sql.Identifier(respaldo.dbname))
    )
    backup_id = respaldo.backup()["id"]

    drill = respaldo.run("drill", backup_id)
    assert drill.code == 0, str(drill)
    run = respaldo.run("restore", backup_id, "--target-database", new_dbname, "--jobs", "2")
    assert run.code == 0, str(run)
    assert sorted(
        pg.scalar(
            "SELECT s.setconfig FROM pg_catalog.pg_db_role_setting s"
            " JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase"
            " WHERE d.datname = %s AND s.setrole = 0",
            [new_dbname],
        )
    ) == ["idle_in_transaction_session_timeout=1ms", "lock_timeout=1ms"]


@ON_PG18
def test_a_database_with_a_transaction_timeout_backs_up_and_restores(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    """transaction_timeout (PostgreSQL 17 and later), set for the application, ended
    every respaldo session on the database whose transaction outlived it: the backup's
    snapshot, held while pg_dump dumps, first of all, and every backup of such a database
    failed. pg_dump and pg_restore lift it for their own sessions; respaldo's own lift it
    where the server knows it (an older server refuses a session that names it)."""
    pg.execute(
        sql.SQL("ALTER DATABASE {} SET transaction_timeout = '1ms'").format(
            sql.Identifier(respaldo.dbname)
        )
    )
    backup_id = respaldo.backup()["id"]

    drill = respaldo.run("drill", backup_id)
    assert drill.code == 0, str(drill)
    for jobs in ("1", "2"):
        run = respaldo.run("restore", backup_id, "--target-database", new_dbname, "--jobs", jobs)
        assert run.code == 0, str(run)
        assert pg.scalar(
            "SELECT s.setconfig FROM pg_catalog.pg_db_role_setting s"
            " JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase"
            " WHERE d.datname = %s AND s.setrole = 0",
            [new_dbname],
        ) == ["transaction_timeout=1ms"]
        pg.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(new_dbname)))
    assert staging_databases(pg) == set()

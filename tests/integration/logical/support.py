"""What the logical-backup tests compare: schema, table data, sequences, large objects.

Everything here reads a database of the test cluster directly (psycopg or pg_dump run by
the test, not by respaldo), so that a restore is judged by an independent witness.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from psycopg import sql
from sample.cluster import TempCluster

from tests.integration.processes import kill_if_running
from tests.waiting import wait_for

if TYPE_CHECKING:
    from tests.integration.logical.conftest import Respaldo, Run

# Tables and materialized views that hold rows (leaf partitions, not their parents),
# without the members of extensions, whose rows pg_dump leaves to CREATE EXTENSION, nor
# materialized views WITH NO DATA (reading one is an error; the schema shows which).
_RELATIONS = """
SELECT n.nspname, c.relname
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'm')
   AND c.relispopulated
   AND n.nspname <> 'information_schema'
   AND n.nspname !~ '^pg_'
   AND NOT EXISTS (
         SELECT 1 FROM pg_catalog.pg_depend d
          WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
            AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY 1, 2
"""

# pg_dump 15.14+ brackets its script with \restrict KEY / \unrestrict KEY, a fresh random
# key per run: the only line of two dumps of equal databases that must differ.
_RESTRICT = re.compile(r"^\\(un)?restrict .*$", re.MULTILINE)


def table_checksums(pg: TempCluster, dbname: str) -> dict[str, tuple[int, str]]:
    """``schema.table`` -> (row count, md5 of every row's text in a fixed order)."""
    out: dict[str, tuple[int, str]] = {}
    with pg.connect(dbname) as conn:
        for schema, table in conn.execute(_RELATIONS.encode()).fetchall():
            query = sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), ''))"
                " FROM {} t"
            ).format(sql.Identifier(schema, table))
            row = conn.execute(query).fetchone()
            assert row is not None
            out[f"{schema}.{table}"] = (int(row[0]), str(row[1]))
    return out


def sequence_values(pg: TempCluster, dbname: str) -> dict[str, tuple[int, bool]]:
    """``schema.sequence`` -> (last_value, is_called): where its next value comes from."""
    out: dict[str, tuple[int, bool]] = {}
    with pg.connect(dbname) as conn:
        names = conn.execute(
            b"SELECT schemaname, sequencename FROM pg_catalog.pg_sequences ORDER BY 1, 2"
        ).fetchall()
        for schema, name in names:
            query = sql.SQL("SELECT last_value, is_called FROM {}").format(
                sql.Identifier(schema, name)
            )
            row = conn.execute(query).fetchone()
            assert row is not None
            out[f"{schema}.{name}"] = (int(row[0]), bool(row[1]))
    return out


@dataclass(frozen=True)
class LargeObjects:
    count: int
    digest: str


def large_objects(pg: TempCluster, dbname: str) -> LargeObjects:
    """How many large objects there are, and one digest of their oids, owners and contents."""
    row = pg.query(
        "SELECT count(*), md5(coalesce(string_agg("
        "  oid::text || ':' || lomowner::regrole::text || ':' || md5(pg_catalog.lo_get(oid)),"
        "  ',' ORDER BY oid), ''))"
        " FROM pg_catalog.pg_largeobject_metadata",
        dbname=dbname,
    )[0]
    return LargeObjects(int(row[0]), str(row[1]))


def schema_dump(pg: TempCluster, dbname: str) -> str:
    """``pg_dump --schema-only`` of ``dbname``, with the per-run random lines removed."""
    env = {**os.environ, **pg.libpq_env(dbname)}
    done = subprocess.run(
        [str(pg.bindir / "pg_dump"), "--schema-only", "--no-password"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return _RESTRICT.sub("", done.stdout)


def databases(pg: TempCluster) -> set[str]:
    return {str(r[0]) for r in pg.query("SELECT datname FROM pg_catalog.pg_database")}


def staging_databases(pg: TempCluster) -> set[str]:
    # Of respaldo's form only: a user's respaldo_staging_ventas is no staging database.
    return {n for n in databases(pg) if re.fullmatch(r"respaldo_staging_[0-9a-f]{8}", n)}


def assert_failed_leaving_nothing(run: Run, pg: TempCluster, before: set[str], work: Path) -> None:
    """``run``, a restore with the work directory ``work``, failed cleanly: no traceback,
    no database made or dropped (``before``: :func:`databases` before it), no staging
    database, nothing left in ``work`` (no plaintext spool or spill file)."""
    assert run.code != 0, str(run)
    assert "Traceback" not in run.err, run.err
    assert databases(pg) == before
    assert staging_databases(pg) == set()
    assert list(work.iterdir()) == []


def flip_byte(path: Path, offset: int) -> None:
    """Invert one byte of a file in place (a disk error, as far as respaldo can tell)."""
    with path.open("r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        assert len(byte) == 1, f"{path} has no byte at {offset}"
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))


def wait_for_pg_restore_on_a_lock(
    pg: TempCluster, process: subprocess.Popen[str], what: str = "pg_restore to wait for a lock"
) -> None:
    """Wait until a ``pg_restore`` on ``pg`` waits for a lock (one the test holds); fail
    with the output of ``process``, the respaldo that runs it, should that end first."""

    def restoring() -> bool:
        assert process.poll() is None, process.communicate()
        return bool(
            pg.scalar(
                "SELECT count(*) FROM pg_catalog.pg_stat_activity"
                " WHERE application_name = 'pg_restore' AND wait_event_type = 'Lock'"
            )
        )

    wait_for(what, restoring)


PROJECT = Path(__file__).resolve().parents[3]


@contextmanager
def script_child(script: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    """Run the test script ``script`` with ``args`` in a child Python, from the project's
    root, its three streams piped (text); killed after the ``with`` if it still runs."""
    child = subprocess.Popen(
        [sys.executable, str(script), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=PROJECT,
    )
    try:
        yield child
    finally:
        kill_if_running(child)


@contextmanager
def backup_with_a_table_of(pg: TempCluster, respaldo: Respaldo, role: str) -> Iterator[str]:
    """Back ``respaldo``'s database up with a table owned by the new role ``role``, then
    drop the table (the role owns nothing, and an uncommitted ``DROP ROLE`` can hold its
    lock: giving the restored table its owner then waits inside ``pg_restore``); yields
    the backup's id. The role is dropped after the ``with``."""
    pg.execute(f"CREATE ROLE {role}")
    try:
        pg.execute(
            f"CREATE TABLE public.nota (id int); ALTER TABLE public.nota OWNER TO {role}",
            dbname=respaldo.dbname,
        )
        backup_id = str(respaldo.backup()["id"])
        pg.execute("DROP TABLE public.nota", dbname=respaldo.dbname)
        yield backup_id
    finally:
        pg.execute(f"DROP ROLE IF EXISTS {role}")


@contextmanager
def waiting_on_a_role_lock(
    respaldo: Respaldo, role: str, *command: str
) -> Iterator[subprocess.Popen[str]]:
    """Run ``respaldo COMMAND…`` (a restore or a drill of a backup made by
    :func:`backup_with_a_table_of` with ``role``) in a child process while an uncommitted
    ``DROP ROLE`` holds the role's lock; yields it once its ``pg_restore`` waits for that
    lock. After the ``with`` the child is killed if it still runs, then the lock let go
    (in that order: the child must not go on as if nothing had held it)."""
    pg = respaldo.pg
    with pg.connect(autocommit=False) as locker:
        locker.execute(f"DROP ROLE {role}")  # not committed: holds the role's lock
        process = subprocess.Popen(
            [*respaldo.process_argv(), *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for_pg_restore_on_a_lock(
                pg, process, f"the {command[0]}'s pg_restore to wait for the lock"
            )
            yield process
        finally:
            kill_if_running(process)
            locker.rollback()

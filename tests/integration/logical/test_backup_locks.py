"""A logical backup and the application's DDL while it runs: a ``TRUNCATE`` (or a
rewriting ``ALTER``) never leaves the backup and the application waiting for each other
for ever, and never leaves a backup recorded as good whose table lost its rows.

The backup counts every table's rows in its snapshot's transaction, whose locks last
until the dump ends. Two ways it went wrong: a table counted before pg_dump had locked
it, then a ``TRUNCATE`` of it (queued behind the count's lock), and pg_dump's own lock
request queued behind the ``TRUNCATE``, a deadlock the server cannot see (the counting
session only waits, in respaldo, for pg_dump); and a ``TRUNCATE`` that ran after the
snapshot was taken: it is not MVCC-safe, the snapshot then sees the table empty, and
counts and dump agreed on no rows. The tests build each order with locks, not with
timing: pg_dump locks tables in the order they were created, so a partitioned table
without partitions (which is not counted), held locked, stops pg_dump at it.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sample.cluster import TempCluster

from respaldo.postgres.server import WAITING_FOR_LOCKS
from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.test_backup_role import configure_backup_role
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

# (sessions waiting for a lock on the relation, sessions holding one), ours left out.
_LOCKS = """
SELECT count(*) FILTER (WHERE NOT l.granted), count(*) FILTER (WHERE l.granted)
  FROM pg_catalog.pg_locks l
 WHERE l.relation = pg_catalog.to_regclass(%s) AND l.pid <> pg_catalog.pg_backend_pid()
"""
# The counts' session, waiting for pg_dump's locks.
_WATCHING = "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE starts_with(query, %s)"
_CANCEL_TRUNCATE = (
    "SELECT pg_catalog.pg_cancel_backend(pid) FROM pg_catalog.pg_stat_activity"
    " WHERE query LIKE 'TRUNCATE public.aa_busy%'"
)


def _locks(pg: TempCluster, db: str, name: str) -> tuple[int, int]:
    with pg.connect(db) as conn:
        row = conn.execute(_LOCKS.encode(), (name,)).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


class _Backup:
    """The backup's process, and its stderr once it has ended."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.err = ""


@contextmanager
def _gated_backup(respaldo: Respaldo, pg: TempCluster, busy_first: bool) -> Iterator[_Backup]:
    """A backup in a subprocess whose pg_dump waits at the gate (public.zz_gate) until
    the block ends; public.aa_busy (10 rows) was created before the gate (pg_dump holds
    its lock at the gate) or after it (pg_dump has not locked it yet)."""
    db = respaldo.dbname
    busy = "CREATE TABLE public.aa_busy (id int);"
    gate = "CREATE TABLE public.zz_gate (id int) PARTITION BY LIST (id);"
    pg.execute(
        (busy + gate if busy_first else gate + busy)
        + "INSERT INTO public.aa_busy SELECT generate_series(1, 10)",
        dbname=db,
    )
    with pg.connect(db) as gate_conn:
        gate_conn.autocommit = False
        gate_conn.execute(b"LOCK TABLE ONLY public.zz_gate IN ACCESS EXCLUSIVE MODE")
        backup = subprocess.Popen(
            [*respaldo.process_argv(), "backup", "erp"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(
                "pg_dump waiting at the gate", lambda: _locks(pg, db, "public.zz_gate")[0] == 1
            )
            result = _Backup(backup)
            yield result
            gate_conn.commit()
            _out, result.err = backup.communicate(timeout=120)  # bounds a hang only
        finally:
            if backup.poll() is None:
                backup.kill()
                backup.communicate()
                # The hang itself: end the TRUNCATE, and pg_dump behind it goes on.
                pg.execute(_CANCEL_TRUNCATE, dbname=db)


def _truncate(pg: TempCluster, db: str) -> tuple[threading.Thread, threading.Event]:
    done = threading.Event()

    def run() -> None:
        with pg.connect(db) as app:
            app.execute(b"TRUNCATE public.aa_busy")
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, done


def test_a_truncate_before_pg_dump_locked_the_table_fails_the_backup_and_nothing_hangs(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    # The TRUNCATE runs between the snapshot and pg_dump's lock of the table: before,
    # either the count had read it (and the TRUNCATE, pg_dump behind it, and the backup
    # waited for ever) or nobody had, and the backup was recorded as good with the
    # table empty in its dump and its manifest, though its snapshot had 10 rows.
    db = respaldo.dbname
    with _gated_backup(respaldo, pg, busy_first=False) as backup:
        wait_for(
            "the counts past aa_busy, or waiting for pg_dump's locks",
            lambda: (
                _locks(pg, db, "public.aa_busy")[1] == 1
                or pg.scalar(_WATCHING, [WAITING_FOR_LOCKS], dbname=db) == 1
            ),
        )
        application, truncated = _truncate(pg, db)
        wait_for(
            "the TRUNCATE waiting or done",
            lambda: truncated.is_set() or _locks(pg, db, "public.aa_busy")[0] == 1,
        )
    application.join(timeout=120)
    assert truncated.is_set()
    err = backup.err
    assert backup.process.returncode == 1, err
    assert "public.aa_busy was truncated or rewritten" in err, err
    assert "take the backup again" in err
    assert respaldo.records()[-1].status == "failed"
    assert respaldo.repository().backup_ids() == []  # nothing to restore from


def test_a_truncate_after_pg_dump_locked_the_table_waits_for_the_backup(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    db = respaldo.dbname
    with _gated_backup(respaldo, pg, busy_first=True) as backup:
        # pg_dump holds aa_busy's lock (and waits at the gate); so do the counts, taken
        # all at once as soon as pg_dump held its locks.
        wait_for("the counts holding aa_busy", lambda: _locks(pg, db, "public.aa_busy")[1] == 2)
        application, truncated = _truncate(pg, db)
        wait_for("the TRUNCATE waiting", lambda: _locks(pg, db, "public.aa_busy")[0] == 1)
    application.join(timeout=120)
    assert truncated.is_set()
    assert backup.process.returncode == 0, backup.err
    (record,) = respaldo.records()
    assert record.status == "completed"
    manifest = respaldo.repository().load_manifest(record.id)
    assert manifest.meta["row_counts"]["public.aa_busy"] == 10


def test_a_backup_needs_no_more_sessions_than_the_count_and_pg_dump(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    """A backup role limited to two sessions (``CONNECTION LIMIT 2``: the counts' and
    pg_dump's, what a serial backup always needed) still backs up: the look for
    pg_dump's locks is made from the counts' own session, not from a third one, which
    the server refused ("too many connections for role") and failed the backup."""
    role = f"lim_{respaldo.dbname[-8:]}"
    configure_backup_role(
        respaldo,
        pg,
        role,
        source="two",
        password="Secr3t-two-sessions",
        attributes="CONNECTION LIMIT 2",
    )
    try:
        run = respaldo.run("backup", "two", "--jobs", "1")
    finally:
        pg.execute(f"DROP OWNED BY {role}; DROP ROLE {role}", dbname=respaldo.dbname)
    assert run.code == 0, str(run)
    (record,) = [r for r in respaldo.records() if r.database_name == "two"]
    assert record.status == "completed"

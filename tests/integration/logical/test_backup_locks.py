"""A logical backup and the application's DDL: an ``ALTER``/``TRUNCATE`` of a table while
the backup runs waits for the dump (as it does for pg_dump alone); it never leaves both
waiting forever.

The backup counts every table's rows in its snapshot's transaction, whose locks last
until the dump ends. A table counted before pg_dump had locked it, then a ``TRUNCATE`` of
it (queued behind the count's lock), and pg_dump's own lock request queued behind the
``TRUNCATE``: a deadlock the server cannot see (the counting session only waits, in
respaldo, for pg_dump). The test builds that order with locks, not with timing: pg_dump
locks tables in the order they were created, so a partitioned table without partitions
(which is not counted), created first and held locked, stops pg_dump before the table
it locks next.
"""

from __future__ import annotations

import os
import subprocess
import threading

import pytest
from sample.cluster import TempCluster

from respaldo.postgres.server import WAITING_FOR_LOCKS
from tests.integration.logical.conftest import Respaldo
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


def test_a_truncate_during_the_backup_waits_for_it_and_neither_hangs(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    db = respaldo.dbname
    pg.execute(
        "CREATE TABLE public.zz_gate (id int) PARTITION BY LIST (id);"
        "CREATE TABLE public.aa_busy (id int);"
        "INSERT INTO public.aa_busy SELECT generate_series(1, 10)",
        dbname=db,
    )

    def locks(name: str) -> tuple[int, int]:
        with pg.connect(db) as conn:
            row = conn.execute(_LOCKS.encode(), (name,)).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    with pg.connect(db) as gate, pg.connect(db) as app:
        gate.autocommit = False
        gate.execute(b"LOCK TABLE ONLY public.zz_gate IN ACCESS EXCLUSIVE MODE")
        app.autocommit = True
        backup = subprocess.Popen(
            [*respaldo.process_argv(), "backup", "erp"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # pg_dump stopped at the gate; the counts either have read aa_busy (and keep
            # its lock) or wait for pg_dump's locks.
            wait_for(
                "pg_dump waiting at the gate, the counts past aa_busy or waiting",
                lambda: (
                    locks("public.zz_gate")[0] == 1
                    and (
                        locks("public.aa_busy")[1] == 1
                        or pg.scalar(_WATCHING, [WAITING_FOR_LOCKS], dbname=db) == 1
                    )
                ),
            )
            truncated = threading.Event()

            def truncate() -> None:
                app.execute(b"TRUNCATE public.aa_busy")
                truncated.set()

            application = threading.Thread(target=truncate, daemon=True)
            application.start()
            wait_for(
                "the TRUNCATE waiting or done",
                lambda: truncated.is_set() or locks("public.aa_busy")[0] == 1,
            )
            gate.commit()
            _out, err = backup.communicate(timeout=120)  # bounds a hang only
        finally:
            if backup.poll() is None:
                backup.kill()
                backup.communicate()
                # The hang itself: end the TRUNCATE, and pg_dump behind it goes on.
                pg.execute(_CANCEL_TRUNCATE, dbname=db)
        assert backup.returncode == 0, err
        application.join(timeout=120)
        assert truncated.is_set()
    assert respaldo.records()[-1].status == "completed"


def test_a_backup_needs_no_more_sessions_than_the_count_and_pg_dump(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    """A backup role limited to two sessions (``CONNECTION LIMIT 2``: the counts' and
    pg_dump's, what a serial backup always needed) still backs up: the look for
    pg_dump's locks is made from the counts' own session, not from a third one, which
    the server refused ("too many connections for role") and failed the backup."""
    role = f"lim_{respaldo.dbname[-8:]}"
    password = "Secr3t-two-sessions"
    pg.execute(
        f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 2 PASSWORD '{password}';"
        f"GRANT pg_read_all_data TO {role};"
        # Large objects need a privilege of their own: not what this is about.
        "SELECT pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata",
        dbname=respaldo.dbname,
    )
    secret = respaldo.tmp / f"{role}.pass"
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, (password + "\n").encode())
    os.close(fd)
    with respaldo.config.open("a") as config:
        config.write(
            f'\n[[databases]]\nname = "two"\n'
            f'dsn = "postgresql://{role}@{pg.host}:{pg.port}/{respaldo.dbname}"\n'
            f'password_file = "{secret}"\n'
        )
    try:
        run = respaldo.run("backup", "two", "--jobs", "1")
    finally:
        pg.execute(f"DROP OWNED BY {role}; DROP ROLE {role}", dbname=respaldo.dbname)
    assert run.code == 0, str(run)
    (record,) = [r for r in respaldo.records() if r.database_name == "two"]
    assert record.status == "completed"

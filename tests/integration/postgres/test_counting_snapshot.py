"""A backup's row counts are taken while pg_dump runs (counting_snapshot): the block runs
at once, the counts are still exactly the exported snapshot's."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from sample.cluster import TempCluster

from respaldo.errors import PostgresError, QueryFailed, RespaldoError
from respaldo.postgres import count_rows, counting_snapshot, create_database, pg_dump
from respaldo.postgres.server import WAITING_FOR_LOCKS
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def _tables(pg: TempCluster, dbname: str) -> None:
    create_database(pg.conninfo(), dbname)
    pg.execute(
        "CREATE TABLE a (x int); INSERT INTO a SELECT generate_series(1, 100);"
        "CREATE TABLE b (x int); INSERT INTO b VALUES (1), (2)",
        dbname=dbname,
    )


def test_the_block_runs_while_the_rows_are_counted_in_the_snapshot(
    pg: TempCluster, new_dbname: str
) -> None:
    _tables(pg, new_dbname)
    with pg.connect(new_dbname, autocommit=False) as other:
        # Counting table a waits for this lock: if the count preceded the block, the
        # block would never run.
        other.execute("LOCK TABLE a IN ACCESS EXCLUSIVE MODE")
        with counting_snapshot(pg.conninfo(new_dbname)) as snapshot:
            assert snapshot.snapshot_id
            other.execute("INSERT INTO a SELECT generate_series(1, 50)")  # after the export
            other.execute("DELETE FROM b")
            other.commit()  # the count of a goes on
            counts = snapshot.row_counts()
    assert counts == {"public.a": 100, "public.b": 2}


def test_a_failing_block_stops_the_count_and_ends_the_transaction(
    pg: TempCluster, new_dbname: str
) -> None:
    _tables(pg, new_dbname)
    with pg.connect(new_dbname, autocommit=False) as other:
        other.execute("LOCK TABLE a IN ACCESS EXCLUSIVE MODE")
        with (
            pytest.raises(RuntimeError, match="the dump failed"),
            counting_snapshot(pg.conninfo(new_dbname)),
        ):
            raise RuntimeError("the dump failed")  # while a's count waits for the lock
        other.rollback()
    # Reaching here is the point: the count, waiting for the lock, was cancelled (else
    # leaving the block would wait for a lock that only this test releases, after it).


def _waiting(pg: TempCluster, dbname: str) -> bool:
    return bool(
        pg.scalar(
            "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE datname = %s"
            " AND application_name = 'pg_dump' AND wait_event_type = 'Lock'",
            [dbname],
        )
    )


def _proc_environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(): v.decode(errors="replace") for k, v in pairs}


def test_a_count_that_fails_stops_pg_dump_at_once_and_is_the_error(
    pg: TempCluster, new_dbname: str
) -> None:
    # pg_dump has imported the snapshot and waits for the lock this test holds, as the
    # count does: the count's session is then ended. pg_dump must be killed at once (not
    # left to dump everything once the lock is gone), and the block fail with the count's
    # error, not with pg_dump's.
    _tables(pg, new_dbname)
    info = pg.conninfo(new_dbname)
    with pg.connect(new_dbname, autocommit=False) as other:
        other.execute("LOCK TABLE a IN ACCESS EXCLUSIVE MODE")
        with (
            pytest.raises(RespaldoError, match="counting the snapshot's rows") as failed,
            counting_snapshot(info) as snapshot,
            pg_dump(info, snapshot=snapshot.snapshot_id) as dump,
        ):
            # Once it waits for the lock, pg_dump has imported the snapshot.
            wait_for("pg_dump to wait for the lock", lambda: _waiting(pg, new_dbname))
            passfile = Path(_proc_environ(dump.pid)["PGPASSFILE"])
            pg.execute(
                "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity"
                " WHERE datname = %s AND application_name = 'respaldo'",
                (new_dbname,),
            )
            with pytest.raises(RespaldoError, match="counting the snapshot's rows"):
                snapshot.row_counts()  # the count has failed (and, so, stopped pg_dump)
            other.rollback()  # pg_dump could now dump everything: it must be gone already
            dumped = dump.stdout.read()
    assert dump.returncode == -signal.SIGKILL
    assert b"COPY public.b" not in dumped and len(dumped) < 1000
    assert isinstance(failed.value.__cause__, PostgresError)  # pg_dump's end, behind it
    with pytest.raises(ProcessLookupError):
        os.kill(dump.pid, 0)
    assert not passfile.exists()


def test_the_count_starts_once_the_holder_locks_even_if_it_came_after_the_first_look(
    pg: TempCluster, new_dbname: str
) -> None:
    """The counts wait for the session named ``holder`` (pg_dump's) to lock every table,
    looking from their own transaction. The holder's session starts after the first look
    (pg_dump connects after the snapshot is exported): the counts must still see it, not
    the picture of pg_stat_activity their transaction took first, and count while the
    holder holds its locks rather than after the dump."""
    _tables(pg, new_dbname)
    waiting = (
        "SELECT count(*) FROM pg_catalog.pg_stat_activity"
        " WHERE datname = %s AND pg_catalog.starts_with(query, %s)"
    )
    with (
        pg.connect(new_dbname, autocommit=False) as application,
        pg.connect(new_dbname, autocommit=False) as holder,
    ):
        # An application's transaction reading a table: the counts' look sees its lock, so
        # it reads pg_stat_activity at once, before the holder has a name there.
        application.execute("SELECT count(*) FROM a")
        with counting_snapshot(pg.conninfo(new_dbname), holder="respaldo test holder") as snap:
            wait_for(
                "the counts looking for the holder's locks",
                lambda: pg.scalar(waiting, [new_dbname, WAITING_FOR_LOCKS]) == 1,
            )
            holder.execute("SET application_name = 'respaldo test holder'")
            holder.execute("LOCK TABLE a, b IN ACCESS SHARE MODE")
            # Counted while the holder holds its locks: the dump has not ended.
            wait_for("the counts done", lambda: snap.counts is not None)
            holder.rollback()
            counts = snap.row_counts()
        application.rollback()
    assert counts == {"public.a": 100, "public.b": 2}


def test_count_rows_counts_the_tables_given_each_without_its_children(
    pg: TempCluster, new_dbname: str
) -> None:
    # A restore's worker counts the tables it has just loaded (RowCheck): in format 2,
    # a parent's rows without those of its inheritance children, which another worker
    # may still be loading; a table not named is not counted.
    _tables(pg, new_dbname)
    pg.execute(
        'CREATE TABLE "x.y" (x int); INSERT INTO "x.y" VALUES (1);'
        "CREATE TABLE child () INHERITS (b); INSERT INTO child VALUES (3), (4), (5)",
        dbname=new_dbname,
    )
    counted = count_rows(pg.conninfo(new_dbname), [("public", "b"), ("public", "x.y")])
    assert counted == {"public.b": 2, 'public."x.y"': 1}
    assert count_rows(pg.conninfo(new_dbname), [("public", "b")], fmt=1) == {"public.b": 5}


def test_count_rows_of_a_missing_table_is_a_query_failure(pg: TempCluster, new_dbname: str) -> None:
    _tables(pg, new_dbname)
    with pytest.raises(QueryFailed) as failed:
        count_rows(pg.conninfo(new_dbname), [("public", "gone")])
    assert "counting the restored rows" in str(failed.value), str(failed.value)
    assert '"public.gone" does not exist' in str(failed.value), str(failed.value)

"""A backup's row counts are taken while pg_dump runs (counting_snapshot): the block runs
at once, the counts are still exactly the exported snapshot's."""

from __future__ import annotations

import pytest
from sample.cluster import TempCluster

from respaldo.postgres import counting_snapshot, create_database

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

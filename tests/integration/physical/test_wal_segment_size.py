"""PostgreSQL 18, and WAL segments of another size than 16 MiB (``initdb --wal-segsize``):
archived, checked and replayed as they are. The segment size is read from each segment's
own header, never assumed. The PostgreSQL 18 archiving cluster of this suite has 64 MiB
segments (tests/integration/majors.py), so this is also the suite's point-in-time
recovery on 18. The 1 MiB clusters are without the sample ERP: their tests read tables of
their own, and its load was 3.6 MiB of WAL, four more segments to push one by one.
"""

from __future__ import annotations

import re
from datetime import datetime

import psycopg
import pytest
from sample.cluster import TempCluster

from respaldo.operations.repositories import open_repository
from respaldo.postgres.wal import parse_lsn, segment_name
from tests.integration.majors import ON_EVERY_MAJOR, ON_PG18
from tests.integration.physical.conftest import (
    SHOP,
    Archiving,
    archiving_cluster,
)
from tests.integration.physical.test_physical_roundtrip import check_point_in_time_recovery

pytestmark = pytest.mark.integration

SEGMENT = 64 * 1024 * 1024
MIB = 1024 * 1024


@ON_PG18
def test_64_mib_segments_archive_and_recover_to_a_point_in_time(
    archiving: Archiving, restored_servers: list[TempCluster]
) -> None:
    pg = archiving.pg
    assert pg.scalar("SHOW server_version_num").startswith("18")
    assert pg.scalar("SHOW wal_segment_size") == "64MB"
    backup_id = check_point_in_time_recovery(archiving, restored_servers)
    manifest = open_repository(archiving.settings()).load_manifest(backup_id)
    assert manifest.meta["wal_segment_size"] == SEGMENT
    # respaldo names segments as the server does for that size.
    start = str(manifest.meta["start_lsn"])
    own = segment_name(int(manifest.meta["timeline"]), parse_lsn(start), SEGMENT)
    assert own == pg.scalar("SELECT pg_walfile_name(%s::pg_lsn)", [start])
    assert manifest.meta["wal_segments"][0] == own


def test_1_mib_segments_recover_to_the_exact_time_of_a_commit(
    capsys: pytest.CaptureFixture[str], restored_servers: list[TempCluster]
) -> None:
    # The smallest segment initdb allows (4096 segments per "log id" in the names, not
    # 256), and a target time equal to a commit's own timestamp: that commit is replayed
    # (recovery_target_inclusive, PostgreSQL's default: it stops before the first commit
    # after the target), to the microsecond respaldo writes into recovery_target_time.
    with archiving_cluster(
        None,
        initdb_options=("--wal-segsize=1",),
        settings={"track_commit_timestamp": "on"},
        sample_erp=False,
    ) as archiving:
        archiving.capsys = capsys
        pg = archiving.pg
        assert pg.scalar("SHOW wal_segment_size") == "1MB"
        pg.execute("CREATE TABLE exact (id int)", dbname=SHOP)
        record = archiving.backup()
        pg.execute("INSERT INTO exact VALUES (1)", dbname=SHOP)
        committed = pg.scalar(
            "SELECT pg_xact_commit_timestamp(xmin) FROM exact WHERE id = 1", dbname=SHOP
        )
        pg.execute("INSERT INTO exact VALUES (2)", dbname=SHOP)
        # Over a segment of WAL after the target, so that recovery fetches several.
        pg.execute("INSERT INTO exact SELECT 3 FROM generate_series(1, 20000)", dbname=SHOP)
        archiving.switch_and_archive()
        restored, _, run = archiving.restore_started(
            record["id"], restored_servers, "--target-time", committed.isoformat()
        )
        assert "recovery stopping before commit" in run.err, str(run)
        assert restored.query("SELECT id FROM exact ORDER BY id", dbname=SHOP) == [(1,)]


@ON_EVERY_MAJOR
def test_a_commit_record_longer_than_a_segment_does_not_refuse_a_target_before_it(
    pg_major: int | None, capsys: pytest.CaptureFixture[str], restored_servers: list[TempCluster]
) -> None:
    # A commit of 560,000 subtransactions (a PL/pgSQL loop with an EXCEPTION block per
    # row, as a bulk import catching each row's error writes) is a 2.24 MB record (4
    # bytes per subtransaction id: over 2 MiB from 524,288 on; the assertion below
    # checks the WAL it took): in 1 MiB segments it begins in one, runs through the
    # whole next one and ends in a third (in 16 MiB ones, past 4.2 million). The
    # newest-commit scan completed a record only from the next segment, so it missed it
    # and named the commit before as the newest: a target between the two, which
    # PostgreSQL reaches, was refused. Each subtransaction's row goes to a temporary table
    # (dropped by that commit): it needs an id all the same, and writes no WAL, so the WAL
    # is the commit record and the ids' assignment records alone: 4.6 MiB, where rows of a
    # logged table made 39 (1 MiB segments, each pushed and fetched by a process of its own).
    with archiving_cluster(
        pg_major, initdb_options=("--wal-segsize=1",), sample_erp=False
    ) as archiving:
        archiving.capsys = capsys
        pg = archiving.pg
        # Autovacuum off for it: when it held the 560,000 rows, its ANALYZE committed
        # after ``later`` and, archived with the WAL its VACUUM wrote, made the restore to
        # ``later`` rightly accepted (seen on PostgreSQL 18). No commit but the long one
        # may follow ``between``.
        pg.execute("CREATE TABLE imported (id int) WITH (autovacuum_enabled = off)", dbname=SHOP)
        record = archiving.backup()
        pg.execute("INSERT INTO imported VALUES (0)", dbname=SHOP)
        between = pg.scalar("SELECT clock_timestamp()")
        with psycopg.connect(**pg.conninfo_kwargs(SHOP)) as conn:
            conn.execute("CREATE TEMPORARY TABLE staged (id int) ON COMMIT DROP")
            conn.execute(
                "DO $$ BEGIN FOR i IN 1..560000 LOOP BEGIN INSERT INTO staged VALUES (i); "
                "EXCEPTION WHEN others THEN NULL; END; END LOOP; END $$"
            )
            before = _insert_lsn(conn)
            conn.commit()
            after = _insert_lsn(conn)
        assert after - before > 2 * MIB, "the commit record spans a whole segment"
        archiving.switch_and_archive()
        later = pg.scalar("SELECT clock_timestamp()")
        restored, _, _ = archiving.restore_started(
            record["id"], restored_servers, "--target-time", between.isoformat()
        )
        assert restored.scalar("SELECT array_agg(id) FROM imported", dbname=SHOP) == [0]
        # After it: refused, naming the long commit (not the one before it) as the newest.
        datadir = archiving.new_datadir()
        run = archiving.run(
            "restore", record["id"], "--target-datadir", str(datadir),
            "--target-time", later.isoformat(),
        )  # fmt: skip
        assert run.code == 1, str(run)
        said = re.search(r"its newest commit after backup \S+ is at (\S+) ", run.err)
        assert said is not None, run.err
        assert between < datetime.fromisoformat(said[1]) < later
        assert not datadir.exists()


def _insert_lsn(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    row = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()
    assert row is not None
    return parse_lsn(str(row[0]))

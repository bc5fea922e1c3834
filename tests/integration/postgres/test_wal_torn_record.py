"""Real WAL after a crash tore a record running into the next segment: the restarted
server (PostgreSQL 15 and later) writes its WAL over the lost rest, from the first page
that did not reach the disk, flagged XLP_FIRST_IS_OVERWRITE_CONTRECORD, while the
segment's first page still counts the torn record's whole rest. ``wal_records`` read on
from there and missed what the server wrote after the crash: the newest commits (a
``--target-time`` before them refused as after the last transaction, or as having no
commit after the backup) and a CREATE TABLESPACE (let through by ``wal-fetch``)."""

from __future__ import annotations

import shutil
import struct
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from sample.cluster import TempCluster

from respaldo.postgres.wal import parse_lsn, segment_name
from respaldo.postgres.wal_records import (
    POSTGRES_EPOCH_UNIX_US,
    continuation,
    created_tablespaces,
    xact_end_times,
)
from tests.integration.majors import ON_EVERY_MAJOR, server_bindir

pytestmark = pytest.mark.integration

SEGMENT = 1024 * 1024
PAGE = 8192
KEPT = 3
"""The pages of the next segment that reached the disk before the crash."""


@pytest.fixture
def small_segments(pg_major: int | None) -> Iterator[TempCluster]:
    cluster = TempCluster.create(
        bindir=server_bindir(pg_major),
        initdb_options=("--wal-segsize=1",),
        settings={"track_commit_timestamp": "on"},
    )
    try:
        yield cluster
    finally:
        cluster.destroy()


@ON_EVERY_MAJOR
def test_what_the_server_wrote_over_a_torn_record_is_read(small_segments: TempCluster) -> None:
    pg = small_segments

    def insert_lsn() -> int:
        return parse_lsn(str(pg.scalar("SELECT pg_current_wal_insert_lsn()")))

    pg.execute("SELECT pg_switch_wal()")
    while (left := SEGMENT - insert_lsn() % SEGMENT) > 2500:
        size = max(min(left - 2000, 60_000), 10)
        pg.execute(f"SELECT pg_logical_emit_message(false, 'pad', repeat('x', {size}))")
    torn_at = insert_lsn()
    number = torn_at // SEGMENT
    # 400 kB: on through the next segment's first 50 pages; a commit writes it to disk
    # (synchronous_commit is off on the test clusters: on here).
    with psycopg.connect(**pg.conninfo_kwargs(), autocommit=True) as conn:
        conn.execute("SET synchronous_commit = on")
        conn.execute("SELECT pg_logical_emit_message(false, 'torn', repeat('y', 400000))")
        conn.execute("CREATE TABLE flushed (i int)")
    pg.stop("immediate")
    wal = pg.datadir / "pg_wal"
    following = wal / segment_name(1, (number + 1) * SEGMENT, SEGMENT)
    # The crash: only the first pages of the next segment reached the disk.
    data = following.read_bytes()
    following.write_bytes(data[: KEPT * PAGE] + bytes(len(data) - KEPT * PAGE))
    pg.start()
    location = Path(tempfile.mkdtemp(prefix="tablespace-", dir=pg.base))
    shutil.chown(location, "postgres", "postgres")
    pg.execute(f"CREATE TABLESPACE after_crash LOCATION '{location}'")
    pg.execute("CREATE TABLE after_crash (i int)")
    for i in range(3):
        pg.execute(f"INSERT INTO after_crash VALUES ({i})")
    last = pg.scalar("SELECT timestamp FROM pg_last_committed_xact()")
    pg.execute("CHECKPOINT")  # the WAL on disk (synchronous_commit is off)
    assert insert_lsn() < (number + 1) * SEGMENT + 40 * PAGE, "within the torn record's rest"
    segment = following.read_bytes()
    flags, rest = struct.unpack_from("<2xH12xI", segment, 0)
    assert flags & 0x0001 and rest > 40 * PAGE, "the first page counts the torn record on"
    assert struct.unpack_from("<2xH", segment, KEPT * PAGE)[0] & 0x0008, "overwritten there"

    times = xact_end_times(segment, None)
    assert len(times) >= 5, times  # the tablespace's, the table's and the three rows'
    newest = datetime.fromtimestamp(0, UTC) + timedelta(
        microseconds=max(times) + POSTGRES_EPOCH_UNIX_US
    )
    assert newest == last
    found = created_tablespaces(segment, lambda: None)
    assert [(t.location, t.unfinished) for t in found] == [(str(location), False)]
    # What continues the torn record ends where the server wrote over it: it is not
    # completed from that WAL (a segment before it reads nothing more of it).
    assert len(continuation(segment)) == KEPT * PAGE - 40 - (KEPT - 1) * 24

"""CREATE TABLESPACE records found in WAL segments laid out as PostgreSQL writes them:
records across pages, and cut by a segment's end (in their data or in their header).
The integration test (tests/integration/physical/test_tablespaces.py) reads real WAL."""

from __future__ import annotations

import struct

import pytest

from respaldo.postgres.wal_records import CreatedTablespace, created_tablespaces

pytestmark = pytest.mark.unit

SEGMENT = 1024 * 1024
PAGE = 8192
MAGIC = 0xD113
LOCATION = "/srv/tablespaces/fast"


def _record(rmid: int, body: bytes, info: int = 0) -> bytes:
    return struct.pack("<IIQBB2xI", 24 + len(body), 7, 0, info, rmid, 0) + body


def _tablespace(oid: int = 16400, location: str = LOCATION) -> bytes:
    main = struct.pack("<I", oid) + location.encode() + b"\0"
    return _record(5, bytes([255, len(main)]) + main)


def _filler(size: int) -> bytes:
    """A heap-like record of ``size`` bytes whose data looks like a tablespace record's
    (rmid 5 and a "/" where the candidate search looks): only the walk tells them apart."""
    body = (b"\x00\x05\x00\x00\x00\x00\x00\x00\xff\x10\x01\x00\x00\x00/") * size
    return _record(10, body[: size - 24])


def _segments(records: list[bytes], count: int = 2) -> list[bytes]:
    """``records`` written one after another from the start of segment 1 (8-aligned,
    page headers between them), into ``count`` segments."""
    stream, spans = b"", []
    for record in records:
        spans.append((len(stream), len(stream) + len(record)))
        stream += record + b"\0" * (-len(record) % 8)
    segments, taken = [], 0
    for number in range(1, count + 1):
        pages = []
        for offset in range(0, SEGMENT, PAGE):
            head = 40 if offset == 0 else 24
            rem = next((end - taken for start, end in spans if start < taken < end), 0)
            flags = (2 if offset == 0 else 0) | (1 if rem else 0)
            header = struct.pack("<HHIQI", MAGIC, flags, 1, number * SEGMENT + offset, rem)
            if offset == 0:
                header += struct.pack("<4xQII", 42, SEGMENT, PAGE)
            payload = stream[taken : taken + PAGE - head]
            taken += PAGE - head
            pages.append(header + b"\0" * (head - len(header)) + payload.ljust(PAGE - head, b"\0"))
        segments.append(b"".join(pages))
    return segments


def _payload() -> int:
    """The bytes of a segment records can take (the page headers left out)."""
    return SEGMENT - 40 - (SEGMENT // PAGE - 1) * 24


def _found(segment: bytes, following: bytes | None = None) -> list[CreatedTablespace]:
    return created_tablespaces(segment, lambda: following)


def test_a_tablespace_record_among_others_is_found_with_its_oid_and_location() -> None:
    first, _ = _segments([_filler(5000), _tablespace(), _filler(300)])
    assert _found(first) == [CreatedTablespace(16400, LOCATION)]


def test_records_that_only_look_like_one_are_not_taken_for_one() -> None:
    first, _ = _segments([_filler(5000) for _ in range(20)])
    assert _found(first) == []


def test_a_record_cut_in_its_data_by_the_segments_end_is_completed_from_the_next() -> None:
    before = _payload() - 40  # the record's header and a few bytes in the first segment
    first, second = _segments([_filler(before), _tablespace(), _filler(300)])
    assert _found(first, second) == [CreatedTablespace(16400, LOCATION)]
    # The next segment cannot be read (not archived yet, or not in the repository this
    # one came from): the server may get it later and replay the record, whose header
    # the next segment's own check does not see. Its location is unknown: refused.
    assert _found(first, None) == [CreatedTablespace(None, None, unfinished=True)]
    assert _found(second) == []
    # The next segment's first page does not continue it (an abandoned record).
    overwritten = bytearray(second)
    struct.pack_into("<H", overwritten, 2, 2 | 8)
    assert _found(first, bytes(overwritten)) == []


@pytest.mark.parametrize("in_first", [8, 16])
def test_a_record_whose_header_the_segments_end_cut_is_found_in_the_next(in_first: int) -> None:
    first, second = _segments([_filler(_payload() - in_first), _tablespace(), _filler(300)])
    assert _found(first) == []
    assert _found(second) == [CreatedTablespace(16400, LOCATION)]


def test_a_record_across_a_page_boundary_is_read_whole() -> None:
    first, _ = _segments([_filler(PAGE - 40 - 16), _tablespace()])
    assert _found(first) == [CreatedTablespace(16400, LOCATION)]


def test_a_tablespace_made_in_place_is_read_with_an_empty_location() -> None:
    # Found by the walk a candidate sets off (the filler), not by the search, which looks
    # for a location's leading "/": its empty location is read as such, not refused unread.
    first, _ = _segments([_filler(5000), _tablespace(location=""), _filler(300)])
    assert _found(first) == [CreatedTablespace(16400, "")]


# --- wal_level = minimal (XLOG_PARAMETER_CHANGE) ----------------------------------------------


def _parameter_change(wal_level: int, *, crc_ok: bool = True) -> bytes:
    """An XLOG_PARAMETER_CHANGE record as PostgreSQL writes it, its CRC-32C computed."""
    import crc32c

    main = struct.pack("<6i2?2x", 60, 8, 0, 0, 64, wal_level, False, False)
    body = bytes([255, len(main)]) + main
    header = struct.pack("<IIQBB2x", 24 + len(body), 0, 0, 0x60, 0)
    crc = crc32c.crc32c(header, value=crc32c.crc32c(body))
    return header + struct.pack("<I", crc if crc_ok else crc ^ 1) + body


def _lsn_of(index: int, records: list[bytes]) -> int:
    """The LSN where record ``index`` of ``records`` begins in segment 1 of
    :func:`_segments`."""
    at = sum(len(r) + (-len(r) % 8) for r in records[:index])
    first = PAGE - 40
    if at < first:
        return SEGMENT + 40 + at
    page, into = divmod(at - first, PAGE - 24)
    return SEGMENT + PAGE * (page + 1) + 24 + into


def test_a_switch_to_wal_level_minimal_is_found_at_its_lsn() -> None:
    from respaldo.postgres.wal_records import minimal_wal_level

    records = [_filler(9000), _parameter_change(0), _filler(700), _parameter_change(1)]
    first, _ = _segments(records)
    assert minimal_wal_level(first) == _lsn_of(1, records)
    # The last of several; one across a page boundary is found too (it begins 32 bytes
    # before the end of its page: a page header lies between its header and its data).
    crossing = [_filler(6472), _parameter_change(0)]
    assert (_lsn_of(5, [*records, *crossing]) - SEGMENT) % PAGE == PAGE - 32
    first, _ = _segments([*records, *crossing, _filler(100)])
    assert minimal_wal_level(first) == _lsn_of(5, [*records, *crossing])


def test_a_switch_to_replica_or_a_record_failing_its_crc_is_not_one() -> None:
    from respaldo.postgres.wal_records import minimal_wal_level

    first, _ = _segments([_filler(9000), _parameter_change(1), _parameter_change(2)])
    assert minimal_wal_level(first) is None
    first, _ = _segments([_filler(9000), _parameter_change(0, crc_ok=False)])
    assert minimal_wal_level(first) is None


def test_a_switch_is_found_wherever_a_page_boundary_cuts_it() -> None:
    from respaldo.postgres.wal_records import minimal_wal_level

    # Moved 8 bytes at a time from wholly before a page's end to wholly after it: cut
    # after each of its 8-byte words in turn (its length field alone, its header, its
    # data), then after the next page's header.
    cut = set()
    for size in range(7232, 7360, 8):
        records = [_filler(9000), _filler(size), _parameter_change(0), _filler(200)]
        lsn = _lsn_of(2, records)
        cut.add((lsn - SEGMENT) % PAGE)
        first, _ = _segments(records)
        assert minimal_wal_level(first) == lsn, size
    assert {PAGE - n for n in range(8, 56, 8)} <= cut


# --- commit and abort times (recovery_target_time) -------------------------------------------


def _xact(info: int, usec: int, *, origin: bool = False, crc_ok: bool = True) -> bytes:
    """An xact record (rmid 1) whose main data begins with ``xact_time`` (then a few bytes
    of xinfo), its CRC-32C computed."""
    import crc32c

    main = struct.pack("<qI", usec, 0)
    body = (b"\xfd\x01\x00" if origin else b"") + bytes([255, len(main)]) + main
    header = struct.pack("<IIQBB2x", 24 + len(body), 900, 0, info, 1)
    crc = crc32c.crc32c(header, value=crc32c.crc32c(body))
    return header + struct.pack("<I", crc if crc_ok else crc ^ 1) + body


def test_commit_and_abort_times_are_found_and_other_xact_records_are_not() -> None:
    from respaldo.postgres.wal_records import xact_end_times

    records = [
        _filler(9000),
        _xact(0x00, 1_000),  # COMMIT
        _xact(0xA0, 2_000, origin=True),  # ABORT with xinfo, from a replication origin
        _xact(0x10, 3_000),  # PREPARE: recovery does not stop at it
        _xact(0x50, 4_000),  # ASSIGNMENT
        _xact(0x30, 5_000),  # COMMIT PREPARED
        _xact(0x00, 6_000, crc_ok=False),  # fails its CRC: not a record
        _filler(300),
    ]
    first, _ = _segments(records)
    assert sorted(xact_end_times(first, None)) == [1_000, 2_000, 5_000]
    # Those before an LSN (the backup's end) are left out.
    assert xact_end_times(first, None, after=_lsn_of(2, records)) == [2_000, 5_000]


def test_a_commit_cut_by_the_segments_end_is_read_with_the_next_segment() -> None:
    from respaldo.postgres.wal_records import xact_end_times

    # Its header in the first segment, the rest in the second (a page boundary between).
    cut = _payload() - 16
    records = [_filler(cut - 5000), _filler(5000), _xact(0x00, 7_000), _filler(200)]
    first, second = _segments(records)
    assert xact_end_times(first, second) == [7_000]
    assert xact_end_times(first, None) == []  # not whole: not counted
    assert xact_end_times(second, None) == []  # begun in the first


def _long_commit(usec: int, size: int) -> bytes:
    """A commit record of ``size`` bytes of main data (its long header: 254 and four bytes
    of length), ``xact_time`` first, its CRC-32C computed."""
    import crc32c

    main = struct.pack("<qI", usec, 0).ljust(size, b"\0")
    body = b"\xfe" + struct.pack("<I", len(main)) + main
    header = struct.pack("<IIQBB2x", 24 + len(body), 900, 0, 0x00, 1)
    return header + struct.pack("<I", crc32c.crc32c(header, value=crc32c.crc32c(body))) + body


def test_a_commit_longer_than_a_segment_is_read_with_the_segments_it_runs_through() -> None:
    from respaldo.postgres.wal_records import continuation, xact_end_times

    # Begun near the end of the first segment, it takes all of the second and ends in the
    # third (a commit of millions of subtransactions in 16 MiB segments).
    records = [_filler(_payload() - 5000), _long_commit(8_000, _payload() + 20_000), _filler(300)]
    first, second, third = _segments(records, count=3)
    assert xact_end_times(first, second, beyond=continuation(third)) == [8_000]
    # The second segment alone does not complete it: not counted, as before.
    assert xact_end_times(first, second) == []
    # What continues it is carried back: the second's continuation holds the third's.
    carried = continuation(second, continuation(third))
    assert len(carried) > len(continuation(second)) > _payload() - 100
    # The segments it runs through hold no commit of their own.
    assert xact_end_times(second, third) == []
    assert xact_end_times(third, None) == []


def _overwritten(segment: bytes, page: int, records: list[bytes]) -> bytes:
    """``segment`` as a server restarted after a crash leaves it when the record running
    into it lost its bytes from page ``page`` on: that page flagged
    XLP_FIRST_IS_OVERWRITE_CONTRECORD and ``records`` (an overwrite-contrecord record
    first) written from its header on, zeros after them. The first page's xlp_rem_len
    still counts the torn record's whole rest (PostgreSQL 15 and later)."""
    stream = b"".join(r + b"\0" * (-len(r) % 8) for r in records)
    start = struct.unpack_from("<Q", segment, 8)[0]
    assert len(stream) <= PAGE - 24
    header = struct.pack("<HHIQI4x", MAGIC, 0x0008, 1, start + page * PAGE, 0)
    rest = (header + stream).ljust(PAGE, b"\0")
    return segment[: page * PAGE] + rest + b"\0" * (SEGMENT - (page + 1) * PAGE)


def test_commits_after_a_torn_record_overwritten_inside_a_segment_are_found() -> None:
    from respaldo.postgres.wal_records import continuation, xact_end_times

    # A 60 kB record begun at the first segment's end was torn by a crash: only the
    # second segment's first three pages of it reached the disk. The restarted server
    # wrote its WAL from the fourth on (an overwrite-contrecord record, then commits)
    # while the first page still says 60 kB of the torn record follow. Reading on from
    # there missed those commits: the newest commit after a crash was not seen, and a
    # target before it was refused (seen on PostgreSQL 15 and 18).
    first, second = _segments([_filler(_payload() - 3000), _filler(60_000)])
    overwrite = _record(0, bytes([255, 16]) + bytes(16), info=0xD0)
    second = _overwritten(second, 3, [overwrite, _xact(0x00, 9_000), _xact(0x00, 9_500)])
    assert xact_end_times(second, None) == [9_000, 9_500]
    # The torn record is not completed from what follows it (never replayed).
    assert len(continuation(second)) == 3 * PAGE - 40 - 2 * 24
    assert xact_end_times(first, second) == []


def test_a_tablespace_record_after_a_torn_record_overwritten_inside_a_segment_is_found() -> None:
    # The same torn record: the walk began where the first page's xlp_rem_len said the
    # record ended, past the CREATE TABLESPACE the restarted server wrote, which wal-fetch
    # then let through to a restored copy on the server's own machine.
    _, second = _segments([_filler(_payload() - 3000), _filler(60_000)])
    overwrite = _record(0, bytes([255, 16]) + bytes(16), info=0xD0)
    second = _overwritten(second, 3, [overwrite, _tablespace(), _filler(300)])
    assert _found(second) == [CreatedTablespace(16400, LOCATION)]


# --- when a timeline began (the record its promotion wrote) ----------------------------------


def _xlog(info: int, main: bytes, *, crc_ok: bool = True) -> bytes:
    """An RM_XLOG record (rmid 0) with main data ``main``, its CRC-32C computed."""
    import crc32c

    body = bytes([255, len(main)]) + main
    header = struct.pack("<IIQBB2x", 24 + len(body), 0, 0, info, 0)
    crc = crc32c.crc32c(header, value=crc32c.crc32c(body))
    return header + struct.pack("<I", crc if crc_ok else crc ^ 1) + body


def _checkpoint(this: int, previous: int, seconds: int, *, crc_ok: bool = True) -> bytes:
    """A shutdown checkpoint record: CheckPoint's redo, timelines, then ``time`` at 64."""
    main = struct.pack("<QII48xq16x", 0, this, previous, seconds)
    assert len(main) == 88
    return _xlog(0x00, main, crc_ok=crc_ok)


def _end_of_recovery(this: int, previous: int, usec: int) -> bytes:
    return _xlog(0x90, struct.pack("<qIIi4x", usec, this, previous, 3))


def test_the_start_of_a_timeline_is_read_from_its_end_of_recovery_checkpoint() -> None:
    from respaldo.postgres.wal_records import POSTGRES_EPOCH_UNIX_US, timeline_start

    records = [
        _filler(9000),
        _checkpoint(2, 1, 1_000, crc_ok=False),  # fails its CRC: not a record
        _checkpoint(1, 1, 2_000),  # a checkpoint of the parent, before the switch
        _checkpoint(2, 2, 3_000),  # a shutdown checkpoint on timeline 2 itself: no switch
        _checkpoint(2, 1, 4_000),  # the end of recovery: timeline 2 began
        _filler(300),
    ]
    first, _ = _segments(records)
    assert timeline_start(first, 2) == 4_000 * 1_000_000
    assert timeline_start(first, 3) is None
    assert timeline_start(first, 2, after=_lsn_of(5, records)) is None
    # After pg_ctl promote: XLOG_END_OF_RECOVERY, its time in microseconds since 2000.
    first, _ = _segments([_filler(9000), _end_of_recovery(3, 2, 5_000), _filler(300)])
    assert timeline_start(first, 3) == 5_000 + POSTGRES_EPOCH_UNIX_US


def test_the_start_of_a_timeline_is_found_searched_from_its_switch_point() -> None:
    # 22e28078 searches from the switch point (``after``), mapped past the page headers:
    # the record is the first at it, on whichever page, and a switch point at a page's
    # start (inside its header) is before the page's first record.
    from respaldo.postgres.wal_records import timeline_start

    for before in (_filler(PAGE - 40), _filler(3000), _filler(PAGE - 40 + PAGE - 24 + 800)):
        records = [before, _checkpoint(2, 1, 4_000), _filler(300)]
        first, _ = _segments(records)
        switch = _lsn_of(1, records)
        assert timeline_start(first, 2, after=switch) == 4_000 * 1_000_000, switch
        page_start = switch - (switch - SEGMENT) % PAGE
        assert timeline_start(first, 2, after=page_start) == 4_000 * 1_000_000, switch
        assert timeline_start(first, 2, after=switch + 1) is None

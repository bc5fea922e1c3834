"""Find the ``CREATE TABLESPACE`` records of a WAL segment.

A server replaying ``CREATE TABLESPACE`` links ``pg_tblspc/<oid>`` to the location the
record names, an absolute path, and writes the tablespace's files there. PostgreSQL skips
its "directory already in use" check in recovery, so a copy restored on the machine of the
server it was backed up from writes into that server's own tablespace directory (and
replaying ``DROP TABLESPACE`` empties it). :func:`created_tablespaces` finds those records
so that ``wal-fetch`` can refuse the segment first (:mod:`respaldo.operations.wal`).

The layout read is PostgreSQL's ``xlog_internal.h`` and ``xlogrecord.h`` (unchanged from
9.5 to 18): every page starts with a header (40 bytes on a segment's first page, 24 on
the others); records follow one another in the bytes the headers leave, each at an
8-byte boundary, a 24-byte header first (``xl_tot_len``, xid, ``xl_prev``, ``xl_info``,
``xl_rmid``, two padding bytes, CRC) and the main data last. A record may run on over
pages and into the next segment, whose first page then starts with what remains of it
(``xlp_rem_len``). ``xl_tot_len`` is always on the record's first page, the rest of the
header may not be.

Pure parsing: the next segment, needed only when a tablespace record or its header runs
into it, is asked of the caller.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

from respaldo.postgres.wal import parse_segment_header

RM_TBLSPC_ID = 5
XLOG_TBLSPC_CREATE = 0x00
XLR_RMGR_INFO_MASK = 0xF0
XLP_FIRST_IS_CONTRECORD = 0x0001
XLP_FIRST_IS_OVERWRITE_CONTRECORD = 0x0008
LONG_PAGE_HEADER = 40
SHORT_PAGE_HEADER = 24
RECORD_HEADER = 24
ALIGN = 8
XLR_BLOCK_ID_DATA_SHORT = 255
XLR_BLOCK_ID_DATA_LONG = 254
XLR_BLOCK_ID_ORIGIN = 253
XLR_BLOCK_ID_TOPLEVEL_XID = 252
_PAGE = struct.Struct("<HHIQI")
# What a CREATE TABLESPACE record holds from its header's rmid on (rmid, padding, CRC,
# optional origin and top-level xid, the main data's short header, oid, the location's
# leading "/": CREATE TABLESPACE takes only absolute paths). Searched first, so that the
# record-by-record walk, about 1 µs a record, runs only for a segment that may hold one.
# Only the rmid is matched (the rest is a lookahead), so that no candidate hides another.
_CREATE = re.compile(rb"\x05(?=\x00\x00.{4}(?:\xfd..|\xfc....)*(?:\xff.{5}|\xfe.{8})/)", re.DOTALL)
# A record cut by the segment's end may show no more than its header.
_HEADER = re.compile(rb"[\x00-\x0f]\x05\x00\x00", re.DOTALL)
_TAIL = 2048
"""More than the longest tablespace record (a location is at most 1023 bytes)."""
_U32 = struct.Struct("<I")


@dataclass(frozen=True)
class CreatedTablespace:
    """A ``CREATE TABLESPACE`` record: the tablespace's oid and location (None where the
    record could not be read further than its header; empty for a tablespace made in
    place, inside ``pg_tblspc``). ``unfinished``: the record runs
    into the next segment, which could not be read (not archived yet, or not where this
    one was): its location is not known, and the server would replay it once it is."""

    oid: int | None
    location: str | None
    unfinished: bool = False


def _align(n: int) -> int:
    return (n + ALIGN - 1) & ~(ALIGN - 1)


def _stream(segment: bytes) -> tuple[bytes, int, int]:
    """(the bytes the page headers leave, up to the end of the segment's WAL; how many of
    them continue a record begun in the previous segment; the first page's flags)."""
    header = parse_segment_header(segment)
    if header is None:
        return b"", 0, 0
    size, start = header.page_size, header.page_address
    _magic, flags, _tli, _addr, rem_len = _PAGE.unpack_from(segment, 0)
    # Views, joined once: slicing the bytes copied each page before the join copied it
    # again (half of the scan's 20 ms of a 16 MiB segment, which every wal-push pays).
    view = memoryview(segment)
    parts = []
    continued = rem_len if flags & XLP_FIRST_IS_CONTRECORD else 0
    for offset in range(0, min(len(segment), header.segment_size), size):
        magic, info, _tli, addr, _rem = _PAGE.unpack_from(segment, offset)
        # A page of an older WAL (a recycled segment) or zeroed: the segment's WAL ends.
        if magic != header.magic or addr != start + offset:
            break
        # A record torn by a crash (the server found its continuation missing from this
        # page on) was abandoned, and the server wrote new WAL here, flagged so, from an
        # overwrite-contrecord record on (PostgreSQL 15 and later): what the first page's
        # xlp_rem_len still counts from this page on is not the record's but that WAL.
        if info & XLP_FIRST_IS_OVERWRITE_CONTRECORD:
            # Where this page's records begin in the joined bytes (0 on the first page).
            page = offset // size
            begins = offset - LONG_PAGE_HEADER - (page - 1) * SHORT_PAGE_HEADER if page else 0
            continued = min(continued, begins)
        skip = LONG_PAGE_HEADER if offset == 0 else SHORT_PAGE_HEADER
        parts.append(view[offset + skip : offset + size])
    return b"".join(parts), continued, flags


def _may_hold_create(stream: bytes) -> bool:
    """Whether a tablespace record may begin in ``stream`` (False: none does). Records
    begin 8-aligned, and so does the stream (page headers are 40 and 24 bytes)."""
    for match in _CREATE.finditer(stream):
        at = match.start() - 17
        if at >= 0 and at % ALIGN == 0 and stream[at + 16] & XLR_RMGR_INFO_MASK == 0:
            return True
    for match in _HEADER.finditer(stream, max(0, len(stream) - _TAIL)):
        if (match.start() - 16) % ALIGN == 0:
            return True
    return False


def _is_create(info: int, rmid: int, padding: bytes) -> bool:
    return (
        rmid == RM_TBLSPC_ID
        and info & XLR_RMGR_INFO_MASK == XLOG_TBLSPC_CREATE
        and padding == b"\0\0"
    )


def _decode(record: bytes) -> CreatedTablespace | None:
    """The oid and location of a whole tablespace record, or None if it is not laid out
    as one: no block references, the main data (oid, path, NUL) last, up to its end."""
    pos = RECORD_HEADER
    while pos < len(record):
        block_id = record[pos]
        if block_id == XLR_BLOCK_ID_ORIGIN:
            pos += 3
        elif block_id == XLR_BLOCK_ID_TOPLEVEL_XID:
            pos += 5
        elif block_id == XLR_BLOCK_ID_DATA_SHORT and pos + 2 <= len(record):
            length, pos = record[pos + 1], pos + 2
            break
        elif block_id == XLR_BLOCK_ID_DATA_LONG and pos + 5 <= len(record):
            length, pos = _U32.unpack_from(record, pos + 1)[0], pos + 5
            break
        else:
            return None
    else:
        return None
    data = record[pos:]
    # An empty location is an in-place tablespace (allow_in_place_tablespaces, for tests of
    # PostgreSQL itself): a directory inside pg_tblspc.
    if len(data) != length or len(data) < 5 or data[-1] != 0 or b"\0" in data[4:-1]:
        return None
    location = data[4:-1].decode("utf-8", errors="surrogateescape")
    return CreatedTablespace(_U32.unpack_from(data)[0], location)


def _continued_header(rest: bytes, tot_len_here: int) -> bytes | None:
    """A record whose header the previous segment cut after ``tot_len_here`` (8 or 16)
    bytes, rebuilt from its remaining bytes ``rest`` (zeros for the bytes not known)
    if it is a tablespace record."""
    record = b"\0" * tot_len_here + rest
    if len(record) < RECORD_HEADER or not _is_create(record[16], record[17], record[18:20]):
        return None
    return record


def created_tablespaces(
    segment: bytes, next_segment: Callable[[], bytes | None]
) -> list[CreatedTablespace]:
    """The ``CREATE TABLESPACE`` records of a WAL segment (whole, from its long header):
    those that begin in it, and one whose header began in the previous segment.
    ``next_segment`` gives the following segment (None if it cannot be read) when a
    tablespace record runs into it. A record it does not continue was abandoned (never
    replayed); one it cannot complete is found ``unfinished``: the server may get the next
    segment later, or from elsewhere, and replay it, and that segment's own check does
    not see a record whose header ended here."""
    stream, continued, _flags = _stream(segment)
    found: list[CreatedTablespace] = []
    if continued:
        rest = stream[:continued]
        # Records start 8-aligned and xl_tot_len is on their first page: a header cut by
        # the end of the previous segment left 8 or 16 of its bytes there.
        for here in (8, 16):
            record = _continued_header(rest, here)
            created = None if record is None else _decode(record)
            if created is not None:
                found.append(created)
    if not _may_hold_create(stream):
        return found
    pos = _align(continued)
    end = len(stream)
    while pos + 4 <= end:
        tot_len = _U32.unpack_from(stream, pos)[0]
        if tot_len < RECORD_HEADER:
            break  # zeros: the end of the WAL (or after a WAL switch)
        if pos + RECORD_HEADER <= end:
            if _is_create(stream[pos + 16], stream[pos + 17], stream[pos + 18 : pos + 20]):
                record = stream[pos : pos + tot_len]
                if len(record) < tot_len:
                    completed = _completed(record, tot_len, next_segment)
                    if isinstance(completed, _Abandoned):
                        break
                    if completed is None:
                        found.append(CreatedTablespace(None, None, unfinished=True))
                        break
                    record = completed
                # Laid out otherwise than PostgreSQL 9.5 to 18 write it: refused unread.
                found.append(_decode(record) or CreatedTablespace(None, None))
        elif pos + tot_len > end:
            break  # header cut by the segment's end: the next segment's fetch sees it
        pos += _align(tot_len)
    return found


class _Abandoned:
    """What :func:`_completed` returns for a record the next segment does not continue."""


_ABANDONED = _Abandoned()


def _completed(
    record: bytes, tot_len: int, next_segment: Callable[[], bytes | None]
) -> bytes | _Abandoned | None:
    """``record`` (cut by the end of its segment) completed from the next segment; None
    when that cannot be read, ``_ABANDONED`` when it does not continue the record."""
    following = next_segment()
    if following is None:
        return None
    stream, continued, flags = _stream(following)
    if flags & XLP_FIRST_IS_OVERWRITE_CONTRECORD or continued != tot_len - len(record):
        return _ABANDONED
    return record + stream[:continued]


# --- wal_level lowered to minimal ------------------------------------------------------------

RM_XLOG_ID = 0
XLOG_PARAMETER_CHANGE = 0x60
WAL_LEVEL_MINIMAL = 0
# An XLOG_PARAMETER_CHANGE record as PostgreSQL 12 to 18 write it (the server's start
# after a change of wal_level and a few other settings; max_wal_senders joined it in 12,
# before which it is shorter and not matched): 54 bytes, no block references,
# the 28 bytes of xl_parameter_change as its main data, wal_level its sixth int.
_PARAMETER_CHANGE = re.compile(rb"\x36\x00\x00\x00.{12}\x60\x00\x00\x00.{4}\xff\x1c", re.DOTALL)
_PARAMETER_CHANGE_LEN = 54
_WAL_LEVEL_AT = RECORD_HEADER + 2 + 5 * 4


def _pages_end(segment: bytes) -> int:
    """Where the segment's own pages end (:func:`_stream`'s test): the offset of the
    first page of an older WAL (a recycled segment) or zeroed, else the segment's end."""
    header = parse_segment_header(segment)
    if header is None:
        return 0
    size, start = header.page_size, header.page_address
    end = min(len(segment), header.segment_size)
    for offset in range(0, end, size):
        magic, _info, _tli, addr, _rem = _PAGE.unpack_from(segment, offset)
        if magic != header.magic or addr != start + offset:
            return offset
    return end


def _parameter_changes(segment: bytes, size: int, end: int) -> list[tuple[int, bytes]]:
    """(offset in the segment, the 54 bytes) of what may be an XLOG_PARAMETER_CHANGE
    record, searched in the segment as it is (no copy of its pages end to end: that copy
    alone took 9 ms of a 16 MiB segment in a new process, every wal-push): those within a
    page, and those a page boundary cuts, put together without the next page's header."""
    found = []
    for match in _PARAMETER_CHANGE.finditer(segment, 0, end):
        at = match.start()
        into = at % size
        head = LONG_PAGE_HEADER if at < size else SHORT_PAGE_HEADER
        if into >= head and into + _PARAMETER_CHANGE_LEN <= size:
            found.append((at, segment[at : at + _PARAMETER_CHANGE_LEN]))
    # A record begins 8-aligned, and a page's content ends so: its length field lies
    # whole before the boundary.
    for boundary in range(size, end, size):
        at = segment.find(b"\x36\x00\x00\x00", boundary - _PARAMETER_CHANGE_LEN + 1, boundary)
        while at != -1:
            before = segment[at:boundary]
            after = boundary + SHORT_PAGE_HEADER
            record = before + segment[after : after + _PARAMETER_CHANGE_LEN - len(before)]
            if _PARAMETER_CHANGE.match(record):
                found.append((at, record))
            at = segment.find(b"\x36\x00\x00\x00", at + 1, boundary)
    return found


def minimal_wal_level(segment: bytes) -> int | None:
    """The LSN of the last record of the WAL segment ``segment`` (whole, from its long
    header) that switches the server to ``wal_level = minimal``, or None. PostgreSQL
    logs it when the server starts with that setting; archive recovery refuses to replay
    past it ("WAL was generated with wal_level=minimal, cannot continue recovering"), so
    point-in-time recovery from every base backup taken before it ends there. Each
    candidate is checked against the record's CRC-32C: a match inside other data is not
    taken for one."""
    header = parse_segment_header(segment)
    if header is None:
        return None
    candidates = _parameter_changes(segment, header.page_size, _pages_end(segment))
    if not candidates:
        return None
    # Imported only for a candidate (a server's start after a settings change): every
    # wal-push would load the extension otherwise (1.5 ms measured with -X importtime).
    import crc32c

    found = None
    for at, record in candidates:
        # The segment starts page-aligned, so an offset is 8-aligned as its LSN is.
        if at % ALIGN:
            continue
        if _U32.unpack_from(record, _WAL_LEVEL_AT)[0] != WAL_LEVEL_MINIMAL:
            continue
        crc = crc32c.crc32c(record[RECORD_HEADER:])
        crc = crc32c.crc32c(record[:20], value=crc)
        if crc != _U32.unpack_from(record, 20)[0]:
            continue
        found = max(found or 0, header.page_address + at)
    return found


# --- the times of transaction ends (recovery_target_time) -----------------------------------

RM_XACT_ID = 1
XLOG_XACT_OPMASK = 0x70
# What recovery to a target time stops at (xlogrecovery.c, recoveryStopsBefore/After): a
# commit or an abort, prepared or not (xact.h: XLOG_XACT_COMMIT 0x00, XLOG_XACT_ABORT 0x20,
# XLOG_XACT_COMMIT_PREPARED 0x30, XLOG_XACT_ABORT_PREPARED 0x40). The high bit is
# XLOG_XACT_HAS_INFO, the low four bits the record's own flags.
_XACT_ENDS = frozenset({0x00, 0x20, 0x30, 0x40})
# An xact record from its header's rmid on: rmid 1, padding, CRC, no block references (an
# xact record has none), an optional replication origin (a logical replication
# subscriber's commits) and top-level xid, the main data's header, then the eight bytes of
# xact_time, the first field of xl_xact_commit and of xl_xact_abort (the same from 9.5 to
# 18). Only the rmid is matched, as in _CREATE.
_XACT = re.compile(
    rb"\x01(?=\x00\x00.{4}(?:\xfd..)?(?:\xfc....)?(?:\xff.|\xfe....).{8})", re.DOTALL
)
_I64 = struct.Struct("<q")
POSTGRES_EPOCH_UNIX_US = 946_684_800 * 1_000_000
"""2000-01-01 00:00 UTC, from which a TimestampTz counts microseconds, in Unix microseconds."""


def continuation(following: bytes | None, beyond: bytes = b"") -> bytes:
    """The bytes the segment ``following`` begins with that continue a record of the one
    before it (none when it does not, or is not given). A record longer than a segment
    (a commit of millions of subtransactions, or of a million dropped tables) takes all
    of ``following`` and goes on in the segment after it: ``beyond`` is that segment's
    own continuation (this function's answer for it), appended then."""
    if following is None:
        return b""
    stream, continued, flags = _stream(following)
    if flags & XLP_FIRST_IS_OVERWRITE_CONTRECORD:
        return b""
    if continued > len(stream):
        return stream + beyond
    return stream[:continued]


def _lsn_of(position: int, start: int, page_size: int) -> int:
    """The LSN of byte ``position`` of :func:`_stream`'s bytes of a segment that begins at
    LSN ``start`` (its first page's header is 40 bytes, the others' 24)."""
    first = page_size - LONG_PAGE_HEADER
    if position < first:
        return start + LONG_PAGE_HEADER + position
    page, into = divmod(position - first, page_size - SHORT_PAGE_HEADER)
    return start + (page + 1) * page_size + SHORT_PAGE_HEADER + into


def xact_end_times(
    segment: bytes, following: bytes | None, after: int = 0, beyond: bytes = b""
) -> list[int]:
    """The ``xact_time`` (microseconds since 2000-01-01 UTC, the server's clock) of the
    commit and abort records that begin in the WAL segment ``segment`` (whole, from its long
    header) at or after LSN ``after``: the records recovery to a target time stops at.
    ``following``: the next segment, which completes a record the segment's end cuts
    (without it, such a record is not counted); ``beyond``: the :func:`continuation` of the
    segment after that, for a record that runs through all of ``following``. Each
    candidate is checked against the record's CRC-32C, so a match inside other data is not
    taken for one."""
    header = parse_segment_header(segment)
    if header is None:
        return []
    stream, continued, _flags = _stream(segment)
    mine = len(stream)
    stream += continuation(following, beyond)
    found: list[int] = []
    # Not bounded by endpos: the lookahead of a record near the segment's end reads on.
    for match in _XACT.finditer(stream, _align(continued) + 17):
        at = match.start() - 17
        if at >= mine:
            break  # the next segment's bytes only complete records begun here
        if at % ALIGN or (stream[at + 16] & XLOG_XACT_OPMASK) not in _XACT_ENDS:
            continue
        tot_len = _U32.unpack_from(stream, at)[0]
        record = stream[at : at + tot_len]
        if tot_len < RECORD_HEADER + 10 or len(record) < tot_len:
            continue  # cut by the segment's end, the next segment not given
        if _lsn_of(at, header.page_address, header.page_size) < after:
            continue
        if not _crc_matches(record):
            continue
        pos = RECORD_HEADER
        if record[pos] == XLR_BLOCK_ID_ORIGIN:
            pos += 3
        if record[pos] == XLR_BLOCK_ID_TOPLEVEL_XID:
            pos += 5
        pos += 2 if record[pos] == XLR_BLOCK_ID_DATA_SHORT else 5
        if pos + 8 > tot_len:
            continue
        found.append(_I64.unpack_from(record, pos)[0])
    return found


def _crc_matches(record: bytes) -> bool:
    """Whether a whole record's CRC-32C (of what follows its header, then of the header up
    to the CRC) is the one its header holds."""
    import crc32c  # see minimal_wal_level

    crc = crc32c.crc32c(record[RECORD_HEADER:])
    crc = crc32c.crc32c(record[:20], value=crc)
    return bool(crc == _U32.unpack_from(record, 20)[0])


# --- when a timeline began (the record its promotion wrote) ---------------------------------

XLOG_CHECKPOINT_SHUTDOWN = 0x00
XLOG_END_OF_RECOVERY = 0x90
# The first record of a new timeline (xlog.c): the end-of-recovery checkpoint (a shutdown
# checkpoint whose PrevTimeLineID is the parent) where recovery reached its target and
# promoted, or XLOG_END_OF_RECOVERY after a promotion asked for (pg_ctl promote). From its
# xl_info on: the info, rmid 0 (RM_XLOG_ID), padding, CRC, then the main data's short
# header. Only the info byte is matched, as in _CREATE.
_SWITCH = re.compile(rb"[\x00\x90](?=\x00\x00\x00.{4}\xff)", re.DOTALL)
# CheckPoint (pg_control.h, 9.5 to 18): redo, ThisTimeLineID, PrevTimeLineID at 8 and 12,
# ``time`` (pg_time_t: seconds since 1970) at 64. xl_end_of_recovery: end_time
# (TimestampTz: microseconds since 2000) at 0, ThisTimeLineID and PrevTimeLineID at 8, 12.
_TIMELINES = struct.Struct("<II")


def _position_of(lsn: int, start: int, page_size: int) -> int:
    """The position in :func:`_stream`'s bytes of a segment that begins at LSN ``start``
    of the first byte at or after ``lsn`` that is not a page header's (0 before it)."""
    if lsn <= start + LONG_PAGE_HEADER:
        return 0
    page, into = divmod(lsn - start, page_size)
    if page == 0:
        return into - LONG_PAGE_HEADER
    first = page_size - LONG_PAGE_HEADER
    return first + (page - 1) * (page_size - SHORT_PAGE_HEADER) + max(0, into - SHORT_PAGE_HEADER)


def timeline_start(segment: bytes, timeline: int, after: int = 0) -> int | None:
    """When ``timeline`` began, on its server's clock (microseconds since
    1970-01-01 UTC), from the record its promotion wrote first on it in WAL segment
    ``segment`` (whole, from its long header: the segment of the switch, on the new
    timeline) at or after LSN ``after``; None where there is none (checked against its
    CRC-32C) to be read."""
    header = parse_segment_header(segment)
    if header is None:
        return None
    stream, continued, _flags = _stream(segment)
    # From ``after`` on: the record is the first (or about) at the switch point, and a
    # search from the segment's start tried each zero byte of the WAL before it (0.9 s
    # for a 16 MiB segment of zeros-heavy records on a loaded machine).
    begin = max(_align(continued), _position_of(after, header.page_address, header.page_size))
    for match in _SWITCH.finditer(stream, begin + 16):
        at = match.start() - 16
        if at % ALIGN:
            continue
        tot_len = _U32.unpack_from(stream, at)[0]
        record = stream[at : at + tot_len]
        data = RECORD_HEADER + 2
        if tot_len <= data or len(record) < tot_len or tot_len != data + record[data - 1]:
            continue
        if _lsn_of(at, header.page_address, header.page_size) < after:
            continue
        checkpoint = record[16] & XLR_RMGR_INFO_MASK == XLOG_CHECKPOINT_SHUTDOWN
        if tot_len < data + (72 if checkpoint else 16) or not _crc_matches(record):
            continue
        this, previous = _TIMELINES.unpack_from(record, data + 8)
        if this != timeline or previous == timeline:
            continue  # another timeline's, or a checkpoint on it since
        if checkpoint:
            # In whole seconds: the start of that second. A target within it but before
            # the promotion is taken for after it, and stops where the timeline branched
            # off (as before the promotion nothing was written on it); the end of the
            # second took a target after its first commits for before it, on the parent.
            seconds: int = _I64.unpack_from(record, data + 64)[0]
            return seconds * 1_000_000
        micros: int = _I64.unpack_from(record, data)[0]
        return micros + POSTGRES_EPOCH_UNIX_US
    return None

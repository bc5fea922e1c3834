"""Give a custom-format archive written to a pipe the data offsets a file would have had.

``pg_dump --format=custom`` writing to a file seeks back at the end and records, in each
table-of-contents entry, where that entry's data block starts. Written to a pipe (as
respaldo dumps, straight into the repository) it cannot: every entry with data says
"position not set". ``pg_restore --jobs`` on such a file has each worker scan the archive
from the start for every table's data, which measured no faster than one job. This module
finds the data blocks of a complete archive file and writes their offsets into its table
of contents in place, as pg_dump would have, so that ``pg_restore --jobs`` can seek.

The layout read here is PostgreSQL's ``pg_backup_archiver.c`` (header, ``ReadToc``) and
``pg_backup_custom.c`` (``_ReadExtraToc``, data blocks) for archive versions 1.12 to 1.16
(pg_dump 11 to 18). An integer is a sign byte and ``intSize`` little-endian bytes; a string
is an integer length (negative: NULL) and that many bytes; an offset is a state byte
(1 not set, 2 set, 3 no data) and ``offSize`` little-endian bytes. Each data block is a
type byte (1 table data, 3 large objects), the entry's dump id, then length-prefixed parts
ending with a zero length (large objects: an oid before each object's parts, oid 0 ends).

Nothing is changed unless the whole archive was understood: the table of contents must end
exactly where the first data block begins, every block must belong to an entry that has
data, and the last block must end at the end of the file. Otherwise :func:`set_offsets`
returns 0 and the file is as it was (pg_restore then scans, as before).
"""

from __future__ import annotations

import dataclasses
import io
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

MAGIC = b"PGDMP"
FORMAT_CUSTOM = 1
FORMAT_DIRECTORY = 3
FORMAT_AT = 10
"""Where the header's format byte is: after the magic, the version and two sizes."""
SUPPORTED = ((1, 12), (1, 13), (1, 14), (1, 15), (1, 16))
"""Archive versions whose table of contents this module reads (pg_dump 11 to 18)."""

OFFSET_NOT_SET = 1
OFFSET_SET = 2
OFFSET_NO_DATA = 3
SECTION_PRE_DATA = 2
SECTION_DATA = 3
SECTION_POST_DATA = 4
BLOCK_DATA = 1
BLOCK_BLOBS = 3


@dataclass
class TocEntry:
    """One table-of-contents entry, as far as finding and loading its data needs it."""

    dump_id: int
    kind: str
    """pg_dump's ``desc``: ``TABLE DATA``, ``BLOBS``, ``INDEX``…"""
    state: int
    """Of its data offset: :data:`OFFSET_NOT_SET` (it has a data block), :data:`OFFSET_SET`
    or 3 (no data)."""
    state_at: int
    """File position of the offset's state byte (directory format: of the file name)."""
    extra_end: int = 0
    """Where the entry's offset (or file name) ends."""
    file: str | None = None
    """Directory format: the entry's data file (``1234.dat``, ``blobs.toc``), if any."""
    section: int = 0
    """pg_dump's section: :data:`SECTION_PRE_DATA`, :data:`SECTION_DATA`,
    :data:`SECTION_POST_DATA` (1: none)."""
    depends: tuple[int, ...] = ()
    """The dump ids of the entries it depends on."""
    namespace: str = ""
    """Its schema (of a TABLE DATA entry: the table's)."""
    tag: str = ""
    """Its name (of a TABLE DATA entry: the table's)."""


@dataclass
class ArchiveToc:
    """A custom-format archive's table of contents (:func:`read_toc`)."""

    entries: list[TocEntry]
    end: int
    """Where the table of contents ends: the first data block starts there."""
    int_size: int
    off_size: int


class _Unreadable(Exception):
    """The archive is not one this module understands: leave it alone."""


class Readable(Protocol):
    """What :func:`read_toc` reads from: a file, or one that waits for bytes to arrive."""

    def read(self, size: int, /) -> bytes: ...

    def seek(self, offset: int, whence: int = ..., /) -> int: ...

    def tell(self) -> int: ...


_INT_FORMATS = {1: "B", 2: "H", 4: "I", 8: "Q"}

READ_AHEAD = 1 << 18
"""Bytes :class:`_Reader` asks ``fh`` for at a time (or more, for a longer field)."""


class _Reader:
    """An archive's header and table of contents, parsed from memory, read from ``fh``
    :data:`READ_AHEAD` bytes at a time. A ``read`` for every field (each sign byte,
    integer and string; on a restore's spool, each one a wait on its lock) took 60 s for
    the 180,000 entries of a dump of 20,000 tables, before the restore's pre-data step
    could start (docs/benchmarks.md, session 26). ``fh`` is read ahead of what was
    parsed: :meth:`tell` says where the parsing is."""

    def __init__(self, fh: Readable) -> None:
        self.fh = fh
        self.int_size = 4
        self.off_size = 8
        self.compression = 0
        self._buf = b""
        self._at = 0
        """Where in ``_buf`` the next field starts."""
        self._base = fh.tell()
        """Where in ``fh`` ``_buf`` starts."""
        self._int = struct.Struct("<BI")

    def tell(self) -> int:
        """Where in ``fh`` the next field starts."""
        return self._base + self._at

    def _need(self, n: int) -> None:
        """At least ``n`` bytes from :meth:`tell` in ``_buf``."""
        if len(self._buf) - self._at >= n:
            return
        parts = [self._buf[self._at :]]
        have = len(parts[0])
        self._base += self._at
        self._at = 0
        while have < n:
            data = self.fh.read(max(n - have, READ_AHEAD))
            if not data:
                break
            parts.append(data)
            have += len(data)
        self._buf = b"".join(parts)
        if have < n:
            raise _Unreadable("archive ends early")

    def sizes(self, int_size: int, off_size: int) -> None:
        """The archive's integer and offset sizes, as its header says."""
        self.int_size = int_size
        self.off_size = off_size
        self._int = struct.Struct("<B" + _INT_FORMATS[int_size])

    def bytes(self, n: int) -> bytes:
        self._need(n)
        data = self._buf[self._at : self._at + n]
        self._at += n
        return data

    def byte(self) -> int:
        self._need(1)
        value = self._buf[self._at]
        self._at += 1
        return value

    def int(self) -> int:
        self._need(self._int.size)
        sign, value = self._int.unpack_from(self._buf, self._at)
        self._at += self._int.size
        return -value if sign else int(value)

    def str(self) -> str | None:
        length = self.int()
        if length < 0:
            return None
        return self.bytes(length).decode("utf-8", "replace")

    def skip_str(self) -> bool:
        """Skip one string; False if it was NULL."""
        length = self.int()
        if length < 0:
            return False
        self._need(length)
        self._at += length
        return True


def _read_toc(r: _Reader, formats: tuple[int, ...] = (FORMAT_CUSTOM,)) -> list[TocEntry]:
    if r.bytes(5) != MAGIC:
        raise _Unreadable("not a custom-format archive")
    version = (r.byte(), r.byte())
    r.byte()  # revision
    if version not in SUPPORTED:
        raise _Unreadable(f"archive version {version[0]}.{version[1]}")
    int_size = r.byte()
    off_size = r.byte()
    archive_format = r.byte()
    if archive_format not in formats or int_size not in _INT_FORMATS or not 1 <= off_size <= 8:
        raise _Unreadable("not a custom-format archive")
    r.sizes(int_size, off_size)
    # Compression: an algorithm (0 none) from 1.15 on, a level (0 none) before.
    r.compression = r.byte() if version >= (1, 15) else r.int()
    for _ in range(7):  # creation time: sec, min, hour, mday, mon, year, isdst
        r.int()
    for _ in range(3):  # database name, server version, pg_dump version
        r.skip_str()
    count = r.int()
    if count < 0:
        raise _Unreadable("negative entry count")
    entries = []
    for _ in range(count):
        dump_id = r.int()
        r.int()  # has a data dumper
        for _ in range(2):  # tableoid, oid
            r.skip_str()
        tag = r.str() or ""
        kind = r.str() or ""
        section = r.int()
        for _ in range(3):  # defn, dropStmt, copyStmt
            r.skip_str()
        namespace = r.str() or ""
        r.skip_str()  # tablespace
        if version >= (1, 14):
            r.skip_str()  # table access method
        if version >= (1, 16):
            r.int()  # relkind (pg_dump 17 on)
        r.skip_str()  # owner
        r.skip_str()  # "with oids"
        depends = []
        while (dependency := r.str()) is not None:  # dependencies, until NULL
            if dependency.isdigit():
                depends.append(int(dependency))
        state_at = r.tell()
        file = None
        if archive_format == FORMAT_CUSTOM:
            state = r.byte()
            r.bytes(r.off_size)
        else:
            file = r.str() or None  # pg_dump writes "" for an entry without data
            state = OFFSET_NOT_SET if file else OFFSET_NO_DATA
        entries.append(
            TocEntry(
                dump_id,
                kind,
                state,
                state_at,
                r.tell(),
                file,
                section,
                tuple(depends),
                namespace,
                tag,
            )
        )
    return entries


def _data_blocks(data: mmap.mmap, start: int, int_size: int) -> dict[int, int]:
    """dump id -> offset of its data block, for every block from ``start`` to the end.

    Every part of every block is stepped over (one per row of a table's COPY data): with
    ``struct`` on a memory map this costs about 0.2 µs a part (0.07 CPU-s for the 347,576
    parts of the sample ERP database at scale 0.1), half what reading each header took.
    """
    code = _INT_FORMATS.get(int_size)
    if code is None:
        raise _Unreadable(f"integer size {int_size}")
    header = struct.Struct("<B" + code)  # sign byte, then the value
    unpack = header.unpack_from
    step = header.size
    size = len(data)
    found: dict[int, int] = {}
    pos = start
    try:
        while pos < size:
            kind = data[pos]
            sign, dump_id = unpack(data, pos + 1)
            if sign or dump_id in found or kind not in (BLOCK_DATA, BLOCK_BLOBS):
                raise _Unreadable(f"unexpected data block at {pos}")
            found[dump_id] = pos
            pos += 1 + step
            objects = kind == BLOCK_BLOBS
            while True:
                if objects:  # each large object's oid, then its parts; oid 0 ends
                    sign, oid = unpack(data, pos)
                    pos += step
                    if sign or oid == 0:
                        break
                while True:
                    sign, length = unpack(data, pos)
                    pos += step
                    if sign:
                        raise _Unreadable("negative data length")
                    if length == 0:
                        break
                    pos += length
                if not objects:
                    break
    except struct.error:
        raise _Unreadable("archive ends early") from None
    if pos != size:
        raise _Unreadable("the last data block runs past the end of the file")
    return found


def set_offsets(path: Path) -> int:
    """Write the data offsets into the table of contents of the complete custom-format
    archive at ``path``, in place; returns how many entries got one (0: the archive was
    left as it was: it had them already, or holds no data, or is not understood)."""
    with path.open("r+b") as fh:
        r = _Reader(fh)
        try:
            entries = _read_toc(r)
            if r.tell() >= os.fstat(fh.fileno()).st_size:
                return 0  # no data at all
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
                blocks = _data_blocks(data, r.tell(), r.int_size)
        except _Unreadable:
            return 0
        by_id = {e.dump_id: e for e in entries}
        if any(by_id.get(i) is None or by_id[i].state != OFFSET_NOT_SET for i in blocks):
            return 0  # a block of no entry, or offsets set already: not ours to change
        for dump_id, offset in blocks.items():
            entry = by_id[dump_id]
            fh.seek(entry.state_at)
            fh.write(bytes([OFFSET_SET]) + offset.to_bytes(r.off_size, "little"))
        fh.flush()
    return len(blocks)


def read_toc(fh: Readable) -> ArchiveToc | None:
    """The table of contents of the custom-format archive ``fh`` reads from its start;
    None for an archive this module does not read (then nothing is known of its data
    blocks). ``fh`` is read ahead of the table of contents, then left at its end."""
    r = _Reader(fh)
    try:
        entries = _read_toc(r)
    except _Unreadable:
        return None
    fh.seek(r.tell())
    return ArchiveToc(entries, r.tell(), r.int_size, r.off_size)


def custom_from_directory(toc_dat: bytes) -> tuple[bytes, ArchiveToc] | None:
    """The header and table of contents of a custom-format archive made from a
    directory-format dump's ``toc.dat``: the same entries, each with a data offset "not
    set" (or "no data") where the directory format names its file. Followed by data
    blocks in any order an ``--use-list`` asks for, it is what ``pg_restore`` reads from
    a pipe. None if ``toc.dat`` is not one this module reads. Pure."""
    fh = io.BytesIO(toc_dat)
    r = _Reader(fh)
    try:
        entries = _read_toc(r, (FORMAT_DIRECTORY,))
    except _Unreadable:
        return None
    if r.compression != 0:
        return None  # compressed files: their data is no custom archive's block parts
    end = r.tell()
    out = bytearray(toc_dat[:FORMAT_AT])
    out.append(FORMAT_CUSTOM)
    done = FORMAT_AT + 1
    converted = []
    for entry in entries:
        out += toc_dat[done : entry.state_at]
        at = len(out)
        out.append(entry.state)
        out += bytes(r.off_size)
        done = entry.extra_end
        converted.append(dataclasses.replace(entry, state_at=at, extra_end=len(out)))
    out += toc_dat[done:end]
    return bytes(out), ArchiveToc(converted, len(out), r.int_size, r.off_size)


def write_offsets(path: Path, toc: ArchiveToc, starts: dict[int, int]) -> None:
    """Write ``starts`` (dump id -> offset of its data block, checked by the caller) into
    the table of contents of the archive file at ``path``, in place, as pg_dump writes
    them into a file; entries of ``toc`` whose offset is set already are not changed."""
    by_id = {e.dump_id: e for e in toc.entries}
    with path.open("r+b") as fh:
        for dump_id, offset in starts.items():
            entry = by_id[dump_id]
            if entry.state != OFFSET_NOT_SET:
                continue
            fh.seek(entry.state_at)
            fh.write(bytes([OFFSET_SET]) + offset.to_bytes(toc.off_size, "little"))


def entries_without_offsets(path: Path) -> int:
    """How many entries of the custom-format archive at ``path`` have data whose offset is
    not set (what :func:`set_offsets` fills in). Raises ValueError for an archive this
    module does not read."""
    with path.open("rb") as fh:
        try:
            entries = _read_toc(_Reader(fh))
        except _Unreadable as exc:
            raise ValueError(str(exc)) from None
    return sum(1 for e in entries if e.state == OFFSET_NOT_SET)

"""The per-machine chunk index cache: every index file of a repository merged, sorted and
kept on local disk, so that a process's memory does not grow with the repository.

Loading every index file into memory costs about 70 bytes a chunk in every backup and
restore process (4.5 GB at 65 million chunks). Instead, the index files' entries are
merged once into one sorted file under ``<cache_dir>/<repository id>/at-<digest of the
location>/chunkindex.cix`` (one per repository location, see :func:`location_dir`; 0600,
written to a temporary file and renamed), and a process keeps only a directory of it in
memory: the first key of each 4 KiB block (8 bytes a block, about 0.1 byte a
chunk) and a Bloom filter of the ids (10 bits a chunk, at most FILTER_MAX bytes: it
spares most lookups of chunks the cache does not hold a read of the file; its hashes
are words of the ids, which are already uniform). A lookup binary-searches the directory,
reads one block with ``pread`` and binary-searches its keys. The page cache keeps hot
blocks; nothing is mapped, so that they never count in a process's resident memory (a
mapping would: the kernel maps 64 KiB around each page touched, and a few thousand
lookups had the whole file resident). A big file's meta (filter, directory) is read
into anonymous memory advised for huge pages instead of a bytes object
(:func:`_read_meta`); a backup looks up the chunks of each block of its stream in one
call (:meth:`CacheRun.first_many`).

Layout (all integers little-endian)::

    header page (4096 bytes): HEADER, then zeros
    blocks: BLOCK bytes each, from offset BLOCK
        keys      PER_BLOCK x u64  first 8 bytes of each chunk id (big-endian value)
        records   PER_BLOCK x 44   rest of the id (24) | group | offset | length | raw | check
        ...zeros...
        trailer   count (u32) | crc32 of the block's first 4088 bytes, seeded by its number
    meta (after the blocks): the covered files and the filter's size (JSON), the groups
        (pack id 32 | file no u32 each), the directory (u64 a block), the filter; HEADER's
        digest is the SHA-256 of the header's other fields and the meta.

A *group* is one pack of one index file: a record names its group, the group its pack
and the index file that described it, so that entries of removed files can be dropped.
Records are sorted by key; the records of a chunk that several files describe are all
kept (in file order), so that a quarantined copy can be passed over for another.

Trust: the file is a cache and is never believed blindly. Opening checks the header, the
size and the digest of the meta; a hit checks its record's crc32 (its location fields
cannot have changed); a miss that matters (a reader's) checks the block's crc32. Any
mismatch raises :class:`CacheCorrupt`: the file is dropped and rebuilt from the index
files. The cache is valid for exactly the index files (name and size) it lists: files
added since are merged in (or, while they are few, held in memory by the caller), and a
listed file that is gone (garbage collection) makes its entries leave the cache before
anything is looked up. Deleting the cache costs one rebuild.

Building is an external sort that keeps memory flat: new index files are split by the
top bits of their keys into temporary bucket files, then each bucket (with the old
cache's records of that key range) is sorted in memory and written out.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import hashlib
import json
import logging
import mmap
import os
import shutil
import struct
import sys
import tempfile
import time
import zlib
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from respaldo.repository.index import CacheCorrupt, ChunkIndex, Location

log = logging.getLogger(__name__)

CACHE_NAME = "chunkindex.cix"
LOCK_NAME = "chunkindex.lock"
MAGIC = b"RCIX\x00\x01\r\n"
HEADER = struct.Struct("<8sQQQQQQQ32s")
"""magic, records, blocks, unique ids, meta offset, files JSON length, groups, total size,
digest."""
BLOCK = 4096
PER_BLOCK = 78
KEYS_END = PER_BLOCK * 8
RECORD = 44
RECORDS_END = KEYS_END + PER_BLOCK * RECORD
TRAILER = BLOCK - 8
GROUP = 36
TOP_BITS = 16
"""Bits of a key that index the table narrowing a lookup's search of the directory, at
most (fewer for a small run: the table has 2^bits + 1 entries of 8 bytes)."""
_U32 = struct.Struct("<I")
FILTER_MAX = 32 * 2**20
"""Bytes of the in-memory filter at most, whatever the repository's size: about 10 bits
a chunk up to 27 million chunks (2 hashes: a chunk the cache does not hold reads the
file once in 30 times), fewer beyond (at 65 million, 4 bits: once in 6 times)."""
_FIELDS = struct.Struct("<IIIII")
_KEY = struct.Struct(">Q")
"""A chunk id's key: its first 8 bytes, big-endian (what the blocks and directory sort)."""
_WORD = struct.Struct("<8xQ")
"""The id's next 8 bytes, little-endian: the filter's two hashes are its two halves."""


@contextlib.contextmanager
def new_file(path: Path) -> Iterator[IO[bytes]]:
    """A cache file written to a temporary file next to ``path`` (mode 0600, its first
    block left for the header that :func:`finish_file` writes), renamed to ``path`` once
    the ``with`` block ends without error and removed otherwise. The caller holds the
    cache's lock (:func:`locked`): a temporary file found without it is a leftover of a
    killed process."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".chunkindex-", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w+b") as out:
            os.fchmod(out.fileno(), 0o600)
            out.write(bytes(BLOCK))
            yield out
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def finish_file(
    out: IO[bytes],
    *,
    repository: str,
    files: list[Any],
    filter_bytes: int,
    hashes: int,
    groups: Sequence[bytes],
    directory: bytes,
    bloom: bytes | bytearray | memoryview,
    counts: tuple[int, int, int],
) -> None:
    """Write the metadata, the filter and the header of a cache file whose ``counts`` =
    (records, blocks, unique ids) the blocks ``out`` already holds, and make it durable.

    The one place both writers (the bulk build and the side runs) finish a file, so that
    the header's digest always covers the header and the metadata a reader checks
    before it trusts anything else in the file.
    """
    records, blocks, unique = counts
    doc = {
        "repository": repository,
        "files": files,
        "filter": {"bytes": filter_bytes, "hashes": hashes},
    }
    files_json = json.dumps(doc, separators=(",", ":")).encode()
    meta = files_json + b"".join(groups) + directory
    meta_at = out.tell()
    if meta_at != BLOCK + blocks * BLOCK:
        raise AssertionError(f"cache blocks end at {meta_at}, not after {blocks} blocks")
    out.write(meta)
    out.write(bloom)
    total = out.tell()
    fields = (MAGIC, records, blocks, unique, meta_at, len(files_json), len(groups), total)
    head = HEADER.pack(*fields, b"\0" * 32)[: HEADER.size - 32]
    out.seek(0)
    out.write(head + hashlib.sha256(head + meta).digest())
    out.flush()
    os.fsync(out.fileno())


def usable() -> bool:
    """Whether this machine can use the cache (the layout is read in native order)."""
    return sys.byteorder == "little"


HUGE_META = 32 * 2**20
"""Metadata of at least this size is read into memory the kernel may back with 2 MiB
pages (:func:`_read_meta`): from about 27 million chunks (a full-size filter) on. Huge
pages cost the open time (the kernel may compact memory to find them: a cold open at 65
million chunks took 0.3-0.96 s instead of 0.13-0.2 s, at 4 million 0.3-0.6 s instead of
0.05), which only a big cache's lookups repay."""
_HUGE_PAGE = 2 * 2**20


def _read_meta(fd: int, size: int, at: int, room: int) -> bytes | mmap.mmap:
    """``size`` bytes of the file at offset ``at``; raises CacheCorrupt if it is shorter.
    A mapping (for a big meta) has ``room`` bytes at least, zeros after the meta's.

    A big run's meta (a 32 MiB filter and a directory of MiBs at 65 million chunks) is
    read into an anonymous private mapping advised for transparent huge pages: every
    lookup reads the filter and the directory at random places, and with 4 KiB pages
    most of those reads also miss the TLB (2 MiB pages: hits 8-15% and misses 13%
    cheaper at 65 million chunks, measured). Its size is rounded up to whole 2 MiB pages
    so that the kernel can use them throughout; memory is the same as a bytes object's
    (where the kernel finds no huge page it uses small ones)."""
    madvise = getattr(mmap, "MADV_HUGEPAGE", None)
    if size < HUGE_META or madvise is None:
        data = os.pread(fd, size, at)
        if len(data) != size:
            raise CacheCorrupt("the meta is truncated")
        return data
    area = mmap.mmap(
        -1,
        -(-max(size, room) // _HUGE_PAGE) * _HUGE_PAGE,
        flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
    )
    with contextlib.suppress(OSError):  # only advice: small pages otherwise
        area.madvise(madvise)
    view, done = memoryview(area), 0
    try:
        while done < size:  # a read may return less than asked: go on until the end
            got = os.preadv(fd, [view[done:size]], at + done)
            if got <= 0:
                raise CacheCorrupt("the meta is truncated")
            done += got
    finally:
        view.release()
    return area


def _bad_block(number: int, block: bytes) -> CacheCorrupt:
    """What is wrong with block ``number`` as read (``block``): short, or a count of
    records no block can have."""
    if len(block) != BLOCK:
        return CacheCorrupt(f"block {number} is truncated")
    return CacheCorrupt(f"block {number} has a bad count")


def _block_seed(number: int) -> int:
    return (number * 2654435761 + 0x5EED) & 0xFFFFFFFF


Found = tuple[int, int, int, int]
"""(group, offset, sealed length, raw length) of a record."""
Record = tuple[int, bytes, int, int, int, int]
"""(key: the id's first 8 bytes as a big-endian number, the id's other 24 bytes, group,
offset, sealed length, raw length): one record, as runs are written and merged."""


class CacheRun:
    """An open cache file: its directory in memory, its blocks read on demand.

    Thread-safe: lookups use ``pread`` on one descriptor and change nothing.
    """

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            self._init(fd)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        self.path = path

    def _init(self, fd: int) -> None:
        head = os.pread(fd, HEADER.size, 0)
        if len(head) != HEADER.size:
            raise CacheCorrupt("the header is truncated")
        (magic, records, blocks, unique, meta_at, files_len, groups, total, digest) = HEADER.unpack(
            head
        )
        if magic != MAGIC:
            raise CacheCorrupt("bad magic")
        size = os.fstat(fd).st_size
        if size != total or meta_at != BLOCK + blocks * BLOCK:
            raise CacheCorrupt(f"the file is {size} bytes, its header says {total}")
        # Where each value of the keys' top bits starts in the directory (below): a lookup
        # then bisects a few entries instead of all of them. About one block a slot, so
        # that a small run (a backup's own index file) does not hold a 512 KiB table.
        bits = min(TOP_BITS, max(1, blocks.bit_length()))
        top_at = -(-(total - meta_at) // 8) * 8
        area = _read_meta(fd, total - meta_at, meta_at, top_at + (2**bits + 1) * 8)
        # Slices of it are views: tens of MiB are not copied.
        meta = memoryview(area)[: total - meta_at]
        filter_at = files_len + groups * GROUP + blocks * 8
        if filter_at > len(meta):
            raise CacheCorrupt("the meta is too short")
        # The filter is left out of the digest (it is most of the meta): a wrong bit in
        # it can only make a lookup read a block for nothing, or miss a chunk, which
        # costs a writer a duplicate and a reader nothing (check_miss searches past it).
        check = hashlib.sha256(head[: HEADER.size - 32])
        check.update(meta[:filter_at])
        if check.digest() != digest:
            raise CacheCorrupt("the meta does not match its digest")
        doc = json.loads(bytes(meta[:files_len]))
        if len(meta) != filter_at + doc["filter"]["bytes"]:
            raise CacheCorrupt("the meta has the wrong length")
        self.filter = meta[filter_at:]
        self.filter_mask = len(self.filter) * 8 - 1
        self.hashes: int = doc["filter"]["hashes"]
        self.repository: str = doc["repository"]
        self.files: list[tuple[str, int]] = [(n, s) for n, s in doc["files"]]
        self.groups = meta[files_len : files_len + groups * GROUP]
        self.directory = meta[files_len + groups * GROUP : filter_at].cast("Q")
        self.records: int = records
        self.blocks = blocks
        self.unique: int = unique
        self.top_shift = 64 - bits
        top = array(
            "q", (bisect.bisect_left(self.directory, t << self.top_shift) for t in range(2**bits))
        )
        top.append(blocks)
        if isinstance(area, mmap.mmap):  # in the huge pages too, after the meta
            self.top = memoryview(area)[top_at : top_at + len(top) * 8].cast("q")
            self.top[:] = memoryview(top)
        else:
            self.top = memoryview(top)

    def close(self) -> None:
        """Close the file (once: a descriptor number closed twice may be another's)."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __del__(self) -> None:
        # Runs replaced after a rebuild may still be read by another thread: closed only
        # when nothing refers to them.
        if hasattr(self, "fd"):
            self.close()

    def pack_id(self, group: int) -> str:
        return self.groups[group * GROUP : group * GROUP + 32].hex()

    def file_of(self, group: int) -> int:
        return int.from_bytes(self.groups[group * GROUP + 32 : group * GROUP + 36], "little")

    def _read_block(self, number: int) -> bytes:
        block = os.pread(self.fd, BLOCK, BLOCK + number * BLOCK)
        if len(block) != BLOCK:
            raise CacheCorrupt(f"block {number} is truncated")
        return block

    def check_block(self, number: int, block: bytes | None = None) -> None:
        """Raise CacheCorrupt unless block ``number`` matches its crc32."""
        block = self._read_block(number) if block is None else block
        want = int.from_bytes(block[TRAILER + 4 :], "little")
        if zlib.crc32(memoryview(block)[:TRAILER], _block_seed(number)) != want:
            raise CacheCorrupt(f"block {number} does not match its checksum")

    def _first_block(self, key: int) -> int:
        top = key >> self.top_shift
        b = bisect.bisect_left(self.directory, key, self.top[top], self.top[top + 1]) - 1
        return b if b > 0 else 0

    def first(self, chunk_id: bytes) -> Location | None:
        """Where the first record of ``chunk_id`` (``find(chunk_id)[0]``) says the chunk
        is, or None. Raises CacheCorrupt for a record that does not match its check.

        The hot path of every backup and restore, written flat: one call, one read, the
        ``Location`` made here (a tuple and a ``pack_id`` call fewer). The first record
        of a key is its chunk's first copy unless another id shares the key (once in
        2^64) or the key opens a block (its records may begin in the block before):
        those are left to :meth:`find`. The id's words are read with ``struct`` (no
        slice of it for ``int.from_bytes``) and its rest compared in place
        (``startswith``): with the ``Location`` here, 5% of a hit at 65 million chunks."""
        if not self.blocks:
            return None
        # The filter first: most chunks a cache does not hold never touch the file. Its
        # hashes are the id's words 0 and 1 after the key (uniform already).
        f, mask = self.filter, self.filter_mask
        word = _WORD.unpack_from(chunk_id)[0]
        bit = word & mask
        if not f[bit >> 3] >> (bit & 7) & 1:
            return None
        bit = (word >> 32) & mask
        if self.hashes > 1 and not f[bit >> 3] >> (bit & 7) & 1:
            return None
        key = _KEY.unpack_from(chunk_id)[0]
        top = key >> self.top_shift
        directory, top_table = self.directory, self.top
        # The last block that starts at or before the key: when it starts before it,
        # every record of the key is in it (the next block starts after the key).
        b = bisect.bisect_right(directory, key, top_table[top], top_table[top + 1]) - 1
        if b < 0:
            b = 0
        if directory[b] == key:
            return self._first_found(chunk_id)
        # ``_block`` written out: two calls fewer on every hit (with ``get``'s own, 2-3%).
        block = os.pread(self.fd, BLOCK, BLOCK + b * BLOCK)
        count = _U32.unpack_from(block, TRAILER)[0] if len(block) == BLOCK else -1
        if not 0 < count <= PER_BLOCK:
            raise _bad_block(b, block)
        keys = memoryview(block).cast("Q")  # the keys, then what follows them: up to count
        i = bisect.bisect_left(keys, key, 0, count)
        if i == count or keys[i] != key:
            return None
        at = KEYS_END + i * RECORD
        if not block.startswith(chunk_id[8:32], at):
            if i + 1 < count and keys[i + 1] == key:  # another id with the same key first
                return self._first_found(chunk_id)
            return None
        group, offset, length, raw, check = _FIELDS.unpack_from(block, at + 24)
        if zlib.crc32(block[at : at + 40]) != check:
            raise CacheCorrupt(f"a record of block {b} does not match its check")
        g = group * GROUP
        return Location(self.groups[g : g + 32].hex(), offset, length, raw)

    def _first_found(self, chunk_id: bytes) -> Location | None:
        """:meth:`first` the long way (:meth:`find`), for the rare ids it leaves to it."""
        found = self.find(chunk_id, use_filter=False)
        if not found:
            return None
        group, offset, length, raw = found[0]
        return Location(self.pack_id(group), offset, length, raw)

    def first_many(self, chunk_ids: Sequence[bytes]) -> list[Location | None]:
        """``[self.first(c) for c in chunk_ids]`` in one call (what a backup asks for each
        block of its stream): the same steps with the loop's names looked up once, and
        a block two ids share read once. Raises CacheCorrupt like :meth:`first`."""
        out: list[Location | None] = [None] * len(chunk_ids)
        if not self.blocks:
            return out
        f, mask, two = self.filter, self.filter_mask, self.hashes > 1
        directory, top_table, shift, groups = self.directory, self.top, self.top_shift, self.groups
        word_of, key_of, unpack, crc32, bisect_left, pread, fd = (
            _WORD.unpack_from,
            _KEY.unpack_from,
            _FIELDS.unpack_from,
            zlib.crc32,
            bisect.bisect_left,
            os.pread,
            self.fd,
        )
        last, block, keys, count = -1, b"", memoryview(b""), 0
        for n, chunk_id in enumerate(chunk_ids):
            word = word_of(chunk_id)[0]
            bit = word & mask
            if not f[bit >> 3] >> (bit & 7) & 1:
                continue
            bit = (word >> 32) & mask
            if two and not f[bit >> 3] >> (bit & 7) & 1:
                continue
            key = key_of(chunk_id)[0]
            top = key >> shift
            b = bisect.bisect_right(directory, key, top_table[top], top_table[top + 1]) - 1
            if b < 0:
                b = 0
            if directory[b] == key:  # the key opens a block: the long way (as first)
                out[n] = self._first_found(chunk_id)
                continue
            if b != last:
                block = pread(fd, BLOCK, BLOCK + b * BLOCK)  # ``_block`` written out
                count = _U32.unpack_from(block, TRAILER)[0] if len(block) == BLOCK else -1
                if not 0 < count <= PER_BLOCK:
                    raise _bad_block(b, block)
                keys = memoryview(block).cast("Q")
                last = b
            i = bisect_left(keys, key, 0, count)
            if i == count or keys[i] != key:
                continue
            at = KEYS_END + i * RECORD
            if not block.startswith(chunk_id[8:32], at):
                if i + 1 < count and keys[i + 1] == key:  # another id with the same key
                    out[n] = self._first_found(chunk_id)
                continue
            group, offset, length, raw, check = unpack(block, at + 24)
            if crc32(block[at : at + 40]) != check:
                raise CacheCorrupt(f"a record of block {b} does not match its check")
            g = group * GROUP
            out[n] = Location(groups[g : g + 32].hex(), offset, length, raw)
        return out

    def _block(self, b: int) -> tuple[bytes, int]:
        """Block ``b`` read from the file, and its count of records; raises CacheCorrupt
        for a short read or a count no block can have (its records' checks come later)."""
        block = self._read_block(b)
        (count,) = _U32.unpack_from(block, TRAILER)
        if not 0 < count <= PER_BLOCK:
            raise _bad_block(b, block)
        return block, count

    def find(self, chunk_id: bytes, use_filter: bool = True) -> list[Found]:
        """Every record of ``chunk_id``, in file order (usually none or one). Raises
        CacheCorrupt for a record that does not match its check."""
        if not self.blocks:
            return []
        if use_filter:
            # The filter first: most chunks a cache does not hold never touch the file.
            # Its hashes are the id's words 0 and 1 after the key (uniform already).
            f, mask = self.filter, self.filter_mask
            word = int.from_bytes(chunk_id[8:16], "little")
            bit = word & mask
            if not f[bit >> 3] >> (bit & 7) & 1:
                return []
            bit = (word >> 32) & mask
            if self.hashes > 1 and not f[bit >> 3] >> (bit & 7) & 1:
                return []
        key = int.from_bytes(chunk_id[:8], "big")
        top = key >> self.top_shift
        directory = self.directory
        b = bisect.bisect_left(directory, key, self.top[top], self.top[top + 1]) - 1
        if b < 0:
            b = 0
        rest = chunk_id[8:32]
        out: list[Found] = []
        while True:
            block, count = self._block(b)
            keys = memoryview(block)[: count * 8].cast("Q")
            i = bisect.bisect_left(keys, key)
            while i < count and keys[i] == key:
                at = KEYS_END + i * RECORD
                if block[at : at + 24] == rest:
                    group, offset, length, raw, check = _FIELDS.unpack_from(block, at + 24)
                    if zlib.crc32(block[at : at + 40]) != check:
                        raise CacheCorrupt(f"a record of block {b} does not match its check")
                    out.append((group, offset, length, raw))
                i += 1
            # The same key may go on in the next block (a chunk several files describe).
            if i < count or b + 1 >= self.blocks or directory[b + 1] != key:
                return out
            b += 1

    def check_miss(
        self, chunk_id: bytes, passed_over: Callable[[str], bool] = lambda _pack_id: False
    ) -> None:
        """Raise CacheCorrupt unless the blocks where ``chunk_id`` would be are sound
        and do not hold it (the filter said no wrongly): a reader's miss is then
        certain. Copies in packs ``passed_over`` says yes of (quarantined ones) are no
        sign of damage: the lookup passed over them, the filter did not miss them."""
        if not self.blocks:
            return
        key = int.from_bytes(chunk_id[:8], "big")
        b = self._first_block(key)
        self.check_block(b)
        while b + 1 < self.blocks and self.directory[b + 1] <= key:
            b += 1
            self.check_block(b)
        held = self.find(chunk_id, use_filter=False)
        if any(not passed_over(self.pack_id(group)) for group, *_ in held):
            raise CacheCorrupt("the filter does not know a chunk the cache holds")

    def block_range(self, low: int, high: int | None) -> tuple[int, int]:
        """Blocks that may hold keys in [low, high)."""
        first = max(bisect.bisect_left(self.directory, low) - 1, 0)
        end = self.blocks if high is None else bisect.bisect_left(self.directory, high)
        return first, max(end, first)

    def rows(self) -> Iterator[tuple[int, bytes, int, int, int]]:
        """(group, chunk id, offset, length, raw) of every record, in key order."""
        for key, rest, group, offset, length, raw in self.iter_records():
            yield group, key.to_bytes(8, "big") + rest, offset, length, raw

    def iter_records(self, step: int = 256) -> Iterator[Record]:
        """Every record in key order, as (key, rest of the id, group, offset, length,
        raw), each block checked against its crc32 and each record against its own
        check before it is yielded. Reads ``step`` blocks at a time: no numpy, and
        memory bounded whatever the run's size (merging runs streams through this)."""
        for first in range(0, self.blocks, step):
            end = min(first + step, self.blocks)
            data = os.pread(self.fd, (end - first) * BLOCK, BLOCK + first * BLOCK)
            if len(data) != (end - first) * BLOCK:
                raise CacheCorrupt("blocks are truncated")
            for n in range(end - first):
                block = data[n * BLOCK : (n + 1) * BLOCK]
                self.check_block(first + n, block)
                (count,) = _U32.unpack_from(block, TRAILER)
                if not 0 < count <= PER_BLOCK:
                    raise CacheCorrupt(f"block {first + n} has a bad count")
                keys = struct.unpack_from(f"<{count}Q", block)
                for i in range(count):
                    at = KEYS_END + i * RECORD
                    group, offset, length, raw, check = _FIELDS.unpack_from(block, at + 24)
                    if zlib.crc32(block[at : at + 40]) != check:
                        raise CacheCorrupt(
                            f"a record of block {first + n} does not match its check"
                        )
                    yield keys[i], block[at : at + 24], group, offset, length, raw


LOCATION_PREFIX = "at-"
LOCATION_NAME = "location"
"""A file in each location's directory naming the location (for whoever wonders which
directory to delete; nothing reads it)."""


def location_dir(repository_dir: Path, location: str) -> Path:
    """The directory of the index cache of the repository at ``location`` (its storage's
    location, a URL without credentials), inside ``repository_dir`` (``<cache_dir>/<id>``).

    One per location, not per repository id: a primary and its mirrors share the id but
    not their index files, and one shared cache was rebuilt whole at every open of the
    other (a backup that copies to a mirror opens both). The name is a digest: a
    location may be long and hold any character."""
    digest = hashlib.sha256(location.encode()).hexdigest()[:16]
    return repository_dir / f"{LOCATION_PREFIX}{digest}"


def note_location(directory: Path, location: str) -> None:
    """Write ``directory``'s location file if it is missing (best effort)."""
    path = directory / LOCATION_NAME
    if path.exists():
        return
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(location + "\n")
    except OSError:
        pass  # another process wrote it, or the cache cannot be written: it only informs


LEGACY_INDEX_DIR = "index"
"""Copies of the index files, kept per repository id before the caches moved to a
directory per location (the repository keeps them per location now)."""


def drop_legacy(repository_dir: Path) -> bool:
    """Remove the cache that earlier versions kept straight in ``repository_dir``
    (``<cache_dir>/<id>/chunkindex.cix``, its side runs, leftovers and the index file
    copies), once, under its lock (a process of an earlier version may be building it);
    the lock file stays, empty. Returns whether there was anything to remove; a cheap
    check otherwise (one listing of a small directory)."""
    try:
        names = [path.name for path in repository_dir.iterdir()]
    except OSError:
        return False
    legacy = [
        name
        for name in names
        if name in (CACHE_NAME, LEGACY_INDEX_DIR)
        or (name.startswith(SIDE_PREFIX) and name.endswith(".cix"))
        or (name.startswith(".chunkindex-") and name.endswith(".tmp"))
        or name.startswith(".build-")
    ]
    if not legacy:
        return False
    try:
        with locked(repository_dir):
            for name in legacy:
                path = repository_dir / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("cannot remove the old local chunk index cache in %s: %s", repository_dir, exc)
    else:
        log.info("removed the old local chunk index cache in %s", repository_dir)
    return True


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold this machine's lock on the cache of one repository location (one builder at
    a time; readers open the file under it too, so that they never see a half-replaced
    set)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def open_run(path: Path, repository: str) -> CacheRun | None:
    """The cache file at ``path`` if it is whole and for ``repository``; a damaged one is
    removed (and None returned)."""
    try:
        run = CacheRun(path)
    except FileNotFoundError:
        return None
    except (CacheCorrupt, ValueError, KeyError, TypeError, OSError) as exc:
        log.warning("the local chunk index cache %s is damaged (%s); rebuilding it", path, exc)
        path.unlink(missing_ok=True)
        return None
    if run.repository != repository:
        log.warning("the local chunk index cache %s is another repository's; rebuilding it", path)
        run.close()
        path.unlink(missing_ok=True)
        return None
    return run


SIDE_RECORDS_MAX = 65_536
"""Entries of index files the cache does not cover yet that an open writes into one side
run (sorted in memory: a few MiB of Python objects) instead of rebuilding the whole cache
with numpy: a backup's next open then costs a read of its new index files (or nothing:
the backup wrote their side runs itself), not a rewrite of the cache."""
SIDES_OPEN_MAX = 8
"""Side runs an open leaves as they are; beyond, it merges them (streaming): into one
side run while they hold less than an eighth of the main run's records, else with the
main run into a new one (so that a big cache is rewritten once per ~1/8 of its size)."""
SIDE_PREFIX = "chunkindex-side-"

ListFiles = Callable[[], dict[str, int]]
"""The repository's index files now (name -> size)."""
ReadFile = Callable[[str], bytes]
"""An index file's checked plaintext; raises an exception with a message if damaged."""


@dataclass
class Runs:
    """The open runs of a cache: the main one and the side runs, oldest first."""

    main: CacheRun | None
    sides: list[CacheRun]
    damaged: dict[str, str]
    listing: Mapping[str, int]
    """The index files the runs describe (the listing they were brought up to date with)."""


def side_path(directory: Path) -> Path:
    """A new side run's path: names sort in creation order (lookups try the oldest
    first, as the index files' order would)."""
    return directory / f"{SIDE_PREFIX}{time.time_ns():020d}-{os.getpid()}-{os.urandom(2).hex()}.cix"


def _drop(run: CacheRun) -> None:
    run.close()
    run.path.unlink(missing_ok=True)


def _remove_leftovers(directory: Path) -> None:
    """Remove temporary files and build directories of killed processes (every writer
    of them holds the lock, which the caller holds now)."""
    for leftover in directory.glob(".chunkindex-*.tmp"):
        leftover.unlink(missing_ok=True)
    for scratch in directory.glob(".build-*"):
        shutil.rmtree(scratch, ignore_errors=True)


def load_cached(
    directory: Path,
    repository: str,
    list_files: ListFiles,
    read: ReadFile,
    damaged_errors: tuple[type[Exception], ...],
    exclude: Mapping[str, set[bytes]],
) -> tuple[ChunkIndex, list[str], dict[str, str]] | None:
    """The chunk index of ``repository`` backed by the cache in ``directory``: (index,
    the index files it describes, the damaged ones left out). The cache is brought up
    to date first (under this machine's lock): files it does not cover go to a side run.
    None if the cache cannot be used (it cannot be written): the caller then loads the
    index files into memory. The index writes a side run for each index file a backup
    adds (:meth:`ChunkIndex.add_file`), so that nothing it adds stays in memory.

    The repository is listed before the lock is taken (a listing may be slow, and a
    running backup's :meth:`ChunkIndex.add_file` waits for the lock); where the runs
    cover a file that listing lacks, it is listed again under the lock (:func:`_refresh`)."""
    listing = list_files()
    try:
        with locked(directory):
            runs = _refresh(directory, repository, listing, read, damaged_errors, relist=list_files)
    except OSError as exc:
        log.warning("cannot use the local chunk index cache in %s: %s", directory, exc)
        return None

    def rebuild(bad: CacheRun) -> CacheRun:
        """A sound cache in place of ``bad`` (the main or a side run), found damaged
        while in use: the whole cache is built again, without side runs."""
        with locked(directory):
            with contextlib.suppress(FileNotFoundError):
                if bad.path.stat().st_ino == os.fstat(bad.fd).st_ino:
                    bad.path.unlink()  # nobody replaced it meanwhile
            fresh = _refresh(
                directory, repository, list_files(), read, damaged_errors, complete=True
            )
        if fresh.main is None:
            raise CacheCorrupt("the rebuilt local chunk index cache cannot be opened")
        return fresh.main

    def add_side(name: str, size: int, plaintext: bytes) -> CacheRun | None:
        """A side run covering one new index file, or None if it cannot be written."""
        try:
            with locked(directory):
                path = side_path(directory)
                from respaldo.repository import index_runs

                index_runs.write_side(path, repository, [(name, size, plaintext)])
                return open_run(path, repository)
        except OSError as exc:
            log.warning("cannot add to the local chunk index cache in %s: %s", directory, exc)
            return None

    def merge_sides(sides: tuple[CacheRun, ...]) -> CacheRun | None:
        """One side run in place of ``sides`` (a long backup's), or None if it cannot.
        The merged run is named after them: a process killed before it removed them
        leaves runs that overlap it, and the next open keeps the older ones."""
        from respaldo.repository import index_runs

        try:
            with locked(directory):
                path = side_path(directory)
                index_runs.merge_runs(path, repository, list(sides))
                merged = open_run(path, repository)
                if merged is not None:
                    for side in sides:  # not closed: other threads may be reading them
                        side.path.unlink(missing_ok=True)
                return merged
        except (OSError, CacheCorrupt) as exc:
            log.warning("cannot merge the local chunk index cache's side runs: %s", exc)
            return None

    index = ChunkIndex()
    try:
        index.attach_cache(runs.main, exclude, rebuild, runs.sides, add_side, merge_sides)
    except CacheCorrupt as exc:  # a side run read whole to fill the filter
        log.warning("the local chunk index cache is damaged (%s); rebuilding it", exc)
        with locked(directory):
            for side in runs.sides:
                _drop(side)
            runs = _refresh(
                directory, repository, list_files(), read, damaged_errors, complete=True
            )
        index = ChunkIndex()
        index.attach_cache(runs.main, exclude, rebuild, (), add_side, merge_sides)
    return index, list(runs.listing), runs.damaged


def _open_sides(directory: Path, repository: str) -> list[CacheRun]:
    sides = []
    for path in sorted(directory.glob(f"{SIDE_PREFIX}*.cix")):
        run = open_run(path, repository)
        if run is not None:
            sides.append(run)
    return sides


def _refresh(
    directory: Path,
    repository: str,
    listing: Mapping[str, int],
    read: ReadFile,
    damaged_errors: tuple[type[Exception], ...],
    complete: bool = False,
    relist: ListFiles | None = None,
) -> Runs:
    """Open the cache's runs and bring them up to date with ``listing``: index files they
    do not cover go to a new side run (or, where there is no main run yet, to a new main
    one) while they are at most SIDE_RECORDS_MAX entries; the whole cache is built again
    (numpy, :mod:`.index_build`) if it is missing and big, damaged, covers a file that is
    gone, or when ``complete``. Too many side runs are merged.

    The caller holds the lock; ``listing`` may have been taken before it. Runs covering
    a file that ``listing`` lacks (or with another size) are then either behind a removed
    file (garbage collection) or ahead of the listing: a backup stored the file and wrote
    its side run (:meth:`ChunkIndex.add_file`, under the lock) after the listing. Hence
    the repository is listed again with ``relist``, here under the lock: every run on
    disk was written before it, after its file was stored, so a file this listing lacks
    is truly gone and only then is the cache rebuilt (without it)."""
    from respaldo.repository import index_runs

    _remove_leftovers(directory)
    path = directory / CACHE_NAME
    main = open_run(path, repository)
    sides: list[CacheRun] = []
    covered = dict(main.files) if main is not None else {}
    for side in _open_sides(directory, repository):
        if any(name in covered for name, _ in side.files):
            _drop(side)  # merged already, by a process killed before it removed the side
            continue
        covered.update(side.files)
        sides.append(side)
    removed = any(listing.get(name) != size for name, size in covered.items())
    if removed and relist is not None:
        listing = relist()
        removed = any(listing.get(name) != size for name, size in covered.items())
    new = [name for name in listing if covered.get(name) != listing[name]]
    small = sum(listing[name] for name in new) // RECORD <= SIDE_RECORDS_MAX
    if not complete and not removed and small and (main is not None or not sides):
        damaged: dict[str, str] = {}
        sources = []
        for name in new:
            try:
                sources.append((name, listing[name], read(name)))
            except damaged_errors as exc:
                damaged[name] = str(exc)
        if main is None:
            index_runs.write_side(path, repository, sources)
            main = open_run(path, repository)
        elif sources:
            new_side = side_path(directory)
            index_runs.write_side(new_side, repository, sources)
            opened = open_run(new_side, repository)
            if opened is not None:
                sides.append(opened)
        if main is not None:
            main, sides = _merge_if_many(directory, repository, main, sides)
            return Runs(main, sides, damaged, listing)
    from respaldo.repository import index_build

    try:
        result = index_build.build(path, repository, listing, read, main, damaged_errors)
    except CacheCorrupt as exc:
        log.warning("the local chunk index cache %s is damaged (%s); rebuilding it", path, exc)
        result = index_build.build(path, repository, listing, read, None, damaged_errors)
    if main is not None:
        main.close()
    for side in sides:
        _drop(side)
    return Runs(open_run(path, repository), [], result.damaged, listing)


def _merge_if_many(
    directory: Path, repository: str, main: CacheRun, sides: list[CacheRun]
) -> tuple[CacheRun, list[CacheRun]]:
    """``sides`` as they are while there are at most SIDES_OPEN_MAX, else merged: into
    one side run while they are small beside ``main``, else into ``main`` (replaced in
    place, then the side runs removed: a process killed between the two leaves side runs
    the main run covers, which the next open removes). Returns the runs to use."""
    from respaldo.repository import index_runs

    if len(sides) <= SIDES_OPEN_MAX:
        return main, sides
    try:
        if sum(s.records for s in sides) * 8 < main.records:
            target = side_path(directory)
            index_runs.merge_runs(target, repository, sides)
            merged = open_run(target, repository)
            if merged is None:
                return main, sides
            for side in sides:
                _drop(side)
            return main, [merged]
        index_runs.merge_runs(main.path, repository, [main, *sides])
    except CacheCorrupt as exc:
        # Left as it was: a damaged run is found by the lookups that read it, and the
        # whole cache is then rebuilt.
        log.warning("cannot merge the local chunk index cache's runs (%s)", exc)
        return main, sides
    fresh = open_run(main.path, main.repository)
    if fresh is None:
        raise CacheCorrupt("the merged local chunk index cache cannot be opened")
    main.close()
    for side in sides:
        _drop(side)
    return fresh, []

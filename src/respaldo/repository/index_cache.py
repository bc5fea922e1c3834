"""The per-machine chunk index cache: every index file of a repository merged, sorted and
kept on local disk, so that a process's memory does not grow with the repository.

Loading every index file into memory costs about 70 bytes a chunk in every backup and
restore process (4.5 GB at 65 million chunks). Instead, the index files' entries are
merged once into one sorted file under ``<cache_dir>/<repository id>/chunkindex.cix``
(0600, written to a temporary file and renamed), and a process keeps only a directory
of it in memory: the first key of each 4 KiB block (8 bytes a block, about 0.1 byte a
chunk) and a Bloom filter of the ids (10 bits a chunk, at most FILTER_MAX bytes: it
spares most lookups of chunks the cache does not hold a read of the file; its hashes
are words of the ids, which are already uniform). A lookup binary-searches the directory,
reads one block with ``pread`` and binary-searches its keys. The page cache keeps hot
blocks; nothing is mapped, so that they never count in a process's resident memory (a
mapping would: the kernel maps 64 KiB around each page touched, and a few thousand
lookups had the whole file resident).

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
import math
import os
import struct
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import numpy.typing as npt

from respaldo.repository.index import CacheCorrupt, ChunkIndex, _groups

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
BUCKET_RECORDS = 262_144
"""Records sorted in memory at a time while building (about 12 MiB)."""
TOP_BITS = 16
_U32 = struct.Struct("<I")
FILTER_MAX = 32 * 2**20
"""Bytes of the in-memory filter at most, whatever the repository's size: about 10 bits
a chunk up to 27 million chunks (2 hashes: a chunk the cache does not hold reads the
file once in 30 times), fewer beyond (at 65 million, 4 bits: once in 6 times)."""
_FIELDS = struct.Struct("<IIIII")

_WIDE = np.dtype(
    [
        ("key", "<u8"),
        ("rest", "V24"),
        ("group", "<u4"),
        ("offset", "<u4"),
        ("length", "<u4"),
        ("raw", "<u4"),
    ]
)
_RECORD = np.dtype(
    [
        ("rest", "V24"),
        ("group", "<u4"),
        ("offset", "<u4"),
        ("length", "<u4"),
        ("raw", "<u4"),
        ("check", "<u4"),
    ]
)
assert _RECORD.itemsize == RECORD


def usable() -> bool:
    """Whether this machine can use the cache (the layout is read in native order)."""
    return sys.byteorder == "little"


def _block_seed(number: int) -> int:
    return (number * 2654435761 + 0x5EED) & 0xFFFFFFFF


Found = tuple[int, int, int, int]
"""(group, offset, sealed length, raw length) of a record."""


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
        data = os.pread(fd, total - meta_at, meta_at)
        if len(data) != total - meta_at:
            raise CacheCorrupt("the meta is truncated")
        meta = memoryview(data)  # slices of it are views: tens of MiB are not copied
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
        self.records = records
        self.blocks = blocks
        self.unique = unique
        # Where each value of the keys' top bits starts in the directory: a lookup then
        # bisects a few entries instead of all of them.
        keys = np.frombuffer(data, "<u8", blocks, files_len + groups * GROUP)
        starts = np.arange(2**TOP_BITS + 1, dtype=np.uint64) << np.uint64(64 - TOP_BITS)
        top = np.searchsorted(keys, starts[:-1]).astype(np.int64)
        self.top = memoryview(np.append(top, blocks).astype(np.int64).tobytes()).cast("q")

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
        top = key >> (64 - TOP_BITS)
        b = bisect.bisect_left(self.directory, key, self.top[top], self.top[top + 1]) - 1
        return b if b > 0 else 0

    def find(self, chunk_id: bytes, use_filter: bool = True) -> list[Found]:
        """Every record of ``chunk_id``, in file order (usually none or one). Raises
        CacheCorrupt for a record that does not match its check.

        The hot path of every backup and restore: written flat, without helpers."""
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
        top = key >> (64 - TOP_BITS)
        directory = self.directory
        b = bisect.bisect_left(directory, key, self.top[top], self.top[top + 1]) - 1
        if b < 0:
            b = 0
        rest = chunk_id[8:32]
        out: list[Found] = []
        while True:
            block = os.pread(self.fd, BLOCK, BLOCK + b * BLOCK)
            if len(block) != BLOCK:
                raise CacheCorrupt(f"block {b} is truncated")
            (count,) = _U32.unpack_from(block, TRAILER)
            if not 0 < count <= PER_BLOCK:
                raise CacheCorrupt(f"block {b} has a bad count")
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

    def check_miss(self, chunk_id: bytes) -> None:
        """Raise CacheCorrupt unless the blocks where ``chunk_id`` would be are sound
        and do not hold it (the filter said no wrongly): a reader's miss is then
        certain."""
        if not self.blocks:
            return
        key = int.from_bytes(chunk_id[:8], "big")
        b = self._first_block(key)
        self.check_block(b)
        while b + 1 < self.blocks and self.directory[b + 1] <= key:
            b += 1
            self.check_block(b)
        if self.find(chunk_id, use_filter=False):
            raise CacheCorrupt("the filter does not know a chunk the cache holds")

    def wide(self, first: int, end: int) -> npt.NDArray[np.void]:
        """Records of blocks ``first`` to ``end`` (exclusive), checked, as wide records."""
        if end <= first:
            return np.empty(0, _WIDE)
        data = os.pread(self.fd, (end - first) * BLOCK, BLOCK + first * BLOCK)
        if len(data) != (end - first) * BLOCK:
            raise CacheCorrupt("blocks are truncated")
        view = memoryview(data)
        for n in range(end - first):
            self.check_block(first + n, data[n * BLOCK : (n + 1) * BLOCK])
        raw = np.frombuffer(view, np.uint8).reshape(end - first, BLOCK)
        counts = raw[:, TRAILER : TRAILER + 4].copy().view("<u4").ravel()
        keys = raw[:, :KEYS_END].copy().view("<u8").reshape(-1, PER_BLOCK)
        recs = raw[:, KEYS_END:RECORDS_END].copy().view(_RECORD).reshape(-1, PER_BLOCK)
        used = np.arange(PER_BLOCK)[None, :] < counts[:, None]
        keys, recs = keys[used], recs[used]
        if (_crc40(recs.view(np.uint8).reshape(-1, RECORD)) != recs["check"]).any():
            raise CacheCorrupt("a record does not match its check")
        out = np.empty(len(keys), _WIDE)
        out["key"] = keys
        for field in ("rest", "group", "offset", "length", "raw"):
            out[field] = recs[field]
        return out

    def block_range(self, low: int, high: int | None) -> tuple[int, int]:
        """Blocks that may hold keys in [low, high)."""
        first = max(bisect.bisect_left(self.directory, low) - 1, 0)
        end = self.blocks if high is None else bisect.bisect_left(self.directory, high)
        return first, max(end, first)

    def rows(self) -> Iterator[tuple[int, bytes, int, int, int]]:
        """(group, chunk id, offset, length, raw) of every record, in key order."""
        step = 1024
        for first in range(0, self.blocks, step):
            wide = self.wide(first, min(first + step, self.blocks))
            for key, rest, group, offset, length, raw in wide.tolist():
                yield group, key.to_bytes(8, "big") + bytes(rest), offset, length, raw


# --- building --------------------------------------------------------------------------


def _crc_table() -> npt.NDArray[np.uint32]:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0xEDB88320), table >> 1)
    return table.astype(np.uint32)


_TABLE = _crc_table()


def _crc40(rows: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint32]:
    """zlib.crc32 of the first 40 bytes of each row, for all rows at once."""
    crc = np.full(len(rows), 0xFFFFFFFF, np.uint32)
    for j in range(40):
        crc = _TABLE[(crc ^ rows[:, j]) & 0xFF] ^ (crc >> 8)
    return crc ^ np.uint32(0xFFFFFFFF)


def wide_of_group(data: bytes, pos: int, count: int, group: int) -> npt.NDArray[np.void]:
    """The entries of one index file group as wide records."""
    raw = np.frombuffer(data, np.uint8, count * 44, pos).reshape(count, 44)
    out = np.empty(count, _WIDE)
    out["key"] = raw[:, :8].copy().view(">u8").ravel()
    out["rest"] = raw[:, 8:32].copy().view("V24").ravel()
    fields = raw[:, 32:44].copy().view("<u4").reshape(count, 3)
    out["group"] = group
    out["offset"], out["length"], out["raw"] = fields[:, 0], fields[:, 1], fields[:, 2]
    return out


class _BlockWriter:
    """Writes sorted wide records as blocks, carrying a partial block to the next call."""

    def __init__(self, out: IO[bytes], filter_bytes: int, hashes: int) -> None:
        self.out = out
        self.filter = np.zeros(filter_bytes, np.uint8)
        self.hashes = hashes
        self.carry = np.empty(0, _WIDE)
        self.directory: list[npt.NDArray[np.uint64]] = []
        self.blocks = 0
        self.records = 0
        self.unique = 0
        self.last_id: bytes | None = None

    def write(self, wide: npt.NDArray[np.void], final: bool = False) -> None:
        wide = np.concatenate([self.carry, wide]) if len(self.carry) else wide
        full = len(wide) // PER_BLOCK
        if final and len(wide) % PER_BLOCK:
            full += 1
        take = min(len(wide), full * PER_BLOCK)
        self.carry = wide[take:].copy()
        if full:
            self._emit(wide[:take], full)

    def _emit(self, wide: npt.NDArray[np.void], nblocks: int) -> None:
        n = len(wide)
        self.records += n
        same = (wide["key"][1:] == wide["key"][:-1]) & (wide["rest"][1:] == wide["rest"][:-1])
        self.unique += n - int(same.sum())
        first_id = wide["key"][0].item().to_bytes(8, "big") + bytes(wide["rest"][0])
        if self.last_id == first_id:
            self.unique -= 1
        last = wide[-1]
        self.last_id = last["key"].item().to_bytes(8, "big") + bytes(last["rest"])
        words = wide["rest"].copy().view("<u4").reshape(n, 6)
        for h in range(self.hashes):
            bit = words[:, h] & np.uint32(len(self.filter) * 8 - 1)
            np.bitwise_or.at(self.filter, bit >> 3, (1 << (bit & 7)).astype(np.uint8))
        keys = np.zeros(nblocks * PER_BLOCK, "<u8")
        keys[:n] = wide["key"]
        recs = np.zeros(nblocks * PER_BLOCK, _RECORD)
        for field in ("rest", "group", "offset", "length", "raw"):
            recs[field][:n] = wide[field]
        recs["check"][:n] = _crc40(recs[:n].view(np.uint8).reshape(n, RECORD))
        out = np.zeros((nblocks, BLOCK), np.uint8)
        out[:, :KEYS_END] = keys.view(np.uint8).reshape(nblocks, KEYS_END)
        out[:, KEYS_END:RECORDS_END] = recs.view(np.uint8).reshape(nblocks, RECORDS_END - KEYS_END)
        counts = np.full(nblocks, PER_BLOCK, "<u4")
        counts[-1] = n - (nblocks - 1) * PER_BLOCK
        out[:, TRAILER : TRAILER + 4] = counts.view(np.uint8).reshape(nblocks, 4)
        self.directory.append(keys.reshape(nblocks, PER_BLOCK)[:, 0].copy())
        for i in range(nblocks):
            crc = zlib.crc32(out[i, :TRAILER].data, _block_seed(self.blocks + i))
            out[i, TRAILER + 4 :] = np.frombuffer(crc.to_bytes(4, "little"), np.uint8)
        self.out.write(out.data)
        self.blocks += nblocks


@dataclass
class BuildResult:
    damaged: dict[str, str]
    """Index files that could not be read (name -> why): not covered by the cache."""


ReadFile = Callable[[str], bytes]
"""An index file's checked plaintext; raises an exception with a message if damaged."""


def build(
    path: Path,
    repository: str,
    files: Mapping[str, int],
    read: ReadFile,
    old: CacheRun | None = None,
    damaged_errors: tuple[type[Exception], ...] = (),
) -> BuildResult:
    """Write the cache for exactly ``files`` (name -> size) to ``path`` (atomically),
    taking what it can from ``old`` (the files it covers that are still in ``files``)
    and reading the others with ``read``. Files ``read`` fails on with one of
    ``damaged_errors`` are left out (and not covered). Raises CacheCorrupt if ``old``
    turns out damaged (the caller then builds without it), OSError if it cannot write.
    """
    kept_old: dict[int, int] = {}  # old file number -> new file number
    names: list[tuple[str, int]] = []
    if old is not None:
        for no, (name, size) in enumerate(old.files):
            if files.get(name) == size:
                kept_old[no] = len(names)
                names.append((name, size))
    covered = {name for name, _ in names}
    new = [name for name in files if name not in covered]
    old_records = old.records if old is not None and kept_old else 0
    estimate = old_records + sum(files[name] for name in new) // 44
    bits = min(12, max(0, math.ceil(math.log2(max(1, estimate) / BUCKET_RECORDS))))
    filter_bytes = min(FILTER_MAX, 2 ** max(13, math.ceil(math.log2(estimate * 10 / 8 + 1))))
    hashes = max(1, min(2, round(filter_bytes * 8 / max(1, estimate) * math.log(2))))
    groups: list[bytes] = []
    # Old groups keep their place when their file is kept; others map to -1 (dropped).
    remap = np.full(max(1, len(old.groups) // GROUP if old else 1), -1, np.int64)
    if old is not None and kept_old:
        for g in range(len(old.groups) // GROUP):
            file_no = old.file_of(g)
            if file_no in kept_old:
                remap[g] = len(groups)
                groups.append(
                    bytes(old.groups[g * GROUP : g * GROUP + 32])
                    + kept_old[file_no].to_bytes(4, "little")
                )
    damaged: dict[str, str] = {}
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".build-") as scratch:
        buckets = [Path(scratch) / f"{b:04x}" for b in range(2**bits)]
        with contextlib.ExitStack() as stack:
            outs = [stack.enter_context(b.open("wb")) for b in buckets]
            for name in new:
                try:
                    data = read(name)
                except damaged_errors as exc:
                    damaged[name] = str(exc)
                    continue
                file_no = len(names)
                names.append((name, files[name]))
                parts = []
                for pack_id, count, pos in _groups(data):
                    parts.append(wide_of_group(data, pos, count, len(groups)))
                    groups.append(bytes.fromhex(pack_id) + file_no.to_bytes(4, "little"))
                if not parts:
                    continue
                wide = np.concatenate(parts)
                which = (
                    (wide["key"] >> np.uint64(64 - bits))
                    if bits
                    else np.zeros(len(wide), np.uint64)
                )
                order = np.argsort(which, kind="stable")
                wide, which = wide[order], which[order]
                cuts = np.searchsorted(which, np.arange(2**bits + 1, dtype=np.uint64))
                for b in range(2**bits):
                    if cuts[b + 1] > cuts[b]:
                        outs[b].write(wide[cuts[b] : cuts[b + 1]].tobytes())
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".chunkindex-", suffix=".tmp")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "w+b") as out:
                os.fchmod(out.fileno(), 0o600)
                out.write(bytes(BLOCK))
                writer = _BlockWriter(out, filter_bytes, hashes)
                for b, bucket in enumerate(buckets):
                    parts = []
                    if old is not None and kept_old:
                        low = b << (64 - bits) if bits else 0
                        high = (b + 1) << (64 - bits) if bits and b + 1 < 2**bits else None
                        first, end = old.block_range(low, high)
                        part = old.wide(first, end)
                        keep = part["key"] >= np.uint64(low)
                        if high is not None:
                            keep &= part["key"] < np.uint64(high)
                        part = part[keep]
                        mapped = remap[part["group"].astype(np.int64)]
                        part = part[mapped >= 0]
                        part["group"] = mapped[mapped >= 0]
                        parts.append(part)
                    parts.append(np.fromfile(bucket, _WIDE))
                    bucket.unlink()
                    wide = np.concatenate(parts)
                    wide = wide[np.argsort(wide["key"], kind="stable")]
                    writer.write(wide, final=b == len(buckets) - 1)
                directory = np.concatenate(writer.directory or [np.empty(0, "<u8")])
                doc = {
                    "repository": repository,
                    "files": names,
                    "filter": {"bytes": filter_bytes, "hashes": hashes},
                }
                files_json = json.dumps(doc, separators=(",", ":")).encode()
                meta = files_json + b"".join(groups) + directory.astype("<u8").tobytes()
                meta_at = out.tell()
                assert meta_at == BLOCK + writer.blocks * BLOCK
                out.write(meta)
                out.write(writer.filter.data)
                total = out.tell()
                fields = (
                    MAGIC,
                    writer.records,
                    writer.blocks,
                    writer.unique,
                    meta_at,
                    len(files_json),
                    len(groups),
                    total,
                )
                head = HEADER.pack(*fields, b"\0" * 32)[: HEADER.size - 32]
                out.seek(0)
                out.write(head + hashlib.sha256(head + meta).digest())
                out.flush()
                os.fsync(out.fileno())
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return BuildResult(damaged)


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold this machine's lock on the cache of one repository (one builder at a time;
    readers open the file under it too, so that they never see a half-replaced set)."""
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


MEMORY_MAX = 262_144
"""Entries of index files the cache does not cover yet that a process holds in memory
(about 15 MiB) instead of merging them into the cache at once: a backup's next open
then costs a read of its few new index files, not a rewrite of the cache."""

ListFiles = Callable[[], dict[str, int]]
"""The repository's index files now (name -> size)."""


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
    to date first (under this machine's lock). None if the cache cannot be used (it
    cannot be written): the caller then loads the index files into memory."""
    path = directory / CACHE_NAME
    listing = list_files()
    try:
        with locked(directory):
            run, uncovered, damaged = _refresh(path, repository, listing, read, damaged_errors)
    except OSError as exc:
        log.warning("cannot use the local chunk index cache in %s: %s", directory, exc)
        return None
    plaintexts = []
    for name in uncovered:
        try:
            plaintexts.append(read(name))
        except damaged_errors as exc:
            damaged[name] = str(exc)

    def rebuild(bad: CacheRun) -> CacheRun:
        """A sound cache in place of ``bad``, found damaged while in use."""
        with locked(directory):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_ino == os.fstat(bad.fd).st_ino:
                    path.unlink()  # nobody replaced it meanwhile
            run, _, _ = _refresh(path, repository, list_files(), read, damaged_errors, True)
        if run is None:
            raise CacheCorrupt("the rebuilt local chunk index cache cannot be opened")
        return run

    index = ChunkIndex.from_files(plaintexts, exclude)
    index.attach_cache(run, exclude, rebuild)
    return index, list(listing), damaged


def _refresh(
    path: Path,
    repository: str,
    listing: Mapping[str, int],
    read: ReadFile,
    damaged_errors: tuple[type[Exception], ...],
    complete: bool = False,
) -> tuple[CacheRun | None, list[str], dict[str, str]]:
    """Open the cache, rebuilding it if it is missing, damaged, covers a file that is
    gone, or lacks more than MEMORY_MAX entries' worth of files (always when
    ``complete``); returns it, the files it does not cover, and the damaged files."""
    run = open_run(path, repository)
    covered = dict(run.files) if run is not None else {}
    removed = any(listing.get(name) != size for name, size in covered.items())
    new = [name for name in listing if covered.get(name) != listing[name]]
    big = sum(listing[name] for name in new) // RECORD > MEMORY_MAX
    if run is not None and not removed and not new:
        return run, [], {}
    if run is not None and not removed and not big and not complete:
        return run, new, {}
    try:
        result = build(path, repository, listing, read, run, damaged_errors)
    except CacheCorrupt as exc:
        log.warning("the local chunk index cache %s is damaged (%s); rebuilding it", path, exc)
        result = build(path, repository, listing, read, None, damaged_errors)
    if run is not None:
        run.close()
    fresh = open_run(path, repository)
    return fresh, [], result.damaged

"""Building the chunk index cache in bulk (numpy): an external sort of every index file.

Apart from :mod:`respaldo.repository.index_cache` so that numpy (about 20 MiB of a
process's memory, its shared libraries included) is imported only by a process that
builds a whole cache: the first open on a machine, after a garbage collection or an
index rebuild, or when a damaged cache is replaced. Opening a cache, looking chunks up
and adding a backup's own index files (:mod:`respaldo.repository.index_runs`) need no
numpy. Layout and trust: :mod:`respaldo.repository.index_cache`.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import numpy.typing as npt

from respaldo.repository.index import CacheCorrupt, _groups
from respaldo.repository.index_cache import (
    BLOCK,
    FILTER_MAX,
    GROUP,
    KEYS_END,
    PER_BLOCK,
    RECORD,
    RECORDS_END,
    TRAILER,
    CacheRun,
    ReadFile,
    _block_seed,
    finish_file,
    new_file,
)

BUCKET_RECORDS = 262_144
"""Records sorted in memory at a time while building (about 12 MiB)."""

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


def wide_of_run(run: CacheRun, first: int, end: int) -> npt.NDArray[np.void]:
    """Records of blocks ``first`` to ``end`` (exclusive), checked, as wide records."""
    if end <= first:
        return np.empty(0, _WIDE)
    data = os.pread(run.fd, (end - first) * BLOCK, BLOCK + first * BLOCK)
    if len(data) != (end - first) * BLOCK:
        raise CacheCorrupt("blocks are truncated")
    view = memoryview(data)
    for n in range(end - first):
        run.check_block(first + n, data[n * BLOCK : (n + 1) * BLOCK])
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
        with new_file(path) as out:
            writer = _BlockWriter(out, filter_bytes, hashes)
            for b, bucket in enumerate(buckets):
                parts = []
                if old is not None and kept_old:
                    low = b << (64 - bits) if bits else 0
                    high = (b + 1) << (64 - bits) if bits and b + 1 < 2**bits else None
                    first, end = old.block_range(low, high)
                    part = wide_of_run(old, first, end)
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
            finish_file(
                out,
                repository=repository,
                files=names,
                filter_bytes=filter_bytes,
                hashes=hashes,
                groups=groups,
                directory=directory.astype("<u8").tobytes(),
                bloom=writer.filter.data,
                counts=(writer.records, writer.blocks, writer.unique),
            )
    return BuildResult(damaged)

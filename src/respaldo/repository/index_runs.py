"""Writing and merging runs of the chunk index cache in plain Python, in bounded memory.

A *run* is one file in the cache's format (:mod:`respaldo.repository.index_cache`): the
main cache ``chunkindex.cix`` is one, and so is each *side run*, a small file that covers
a few index files the main one does not cover yet: a backup's own index files as it
writes them, or files another machine wrote. Side runs are what keeps a process's memory
flat: before, a backup held every chunk it stored in a dict merged into numpy arrays
(72 MiB at 10 GB), and a process that opened the repository after a backup held up to
262,144 entries of the index files the cache did not cover (70 MiB).

Nothing here imports numpy (20 MiB of a process's memory): a side run is at most
``SIDE_RECORDS_MAX`` records sorted in memory, and runs are merged by streaming their
records, already sorted, through :func:`heapq.merge`, a few blocks of each at a time.
Each record costs a few microseconds of Python: a backup's index file of 16,384 chunks
about 0.05 CPU-s, a merge of half a million records about 2 CPU-s.
"""

from __future__ import annotations

import heapq
import math
import struct
import zlib
from array import array
from collections.abc import Iterable, Iterator, Sequence
from operator import itemgetter
from pathlib import Path

from respaldo.repository.index import _groups
from respaldo.repository.index_cache import (
    FILTER_MAX,
    GROUP,
    PER_BLOCK,
    TRAILER,
    CacheRun,
    Record,
    _block_seed,
    finish_file,
    new_file,
)
from respaldo.repository.packs import ENTRY

_U32 = struct.Struct("<I")
_LOCATION = struct.Struct("<IIII")

Source = tuple[str, int, bytes]
"""An index file to cover: (name, size of the stored object, plaintext)."""


def filter_shape(records: int) -> tuple[int, int]:
    """(bytes, hashes) of a run's filter for ``records`` records: about 10 bits a record,
    a power of two between 8 KiB and FILTER_MAX (the same rule as the bulk build)."""
    size = min(FILTER_MAX, 2 ** max(13, math.ceil(math.log2(records * 10 / 8 + 1))))
    hashes = max(1, min(2, round(size * 8 / max(1, records) * math.log(2))))
    return size, hashes


def _block(batch: list[Record], number: int) -> bytes:
    n = len(batch)
    parts = [struct.pack(f"<{n}Q", *[r[0] for r in batch]), bytes((PER_BLOCK - n) * 8)]
    for _, rest, group, offset, length, raw in batch:
        body = rest + _LOCATION.pack(group, offset, length, raw)
        parts.append(body)
        parts.append(_U32.pack(zlib.crc32(body)))
    head = b"".join(parts)
    head += bytes(TRAILER - len(head))
    return head + _U32.pack(n) + _U32.pack(zlib.crc32(head, _block_seed(number)))


def write_run(
    path: Path,
    repository: str,
    files: Sequence[tuple[str, int]],
    groups: Sequence[bytes],
    records: Iterable[Record],
    estimate: int,
) -> None:
    """Write a run of ``records`` (sorted by key; of one key, in the order they are to be
    found) to ``path``, atomically (a temporary file in the same directory, fsynced,
    renamed). ``groups`` are the 36-byte group entries (pack id, file number in
    ``files``) the records name; ``estimate`` sizes the filter. The caller holds the
    cache's lock (:func:`respaldo.repository.index_cache.locked`): a temporary file
    found without it is a leftover of a killed process."""
    filter_bytes, hashes = filter_shape(estimate)
    bloom = bytearray(filter_bytes)
    mask = filter_bytes * 8 - 1
    directory: list[int] = []
    blocks = count = unique = 0
    last: tuple[int, bytes] | None = None
    with new_file(path) as out:
        batch: list[Record] = []
        for record in records:
            key, rest = record[0], record[1]
            if (key, rest) != last:
                unique += 1
                last = (key, rest)
            word = int.from_bytes(rest[:8], "little")
            bit = word & mask
            bloom[bit >> 3] |= 1 << (bit & 7)
            if hashes > 1:
                bit = (word >> 32) & mask
                bloom[bit >> 3] |= 1 << (bit & 7)
            batch.append(record)
            if len(batch) == PER_BLOCK:
                directory.append(batch[0][0])
                out.write(_block(batch, blocks))
                blocks += 1
                count += len(batch)
                batch = []
        if batch:
            directory.append(batch[0][0])
            out.write(_block(batch, blocks))
            blocks += 1
            count += len(batch)
        finish_file(
            out,
            repository=repository,
            files=[list(f) for f in files],
            filter_bytes=filter_bytes,
            hashes=hashes,
            groups=groups,
            directory=struct.pack(f"<{blocks}Q", *directory),
            bloom=bloom,
            counts=(count, blocks, unique),
        )


def write_side(path: Path, repository: str, sources: Sequence[Source]) -> None:
    """Write a run covering the index files ``sources``, their entries sorted in memory
    (about 100 bytes each: callers keep sources small, at most SIDE_RECORDS_MAX entries).
    Raises ValueError for a malformed plaintext."""
    files: list[tuple[str, int]] = []
    groups: list[bytes] = []
    # Per entry one int, its sort key above its number, and where it is; its record is
    # made only as it is written. A tuple of six objects per entry was ~280 bytes: 4.5 MiB
    # at a backup's every index flush (16,384 entries), a spike on top of its peak; a
    # list of keys sorted through a list of numbers, 1.7.
    keyed: list[int] = []
    where = array("Q")  # offset of the entry in its source's plaintext
    owner = array("I")  # its group
    source = array("I")  # its source
    for file_no, (name, size, data) in enumerate(sources):
        files.append((name, size))
        tail = file_no.to_bytes(4, "little")
        for pack_id, count, pos in _groups(data):
            group = len(groups)
            groups.append(bytes.fromhex(pack_id) + tail)
            for at in range(pos, pos + count * ENTRY.size, ENTRY.size):
                keyed.append(_KEY.unpack_from(data, at)[0] << _NUMBER_BITS | len(where))
                where.append(at)
                owner.append(group)
                source.append(file_no)
    if len(where) >> _NUMBER_BITS:
        raise ValueError(f"a side run of {len(where)} entries is too large")
    keyed.sort()  # among equal keys by number: the files' order

    def records() -> Iterator[Record]:
        for k in keyed:
            i = k & _NUMBER_MASK
            chunk_id, offset, length, raw = ENTRY.unpack_from(sources[source[i]][2], where[i])
            yield k >> _NUMBER_BITS, chunk_id[8:], owner[i], offset, length, raw

    write_run(path, repository, files, groups, records(), len(where))


_NUMBER_BITS = 32
_NUMBER_MASK = (1 << _NUMBER_BITS) - 1


_KEY = struct.Struct(">Q")
"""A record's sort key: the chunk id's first 8 bytes, big-endian."""


MERGE_STEP = 16
"""Blocks read from each run at a time while merging (64 KiB: 36 side runs, a 10 GB
backup's, hold 2.3 MiB)."""


def _regrouped(run: CacheRun, base: int) -> Iterator[Record]:
    for key, rest, group, offset, length, raw in run.iter_records(MERGE_STEP):
        yield key, rest, group + base, offset, length, raw


def merge_runs(path: Path, repository: str, runs: Sequence[CacheRun]) -> None:
    """Write one run with every record of ``runs`` (which cover distinct index files),
    streaming: a few blocks of each run are in memory at a time. Of one key, records of
    an earlier run come first. Raises CacheCorrupt if a run is damaged."""
    files: list[tuple[str, int]] = []
    groups: list[bytes] = []
    streams = []
    for run in runs:
        file_base = len(files)
        files.extend(run.files)
        streams.append(_regrouped(run, len(groups)))
        for g in range(len(run.groups) // GROUP):
            file_no = run.file_of(g) + file_base
            groups.append(
                bytes(run.groups[g * GROUP : g * GROUP + 32]) + file_no.to_bytes(4, "little")
            )
    merged = heapq.merge(*streams, key=itemgetter(0))
    write_run(path, repository, files, groups, merged, sum(r.records for r in runs))

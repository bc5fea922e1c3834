"""A side run of the chunk index cache, written for each index file a backup stores, is
sorted without a Python tuple per entry: the same file, in a fraction of the memory."""

from __future__ import annotations

import random
import tracemalloc
from operator import itemgetter
from pathlib import Path

import pytest

from respaldo.repository import index_runs
from respaldo.repository.index import _groups, encode_index
from respaldo.repository.index_cache import Record
from respaldo.repository.packs import ENTRY, PackEntry

pytestmark = pytest.mark.unit

MIB = 1 << 20
REPOSITORY = "00112233445566778899aabbccddeeff"


def _plaintext(entries: int, seed: int) -> bytes:
    """An index file's plaintext: packs of 1,600 entries, some chunk ids sharing their
    first 8 bytes (equal sort keys, whose order must be kept)."""
    rng = random.Random(seed)
    groups = []
    for p in range(0, entries, 1600):
        rows = []
        for i in range(min(1600, entries - p)):
            cid = rng.randbytes(32) if i % 50 else bytes(8) + rng.randbytes(24)
            rows.append(PackEntry(cid, i * 7000, 7000, 16000))
        groups.append((rng.randbytes(32).hex(), rows))
    return encode_index(groups)


def _reference(path: Path, sources: list[tuple[str, int, bytes]]) -> None:
    """The side run as it was written before: a tuple per entry, sorted by key."""
    files: list[tuple[str, int]] = []
    groups: list[bytes] = []
    records: list[Record] = []
    for file_no, (name, size, data) in enumerate(sources):
        files.append((name, size))
        for pack_id, count, pos in _groups(data):
            group = len(groups)
            groups.append(bytes.fromhex(pack_id) + file_no.to_bytes(4, "little"))
            for chunk_id, offset, length, raw in ENTRY.iter_unpack(
                data[pos : pos + count * ENTRY.size]
            ):
                record: Record = (
                    int.from_bytes(chunk_id[:8], "big"),
                    chunk_id[8:],
                    group,
                    offset,
                    length,
                    raw,
                )
                records.append(record)
    records.sort(key=itemgetter(0))
    index_runs.write_run(path, REPOSITORY, files, groups, records, len(records))


def test_a_side_run_is_the_file_it_was(tmp_path: Path) -> None:
    sources = [
        ("index/" + "a" * 64, 1000, _plaintext(5000, 1)),
        ("index/" + "b" * 64, 900, _plaintext(3000, 2)),
    ]
    index_runs.write_side(tmp_path / "new.run", REPOSITORY, sources)
    _reference(tmp_path / "old.run", sources)
    assert (tmp_path / "new.run").read_bytes() == (tmp_path / "old.run").read_bytes()


def test_a_side_run_of_an_index_flush_holds_little_beyond_its_input(tmp_path: Path) -> None:
    # 16,384 entries, an index flush of a backup: a tuple of six objects per entry held
    # about 4.5 MiB (part of the peak of a backup, measured at each flush); a list of
    # keys sorted through a list of numbers, 1.8.
    sources = [("index/" + "c" * 64, 1000, _plaintext(16384, 3))]
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        index_runs.write_side(tmp_path / "side.run", REPOSITORY, sources)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1.4 * MIB, f"peak {peak / MIB:.2f} MiB"


def test_an_index_flush_is_encoded_in_twice_its_size() -> None:
    # A bytes object per entry, joined: 4.8 times the file's size (3.5 MiB for the
    # 0.75 MiB of a flush of 16,384 entries), at the moment of a backup's peak.
    rng = random.Random(4)
    groups = [
        (
            rng.randbytes(32).hex(),
            [PackEntry(rng.randbytes(32), i * 7000, 7000, 16000) for i in range(1600)],
        )
        for _ in range(11)
    ]
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        data = encode_index(groups)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak < 2.2 * len(data), f"{peak / len(data):.2f} times its size"
    decoded = [
        (
            pack_id,
            [
                PackEntry(*ENTRY.unpack_from(data, at))
                for at in range(pos, pos + count * ENTRY.size, ENTRY.size)
            ],
        )
        for pack_id, count, pos in _groups(data)
    ]
    assert decoded == groups

"""The cache's runs at the edges of their layout, against plain lists of the index files'
entries: every record of a chunk (``find``), its first (``first``, ``first_many``), the
blocks a key range needs (``block_range``, which a rebuild reads the old run with), the
blocks a reader's miss must find sound (``check_miss``), for runs written from index
files, merged from side runs and built with numpy (from the files and from an old run).

The edge that matters: a key whose records run over the end of one block into the next
(copies of a chunk several files describe, or two ids that share their first 8 bytes),
the key opening that next block and lying exactly on a slot boundary of the top table
(``t << (64 - bits)``) or on a bucket boundary of the build. There a search that starts
at the block the key opens misses the records before it: a chunk the repository holds
then looks absent (a restore fails; a backup stores it again) or answers with a later
copy (the quarantined one, where the first is good). Random ids almost never land there,
so the ids here are made to: keys on the boundaries and beside them, 1 to 90 copies of a
chunk (78 records fill a block), up to three ids per key."""

from __future__ import annotations

import bisect
import hashlib
import itertools
import os
import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from respaldo.repository import index_build, index_cache, index_runs
from respaldo.repository.index import (
    CacheCorrupt,
    ChunkIndex,
    Location,
    decode_index,
    encode_index,
)
from respaldo.repository.index_cache import BLOCK, PER_BLOCK, TRAILER, CacheRun
from respaldo.repository.packs import PackEntry
from tests.unit.repository.test_merged_index_cache import _files as _random_files

pytestmark = pytest.mark.unit

TOP = 2**64
REPO = "repo-id"
GRID = sorted(
    {m << 60 for m in range(16)}
    | {(m << 60) + d for m in range(1, 16) for d in (-1, 1)}
    | {1, TOP - 2, TOP - 1}
)
"""Every slot boundary of a top table of up to 16 slots, which (multiples of 2^60) are
slot boundaries of the larger ones too (runs here have at most 33 blocks: 64 slots) and
bucket boundaries of the build (BUCKET_RECORDS made 64: up to 64 buckets); and the keys
beside them, the smallest and the largest."""


@dataclass
class Layout:
    files: list[tuple[str, bytes]]
    """(name, plaintext) of each index file, in listing order."""
    copies: dict[bytes, list[Location]]
    """Each chunk's copies in file order: what ``find`` answers."""
    keys: list[int]
    """The key of every record, sorted: record n of a run is in block n // PER_BLOCK."""


def _pack(f: int) -> str:
    return hashlib.sha256(f"pack {f}".encode()).hexdigest()


def _make(keyed: Sequence[tuple[int, Sequence[int]]], filler: Sequence[int]) -> Layout:
    """Index files holding, for each (key, copies) of ``keyed``, one id per number in
    ``copies`` (all with that key) and that many copies of it (copy c in file c, one
    pack a file), and one copy of an id for each key of ``filler`` (in file 0). Every
    id has its own last 24 bytes; every entry its own location."""
    serial = itertools.count()
    chunks: list[tuple[bytes, int]] = []

    def new_id(key: int) -> bytes:
        return key.to_bytes(8, "big") + hashlib.sha256(b"%d" % next(serial)).digest()[:24]

    for key in filler:
        chunks.append((new_id(key), 1))
    for key, counts in keyed:
        chunks += [(new_id(key), n) for n in counts]
    per_file: list[list[PackEntry]] = [[] for _ in range(max(n for _, n in chunks))]
    copies: dict[bytes, list[Location]] = {}
    for cid, n in chunks:
        for f in range(n):
            at = next(serial)
            entry = PackEntry(cid, 36 + at, 1 + at, 2 + at)
            per_file[f].append(entry)
            copies.setdefault(cid, []).append(Location(_pack(f), entry.offset, at + 1, at + 2))
    files = [
        (f"index/{f:064x}", encode_index([(_pack(f), entries)]))
        for f, entries in enumerate(per_file)
    ]
    keys = sorted(int.from_bytes(cid[:8], "big") for cid, n in chunks for _ in range(n))
    return Layout(files, copies, keys)


def _edges(layout: Layout, rng: random.Random) -> list[int]:
    """The keys worth probing: the grid's, those of chunks with several copies or ids,
    those opening a block, and a few others."""
    keys = layout.keys
    crowded = {k for k in keys if bisect.bisect_right(keys, k) - bisect.bisect_left(keys, k) > 1}
    others = rng.sample(keys, min(10, len(keys)))
    return sorted({*GRID, *crowded, *keys[::PER_BLOCK], *others})


def _misses(layout: Layout, rng: random.Random) -> list[bytes]:
    """Ids nobody stored that get past the filter or land beside stored keys: another id
    with a stored key, the keys beside it, a stored id's filter bytes (or all of it but
    its key) under another key, keys 0 and 2^64 - 1."""
    stored = sorted(layout.copies)
    out = []
    for key in _edges(layout, rng):
        for k in (key - 1, key, key + 1):
            if 0 <= k < TOP:
                out.append(k.to_bytes(8, "big") + rng.randbytes(24))
    for cid in rng.sample(stored, min(20, len(stored))):
        out.append(rng.randbytes(8) + cid[8:16] + rng.randbytes(16))
        # All but the key a stored id's: the record a search lands on beside it.
        key = int.from_bytes(cid[:8], "big")
        out += [k.to_bytes(8, "big") + cid[8:] for k in (key - 1, key + 1) if 0 <= k < TOP]
    out += [bytes(8) + rng.randbytes(24), b"\xff" * 8 + rng.randbytes(24)]
    return [cid for cid in out if cid not in layout.copies]


def _sources(files: Sequence[tuple[str, bytes]]) -> list[tuple[str, int, bytes]]:
    return [(name, len(data), data) for name, data in files]


def _runs(layout: Layout, directory: Path) -> dict[str, CacheRun]:
    """The same index files as a run written whole, merged from three side runs, built
    by numpy from the files, and built again from the first two runs as old runs."""
    files = layout.files
    runs = {}
    index_runs.write_side(directory / "written.cix", REPO, _sources(files))
    runs["written"] = CacheRun(directory / "written.cix")
    cuts = [0, len(files) // 3, 2 * len(files) // 3, len(files)]
    parts = []
    for n in range(3):
        index_runs.write_side(
            directory / f"side{n}.cix", REPO, _sources(files[cuts[n] : cuts[n + 1]])
        )
        parts.append(CacheRun(directory / f"side{n}.cix"))
    index_runs.merge_runs(directory / "merged.cix", REPO, parts)
    runs["merged"] = CacheRun(directory / "merged.cix")
    listing = {name: len(data) for name, data in files}
    read = dict(files).__getitem__
    # Small buckets: their boundaries fall on the grid, and the rebuilds read old runs
    # by key range (block_range) there.
    with mock.patch.object(index_build, "BUCKET_RECORDS", 64):
        index_build.build(directory / "built.cix", REPO, listing, read)
        runs["built"] = CacheRun(directory / "built.cix")
        index_build.build(directory / "rebuilt.cix", REPO, listing, read, runs["written"])
        runs["rebuilt"] = CacheRun(directory / "rebuilt.cix")
        index_build.build(directory / "mixed.cix", REPO, listing, read, parts[0])
        runs["from an old run and files"] = CacheRun(directory / "mixed.cix")
    for run in parts:
        run.close()
    return runs


def _found(run: CacheRun, chunk_id: bytes) -> list[Location]:
    return [Location(run.pack_id(g), o, n, r) for g, o, n, r in run.find(chunk_id)]


def _flip(path: Path, at: int) -> None:
    fd = os.open(path, os.O_RDWR)
    try:
        os.pwrite(fd, bytes([os.pread(fd, 1, at)[0] ^ 0x40]), at)
    finally:
        os.close(fd)


def _check_run(
    name: str, run: CacheRun, layout: Layout, misses: list[bytes], edges: list[int]
) -> None:
    """Every answer of ``run`` (sound) against ``layout``."""
    keys = layout.keys
    assert [f for f, _ in run.files] == [f for f, _ in layout.files], name
    assert run.records == len(keys) and run.blocks == -(-len(keys) // PER_BLOCK), name
    assert list(run.directory) == keys[::PER_BLOCK], name
    stored = list(layout.copies)
    for cid in stored:
        assert _found(run, cid) == layout.copies[cid], (name, cid.hex())
        assert run.first(cid) == layout.copies[cid][0], (name, cid.hex())
    for cid in misses:
        assert run.find(cid) == [] and run.first(cid) is None, (name, cid.hex())
        run.check_miss(cid)  # sound: no damage found
    asked = [*stored, *misses]
    random.Random(len(asked)).shuffle(asked)
    for order in (asked, sorted(asked)):
        want = [layout.copies[c][0] if c in layout.copies else None for c in order]
        assert run.first_many(order) == want, name
    # block_range: every record of a key in [low, high) is in the blocks it gives.
    for low, high in zip(edges, [*edges[1:], None], strict=True):
        for top in (high, None):
            first, end = run.block_range(low, top)
            lo = bisect.bisect_left(keys, low)
            hi = len(keys) if top is None else bisect.bisect_left(keys, top)
            if hi > lo:
                assert first <= lo // PER_BLOCK and (hi - 1) // PER_BLOCK < end, (name, low)


def _check_misses_find_damage(run: CacheRun, layout: Layout, rng: random.Random) -> None:
    """A reader's miss checks every block that holds records of its key (or, for a key
    nobody stored, the block it falls inside): each one damaged in turn (a byte past
    its records, under its crc32) makes ``check_miss`` raise."""
    keys = layout.keys
    for key in _edges(layout, rng):
        lo, hi = bisect.bisect_left(keys, key), bisect.bisect_right(keys, key)
        miss = key.to_bytes(8, "big") + rng.randbytes(24)
        for block in range(lo // PER_BLOCK, (hi - 1) // PER_BLOCK + 1):
            at = BLOCK + block * BLOCK + TRAILER - 1
            _flip(run.path, at)
            try:
                with pytest.raises(CacheCorrupt, match=f"block {block} does not match"):
                    run.check_miss(miss)
            finally:
                _flip(run.path, at)


def _check_index(run: CacheRun, layout: Layout) -> None:
    """The index over ``run`` passes over quarantined copies: the first copy of every
    chunk with several, every copy of one in three of them."""

    def no_rebuild(bad: CacheRun) -> CacheRun:
        raise AssertionError("a sound run was taken for a damaged one")

    exclude: dict[str, set[bytes]] = {}
    for n, (cid, locations) in enumerate(layout.copies.items()):
        if n % 3 == 0:
            quarantined = locations
        elif len(locations) > 1:
            quarantined = locations[:1]
        else:
            continue
        for location in quarantined:
            exclude.setdefault(location.pack_id, set()).add(cid)
    index = ChunkIndex()
    index.attach_cache(run, exclude, no_rebuild)
    for cid, locations in layout.copies.items():
        left = [loc for loc in locations if cid not in exclude.get(loc.pack_id, ())]
        assert index.get(cid) == (left[0] if left else None), cid.hex()


def _copies_of(files: Sequence[tuple[str, bytes]]) -> dict[bytes, list[Location]]:
    """Each chunk's copies in ``files``, in file order."""
    out: dict[bytes, list[Location]] = {}
    for _, data in files:
        for pack_id, entries in decode_index(data):
            for e in entries:
                out.setdefault(e.chunk_id, []).append(
                    Location(pack_id, e.offset, e.length, e.raw_length)
                )
    return out


def _check_all(layout: Layout, seed: int) -> None:
    rng = random.Random(seed)
    misses = _misses(layout, rng)
    edges = _edges(layout, rng)
    # Not what is tested, and each run's fsync took 20 ms of a loaded disk's time.
    with tempfile.TemporaryDirectory() as scratch, mock.patch.object(os, "fsync"):
        runs = _runs(layout, Path(scratch))
        try:
            for name, run in runs.items():
                _check_run(name, run, layout, misses, edges)
            _check_misses_find_damage(runs["written"], layout, rng)
            _check_index(runs["built"], layout)
        finally:
            for run in runs.values():
                run.close()
    # The index without a cache (every index file in memory) answers the same.
    memory = ChunkIndex.from_files(data for _, data in layout.files)
    for cid, locations in layout.copies.items():
        assert memory.get(cid) == locations[0]
    assert all(memory.get(cid) is None for cid in misses)


_KEYS = st.one_of(st.sampled_from(GRID), st.integers(0, TOP - 1))


@settings(max_examples=25)
@given(
    keyed=st.lists(
        st.tuples(_KEYS, st.lists(st.integers(1, 90), min_size=1, max_size=3)),
        min_size=1,
        max_size=8,
        unique_by=lambda item: item[0],
    ),
    fillers=st.integers(0, 400),
    seed=st.integers(0, 2**32 - 1),
)
def test_runs_answer_as_the_index_files_at_every_edge(
    keyed: list[tuple[int, list[int]]], fillers: int, seed: int
) -> None:
    """Keys from the grid of boundaries and random ones, each with up to three ids of
    up to 90 copies, among up to 400 ids of one copy (one in ten on the grid too)."""
    rng = random.Random(seed)
    filler = [
        rng.choice(GRID) if rng.random() < 0.1 else rng.randrange(TOP) for _ in range(fillers)
    ]
    _check_all(_make(keyed, filler), seed)


def _boundary_layout() -> tuple[Layout, int, bytes, bytes]:
    """Five blocks (a top table of 3 bits: slots of 2^61), key 2^63 on a slot boundary
    (and every bucket boundary) opening block 2, its records starting in block 1: id
    ``alone`` (one copy, file 0) and id ``shared`` (ten copies, files 0 to 9), six of
    the eleven records in block 1. Returns (layout, key, alone, shared)."""
    key = 1 << 63
    rng = random.Random(5)
    below = sorted(rng.randrange(key) for _ in range(2 * PER_BLOCK - 6))
    above = sorted(rng.randrange(key + 1, TOP) for _ in range(5 * PER_BLOCK - len(below) - 11))
    layout = _make([(key, [1, 10])], [*below, *above])
    alone, shared = (cid for cid in layout.copies if cid[:8] == key.to_bytes(8, "big"))
    assert len(layout.copies[alone]) == 1 and len(layout.copies[shared]) == 10
    return layout, key, alone, shared


def test_a_key_on_a_slot_boundary_finds_its_records_in_the_block_before(tmp_path: Path) -> None:
    """The layout of :func:`_boundary_layout`: the id whose only record is in the block
    before the one its key opens is found (it was absent, to a search that began at the
    block the key opens), and the shared one's first copy is its first (not the sixth,
    the first record of block 2), also when the copies in block 2 are quarantined."""
    layout, key, alone, shared = _boundary_layout()
    index_runs.write_side(tmp_path / "run.cix", REPO, _sources(layout.files))
    run = CacheRun(tmp_path / "run.cix")
    assert run.blocks == 5 and run.directory[2] == key and key % (1 << run.top_shift) == 0
    assert layout.keys.index(key) == 2 * PER_BLOCK - 6  # six records of it in block 1
    assert _found(run, alone) == layout.copies[alone]
    assert _found(run, shared) == layout.copies[shared]
    assert run.first(shared) == layout.copies[shared][0]
    assert run.first_many([alone, shared]) == [layout.copies[alone][0], layout.copies[shared][0]]
    assert run.block_range(key, None)[0] == 1
    _check_misses_find_damage(run, layout, random.Random(6))
    # The copies in block 2 quarantined: the first copy, in block 1, is the good one.
    exclude = {loc.pack_id: {shared} for loc in layout.copies[shared][5:]}
    index = ChunkIndex()
    index.attach_cache(run, exclude, lambda bad: bad)
    assert index.get(shared) == layout.copies[shared][0]
    assert index.get(alone) == layout.copies[alone][0]


def test_a_rebuild_keeps_the_records_before_a_bucket_boundary(tmp_path: Path) -> None:
    """Rebuilding from an old run (a file added, say) reads it bucket by bucket: the
    bucket from 2^63 on must read block 1 too, and the bucket before must keep what
    block 1 holds below 2^63."""
    layout, key, alone, shared = _boundary_layout()
    old_files = layout.files[:-1]
    index_runs.write_side(tmp_path / "old.cix", REPO, _sources(old_files))
    old = CacheRun(tmp_path / "old.cix")
    assert old.directory[2] == key and old.blocks == 5
    listing = {name: len(data) for name, data in layout.files}
    with mock.patch.object(index_build, "BUCKET_RECORDS", 64):
        index_build.build(tmp_path / "new.cix", REPO, listing, dict(layout.files).__getitem__, old)
    new = CacheRun(tmp_path / "new.cix")
    assert [f for f, _ in new.files] == [f for f, _ in layout.files]
    assert _found(new, alone) == layout.copies[alone]
    assert _found(new, shared) == layout.copies[shared]
    assert new.records == len(layout.keys)


@pytest.mark.parametrize("seed", [1, 2])
def test_runs_answer_as_the_index_files_around_every_boundary(seed: int) -> None:
    """Every key of the grid, each with a chunk of several copies and a second id: the
    same checks as the property test, on two large layouts (19 and 23 blocks)."""
    rng = random.Random(seed)
    keyed = [(key, [rng.randint(1, 40), rng.randint(1, 12)]) for key in GRID]
    filler = [rng.randrange(TOP) for _ in range(rng.randint(0, 200))]
    _check_all(_make(keyed, filler), seed)


def test_a_run_of_empty_index_files_answers_nothing(tmp_path: Path) -> None:
    """Index files with no entries (an empty file, an empty group) make a run of no
    blocks: every lookup misses, at the smallest and largest keys too, and the index
    over it finds the chunks of the files beside it."""
    empty = [
        ("index/" + "e" * 64, encode_index([])),
        ("index/" + "f" * 64, encode_index([(_pack(0), [])])),
    ]
    index_runs.write_side(tmp_path / "empty.cix", REPO, _sources(empty))
    run = CacheRun(tmp_path / "empty.cix")
    assert run.blocks == 0 and run.records == 0 and len(run.files) == 2
    probes = [bytes(32), b"\xff" * 32, random.Random(7).randbytes(32)]
    for cid in probes:
        assert run.first(cid) is None and run.find(cid) == []
        run.check_miss(cid)
    assert run.first_many(probes) == [None] * 3
    assert run.block_range(0, None) == (0, 0)
    layout, _, alone, _ = _boundary_layout()
    files = {**dict(layout.files), **dict(empty)}
    loaded = index_cache.load_cached(
        tmp_path / "cache",
        REPO,
        lambda: {n: len(d) for n, d in files.items()},
        files.__getitem__,
        (KeyError,),
        {},
    )
    assert loaded is not None
    assert loaded[0].get(alone) == layout.copies[alone][0]
    assert all(loaded[0].get(cid) is None for cid in probes)


@pytest.mark.parametrize("removed", [0, 1, 2], ids=lambda n: f"{n}-sources-removed")
def test_a_side_merge_killed_before_it_removed_its_sources(tmp_path: Path, removed: int) -> None:
    """A process merging side runs is killed after the merged run is in place and before
    it removed all the runs it took in (none, or some of them): the next open keeps
    each index file covered by one run only, and finds every chunk where an index file
    says it is (the files a removed run covered are read again into a run after the
    others: a chunk both describe may then answer with its later copy, as valid)."""
    # The last file repeats half of the one before: copies in two side runs, then in one.
    files = list(_random_files(10, 60, seed=41).items())
    cache = tmp_path / "cache"

    def load(upto: int) -> ChunkIndex:
        listed = dict(files[:upto])
        loaded = index_cache.load_cached(
            cache,
            REPO,
            lambda: {n: len(d) for n, d in listed.items()},
            listed.__getitem__,
            (KeyError,),
            {},
        )
        assert loaded is not None
        return loaded[0]

    for upto in (7, 8, 9, 10):  # the main run, then a side run for each file added
        index = load(upto)
    assert len(index._sides) == 3
    sides = sorted(cache.glob(f"{index_cache.SIDE_PREFIX}*.cix"))
    with index_cache.locked(cache):
        index_runs.merge_runs(
            index_cache.side_path(cache), REPO, [CacheRun(path) for path in sides]
        )
    for path in sides[:removed]:
        path.unlink()
    again = load(10)
    covering = [name for run in (again._run, *again._sides) if run for name, _ in run.files]
    assert sorted(covering) == sorted(name for name, _ in files)
    on_disk = sorted(cache.glob(f"{index_cache.SIDE_PREFIX}*.cix"))
    assert on_disk == sorted(run.path for run in again._sides)  # the overlapping one gone
    expected = _copies_of(files)
    for cid, locations in expected.items():
        assert again.get(cid) in locations, cid.hex()
    assert len(expected) == 10 * 60 - 2 * 30 and again.get(bytes(32)) is None

"""The chunk index's lookup through the local cache (``CacheRun.first``, the short path
every backup and restore takes): it answers exactly as the index files do, from the
cache, the files it does not cover yet and the chunks added since; ids at block
boundaries, ids sharing a key and chunks with many copies take the long path; a damaged
record is never used."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from respaldo.repository import index_cache
from respaldo.repository.index import ChunkIndex, Location, encode_index
from respaldo.repository.packs import PackEntry
from respaldo.storage.base import Storage
from tests.unit.repository.helpers import init_repo, open_repo, random_bytes, write_backup
from tests.unit.repository.test_merged_index_cache import (
    _all,
    _cache_path,
    _files,
    _flip,
    _ids,
    _record_of,
)

pytestmark = pytest.mark.unit


def _load(
    cache: Path, files: dict[str, bytes], exclude: dict[str, set[bytes]] | None = None
) -> ChunkIndex:
    loaded = index_cache.load_cached(
        cache,
        "repo-id",
        lambda: {name: len(data) for name, data in files.items()},
        files.__getitem__,
        (KeyError,),
        exclude or {},
    )
    assert loaded is not None
    return loaded[0]


def _probes(known: list[bytes], seed: int) -> list[bytes]:
    """Random known ids, runs of neighbours in key order (whole blocks of the cache and
    the ids that open them), repeats, and ids nobody stored."""
    rng = random.Random(seed)
    ordered = sorted(known)
    start = rng.randrange(len(ordered) - 200)
    probes = [
        *rng.sample(known, 300),
        *ordered[start : start + 200],  # whole blocks and their boundaries
        *(rng.randbytes(32) for _ in range(100)),
        *rng.choices(known, k=50),  # asked twice
        ordered[0],
        ordered[-1],
    ]
    rng.shuffle(probes)
    return probes + probes[:20]


def test_lookups_answer_as_the_index_files_do(tmp_path: Path) -> None:
    files = _files(12, 400, seed=21)
    _load(tmp_path, files)  # the cache covers these
    extra = _files(1, 300, seed=22)  # a file the cache does not cover yet: a side run
    files.update(extra)
    index = _load(tmp_path, files)
    assert index._run is not None and index._sides
    rng = random.Random(23)
    added = [PackEntry(rng.randbytes(32), 36 + i * 10, 9, 12) for i in range(700)]
    index.add_pack("ab" * 32, added)  # chunks a backup added since: the dict
    known = [*_ids(files), *(e.chunk_id for e in added)]
    probes = _probes(known, seed=24)
    memory = ChunkIndex.from_files(files.values())
    memory.add_pack("ab" * 32, added)
    expected = [memory.get(cid) for cid in probes]
    assert [index.get(cid) for cid in probes] == expected
    assert [cid in index for cid in probes] == [found is not None for found in expected]
    assert sum(found is None for found in expected) >= 100


def test_copies_of_one_chunk_over_several_blocks_pass_over_quarantined_ones(
    tmp_path: Path,
) -> None:
    """A chunk several index files describe has a record per copy, neighbours in the
    cache: 200 copies run over three blocks, and the first copies not excluded is in
    the last of them."""
    rng = random.Random(31)
    shared = rng.randbytes(32)
    files: dict[str, bytes] = {}
    packs = []
    for f in range(200):
        pack_id = f"{f:064x}"
        packs.append(pack_id)
        entries = [PackEntry(shared, 36, 50, 60)] + [
            PackEntry(rng.randbytes(32), 100 + i * 60, 50, 60) for i in range(5)
        ]
        files[f"index/{f:064x}"] = encode_index([(pack_id, entries)])
    exclude = {pack_id: {shared} for pack_id in packs[:180]}
    index = _load(tmp_path, files, exclude)
    assert index._run is not None and index._base is None
    memory = ChunkIndex.from_files(files.values(), exclude)
    probes = [shared, *rng.sample(_ids(files), 100), rng.randbytes(32)]
    got = [index.get(cid) for cid in probes]
    assert got == [memory.get(cid) for cid in probes]
    assert got[0] == Location(packs[180], 36, 50, 60)
    assert index.get(shared[:8] + rng.randbytes(24)) is None  # same key, another id


def copies_over_blocks_and_a_twin(rng: random.Random) -> tuple[bytes, bytes, dict[str, bytes]]:
    """Index files (name -> bytes) in which chunk ``shared`` has 200 copies (over three
    blocks of the cache, its key opening one), and chunk ``twin`` shares its first 8
    bytes (the key) with an id of the first file, in a later file; returns (shared,
    twin, files)."""
    shared = rng.randbytes(32)
    files: dict[str, bytes] = {}
    for f in range(200):
        entries = [PackEntry(shared, 36 + f, 50, 60)] + [
            PackEntry(rng.randbytes(32), 100 + i * 60, 50, 60) for i in range(5)
        ]
        files[f"index/{f:064x}"] = encode_index([(f"{f:064x}", entries)])
    twin = files["index/" + f"{0:064x}"][5 + 36 + 44 : 5 + 36 + 44 + 8] + rng.randbytes(24)
    files["index/" + "f" * 64] = encode_index([("e" * 64, [PackEntry(twin, 36, 70, 80)])])
    return shared, twin, files


def test_copies_of_one_chunk_over_several_blocks_answer_the_first_copy(tmp_path: Path) -> None:
    """Without quarantined copies the fast single lookup answers; a chunk with many
    records (over three blocks) and one whose key opens a block go the long way."""
    rng = random.Random(33)
    shared, twin, files = copies_over_blocks_and_a_twin(rng)
    index = _load(tmp_path, files)
    memory = ChunkIndex.from_files(files.values())
    assert index.get(shared) == memory.get(shared) == Location(f"{0:064x}", 36, 50, 60)
    assert index.get(twin) == memory.get(twin) == Location("e" * 64, 36, 70, 80)
    known = _ids(files)
    assert [index.get(cid) for cid in known] == [memory.get(cid) for cid in known]


def test_a_corrupt_record_is_never_used_and_the_cache_is_rebuilt(
    storage: Storage, tmp_path: Path
) -> None:
    repo = init_repo(storage)
    for i in range(3):
        write_backup(repo, f"b{i}", {"dump": random_bytes(20_000, seed=i)})
    cache = tmp_path / "cache"
    repo = open_repo(storage, cache_dir=cache)
    expected = _all(repo)
    chunk_id = sorted(expected)[len(expected) // 3]
    path = _cache_path(cache, repo)
    _flip(path, _record_of(path, chunk_id) + 24 + 4)  # its offset in the pack
    reopened = open_repo(storage, cache_dir=cache)
    damaged = reopened.index._run
    assert {cid: reopened.index.get(cid) for cid in expected} == expected
    assert reopened.index._run is not damaged  # rebuilt, and sound again
    assert {cid: reopened.index.get(cid) for cid in expected} == expected


@pytest.mark.parametrize("damage", ["bad count", "cut short"])
@pytest.mark.parametrize("many", [False, True], ids=["get", "get_many"])
def test_a_damaged_block_is_never_used_and_the_cache_is_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str, many: bool
) -> None:
    """A block whose count of records no block can have, or that the file no longer
    holds whole (cut after the open checked its size), makes the lookup that reads it
    rebuild the cache, and every chunk is still found where the index files say."""
    files = _files(12, 400, seed=91)
    ids = sorted(_ids(files))
    memory = ChunkIndex.from_files(files.values())
    expected = [memory.get(cid) for cid in ids]
    _load(tmp_path, files)
    index = _load(tmp_path, files)
    damaged = index._run
    assert damaged is not None and damaged.blocks > 10 and not index._sides
    number = damaged.blocks // 2
    block_at = index_cache.BLOCK + number * index_cache.BLOCK
    if damage == "bad count":
        _flip(damaged.path, block_at + index_cache.TRAILER + 3)  # 2^30 records and more
    else:
        os.truncate(damaged.path, block_at + 100)
    # An id inside the block (not the one that opens it: that takes the long path),
    # asked alone: get_many answers a window again one by one after a damage it finds.
    inside = [
        cid
        for cid in ids
        if damaged._first_block(int.from_bytes(cid[:8], "big")) == number
        and int.from_bytes(cid[:8], "big") != damaged.directory[number]
    ]
    probe = inside[len(inside) // 2]
    answer = index.get_many([probe])[0] if many else index.get(probe)
    assert answer == expected[ids.index(probe)] is not None
    assert index._run is not damaged  # rebuilt, and sound again
    why = "has a bad count" if damage == "bad count" else "is truncated"
    assert f"cache is damaged (block {number} {why}); rebuilding it" in caplog.text
    assert [index.get(cid) for cid in ids] == expected

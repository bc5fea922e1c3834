"""A block's lookups in one call (``ChunkIndex.get_many``, what a backup asks for each
block of its stream): it answers exactly as one ``get`` per id does, from the cache, its
side runs and what memory holds, through every long path (ids opening a block, ids
sharing a key, chunks with many copies, quarantined copies) and a damaged record; and a
big cache's metadata read into huge-page memory answers the same, a truncated one being
rebuilt."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from respaldo.repository import index_cache
from respaldo.repository.index import CacheCorrupt, ChunkIndex, Location
from respaldo.repository.packs import PackEntry
from respaldo.storage.base import Storage
from tests.unit.repository.helpers import init_repo, open_repo, random_bytes, write_backup
from tests.unit.repository.test_index_cache_lookup import (
    _load,
    _probes,
    copies_over_blocks_and_a_twin,
)
from tests.unit.repository.test_merged_index_cache import (
    _all,
    _cache_path,
    _files,
    _flip,
    _ids,
    _record_of,
)

pytestmark = pytest.mark.unit


def _windows(probes: list[bytes], seed: int) -> list[list[bytes]]:
    """The probes cut into windows of varied sizes (empty and single ones too)."""
    rng = random.Random(seed)
    out: list[list[bytes]] = [[]]
    at = 0
    while at < len(probes):
        size = rng.choice((1, 2, 7, 50, 64))
        out.append(probes[at : at + size])
        at += size
    return out


def _many(index: ChunkIndex, windows: list[list[bytes]]) -> list[Location | None]:
    return [location for window in windows for location in index.get_many(window)]


def test_get_many_answers_as_get_from_the_cache_and_its_side_runs(tmp_path: Path) -> None:
    files = _files(12, 400, seed=41)
    _load(tmp_path, files)
    files.update(_files(1, 300, seed=42))  # a side run
    index = _load(tmp_path, files)
    assert index._run is not None and index._sides and index._base is None
    probes = _probes(_ids(files), seed=43)
    # Two ids of one block in a row: the block is read once and answers both.
    ordered = sorted(_ids(files))
    probes += ordered[100:104]
    expected = [ChunkIndex.from_files(files.values()).get(cid) for cid in probes]
    assert [index.get(cid) for cid in probes] == expected
    assert _many(index, _windows(probes, seed=44)) == expected
    assert sum(found is None for found in expected) >= 100
    assert index.get_many([]) == []


def test_get_many_answers_as_get_with_chunks_held_in_memory(tmp_path: Path) -> None:
    files = _files(8, 300, seed=51)
    index = _load(tmp_path, files)
    rng = random.Random(52)
    added = [PackEntry(rng.randbytes(32), 36 + i * 10, 9, 12) for i in range(500)]
    index.add_pack("ab" * 32, added)  # a backup's chunks, in memory (the dict)
    memory = ChunkIndex.from_files(files.values())
    memory.add_pack("ab" * 32, added)
    probes = _probes([*_ids(files), *(e.chunk_id for e in added)], seed=53)
    assert _many(index, _windows(probes, seed=54)) == [memory.get(cid) for cid in probes]


def test_get_many_takes_the_long_paths_as_get_does(tmp_path: Path) -> None:
    """A chunk with 200 copies over three blocks (its key opens a block), two ids that
    share their key, and quarantined copies to pass over."""
    rng = random.Random(61)
    shared, twin, files = copies_over_blocks_and_a_twin(rng)
    probes = [shared, twin, *_ids(files), shared[:8] + rng.randbytes(24), rng.randbytes(32)]
    windows = _windows(probes, seed=62)
    index = _load(tmp_path / "plain", files)
    memory = ChunkIndex.from_files(files.values())
    expected = [memory.get(cid) for cid in probes]
    assert _many(index, windows) == expected
    assert expected[:2] == [Location(f"{0:064x}", 36, 50, 60), Location("e" * 64, 36, 70, 80)]
    exclude = {f"{f:064x}": {shared} for f in range(150)}
    index = _load(tmp_path / "quarantine", files, exclude)
    memory = ChunkIndex.from_files(files.values(), exclude)
    expected = [memory.get(cid) for cid in probes]
    assert _many(index, windows) == expected
    assert expected[0] == Location(f"{150:064x}", 36 + 150, 50, 60)


def test_get_many_never_uses_a_corrupt_record_and_rebuilds_the_cache(
    storage: Storage, tmp_path: Path
) -> None:
    repo = init_repo(storage)
    for i in range(3):
        write_backup(repo, f"b{i}", {"dump": random_bytes(20_000, seed=i)})
    cache = tmp_path / "cache"
    repo = open_repo(storage, cache_dir=cache)
    expected = _all(repo)
    ids = sorted(expected)
    path = _cache_path(cache, repo)
    _flip(path, _record_of(path, ids[len(ids) // 3]) + 24 + 4)  # its offset in the pack
    reopened = open_repo(storage, cache_dir=cache)
    damaged = reopened.index._run
    assert dict(zip(ids, reopened.index.get_many(ids), strict=True)) == expected
    assert reopened.index._run is not damaged  # rebuilt, and sound again
    assert dict(zip(ids, reopened.index.get_many(ids), strict=True)) == expected


def test_a_big_meta_in_huge_page_memory_answers_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _files(6, 400, seed=71)
    probes = _probes(_ids(files), seed=72)
    expected = [_load(tmp_path / "small", files).get(cid) for cid in probes]
    monkeypatch.setattr(index_cache, "HUGE_META", 0)  # every run's meta in a mapping
    index = _load(tmp_path / "huge", files)
    assert index._run is not None and not isinstance(index._run.filter.obj, bytes)
    assert [index.get(cid) for cid in probes] == expected
    assert _many(index, _windows(probes, seed=73)) == expected


def test_a_truncated_meta_read_into_a_mapping_rebuilds_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_cache, "HUGE_META", 0)
    files = _files(4, 300, seed=81)
    _load(tmp_path, files)
    path = tmp_path / index_cache.CACHE_NAME
    size = path.stat().st_size
    with path.open("r+b") as f:  # the header still says the full size
        f.truncate(size - 3000)
    with pytest.raises(CacheCorrupt, match="bytes, its header says"):
        index_cache.CacheRun(path)
    # A file that ends before its meta does (a read that races a truncation).
    with path.open("rb") as f, pytest.raises(CacheCorrupt, match="the meta is truncated"):
        index_cache._read_meta(f.fileno(), 4000, size - 3000 - 1000, 4000)
    probes = _probes(_ids(files), seed=82)
    index = _load(tmp_path, files)
    assert path.stat().st_size == size
    expected = [ChunkIndex.from_files(files.values()).get(cid) for cid in probes]
    assert _many(index, _windows(probes, seed=83)) == expected

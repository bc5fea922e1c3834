"""The local index cache: opening costs a listing, and a bad cache never misleads."""

from __future__ import annotations

from pathlib import Path

import pytest

from respaldo.repository import Repository, rebuild_index
from respaldo.repository.index_cache import location_dir
from respaldo.storage.base import Storage
from tests.unit.repository.helpers import (
    CountingStorage,
    flip_byte,
    names,
    open_repo,
    random_bytes,
    read_stream,
    write_backup,
)

pytestmark = pytest.mark.unit


@pytest.fixture
def filled(repo: Repository) -> Repository:
    for i in range(3):
        write_backup(repo, f"b{i}", {"dump": random_bytes(20_000, seed=i)})
    return repo


def _cache_file(cache: Path, repo: Repository, name: str) -> Path:
    return location_dir(cache / repo.id, repo.storage.location) / name


def test_second_open_reads_the_index_from_the_cache(
    storage: Storage, filled: Repository, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    index_files = names(storage, "index/")
    assert len(index_files) == 3

    first = CountingStorage(storage)
    repo = open_repo(first, cache_dir=cache)
    assert sorted(first.gets_under("index/")) == index_files
    for name in index_files:
        assert _cache_file(cache, repo, name).read_bytes() == storage.get(name)

    second = CountingStorage(storage)
    reopened = open_repo(second, cache_dir=cache)
    assert second.gets_under("index/") == []
    assert len(reopened.index) == len(repo.index) > 0
    assert read_stream(reopened, reopened.load_manifest("b1")) == random_bytes(20_000, seed=1)


def test_no_cache_dir_means_every_open_downloads(storage: Storage, filled: Repository) -> None:
    for _ in range(2):
        counting = CountingStorage(storage)
        open_repo(counting)
        assert len(counting.gets_under("index/")) == 3


def test_a_corrupt_cache_file_is_dropped_and_fetched_again(
    storage: Storage, filled: Repository, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    repo = open_repo(storage, cache_dir=cache)
    name = names(storage, "index/")[1]
    cached = _cache_file(cache, repo, name)
    damaged = bytearray(cached.read_bytes())
    damaged[40] ^= 0xFF
    cached.write_bytes(bytes(damaged))
    # Without the merged cache, the index files are read again (from their copies).
    _cache_file(cache, repo, "chunkindex.cix").unlink()

    counting = CountingStorage(storage)
    reopened = open_repo(counting, cache_dir=cache)
    # Only the damaged one was downloaded again, and the cache now holds the good copy.
    assert counting.gets_under("index/") == [name]
    assert cached.read_bytes() == storage.get(name)
    assert len(reopened.index) == len(repo.index)


def test_a_truncated_cache_file_is_fetched_again(
    storage: Storage, filled: Repository, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    repo = open_repo(storage, cache_dir=cache)
    name = names(storage, "index/")[0]
    _cache_file(cache, repo, name).write_bytes(b"")
    assert len(open_repo(storage, cache_dir=cache).index) == len(repo.index)


def test_a_corrupt_stored_index_is_left_out_and_does_not_stay_in_the_cache(
    storage: Storage, filled: Repository, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    name = names(storage, "index/")[2]
    flip_byte(storage, name, 60)
    assert list(open_repo(storage, cache_dir=cache).damaged_index_files) == [name]
    assert not _cache_file(cache, filled, name).exists()
    # Once repaired (here: the damaged file replaced by a rebuild), opening works again.
    rebuild_index(open_repo(storage, load_index=False, cache_dir=cache))
    reopened = open_repo(storage, cache_dir=cache)
    assert read_stream(reopened, reopened.load_manifest("b2")) == random_bytes(20_000, seed=2)


def test_cache_forgets_index_files_that_are_gone(
    storage: Storage, filled: Repository, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    repo = open_repo(storage, cache_dir=cache)
    old = names(storage, "index/")
    rebuild_index(repo)
    new = names(storage, "index/")
    open_repo(storage, cache_dir=cache)
    cached = sorted(f"index/{p.name}" for p in (_cache_file(cache, repo, "index")).iterdir())
    assert cached == new
    assert not set(old) & set(cached)


def test_cache_is_per_repository(storage: Storage, filled: Repository, tmp_path: Path) -> None:
    from respaldo.storage.memory import MemoryStorage
    from tests.unit.repository.helpers import init_repo

    cache = tmp_path / "cache"
    other = init_repo(MemoryStorage("other"), cache_dir=cache)
    write_backup(other, "x", {"dump": b"other"})
    open_repo(storage, cache_dir=cache)
    reopened_other = open_repo(other.storage, cache_dir=cache)
    assert sorted(p.name for p in cache.iterdir()) == sorted([filled.id, other.id])
    assert read_stream(reopened_other, reopened_other.load_manifest("x")) == b"other"


def test_an_unusable_cache_directory_does_not_stop_open(
    storage: Storage, filled: Repository, tmp_path: Path
) -> None:
    """The cache only speeds things up: where it cannot be written (a file in the way, a
    read-only home), opening still works, from storage."""
    in_the_way = tmp_path / "not-a-directory"
    in_the_way.write_bytes(b"")
    repo = open_repo(storage, cache_dir=in_the_way / "cache")
    assert len(repo.index) == len(filled.index) > 0
    assert read_stream(repo, repo.load_manifest("b0")) == random_bytes(20_000, seed=0)

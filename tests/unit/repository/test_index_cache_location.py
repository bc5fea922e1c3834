"""The local index cache is one per repository location: a primary and its mirror (same
repository id, other index files) never rebuild each other's cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from respaldo.repository import Repository, index_cache
from respaldo.repository.copy import copy_backup
from respaldo.storage.memory import MemoryStorage
from tests.unit.repository.helpers import (
    KDF,
    PASSPHRASE,
    CountingStorage,
    init_repo,
    open_repo,
    random_bytes,
    read_stream,
    write_backup,
)

pytestmark = pytest.mark.unit


def _files(cache: Path) -> dict[Path, tuple[int, int, int]]:
    """Every file of the cache: (inode, size, mtime in ns), to see one rewritten."""
    out = {}
    for path in cache.rglob("*"):
        if path.is_file():
            st = path.stat()
            out[path] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture
def pair(request: pytest.FixtureRequest) -> tuple[Repository, Repository]:
    """A primary with three backups and a mirror holding copies of the first two (a
    mirror has index files of its own, and may lag behind)."""
    primary = init_repo(MemoryStorage(f"{request.node.name}-primary"))
    mirror = Repository.init_mirror(
        MemoryStorage(f"{request.node.name}-mirror"), primary, PASSPHRASE, kdf=KDF
    )
    for i in range(3):
        write_backup(primary, f"b{i}", {"dump": random_bytes(20_000, seed=i)})
    for i in range(2):
        copy_backup(primary, mirror, f"b{i}")
    return primary, mirror


def test_opening_the_mirror_leaves_the_primarys_cache_alone(
    pair: tuple[Repository, Repository], tmp_path: Path
) -> None:
    primary, mirror = pair
    cache = tmp_path / "cache"
    open_repo(primary.storage, cache_dir=cache)
    before = _files(cache)
    assert before

    open_repo(mirror.storage, cache_dir=cache)
    counting = CountingStorage(primary.storage)
    again = open_repo(counting, cache_dir=cache)

    # Nothing of the primary's cache was rewritten, removed or downloaded again.
    after = _files(cache)
    assert {path: after.get(path) for path in before} == before
    assert counting.gets_under("index/") == []
    assert read_stream(again, again.load_manifest("b2")) == random_bytes(20_000, seed=2)


def test_each_location_keeps_its_own_cache(
    pair: tuple[Repository, Repository], tmp_path: Path
) -> None:
    primary, mirror = pair
    cache = tmp_path / "cache"
    for _ in range(2):
        open_repo(primary.storage, cache_dir=cache)
        open_repo(mirror.storage, cache_dir=cache)
    counting = CountingStorage(mirror.storage)
    reopened = open_repo(counting, cache_dir=cache)
    assert counting.gets_under("index/") == []
    assert read_stream(reopened, reopened.load_manifest("b1")) == random_bytes(20_000, seed=1)
    # One directory per repository id (the config copy and the keys are per id), with
    # the index caches of its two locations inside.
    assert [p.name for p in cache.iterdir()] == [primary.id]
    assert (cache / primary.id / "config").is_file()
    assert reopened.index_cache_dir != open_repo(primary.storage, cache_dir=cache).index_cache_dir


def test_the_cache_of_earlier_versions_is_removed_once(
    pair: tuple[Repository, Repository], tmp_path: Path
) -> None:
    """Earlier versions kept the index cache straight in <cache_dir>/<id>: it is removed
    at the first open (under its lock), and what stays per id (config, keys) stays."""
    primary, _ = pair
    cache = tmp_path / "cache"
    repo = open_repo(primary.storage, cache_dir=cache)
    per_id = cache / repo.id
    assert repo.index_cache_dir is not None and repo.index_cache_dir.parent == per_id
    # The old layout, as an earlier version left it (and a kill -9's leftovers).
    (repo.index_cache_dir / index_cache.LOCATION_NAME).unlink()
    for path in list(repo.index_cache_dir.iterdir()):
        path.rename(per_id / path.name)
    repo.index_cache_dir.rmdir()
    (per_id / ".chunkindex-killed.tmp").write_bytes(b"RCIX")
    (per_id / f"{index_cache.SIDE_PREFIX}1-2-ab.cix").write_bytes(b"RCIX")
    (per_id / "keys").mkdir()
    (per_id / "keys" / "k").write_bytes(b"kek")
    assert (per_id / index_cache.CACHE_NAME).is_file() and (per_id / "index").is_dir()

    reopened = open_repo(primary.storage, cache_dir=cache)
    assert reopened.index_cache_dir is not None
    assert sorted(p.name for p in per_id.iterdir()) == sorted(
        ["config", "keys", index_cache.LOCK_NAME, reopened.index_cache_dir.name]
    )
    assert (per_id / index_cache.LOCK_NAME).stat().st_size == 0
    assert (per_id / "keys" / "k").read_bytes() == b"kek"
    assert read_stream(reopened, reopened.load_manifest("b0")) == random_bytes(20_000, seed=0)
    counting = CountingStorage(primary.storage)
    open_repo(counting, cache_dir=cache)
    assert counting.gets_under("index/") == []

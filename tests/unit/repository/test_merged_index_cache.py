"""The merged chunk index cache on local disk (index_cache.py): it answers as the index
files do, follows them as they come and go, and is never trusted when damaged."""

from __future__ import annotations

import logging
import multiprocessing
import random
import struct
from pathlib import Path
from typing import Any

import pytest

from respaldo.repository import Repository, index_build, index_cache
from respaldo.repository.index import ChunkIndex, Location, decode_index, encode_index
from respaldo.repository.packs import PackEntry
from respaldo.storage.base import Storage
from respaldo.storage.local import LocalStorage
from tests.unit.repository.helpers import (
    init_repo,
    names,
    open_repo,
    random_bytes,
    read_stream,
    write_backup,
)

pytestmark = pytest.mark.unit


def _files(count: int, per_file: int, seed: int) -> dict[str, bytes]:
    """Plaintext index files of random chunks; every fifth file repeats chunks of the
    one before it in other packs (a chunk two writers stored)."""
    rng = random.Random(seed)
    out: dict[str, bytes] = {}
    previous: list[bytes] = []
    for f in range(count):
        ids = [rng.randbytes(32) for _ in range(per_file)]
        if f % 5 == 4:
            ids[: len(previous) // 2] = previous[: len(previous) // 2]
        groups = []
        for p in range(0, per_file, 50):
            entries = [
                PackEntry(cid, 36 + i * 100, 90 + i % 7, 120)
                for i, cid in enumerate(ids[p : p + 50])
            ]
            groups.append((f"{seed:08x}{f:028x}{p:028x}", entries))
        out[f"index/{seed:04x}{f:060x}"] = encode_index(groups)
        previous = ids
    return out


def _ids(files: dict[str, bytes]) -> list[bytes]:
    index = ChunkIndex.from_files(files.values())
    return [e.chunk_id for entries in index.by_pack().values() for e in entries]


def _load(cache: Path, files: dict[str, bytes]) -> ChunkIndex:
    loaded = index_cache.load_cached(
        cache,
        "repo-id",
        lambda: {name: len(data) for name, data in files.items()},
        files.__getitem__,
        (KeyError,),
        {},
    )
    assert loaded is not None
    return loaded[0]


@pytest.fixture
def small_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Buckets of a few hundred records and little held in memory: the multi-bucket
    build and the merges that large repositories take happen on small data."""
    monkeypatch.setattr(index_build, "BUCKET_RECORDS", 300)
    monkeypatch.setattr(index_cache, "SIDE_RECORDS_MAX", 500)


def test_the_cache_answers_as_the_index_files_do(tmp_path: Path, small_buckets: None) -> None:
    files = _files(12, 400, seed=1)
    memory = ChunkIndex.from_files(files.values())
    cached = _load(tmp_path, files)
    assert (tmp_path / index_cache.CACHE_NAME).stat().st_mode & 0o777 == 0o600
    rng = random.Random(2)
    known = _ids(files)
    for cid in [*rng.sample(known, 2000), *(rng.randbytes(32) for _ in range(2000))]:
        assert cached.get(cid) == memory.get(cid)
    assert len(cached) == len(memory) == len(known)
    assert cached.by_pack() == memory.by_pack()
    # Every pack an index file describes (the dict keeps only packs it chose a copy in).
    described = {pack_id for data in files.values() for pack_id, _ in decode_index(data)}
    assert cached.packs() == described >= memory.packs()


def test_new_files_are_seen_and_merged_in(tmp_path: Path, small_buckets: None) -> None:
    files = _files(4, 100, seed=3)
    _load(tmp_path, files)
    # A few new files are held in memory, many are merged into the cache.
    for extra_seed, count in ((4, 1), (5, 10)):
        files.update(_files(count, 100, seed=extra_seed))
        memory = ChunkIndex.from_files(files.values())
        cached = _load(tmp_path, files)
        for cid in _ids(files):
            assert cached.get(cid) == memory.get(cid)
    run = index_cache.open_run(tmp_path / index_cache.CACHE_NAME, "repo-id")
    assert run is not None and {name for name, _ in run.files} == set(files)


def test_a_removed_files_entries_leave_the_cache(tmp_path: Path, small_buckets: None) -> None:
    files = _files(10, 100, seed=6)
    _load(tmp_path, files)
    gone = sorted(files)[2]
    only_there = set(_ids({gone: files[gone]})) - set(
        _ids({n: d for n, d in files.items() if n != gone})
    )
    del files[gone]
    cached = _load(tmp_path, files)
    assert only_there and all(cached.get(cid) is None for cid in only_there)
    memory = ChunkIndex.from_files(files.values())
    for cid in _ids(files):
        assert cached.get(cid) == memory.get(cid)


def _counting_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one at each whole build of the cache."""
    builds: list[int] = []
    real = index_build.build

    def counted(*args: Any, **kwargs: Any) -> index_build.BuildResult:
        builds.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(index_build, "build", counted)
    return builds


def _open_while_a_backup_stores(
    cache: Path, files: dict[str, bytes], backup: ChunkIndex, stored: dict[str, bytes]
) -> tuple[ChunkIndex, list[str]]:
    """Open the cache as a second handle does while a running backup (``backup``, its
    open index) stores ``stored`` between the opener's listing and its lock: the backup's
    :meth:`ChunkIndex.add_file` writes their side runs before the opener takes the lock."""
    listed = 0

    def list_files() -> dict[str, int]:
        nonlocal listed
        listed += 1
        listing = {name: len(data) for name, data in files.items()}
        if listed == 1:  # the opener has listed; the backup stores its index files now
            for name, data in stored.items():
                files[name] = data
                backup.add_file(name, len(data), data)
        return listing

    loaded = index_cache.load_cached(
        cache, "repo-id", list_files, files.__getitem__, (KeyError,), {}
    )
    assert loaded is not None
    return loaded[0], loaded[1]


def test_an_index_file_stored_after_the_listing_is_not_taken_as_removed(
    tmp_path: Path, small_buckets: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _files(6, 100, seed=21)
    backup = _load(tmp_path, files)
    main = tmp_path / index_cache.CACHE_NAME
    before = main.stat().st_ino
    builds = _counting_builds(monkeypatch)
    stored = _files(2, 100, seed=22)
    opened, described = _open_while_a_backup_stores(tmp_path, files, backup, stored)
    assert builds == []  # no whole rebuild, and the backup's side runs are kept
    assert main.stat().st_ino == before
    assert len(list(tmp_path.glob(f"{index_cache.SIDE_PREFIX}*.cix"))) == 2
    assert set(described) == set(files)
    memory = ChunkIndex.from_files(files.values())
    for cid in _ids(files):
        assert opened.get(cid) == memory.get(cid)


def test_a_removed_file_still_leaves_the_cache_while_a_backup_stores(
    tmp_path: Path, small_buckets: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _files(6, 100, seed=23)
    backup = _load(tmp_path, files)
    gone = sorted(files)[1]
    only_there = set(_ids({gone: files[gone]})) - set(
        _ids({n: d for n, d in files.items() if n != gone})
    )
    del files[gone]  # garbage collection deleted it
    builds = _counting_builds(monkeypatch)
    stored = _files(1, 100, seed=24)
    opened, described = _open_while_a_backup_stores(tmp_path, files, backup, stored)
    assert len(builds) == 1  # the removed file's entries must go: a whole rebuild
    assert set(described) == set(files) and gone not in described
    assert only_there and all(opened.get(cid) is None for cid in only_there)
    memory = ChunkIndex.from_files(files.values())
    for cid in _ids(files):
        assert opened.get(cid) == memory.get(cid)
    run = index_cache.open_run(tmp_path / index_cache.CACHE_NAME, "repo-id")
    assert run is not None and {name for name, _ in run.files} == set(files)


def test_a_quarantined_copy_is_passed_over_for_another(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = _files(5, 100, seed=8)  # the fifth file repeats chunks of the fourth
    names_ = sorted(files)
    third, fourth = (decode_index(files[names_[i]]) for i in (3, 4))
    (first_pack, first_entries), (second_pack, _) = next(third), next(fourth)
    chunk_id = first_entries[0].chunk_id
    exclude = {first_pack: {chunk_id}}
    loaded = index_cache.load_cached(
        tmp_path,
        "repo-id",
        lambda: {name: len(data) for name, data in files.items()},
        files.__getitem__,
        (KeyError,),
        exclude,
    )
    assert loaded is not None
    memory = ChunkIndex.from_files(files.values(), exclude)
    found = loaded[0].get(chunk_id)
    assert found is not None and found.pack_id == second_pack
    assert found == memory.get(chunk_id)
    assert loaded[0].by_pack() == memory.by_pack()
    exclude[second_pack] = {chunk_id}
    assert loaded[0].get(chunk_id) is None
    # A reader's miss of it is certain, and no sign of a damaged cache: the lookup passed
    # over its copies, the filter knew them (it was rebuilt, with a warning, once per miss).
    run = loaded[0]._run
    with caplog.at_level(logging.WARNING, logger="respaldo.repository"):
        assert loaded[0].confirm_miss(chunk_id) is None
    assert loaded[0]._run is run
    assert not [r for r in caplog.records if "damaged" in r.getMessage()]


def test_the_crc_of_numpy_matches_zlib() -> None:
    import zlib

    import numpy as np

    rows = np.frombuffer(random.Random(9).randbytes(44 * 50), np.uint8).reshape(50, 44)
    assert index_build._crc40(rows).tolist() == [zlib.crc32(bytes(r[:40])) for r in rows]


# --- through the repository --------------------------------------------------------------


@pytest.fixture
def filled(storage: Storage) -> Repository:
    repo = init_repo(storage)
    for i in range(3):
        write_backup(repo, f"b{i}", {"dump": random_bytes(20_000, seed=i)})
    return repo


def _all(repo: Repository) -> dict[bytes, Location]:
    return {
        e.chunk_id: Location(pack_id, e.offset, e.length, e.raw_length)
        for pack_id, entries in repo.index.by_pack().items()
        for e in entries
    }


def _cache_path(cache: Path, repo: Repository) -> Path:
    assert repo.index_cache_dir is not None and repo.index_cache_dir.parent.parent == cache
    return repo.index_cache_dir / index_cache.CACHE_NAME


def test_the_repository_reads_its_index_from_the_cache(
    storage: Storage, filled: Repository, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    expected = _all(open_repo(storage))
    repo = open_repo(storage, cache_dir=cache)
    assert _cache_path(cache, repo).exists()
    assert repo.index._base is None  # nothing loaded in memory: all from the cache
    assert {cid: repo.index.get(cid) for cid in expected} == expected
    assert _all(repo) == expected


def test_an_index_file_another_handle_writes_is_seen(
    storage: Storage, filled: Repository, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    mine = open_repo(storage, cache_dir=cache)
    other = open_repo(storage, cache_dir=tmp_path / "other-machine")
    write_backup(other, "b3", {"dump": random_bytes(20_000, seed=3)})
    mine.load_index()
    assert read_stream(mine, mine.load_manifest("b3")) == random_bytes(20_000, seed=3)
    assert _all(mine) == _all(open_repo(storage))


def test_a_deleted_index_file_leaves_the_index(
    storage: Storage, filled: Repository, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    repo = open_repo(storage, cache_dir=cache)
    before = _all(repo)
    gone = names(storage, "index/")[0]
    storage.delete(gone)
    repo.load_index()
    after = _all(repo)
    assert after == _all(open_repo(storage)) and len(after) < len(before)
    assert all(repo.index.get(cid) is None for cid in before.keys() - after.keys())


def test_a_truncated_cache_is_rebuilt(storage: Storage, filled: Repository, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    repo = open_repo(storage, cache_dir=cache)
    expected = _all(repo)
    path = _cache_path(cache, repo)
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.truncate(size - 5000)
    reopened = open_repo(storage, cache_dir=cache)
    assert path.stat().st_size == size
    assert {cid: reopened.index.get(cid) for cid in expected} == expected


def _record_of(path: Path, chunk_id: bytes) -> int:
    """The file offset of ``chunk_id``'s record in the cache."""
    run = index_cache.CacheRun(path)
    key = int.from_bytes(chunk_id[:8], "big")
    for b in range(run.blocks):
        block = run._read_block(b)
        count = int.from_bytes(block[index_cache.TRAILER : index_cache.TRAILER + 4], "little")
        keys = struct.unpack_from(f"<{count}Q", block)
        if key in keys:
            i = keys.index(key)
            run.close()
            return index_cache.BLOCK + b * index_cache.BLOCK + index_cache.KEYS_END + i * 44
    raise AssertionError("not in the cache")


def _flip(path: Path, at: int) -> None:
    with path.open("r+b") as f:
        f.seek(at)
        byte = f.read(1)[0]
        f.seek(at)
        f.write(bytes([byte ^ 0x40]))


def test_a_corrupt_location_in_the_cache_is_never_used(
    storage: Storage, filled: Repository, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    repo = open_repo(storage, cache_dir=cache)
    expected = _all(repo)
    chunk_id = sorted(expected)[len(expected) // 2]
    path = _cache_path(cache, repo)
    _flip(path, _record_of(path, chunk_id) + 24 + 4)  # its offset in the pack
    reopened = open_repo(storage, cache_dir=cache)
    assert reopened.index.get(chunk_id) == expected[chunk_id]
    assert read_stream(reopened, reopened.load_manifest("b1")) == random_bytes(20_000, seed=1)


def test_a_reader_miss_in_a_corrupt_block_rebuilds_the_cache(
    storage: Storage, filled: Repository, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    repo = open_repo(storage, cache_dir=cache)
    expected = _all(repo)
    path = _cache_path(cache, repo)
    # A key that no longer matches: the chunk would be missed, not misplaced.
    for chunk_id in expected:
        record = _record_of(path, chunk_id)
        block = (record // index_cache.BLOCK) * index_cache.BLOCK
        _flip(path, block + (record - block - index_cache.KEYS_END) // 44 * 8)
    reopened = open_repo(storage, cache_dir=cache)
    for i in range(3):
        assert read_stream(reopened, reopened.load_manifest(f"b{i}")) == random_bytes(
            20_000, seed=i
        )


def _open_and_list(root: str, cache: str, start: multiprocessing.synchronize.Event) -> int:
    start.wait()
    repo = open_repo(LocalStorage(root), cache_dir=Path(cache))
    return len(_all(repo))


def _worker(root: str, cache: str, start: multiprocessing.synchronize.Event, out: Any) -> None:
    out.put(_open_and_list(root, cache, start))


def test_two_processes_opening_at_once_build_one_sound_cache(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    repo = init_repo(LocalStorage(root))
    for i in range(3):
        write_backup(repo, f"b{i}", {"dump": random_bytes(20_000, seed=i)})
    expected = _all(open_repo(LocalStorage(root)))
    cache = tmp_path / "cache"
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(str(root), str(cache), start, out)) for _ in range(2)
    ]
    for p in procs:
        p.start()
    start.set()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert results == [len(expected)] * 2
    reopened = open_repo(LocalStorage(root), cache_dir=cache)
    assert _all(reopened) == expected
    folder = index_cache.location_dir(cache / repo.id, repo.storage.location)
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_a_damaged_meta_is_found_at_open(
    storage: Storage, filled: Repository, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    repo = open_repo(storage, cache_dir=cache)
    expected = _all(repo)
    path = _cache_path(cache, repo)
    head = index_cache.HEADER.unpack(path.read_bytes()[: index_cache.HEADER.size])
    meta_at, files_len = head[4], head[5]
    _flip(path, meta_at + files_len + 3)  # a pack id of the groups
    reopened = open_repo(storage, cache_dir=cache)
    assert "chunk index cache" in caplog.text and "damaged" in caplog.text
    assert {cid: reopened.index.get(cid) for cid in expected} == expected


def test_a_filter_that_forgets_a_chunk_does_not_fail_a_reader(
    storage: Storage, filled: Repository, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    repo = open_repo(storage, cache_dir=cache)
    run = repo.index._run
    assert run is not None
    run.filter = memoryview(bytes(len(run.filter)))  # says "not here" to every chunk
    assert read_stream(repo, repo.load_manifest("b1")) == random_bytes(20_000, seed=1)
    assert repo.index._run is not run  # rebuilt


def test_a_filtered_listing_is_the_whole_listing_filtered(
    tmp_path: Path, small_buckets: None
) -> None:
    # From the cache on disk, the arrays in memory and the additions: a listing with a
    # selector keeps exactly the entries the whole listing would, and counts them.
    files = _files(6, 200, seed=11)
    cached = _load(tmp_path, files)
    cached.add_pack("ab" * 32, [PackEntry(bytes([n]) * 32, 36 + n, 10, 12) for n in range(9)])
    memory = ChunkIndex.from_files(files.values())

    def where(pack_id: str, chunk_id: bytes) -> bool:
        return chunk_id[0] % 3 == 0 and pack_id[-1] in "02468ace"

    for index in (cached, memory):
        whole = index.by_pack()
        expected = {
            pack_id: kept
            for pack_id, entries in whole.items()
            if (kept := [e for e in entries if where(pack_id, e.chunk_id)])
        }
        assert expected and index.by_pack(where) == expected
        assert index.pack_counts(where) == {p: len(es) for p, es in expected.items()}
        assert index.pack_counts() == {p: len(es) for p, es in whole.items()}

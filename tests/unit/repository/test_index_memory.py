"""The chunk index holds nothing in memory that grows with a backup or a repository.

With a local cache, a backup's own index files go to side runs on disk as it writes them
(before: a dict of every new chunk, merged into numpy arrays, 72 MiB at 10 GB), and an
open writes the index files the cache does not cover yet to a side run (before: up to
262,144 entries held in memory, 70 MiB). Dedup stays exact across the runs, damaged or
half-written runs are never trusted, and numpy (20 MiB) is not imported to do any of it.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from respaldo.repository import BackupWriter, Repository, index, index_cache, writer
from respaldo.repository.index import ChunkIndex
from respaldo.repository.verify import verify_repository
from respaldo.storage.base import Storage
from respaldo.storage.local import LocalStorage
from tests.unit.repository.helpers import (
    STARTED,
    init_repo,
    open_repo,
    random_bytes,
    read_stream,
    write_backup,
)

pytestmark = pytest.mark.unit

FLUSH = 64
"""Entries per index file in these tests: a 512 KiB stream writes several."""


@pytest.fixture(autouse=True)
def small_index_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer, "INDEX_FLUSH_ENTRIES", FLUSH)


def _child_env() -> dict[str, str]:
    """The environment of a child Python that imports respaldo as this one does."""
    paths = [
        *sys.path[:1],
        os.environ.get("PYTHONPATH", ""),
        str(Path(__file__).resolve().parents[3]),
    ]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def _in_memory(index: ChunkIndex) -> int:
    """Index entries the process holds in Python objects or arrays."""
    return len(index._delta) + (len(index._base) if index._base is not None else 0)


def _sides(cache: Path, repo: Repository) -> list[Path]:
    assert repo.index_cache_dir is not None and repo.index_cache_dir.parent.parent == cache
    return sorted(repo.index_cache_dir.glob(f"{index_cache.SIDE_PREFIX}*.cix"))


def test_a_backup_holds_none_of_its_new_chunks_in_the_index(
    storage: Storage, tmp_path: Path
) -> None:
    init_repo(storage)
    cache = tmp_path / "cache"
    repo = open_repo(storage, cache_dir=cache)
    data = random_bytes(512 * 1024, seed=1)  # ~500 new chunks, 8 index files
    _, stats = write_backup(repo, "b1", {"dump": data})
    assert stats.new_chunks > 4 * FLUSH
    assert _in_memory(repo.index) == 0
    assert len(_sides(cache, repo)) == len(repo.index_files)
    assert read_stream(repo, repo.load_manifest("b1")) == data


def test_dedup_is_exact_across_side_runs_and_their_merge(
    storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    init_repo(storage)
    cache = tmp_path / "cache"
    repo = open_repo(storage, cache_dir=cache)
    data = random_bytes(384 * 1024, seed=2)
    _, first = write_backup(repo, "b1", {"dump": data})
    # The same process, the chunks in side runs only: nothing is stored again, even
    # within one stream that repeats itself across index files.
    _, again = write_backup(repo, "b2", {"dump": data, "copy": data})
    assert first.new_chunks > 0 and again.new_chunks == 0
    # Another process: its open merges the side runs (more than SIDES_OPEN_MAX).
    monkeypatch.setattr(index_cache, "SIDES_OPEN_MAX", 2)
    reopened = open_repo(storage, cache_dir=cache)
    assert len(_sides(cache, reopened)) <= 1
    assert _in_memory(reopened.index) == 0
    _, third = write_backup(reopened, "b3", {"dump": data})
    assert third.new_chunks == 0
    assert read_stream(reopened, reopened.load_manifest("b3")) == data


def test_a_long_backup_merges_its_side_runs_and_dedups_across_them(
    storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index, "SIDES_RUNNING_MAX", 3)
    init_repo(storage)
    cache = tmp_path / "cache"
    repo = open_repo(storage, cache_dir=cache)
    data = random_bytes(512 * 1024, seed=9)  # 8 index files
    _, first = write_backup(repo, "b1", {"dump": data})
    assert len(repo.index._sides) <= 3 and len(_sides(cache, repo)) <= 3
    _, again = write_backup(repo, "b2", {"dump": data})
    assert first.new_chunks > 4 * FLUSH and again.new_chunks == 0
    assert _in_memory(repo.index) == 0
    reopened = open_repo(storage, cache_dir=cache)
    assert read_stream(reopened, reopened.load_manifest("b1")) == data
    _, third = write_backup(reopened, "b3", {"dump": data})
    assert third.new_chunks == 0


def test_an_open_puts_what_the_cache_lacks_on_disk_not_in_memory(
    storage: Storage, tmp_path: Path
) -> None:
    init_repo(storage)
    mine = open_repo(storage, cache_dir=tmp_path / "cache")
    other = open_repo(storage, cache_dir=tmp_path / "other-machine")
    data = random_bytes(256 * 1024, seed=3)
    write_backup(other, "b1", {"dump": data})
    mine.load_index()
    assert _in_memory(mine.index) == 0
    assert read_stream(mine, mine.load_manifest("b1")) == data
    _, stats = write_backup(mine, "b2", {"dump": data})
    assert stats.new_chunks == 0


def _flip_record(path: Path) -> None:
    """Flip a bit in the first record's location fields (its pack offset)."""
    at = index_cache.BLOCK + index_cache.KEYS_END + 24 + 4
    with path.open("r+b") as f:
        f.seek(at)
        byte = f.read(1)[0]
        f.seek(at)
        f.write(bytes([byte ^ 0x01]))


def test_a_damaged_side_run_is_never_used(storage: Storage, tmp_path: Path) -> None:
    init_repo(storage)
    cache = tmp_path / "cache"
    repo = open_repo(storage, cache_dir=cache)
    data = random_bytes(256 * 1024, seed=4)
    write_backup(repo, "b1", {"dump": data})
    for side in _sides(cache, repo):
        _flip_record(side)
    reopened = open_repo(storage, cache_dir=cache)
    assert read_stream(reopened, reopened.load_manifest("b1")) == data
    _, stats = write_backup(reopened, "b2", {"dump": data})
    assert stats.new_chunks == 0


def test_leftovers_of_a_killed_process_are_removed_at_open(
    storage: Storage, tmp_path: Path
) -> None:
    init_repo(storage)
    cache = tmp_path / "cache"
    repo = open_repo(storage, cache_dir=cache)
    data = random_bytes(256 * 1024, seed=5)
    write_backup(repo, "b1", {"dump": data})
    folder = index_cache.location_dir(cache / repo.id, repo.storage.location)
    # A run half written, and a merge into the main run killed before it removed the
    # side runs it took in.
    (folder / ".chunkindex-killed.tmp").write_bytes(b"RCIX" + bytes(100))
    main = index_cache.open_run(folder / index_cache.CACHE_NAME, repo.id)
    sides = [index_cache.open_run(p, repo.id) for p in _sides(cache, repo)]
    assert main is not None and sides and None not in sides
    from respaldo.repository import index_runs

    with index_cache.locked(folder):
        index_runs.merge_runs(main.path, repo.id, [main, *(s for s in sides if s)])
    assert _sides(cache, repo)
    again = open_repo(storage, cache_dir=cache)
    assert _sides(cache, again) == []
    assert not list(folder.glob(".chunkindex-*"))
    assert read_stream(again, again.load_manifest("b1")) == data
    _, stats = write_backup(again, "b2", {"dump": data})
    assert stats.new_chunks == 0


_CHILD = textwrap.dedent(
    """
    import io, os, sys
    from pathlib import Path
    from respaldo.repository import BackupWriter, writer
    from respaldo.storage.local import LocalStorage
    from tests.unit.repository.helpers import STARTED, open_repo, random_bytes
    writer.INDEX_FLUSH_ENTRIES = 64
    repo = open_repo(LocalStorage(sys.argv[1]), cache_dir=Path(sys.argv[2]))
    for i in range(1000):
        with BackupWriter(repo, f"k{i}") as w:
            w.write_stream("dump", io.BytesIO(random_bytes(256 * 1024, seed=100 + i)))
            w.commit(kind="full", source="erp", started_at=STARTED)
    """
)


def test_kill_9_while_side_runs_are_written_leaves_a_sound_repository_and_cache(
    tmp_path: Path,
) -> None:
    root, cache = tmp_path / "repo", tmp_path / "cache"
    repo = init_repo(LocalStorage(root))
    folder = index_cache.location_dir(cache / repo.id, repo.storage.location)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(root), str(cache)],
        cwd=Path(__file__).resolve().parents[3],
        env=_child_env(),
    )
    try:
        # Killed once it has written side runs, in the middle of more (no sleep: it is
        # polled until there is something to interrupt).
        while child.poll() is None and len(list(folder.glob(f"{index_cache.SIDE_PREFIX}*"))) < 6:
            os.sched_yield()
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -9
    reopened = open_repo(LocalStorage(root), cache_dir=cache)
    assert verify_repository(reopened).ok
    fresh = open_repo(LocalStorage(root))  # no cache: the index files alone
    expected = {e.chunk_id for entries in fresh.index.by_pack().values() for e in entries}
    cached = {e.chunk_id for entries in reopened.index.by_pack().values() for e in entries}
    assert cached == expected
    # Whatever the kill left, a backup of what is there stores nothing twice.
    for backup_id in reopened.backup_ids():
        data = read_stream(reopened, reopened.load_manifest(backup_id))
        _, stats = write_backup(reopened, f"again-{backup_id}", {"dump": data})
        assert stats.new_chunks == 0


def test_opening_and_writing_with_a_cache_imports_no_numpy(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import io, sys
        from pathlib import Path
        from respaldo.storage.local import LocalStorage
        from respaldo.repository import writer
        from tests.unit.repository.helpers import init_repo, open_repo, random_bytes, write_backup
        writer.INDEX_FLUSH_ENTRIES = 64
        root, cache = sys.argv[1], Path(sys.argv[2])
        init_repo(LocalStorage(root))
        repo = open_repo(LocalStorage(root), cache_dir=cache)
        write_backup(repo, "b1", {"dump": random_bytes(256 * 1024, seed=6)})
        open_repo(LocalStorage(root), cache_dir=Path(sys.argv[3]))  # another machine
        again = open_repo(LocalStorage(root), cache_dir=cache)
        write_backup(again, "b2", {"dump": random_bytes(128 * 1024, seed=7)})
        print("numpy" in sys.modules)
        """
    )
    here = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "r"), str(tmp_path / "c"), str(tmp_path / "o")],
        cwd=here,
        env=_child_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "False"


def test_without_a_cache_the_index_is_in_memory_as_before(storage: Storage) -> None:
    repo = init_repo(storage)
    data = random_bytes(128 * 1024, seed=8)
    _, stats = write_backup(repo, "b1", {"dump": data})
    assert _in_memory(repo.index) == stats.new_chunks
    with BackupWriter(repo, "b2") as w:
        w.write_stream("dump", io.BytesIO(data))
        w.commit(kind="full", source="erp", started_at=STARTED)
    assert w.stats.new_chunks == 0

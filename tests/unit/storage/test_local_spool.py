"""A local store's spool: an object written in pieces, named when complete, with put's
guarantees (no object until then, durable once named, a killed writer's file removable
as a put's temporary file)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from respaldo.errors import PermanentStorageError, StorageError
from respaldo.storage import local as local_module
from respaldo.storage.local import LocalStorage
from respaldo.storage.retry import RetryingStorage

pytestmark = pytest.mark.unit


def _temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob(".tmp-*")]


def test_a_spool_is_no_object_until_committed(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    spool = store.open_spool("packs/")
    spool.write([b"ab", b"", b"cd"])
    spool.write([b"e" * 70_000])
    assert list(store.list("packs/")) == []
    spool.commit("packs/ab/abcd")
    assert store.get("packs/ab/abcd") == b"abcd" + b"e" * 70_000
    assert spool.size == 70_004
    assert [i.name for i in store.list("packs/")] == ["packs/ab/abcd"]
    assert _temporaries(tmp_path) == []


def test_a_spool_writes_pieces_beyond_one_writev(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    pieces = [bytes([i % 251]) * (1 + i % 7) for i in range(5000)]  # more than IOV_MAX
    spool = store.open_spool("packs/")
    spool.write(pieces)
    spool.commit("packs/cd/x")
    assert store.get("packs/cd/x") == b"".join(pieces)


def test_a_short_writev_is_continued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.writev

    def one_byte_less(fd: int, buffers: list[memoryview]) -> int:
        total = sum(len(b) for b in buffers)
        data = b"".join(buffers)[: max(1, total - 1)]
        return real(fd, [data])

    monkeypatch.setattr(os, "writev", one_byte_less)
    store = LocalStorage(tmp_path)
    spool = store.open_spool("packs/")
    spool.write([b"abc", b"defg", b"h"])
    spool.commit("packs/ef/y")
    assert store.get("packs/ef/y") == b"abcdefgh"


def test_a_discarded_spool_leaves_nothing(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    spool = store.open_spool("packs/")
    spool.write([b"half a pack"])
    assert len(_temporaries(tmp_path)) == 1
    spool.discard()
    spool.discard()  # twice is harmless
    assert _temporaries(tmp_path) == []
    assert list(store.list("")) == []


def test_a_full_disk_is_a_clear_error_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, buffers: list[memoryview]) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    store = LocalStorage(tmp_path)
    spool = store.open_spool("packs/")
    monkeypatch.setattr(os, "writev", full)
    with pytest.raises(PermanentStorageError, match="No space left") as caught:
        spool.write([b"x"])
    assert caught.value.hint and "full" in caught.value.hint
    spool.discard()
    assert _temporaries(tmp_path) == []


def test_a_stale_spool_is_removed_like_a_puts_temporary(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    spool = store.open_spool("packs/")
    spool.write([b"what a writer on another machine left"])
    # Not written to for longer than a lease lives: garbage collection's second rule.
    removed = store.remove_stale_temporaries("packs/", older_than=-60)
    assert len(removed) == 1 and removed[0].startswith("packs/.tmp-")
    assert _temporaries(tmp_path) == []


_KILLED_WRITER = """
import os, sys
from respaldo.storage.local import LocalStorage
spool = LocalStorage(sys.argv[1]).open_spool("packs/")
spool.write([b"half a pack"])
print("written", flush=True)
sys.stdin.read()
"""


def test_a_killed_writers_spool_is_removed_and_a_live_ones_kept(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    live = store.open_spool("packs/")
    live.write([b"this process is alive"])
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stdout.readline() == b"written\n"
    child.kill()
    child.wait()
    assert len(_temporaries(tmp_path)) == 2
    # Both were written a moment ago: only the rule of the writer's process applies.
    removed = store.remove_stale_temporaries("packs/", older_than=3600)
    assert len(removed) == 1 and f"-{child.pid}-" in removed[0]
    live.commit("packs/aa/live")
    assert store.get("packs/aa/live") == b"this process is alive"
    assert _temporaries(tmp_path) == []


def test_a_close_that_fails_at_commit_is_not_closed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The number a failed close released may be another thread's file by the time the
    # spool is discarded: it must not be closed a second time.
    store = LocalStorage(tmp_path)
    spool = store.open_spool("packs/")
    spool.write([b"x"])
    closed: list[int] = []
    real_close = os.close

    def failing_close(fd: int) -> None:
        closed.append(fd)
        real_close(fd)
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "close", failing_close)
    with pytest.raises(StorageError, match="cannot write packs/bb/x: Input/output error"):
        spool.commit("packs/bb/x")
    assert len(closed) == 1
    assert _temporaries(tmp_path) == [] and list(store.list("")) == []


def test_a_commit_makes_both_directories_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[Path] = []
    monkeypatch.setattr(local_module, "_fsync_dir", synced.append)
    store = LocalStorage(tmp_path)
    (tmp_path / "packs" / "cc").mkdir(parents=True)  # no directory made: none synced for it
    spool = store.open_spool("packs/")
    spool.write([b"y"])
    spool.commit("packs/cc/y")
    assert tmp_path / "packs" / "cc" in synced and tmp_path / "packs" in synced


def test_a_commit_whose_rename_failed_transiently_is_retried_with_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The retrying wrapper tries a spool's commit again as it tries a put: the synced file
    # is kept for it, and renamed on the second try.
    store = RetryingStorage(LocalStorage(tmp_path), sleep=lambda _: None)
    spool = store.open_spool("packs/")
    spool.write([b"pack ", b"bytes"])
    real_replace = Path.replace
    failures = [OSError(errno.EIO, "Input/output error")]

    def flaky_replace(self: Path, target: Path) -> Path:
        if failures:
            raise failures.pop()
        return real_replace(self, target)

    monkeypatch.setattr(Path, "replace", flaky_replace)
    spool.commit("packs/dd/x")
    assert store.get("packs/dd/x") == b"pack bytes"
    assert _temporaries(tmp_path) == [] and failures == []


def test_a_failed_fsync_is_not_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # After a failed fsync the kernel may have dropped the pages: a second fsync could
    # succeed for bytes never written. The spool is discarded and the error is permanent.
    store = RetryingStorage(LocalStorage(tmp_path), sleep=lambda _: None)
    spool = store.open_spool("packs/")
    spool.write([b"lost"])
    calls: list[int] = []

    def failing_fsync(fd: int) -> None:
        calls.append(fd)
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(PermanentStorageError, match="cannot write packs/ee/x: Input/output"):
        spool.commit("packs/ee/x")
    assert len(calls) == 1
    assert _temporaries(tmp_path) == [] and list(LocalStorage(tmp_path).list("")) == []


def test_a_failed_directory_fsync_after_the_rename_is_not_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The object is named, but its directory entry may not be durable: the error is the
    # I/O error, permanent (a second commit of a spool that was renamed has nothing to
    # redo, and a retry used to hide the EIO behind 'committed or discarded already').
    store = RetryingStorage(LocalStorage(tmp_path), sleep=lambda _: None)
    spool = store.open_spool("packs/")
    spool.write([b"pack bytes"])
    real = local_module._fsync_dir
    failed: list[Path] = []

    def failing(directory: Path) -> None:
        if directory == tmp_path / "packs" / "ff" and not failed:
            failed.append(directory)
            raise OSError(errno.EIO, "Input/output error")
        real(directory)

    monkeypatch.setattr(local_module, "_fsync_dir", failing)
    with pytest.raises(PermanentStorageError, match="packs/ff/x: Input/output error"):
        spool.commit("packs/ff/x")
    assert failed and _temporaries(tmp_path) == []

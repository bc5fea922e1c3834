"""A local store's spool: an object written in pieces, named when complete, with put's
guarantees (no object until then, durable once named, a killed writer's file removable
as a put's temporary file)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from respaldo.errors import PermanentStorageError
from respaldo.storage.local import LocalStorage, spool_store
from respaldo.storage.memory import MemoryStorage
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


def test_a_killed_writers_spool_is_removed_like_a_puts_temporary(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    spool = store.open_spool("packs/")
    spool.write([b"what a killed backup left"])
    # Not written to for longer than a lease lives: garbage collection's second rule.
    removed = store.remove_stale_temporaries("packs/", older_than=-60)
    assert len(removed) == 1 and removed[0].startswith("packs/.tmp-")
    assert _temporaries(tmp_path) == []


def test_spool_store_is_a_local_store_seen_through_the_retrying_wrapper_only(
    tmp_path: Path,
) -> None:
    local = LocalStorage(tmp_path)
    assert spool_store(local) is local
    assert spool_store(RetryingStorage(local)) is local
    assert spool_store(MemoryStorage()) is None
    assert spool_store(RetryingStorage(MemoryStorage())) is None

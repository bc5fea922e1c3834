"""Packs of a local store written while they fill (pack_spool.py): the same bytes and ids,
no whole pack in memory, and nothing left behind when a write fails."""

from __future__ import annotations

import errno
import io
import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from respaldo.errors import PermanentStorageError
from respaldo.repository import BackupWriter, ChunkerParams
from respaldo.repository.pack_spool import PackSpooler
from respaldo.repository.packs import pack_id_of, pack_name
from respaldo.storage.local import LocalStorage
from tests.unit.repository.helpers import (
    STARTED,
    init_repo,
    open_repo,
    random_bytes,
    read_stream,
    write_backup,
)
from tests.unit.repository.test_pack_golden import GOLDEN_PACK_ID, _chunks, _sealer, fixed_nonce

pytestmark = pytest.mark.unit
__all__ = ["fixed_nonce"]  # a fixture, used by name

MIB = 1 << 20


def _temporaries(root: Path) -> list[Path]:
    return list(root.rglob(".tmp-*"))


@pytest.mark.usefixtures("fixed_nonce")
def test_a_spooled_pack_has_the_bytes_of_the_joined_format(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    spooler = PackSpooler(store, 50_000)
    for cid, sealed, raw in _chunks():
        spooler.add(cid, sealed, raw)
    pack = spooler.take(_sealer())
    pack_id, size = pack.complete()
    spooler.close()
    data = store.get(pack_name(pack_id))
    assert pack_id == pack_id_of(data) == GOLDEN_PACK_ID
    assert size == len(data)
    assert [row[0] for row in pack.rows] == [cid for cid, _, _ in _chunks()]
    assert _temporaries(tmp_path) == []


def test_a_packs_chunks_are_in_its_file_before_the_pack_is_full(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    spooler = PackSpooler(store, 64 * MIB)
    for i in range(3):
        spooler.add(bytes([i]) * 32, os.urandom(MIB), MIB)
    assert not spooler.full
    spooler.close()  # waits for the writing thread, then removes the unfinished pack
    assert _temporaries(tmp_path) == []
    spooler = PackSpooler(store, 64 * MIB)
    for i in range(3):
        spooler.add(bytes([i]) * 32, os.urandom(MIB), MIB)
    spooler._pool.shutdown(wait=True)  # what was handed over is written
    (tmp,) = _temporaries(tmp_path)
    assert tmp.stat().st_size >= 2 * MIB
    spooler.close()


def test_a_local_backup_holds_no_whole_pack_in_memory(tmp_path: Path) -> None:
    # One pack bigger than the stream: built in memory, the whole sealed stream and its
    # joined copy are held at once (55 MiB traced); spooled, what is held is the blocks in
    # flight, their sealed chunks and a few 1 MiB pieces (14 MiB), whatever the pack size.
    chunker = ChunkerParams(min_size=16 * 1024, avg_size=64 * 1024, max_size=256 * 1024)
    repo = init_repo(LocalStorage(tmp_path), chunker=chunker, pack_size=64 * MIB)
    data = random_bytes(24 * MIB, seed=5)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with BackupWriter(repo, "b1") as writer:
            writer.write_stream("dump", io.BytesIO(data))
            writer.commit(kind="full", source="erp", started_at=STARTED)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert writer.stats.packs == 1
    assert peak < 20 * MIB, f"peak {peak / MIB:.1f} MiB"
    reopened = open_repo(LocalStorage(tmp_path))
    manifest = reopened.load_manifest("b1")
    assert read_stream(reopened, manifest) == data


def test_a_failed_pack_write_stores_nothing_and_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = init_repo(LocalStorage(tmp_path))
    first = random_bytes(64 * 1024, seed=1)
    write_backup(repo, "b1", {"dump": first})
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())

    def full(fd: int, buffers: list[memoryview]) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "writev", full)
    with pytest.raises(PermanentStorageError, match="No space left") as caught:
        write_backup(repo, "b2", {"dump": random_bytes(256 * 1024, seed=2)})
    assert caught.value.hint and "full" in caught.value.hint
    monkeypatch.undo()
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert _temporaries(tmp_path) == []
    assert [p for p in after if p not in before and "locks" not in p.parts] == []
    reopened = open_repo(LocalStorage(tmp_path))
    assert reopened.backup_ids() == ["b1"]
    assert read_stream(reopened, reopened.load_manifest("b1")) == first


def test_a_backup_that_fails_mid_pack_leaves_no_temporary_file(tmp_path: Path) -> None:
    repo = init_repo(LocalStorage(tmp_path), pack_size=16 * MIB)

    class DumpFailed(Exception):
        pass

    class FailingDump(io.BytesIO):
        def readinto(self, buffer: Any) -> int:
            if self.tell() >= 8 * MIB:  # a pack is half written by then
                raise DumpFailed("pg_dump exited with status 1")
            return super().readinto(buffer)

    with pytest.raises(DumpFailed), BackupWriter(repo, "b1") as writer:
        writer.write_stream("dump", FailingDump(random_bytes(12 * MIB, seed=4)))
    assert _temporaries(tmp_path) == []
    assert [i.name for i in LocalStorage(tmp_path).list("packs/")] == []
    assert open_repo(LocalStorage(tmp_path)).backup_ids() == []

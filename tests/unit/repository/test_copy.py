"""Mirrors and copies: only missing sealed chunks move; reads fall back to a mirror."""

from __future__ import annotations

import io
import logging
import os
from datetime import UTC, datetime

import pytest

from respaldo.errors import IntegrityError, RepositoryError, RepositoryExists, WriteRefused
from respaldo.repository import BackupWriter, ChunkerParams, KdfParams, Repository, iter_stream
from respaldo.repository.copy import copy_backup
from respaldo.repository.reader import ChunkResult
from respaldo.storage.memory import MemoryStorage

pytestmark = pytest.mark.unit
KDF = KdfParams(1, 1024, 1)


def _repo(name: str) -> Repository:
    return Repository.init(
        MemoryStorage(name),
        "pw",
        chunker=ChunkerParams(256, 1024, 4096),
        kdf=KDF,
        pack_size=16 * 1024,
    )


def _backup(repo: Repository, backup_id: str, data: bytes) -> None:
    with BackupWriter(repo, backup_id) as writer:
        writer.write_stream("dump", io.BytesIO(data))
        writer.commit(kind="full", source="erp", started_at=datetime.now(UTC))


def test_copy_moves_only_missing_chunks_and_the_copy_restores() -> None:
    primary = _repo("p")
    mirror = Repository.init_mirror(MemoryStorage("m"), primary, "other pass", kdf=KDF)
    data = os.urandom(100_000)
    _backup(primary, "b1", data)
    first = copy_backup(primary, mirror, "b1")
    assert first.new_chunks > 10 and not first.already_there
    _backup(primary, "b2", data[:50_000] + b"edit" + data[50_000:])
    second = copy_backup(primary, mirror, "b2")
    # The edited chunks and a list chunk; how many depends on the random chunker seed.
    assert 0 < second.new_chunks <= 20
    assert copy_backup(primary, mirror, "b2").already_there
    reopened = Repository.open(mirror.storage, "other pass")
    for backup_id, expected in (("b1", data), ("b2", data[:50_000] + b"edit" + data[50_000:])):
        manifest = reopened.load_manifest(backup_id)
        assert b"".join(iter_stream(reopened, manifest, "dump")) == expected


def test_copy_refuses_a_repository_that_is_not_a_mirror() -> None:
    primary, stranger = _repo("p"), _repo("s")
    _backup(primary, "b1", b"x" * 5000)
    with pytest.raises(RepositoryError, match="not a mirror"):
        copy_backup(primary, stranger, "b1")
    assert stranger.backup_ids() == []


def test_init_mirror_refuses_an_existing_repository() -> None:
    primary = _repo("p")
    with pytest.raises(RepositoryExists):
        Repository.init_mirror(primary.storage, primary, "pw", kdf=KDF)


def test_damaged_source_chunk_is_not_propagated() -> None:
    primary = _repo("p")
    mirror = Repository.init_mirror(MemoryStorage("m"), primary, "pw", kdf=KDF)
    _backup(primary, "b1", os.urandom(60_000))
    pack = next(iter(primary.storage.list("packs/"))).name
    blob = bytearray(primary.storage.get(pack))
    blob[10] ^= 0xFF
    primary.storage.put(pack, bytes(blob))
    with pytest.raises(IntegrityError, match="cannot copy"):
        copy_backup(primary, mirror, "b1")
    assert mirror.backup_ids() == []


def test_reads_fall_back_to_a_mirror_and_say_so() -> None:
    primary = _repo("p")
    mirror = Repository.init_mirror(MemoryStorage("m"), primary, "pw", kdf=KDF)
    data = os.urandom(80_000)
    _backup(primary, "b1", data)
    copy_backup(primary, mirror, "b1")
    pack = next(iter(primary.storage.list("packs/"))).name
    primary.storage.delete(pack)
    manifest = primary.load_manifest("b1")
    with pytest.raises(IntegrityError, match="pack is missing"):
        b"".join(iter_stream(primary, manifest, "dump"))
    events: list[tuple[ChunkResult, ChunkResult]] = []
    restored = b"".join(
        iter_stream(
            primary,
            manifest,
            "dump",
            fallbacks=[mirror],
            on_fallback=lambda bad, good: events.append((bad, good)),
        )
    )
    assert restored == data
    assert events and all(bad.obj == pack for bad, _ in events)
    assert all(good.repository == "memory://m" for _, good in events)


class _ReadOnly(MemoryStorage):
    """A store that refuses every write, as a read-only mount or read-only S3 credentials
    do (the real ones: tests/integration/files/test_repository_faults.py)."""

    def put(self, name: str, data: bytes) -> None:
        raise WriteRefused(f"cannot write {name}: Read-only file system", name=name)

    def delete(self, name: str) -> None:
        raise WriteRefused(f"cannot delete {name}: Read-only file system", name=name)


def test_copy_from_a_read_only_source_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    primary = _repo("primary")
    for backup_id in ("b1", "b2"):
        _backup(primary, backup_id, os.urandom(20_000))
    frozen = _ReadOnly("frozen")
    for info in primary.storage.list():
        MemoryStorage.put(frozen, info.name, primary.storage.get(info.name))
    source = Repository.open(frozen, "pw")
    mirror = Repository.init_mirror(MemoryStorage("mirror"), source, "pw", kdf=KDF)
    with caplog.at_level(logging.WARNING):
        for backup_id in ("b1", "b2"):
            copy_backup(source, mirror, backup_id)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "garbage collection" in warnings[0], warnings
    assert b"".join(iter_stream(mirror, mirror.load_manifest("b2"), "dump"))


def test_two_copies_of_one_backup_at_once_both_succeed() -> None:
    # Two jobs ending at once (a full and a files backup) each copy every backup the
    # mirror lacks: the one that stored its manifest second failed, "backup ... exists
    # already", and sent a critical alert for a copy that was there.
    primary = _repo("p")
    mirror = Repository.init_mirror(MemoryStorage("m"), primary, "pw", kdf=KDF)
    data = os.urandom(60_000)
    _backup(primary, "b1", data)
    other = Repository.open(mirror.storage, "pw")  # the other job's (or process's) handle
    first: list[bool] = []

    def meanwhile(done: int) -> None:
        if not first:  # past this copier's look for the manifest: the other one finishes
            first.append(copy_backup(primary, other, "b1").already_there)

    second = copy_backup(primary, mirror, "b1", meanwhile)
    assert first == [False] and second.already_there
    reopened = Repository.open(mirror.storage, "pw")
    assert b"".join(iter_stream(reopened, reopened.load_manifest("b1"), "dump")) == data

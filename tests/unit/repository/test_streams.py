"""Streams round-trip exactly, whatever their size, and manifests describe them."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from respaldo.errors import BackupNotFound, IntegrityError
from respaldo.repository import BackupWriter, Repository, copy_stream, writer
from respaldo.repository.chunker import iter_chunks
from respaldo.repository.crypto import OVERHEAD
from respaldo.repository.manifest import LIST_ENTRY
from respaldo.repository.reader import read_list
from respaldo.storage.base import Storage
from respaldo.storage.memory import MemoryStorage
from tests.unit.repository.helpers import (
    CHUNKER,
    PACK_SIZE,
    STARTED,
    TrickleReader,
    TrickleReadinto,
    compressible_bytes,
    names,
    open_repo,
    random_bytes,
    read_stream,
    sha256,
    stream_entries,
    write_backup,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("size", "chunks"),
    [
        pytest.param(0, 0, id="empty"),
        pytest.param(1, 1, id="one-byte"),
        pytest.param(CHUNKER.min_size, 1, id="one-chunk"),
        pytest.param(20_000, None, id="many-chunks"),
        pytest.param(200_000, None, id="many-packs"),
    ],
)
def test_round_trip(storage: Storage, repo: Repository, size: int, chunks: int | None) -> None:
    data = random_bytes(size, seed=size)
    manifest, stats = write_backup(repo, "b1", {"dump": data})
    (info,) = manifest.streams
    assert info.name == "dump"
    assert info.size == size == stats.size_bytes
    assert info.sha256 == sha256(data)
    if chunks is not None:
        assert info.chunks == chunks
    else:
        assert info.chunks > 10
    assert len(info.lists) == (1 if size else 0)
    if size == 200_000:
        assert stats.packs > 5
        assert len(names(storage, "packs/")) == stats.packs
    # Through a freshly opened repository: nothing may depend on the writer's memory.
    reopened = open_repo(storage)
    loaded = reopened.load_manifest("b1")
    assert loaded.streams == manifest.streams
    assert read_stream(reopened, loaded) == data
    if size:
        lengths = [length for _, length in stream_entries(reopened, loaded)]
        assert sum(lengths) == size
        assert len(lengths) == info.chunks
        assert max(lengths) <= CHUNKER.max_size
        assert all(length >= CHUNKER.min_size for length in lengths[:-1])


def test_several_list_chunks(
    storage: Storage, repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The writer imported the constant by name: patch it where it is used.
    monkeypatch.setattr(writer, "LIST_ENTRIES_MAX", 8)
    data = random_bytes(60_000, seed=3)
    manifest, _ = write_backup(repo, "b1", {"dump": data})
    info = manifest.stream("dump")
    assert len(info.lists) == -(-info.chunks // 8) > 3
    assert len(set(info.lists)) == len(info.lists)
    reopened = open_repo(storage)
    assert read_stream(reopened, reopened.load_manifest("b1")) == data
    # Every list but the last is full, and together they name every chunk in order.
    per_list = [len(read_list(reopened, list_id)) for list_id in info.lists]
    assert per_list[:-1] == [8] * (len(per_list) - 1)
    assert 1 <= per_list[-1] <= 8
    assert sum(per_list) == len(stream_entries(reopened, manifest)) == info.chunks


@pytest.mark.parametrize("per_list", [1, 0])
def test_exactly_full_list_chunks_add_no_empty_list(
    mem_repo: Repository, monkeypatch: pytest.MonkeyPatch, per_list: int
) -> None:
    data = random_bytes(12_000, seed=12)
    count = len(list(iter_chunks(io.BytesIO(data), mem_repo.chunker, mem_repo.keys.chunker_seed)))
    # One entry per list (every list is full), or all of them in one full list.
    monkeypatch.setattr(writer, "LIST_ENTRIES_MAX", per_list or count)
    manifest, _ = write_backup(mem_repo, "b1", {"dump": data})
    info = manifest.stream("dump")
    assert info.chunks == count > 3
    assert len(info.lists) == (count if per_list else 1)
    assert read_stream(mem_repo, manifest) == data


def test_several_streams_in_one_backup(storage: Storage, repo: Repository) -> None:
    streams = {
        "dump": random_bytes(50_000, seed=1),
        "globals": compressible_bytes(3_000),
        "empty": b"",
        "tiny": b"x",
    }
    manifest, stats = write_backup(repo, "b1", streams)
    assert [s.name for s in manifest.streams] == list(streams)
    assert manifest.size == stats.size_bytes == sum(map(len, streams.values()))
    reopened = open_repo(storage)
    loaded = reopened.load_manifest("b1")
    for name, data in streams.items():
        assert loaded.stream(name).sha256 == sha256(data)
        assert read_stream(reopened, loaded, name) == data
    with pytest.raises(KeyError):
        loaded.stream("missing")


def test_several_backups_each_read_back(storage: Storage, repo: Repository) -> None:
    datas = {f"b{i}": random_bytes(15_000, seed=i) for i in range(4)}
    for backup_id, data in datas.items():
        write_backup(repo, backup_id, {"dump": data})
    reopened = open_repo(storage)
    assert reopened.backup_ids() == sorted(datas)
    assert [m.backup_id for m in reopened.manifests()] == sorted(datas)
    for backup_id, data in datas.items():
        assert read_stream(reopened, reopened.load_manifest(backup_id)) == data


def test_manifest_records_what_the_backup_is(mem_repo: Repository) -> None:
    meta = {"server_version": "17.2", "rows": {"public.invoice": 12}, "lsn": "0/3000028"}
    before = datetime.now(UTC)
    manifest, _ = write_backup(
        mem_repo,
        "20261128T083000Z-3f9a1c2e",
        {"dump": b"abc"},
        kind="files",
        source="uploads",
        meta=meta,
    )
    after = datetime.now(UTC)
    loaded = mem_repo.load_manifest("20261128T083000Z-3f9a1c2e")
    assert loaded == manifest
    assert loaded.kind == "files"
    assert loaded.source == "uploads"
    assert loaded.meta == meta
    assert loaded.started_at == STARTED
    assert before <= loaded.completed_at <= after
    from respaldo import __version__

    assert loaded.tool_version == __version__


def test_unknown_backup_is_backup_not_found(mem_repo: Repository) -> None:
    with pytest.raises(BackupNotFound) as info:
        mem_repo.load_manifest("nope")
    assert "respaldo list" in info.value.hint


@pytest.mark.parametrize("reader", [TrickleReader, TrickleReadinto])
def test_short_reads_cut_the_same_chunks(mem_repo: Repository, reader: type[TrickleReader]) -> None:
    """A pipe returns a few bytes at a time; chunk boundaries must not depend on that,
    or backups from a pipe would never deduplicate against each other."""
    data = random_bytes(40_000, seed=9)
    write_backup(mem_repo, "b1", {"dump": data})
    trickle = reader(data, step=97)
    with BackupWriter(mem_repo, "b2") as w:
        w.write_stream("dump", trickle)
        manifest = w.commit(kind="full", source="erp", started_at=STARTED)
    assert trickle.calls > len(data) // 97
    assert w.stats.new_chunks == 0
    assert read_stream(mem_repo, manifest) == data


def test_progress_reports_bytes_read(mem_repo: Repository) -> None:
    seen: list[int] = []
    data = random_bytes(20_000)
    with BackupWriter(mem_repo, "b1") as w:
        w.write_stream("dump", io.BytesIO(data), progress=seen.append)
        w.commit(kind="full", source="erp", started_at=STARTED)
    assert seen == sorted(seen)
    assert seen[-1] == len(data)


def test_copy_stream(mem_repo: Repository) -> None:
    data = random_bytes(30_000)
    manifest, _ = write_backup(mem_repo, "b1", {"dump": data})
    out = io.BytesIO()
    assert copy_stream(mem_repo, manifest, "dump", out) == len(data)
    assert out.getvalue() == data


def test_a_manifest_that_lies_about_the_checksum_fails_at_the_end(
    mem_repo: Repository,
) -> None:
    data = random_bytes(10_000)
    manifest, _ = write_backup(mem_repo, "b1", {"dump": data})
    info = manifest.streams[0]
    manifest.streams[0] = type(info)(info.name, info.size, "0" * 64, info.chunks, info.lists)
    with pytest.raises(IntegrityError, match="does not match its checksum") as exc:
        read_stream(mem_repo, manifest)
    assert exc.value.backup == "b1"


def test_stats_account_for_what_was_stored(memory_storage: MemoryStorage) -> None:
    from tests.unit.repository.helpers import init_repo

    repo = init_repo(memory_storage)
    before = sum(i.size for i in memory_storage.list(""))
    data = random_bytes(100_000, seed=4)
    manifest, stats = write_backup(repo, "b1", {"dump": data})
    after = sum(i.size for i in memory_storage.list(""))
    assert stats.stored_bytes == after - before
    info = manifest.streams[0]
    # Every data chunk plus the one list chunk; all of them new.
    assert stats.chunks == stats.new_chunks == info.chunks + 1
    assert stats.packs == len(names(memory_storage, "packs/"))
    assert stats.packs >= 100_000 // PACK_SIZE
    # Sealed data chunks (stored raw: random data) and the list chunk.
    list_sealed = info.chunks * LIST_ENTRY.size + OVERHEAD
    assert stats.size_compressed <= len(data) + info.chunks * OVERHEAD + list_sealed

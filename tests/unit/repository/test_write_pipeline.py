"""The write pipeline: blocks cut like the reference, work off the calling thread, failures.

BackupWriter reads a stream in blocks (chunker.BlockCutter), and its workers hash, look
up and seal a block at a time while the calling thread reads on; packs are hashed on the
upload threads. These tests hold the cut points to pyfastcdc's own over the whole buffer
whatever the reads, check where the work runs, that memory is a few blocks whatever the
stream's size, and that a failing stage stops the backup with a clear error and records
nothing.
"""

from __future__ import annotations

import io
import random
import threading
from collections.abc import Callable
from typing import Any

import pytest

from respaldo.errors import RepositoryError, StorageError
from respaldo.repository import (
    BackupWriter,
    ChunkerParams,
    Repository,
    pack_spool,
    verify_repository,
)
from respaldo.repository.chunker import (
    BLOCK_SIZE,
    READ_PIECE,
    Block,
    BlockCutter,
    load_fastcdc,
)
from respaldo.storage.memory import MemoryStorage
from tests.unit.repository.helpers import (
    CHUNKER,
    KDF,
    STARTED,
    TrickleReader,
    TrickleReadinto,
    compressible_bytes,
    init_repo,
    names,
    open_repo,
    random_bytes,
    read_stream,
    stream_entries,
    write_backup,
)

pytestmark = pytest.mark.unit

SEED = 1234567


def _reference(data: bytes, params: ChunkerParams = CHUNKER) -> list[int]:
    """Chunk lengths as pyfastcdc cuts the whole stream in one buffer."""
    fastcdc = load_fastcdc()(
        params.avg_size,
        min_size=params.min_size,
        max_size=params.max_size,
        normalized_chunking=params.normalization,
        seed=SEED,
    )
    return [c.length for c in fastcdc.cut_buf(data)]


def _cut(cutter: BlockCutter, reader: Any) -> list[int]:
    lengths = []
    for block in cutter.blocks(reader):
        start = 0
        for end in block.ends:
            lengths.append(end - start)
            start = end
        assert start == len(block.view)
        cutter.release(block)
    return lengths


class RandomReadinto:
    """readinto that fills a random part of what it is given (a pipe under load)."""

    def __init__(self, data: bytes, seed: int) -> None:
        self._data = io.BytesIO(data)
        self._rng = random.Random(seed)

    def read(self, size: int = -1, /) -> bytes:
        buffer = bytearray(size if size >= 0 else 7000)
        return bytes(buffer[: self.readinto(memoryview(buffer))])

    def readinto(self, buffer: memoryview) -> int:
        want = self._rng.randint(1, max(1, len(buffer)))
        got = self._data.read(min(want, len(buffer)))
        buffer[: len(got)] = got
        return len(got)


MAX = CHUNKER.max_size
BLOCK = 5000


@pytest.mark.parametrize(
    "size",
    [
        0,
        1,
        CHUNKER.min_size - 1,
        MAX - 1,
        MAX,
        MAX + 1,
        BLOCK + MAX,
        BLOCK + MAX + 1,
        3 * BLOCK,
        60_000,
    ],
)
def test_blocks_cut_where_the_whole_buffer_is_cut(size: int) -> None:
    data = random_bytes(size // 2, seed=size) + compressible_bytes(size - size // 2, seed=size)
    expected = _reference(data)
    readers: list[Callable[[], Any]] = [
        lambda: io.BytesIO(data),
        lambda: TrickleReader(data, step=333),
        lambda: TrickleReadinto(data, step=4097),
        lambda: RandomReadinto(data, seed=size),
    ]
    for make in readers:
        assert _cut(BlockCutter(CHUNKER, SEED, BLOCK), make()) == expected


def test_a_block_holds_whole_chunks_of_about_the_block_size() -> None:
    data = random_bytes(200_000, seed=3)
    cutter = BlockCutter(CHUNKER, SEED, BLOCK)
    blocks = []
    for block in cutter.blocks(io.BytesIO(data)):
        blocks.append(bytes(block.view))
        assert BLOCK - MAX < len(block.view) <= BLOCK + MAX
        cutter.release(block)
    assert b"".join(blocks[:-1]) + blocks[-1] == data


def test_buffers_are_reused_so_memory_does_not_grow_with_the_stream() -> None:
    cutter = BlockCutter(CHUNKER, SEED, BLOCK)
    held: list[Block] = []
    buffers: list[bytearray] = []
    for block in cutter.blocks(io.BytesIO(random_bytes(500_000, seed=4))):
        buffers.append(block.buffer)  # kept alive: distinct objects have distinct ids
        held.append(block)
        if len(held) > 3:  # three blocks in flight, as a writer's workers hold them
            cutter.release(held.pop(0))
    assert len(buffers) > 50
    assert len({id(b) for b in buffers}) <= 5


def _writer_repo(**options: Any) -> Repository:
    return init_repo(MemoryStorage("pipeline"), **options)


def test_a_file_is_read_in_blocks_not_chunk_by_chunk() -> None:
    repo = _writer_repo(chunker=ChunkerParams(4096, 16384, 65536), pack_size=12 << 20, kdf=KDF)
    data = random_bytes(3 * BLOCK_SIZE, seed=5)
    reader = TrickleReadinto(data, step=len(data))
    with BackupWriter(repo, "b1") as writer:
        info = writer.write_stream("dump", reader)
        manifest = writer.commit(kind="full", source="erp", started_at=STARTED)
    assert info.chunks > 100
    # One read per block and one that finds the end (before: a read per chunk or so).
    assert reader.calls <= len(data) // BLOCK_SIZE + 2
    assert read_stream(repo, manifest) == data


class SizeRecorder:
    """A source with ``read`` only (like the serial backup's BlockStarts): what it is asked."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.sizes: list[int] = []

    def read(self, size: int = -1, /) -> bytes:
        self.sizes.append(size)
        return self._data.read(size)


def test_a_source_without_readinto_is_read_in_pieces_of_at_most_128_kib() -> None:
    """Each read() returns a new bytes object: 1 MiB ones cost page faults on every read
    (BlockStarts' scan of a 844 MiB dump took 0.97 CPU-s with 1 MiB reads, 0.24 with 128
    KiB ones, measured); pieces of 128 KiB come from reused memory."""
    repo = _writer_repo(chunker=ChunkerParams(4096, 16384, 65536), pack_size=12 << 20, kdf=KDF)
    data = random_bytes(3 * BLOCK_SIZE, seed=11)
    source = SizeRecorder(data)
    with BackupWriter(repo, "b1") as writer:
        writer.write_stream("dump", source)
        manifest = writer.commit(kind="full", source="erp", started_at=STARTED)
    assert max(source.sizes) <= READ_PIECE == 128 * 1024
    assert read_stream(repo, manifest) == data


def test_ids_and_sealing_run_on_workers_and_packs_are_hashed_off_the_calling_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = _writer_repo()
    sealer = repo.sealer
    seen: dict[str, list[str]] = {
        "chunk_id": [],
        "seal_chunk": [],
        "seal_chunks": [],
        "write": [],
        "complete": [],
    }

    def recording(what: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any) -> Any:
            seen[what].append(threading.current_thread().name)
            return fn(*args)

        return wrapper

    monkeypatch.setattr(sealer, "chunk_id", recording("chunk_id", sealer.chunk_id))
    monkeypatch.setattr(sealer, "seal_chunk", recording("seal_chunk", sealer.seal_chunk))
    monkeypatch.setattr(sealer, "seal_chunks", recording("seal_chunks", sealer.seal_chunks))
    # A pack's pieces are hashed and written by the spool's thread, and the pack is
    # stored (named after that hash) by an upload thread.
    monkeypatch.setattr(
        pack_spool._PackFile, "write", recording("write", pack_spool._PackFile.write)
    )
    monkeypatch.setattr(
        pack_spool.SpooledPack, "complete", recording("complete", pack_spool.SpooledPack.complete)
    )
    data = random_bytes(100_000, seed=6)
    manifest, stats = write_backup(repo, "b1", {"dump": data})
    lists = len(manifest.stream("dump").lists)
    main = threading.main_thread().name
    # The calling thread hashes and seals only the list chunks it makes itself.
    assert seen["chunk_id"].count(main) == lists
    assert seen["seal_chunk"] == [main] * lists
    assert len(seen["chunk_id"]) == stats.chunks
    assert all(n.startswith("seal") for n in seen["chunk_id"] if n != main)
    # The workers seal a block's new chunks in one call each (crypto.seal_chunks).
    assert seen["seal_chunks"] and all(n.startswith("seal") for n in seen["seal_chunks"])
    assert seen["write"] and all(n.startswith("pack-spool") for n in seen["write"])
    assert len(seen["complete"]) == stats.packs
    assert all(n.startswith("upload") for n in seen["complete"])
    assert read_stream(repo, manifest) == data


def test_duplicates_across_blocks_in_flight_are_stored_once_and_counted_right() -> None:
    """Blocks are looked up on several threads at once: a chunk that two blocks hold is
    sealed by one of them, and the sizes count it once per reference."""
    repo = _writer_repo()
    piece = random_bytes(3000, seed=7) + compressible_bytes(5000, seed=7)
    data = piece * 40
    manifest, stats = write_backup(repo, "b1", {"dump": data})
    entries = stream_entries(repo, manifest)
    unique = {cid for cid, _ in entries}
    assert stats.new_chunks == len(unique) + len(manifest.stream("dump").lists)
    assert stats.chunks == len(entries) + len(manifest.stream("dump").lists)

    def sealed_length(cid: bytes) -> int:
        location = repo.index.get(cid)
        assert location is not None, "a chunk of the backup is not in the index"
        return location.length

    data_sealed = sum(sealed_length(cid) for cid, _ in entries)
    list_sealed = sum(sealed_length(bytes.fromhex(h)) for h in manifest.stream("dump").lists)
    assert stats.size_compressed == data_sealed + list_sealed
    assert read_stream(repo, manifest) == data


# --- a failing stage ---------------------------------------------------------------------


def _pipeline_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(("seal", "upload"))]


def _assert_nothing_recorded(storage: MemoryStorage, repo: Repository, data: bytes) -> None:
    """No manifest, no pipeline thread left, and the repository stays usable: a new
    backup of the same data in this process (its index) and after a reopen reads back."""
    assert names(storage, "manifests/") == []
    assert _pipeline_threads() == []
    manifest, _ = write_backup(repo, "ok", {"dump": data})
    reopened = open_repo(storage)
    assert reopened.backup_ids() == ["ok"]
    assert read_stream(reopened, manifest) == data
    report = verify_repository(reopened)
    assert report.ok, report.problems


def test_a_worker_that_fails_stops_the_backup_with_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage = MemoryStorage("failing-worker")
    repo = init_repo(storage)
    real = repo.sealer.seal_chunks
    calls = {"n": 0}

    def seal_chunks(cids: list[bytes], datas: list[Any]) -> list[bytes]:
        calls["n"] += 1
        if calls["n"] == 3 and threading.current_thread().name.startswith("seal"):
            raise MemoryError("no memory for the compressor")
        return real(cids, datas)

    monkeypatch.setattr(repo.sealer, "seal_chunks", seal_chunks)
    data = random_bytes(150_000, seed=8)
    with pytest.raises(RepositoryError) as info, BackupWriter(repo, "b1") as writer:
        writer.write_stream("dump", io.BytesIO(data))
        writer.commit(kind="full", source="erp", started_at=STARTED)
    message = str(info.value)
    assert "backup b1 failed while hashing and sealing chunks" in message
    assert "MemoryError: no memory for the compressor" in message
    assert "nothing of this backup was recorded" in info.value.hint
    assert isinstance(info.value.__cause__, MemoryError)
    monkeypatch.setattr(repo.sealer, "seal_chunks", real)
    _assert_nothing_recorded(storage, repo, data)


class FailingPuts(MemoryStorage):
    def __init__(self, name: str, fail_at: int) -> None:
        super().__init__(name)
        self.fail_at = fail_at
        self.packs = 0
        self.failing = True

    def put(self, name: str, data: bytes) -> None:
        if name.startswith("packs/") and self.failing:
            self.packs += 1
            if self.packs == self.fail_at:
                raise StorageError(f"cannot write {name}: disk full")
        super().put(name, data)


def test_a_failing_upload_stops_the_backup_with_the_storage_error() -> None:
    storage = FailingPuts("failing-put", fail_at=3)
    repo = init_repo(storage)
    data = random_bytes(150_000, seed=9)
    with pytest.raises(StorageError, match="disk full"), BackupWriter(repo, "b1") as writer:
        writer.write_stream("dump", io.BytesIO(data))
        writer.commit(kind="full", source="erp", started_at=STARTED)
    storage.failing = False
    _assert_nothing_recorded(storage, repo, data)


class FailingSource:
    """A source that breaks after ``limit`` bytes (pg_dump's pipe when it dies)."""

    def __init__(self, data: bytes, limit: int) -> None:
        self._data = io.BytesIO(data)
        self._left = limit

    def read(self, size: int = -1, /) -> bytes:
        buffer = bytearray(size if size >= 0 else 7000)
        return bytes(buffer[: self.readinto(memoryview(buffer))])

    def readinto(self, buffer: memoryview) -> int:
        if self._left <= 0:
            raise OSError("read failed: connection lost")
        got = self._data.read(min(len(buffer), self._left, 7000))
        buffer[: len(got)] = got
        self._left -= len(got)
        return len(got)


def test_a_source_that_fails_midway_records_nothing() -> None:
    storage = MemoryStorage("failing-source")
    repo = init_repo(storage)
    data = random_bytes(150_000, seed=10)
    with pytest.raises(OSError, match="connection lost"), BackupWriter(repo, "b1") as writer:
        writer.write_stream("dump", FailingSource(data, limit=100_000))
    assert names(storage, "packs/"), "the test needs packs stored before the failure"
    _assert_nothing_recorded(storage, repo, data)

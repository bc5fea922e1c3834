"""What a writer holds for the chunks it stored but no index file describes yet.

Until an index file names a new chunk's pack, the writer keeps its entry (for dedup
within the backup, and to write that index file). Bounded by packs (64 of them), that was
about 100,000 entries of the sample ERP dump, some 30 MiB, of which a first backup of 1 GB
held half and one of 4 GB or more all: peak memory grew with the database. Bounded by
entries, it is the same at every size."""

from __future__ import annotations

import io

import pytest

from respaldo.repository import BackupWriter, Repository, writer
from respaldo.repository.index import encode_index, encode_index_groups
from respaldo.repository.packs import ENTRY, PackEntry, pack_name, read_header
from respaldo.storage.memory import MemoryStorage
from tests.unit.repository.helpers import (
    PACK_SIZE,
    STARTED,
    init_repo,
    open_repo,
    random_bytes,
    read_stream,
)

pytestmark = pytest.mark.unit

BOUND = 64


def _held_while_writing(repo: Repository, data: bytes) -> tuple[int, int]:
    """(most entries held unindexed at once, index files written) for one stream."""
    before = len(repo.index_files)
    most = 0
    with BackupWriter(repo, "b1") as w:

        def sample(_: int) -> None:
            nonlocal most
            with w._lock:
                unindexed = w._unindexed_entries
            most = max(most, unindexed)

        w.write_stream("dump", io.BytesIO(data), sample)
        w.commit(kind="full", source="erp", started_at=STARTED)
    return most, len(repo.index_files) - before


def test_unindexed_entries_stay_under_a_bound_whatever_the_stream_length(
    memory_storage: MemoryStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer, "PROGRESS_EVERY", 1024)  # sample after every chunk or so
    monkeypatch.setattr(writer, "INDEX_FLUSH_ENTRIES", BOUND, raising=False)
    repo = init_repo(memory_storage)
    # Random bytes: every chunk is new (about 1 KiB each, 16 to a 16 KiB pack).
    data = random_bytes(2 * 1024 * 1024, seed=3)
    most, index_files = _held_while_writing(repo, data)
    # An index file is due once BOUND entries wait; the pack that crossed it (and the
    # uploads in flight) come on top.
    chunks_per_pack = PACK_SIZE // 1024
    assert most <= BOUND + (writer.UPLOADS_IN_FLIGHT + 1) * chunks_per_pack * 2
    assert index_files > 1
    reopened = open_repo(memory_storage)
    (backup_id,) = reopened.backup_ids()
    assert read_stream(reopened, reopened.load_manifest(backup_id)) == data


def test_entries_wait_for_their_index_file_as_it_will_hold_them(
    memory_storage: MemoryStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 48 bytes an entry, not a PackEntry and three ints (~150 bytes): at 16,384 waiting
    # entries, 2.8 MiB held with the writer's pending chunks instead of 4.2 (tracemalloc),
    # at every index flush of a backup, the moment of its peak.
    monkeypatch.setattr(writer, "INDEX_FLUSH_ENTRIES", 1 << 30, raising=False)
    repo = init_repo(memory_storage)
    with BackupWriter(repo, "b1") as w:
        w.write_stream("dump", io.BytesIO(random_bytes(256 * 1024, seed=5)), None)
        # Every pack stored, the index file not yet written.
        while w._inflight:
            w._drain_one()
        if len(w._packer):
            w._flush_pack()
        while w._uploads:
            w._collect_upload()
        waiting = list(w._unindexed)
        assert waiting and all(type(entries) is bytes for _, entries in waiting)
        assert sum(len(e) for _, e in waiting) == ENTRY.size * w._unindexed_entries
        for pack_id, entries in waiting:
            header = [
                (e.chunk_id, e.offset, e.length, e.raw_length)
                for e in read_header(memory_storage, repo.sealer, pack_name(pack_id))
            ]
            assert list(ENTRY.iter_unpack(entries)) == header
        plaintext = encode_index_groups(waiting)
        assert plaintext == encode_index(
            [(p, [PackEntry(*f) for f in ENTRY.iter_unpack(e)]) for p, e in waiting]
        )
        w.commit(kind="full", source="erp", started_at=STARTED)

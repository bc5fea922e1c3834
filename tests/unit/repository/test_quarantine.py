"""A chunk copy found damaged is never deduplicated against, read, rebuilt or copied again.

The failure this guards against: after verify had found a damaged chunk, the next backup
of unchanged data referenced that same copy, reported success, and could not be restored.
"""

from __future__ import annotations

import io

import pytest

from respaldo.errors import IntegrityError, RepositoryError
from respaldo.repository import (
    BackupWriter,
    Repository,
    collect_garbage,
    rebuild_index,
    verify_backups,
    verify_repository,
)
from respaldo.repository.copy import copy_backup
from respaldo.repository.index import INDEX_PREFIX, ChunkIndex, decode_index
from respaldo.repository.quarantine import QUARANTINE_PREFIX
from respaldo.repository.repair import repair_repository
from respaldo.repository.verify import quarantine_damaged
from respaldo.storage.base import Storage
from respaldo.storage.memory import MemoryStorage
from tests.unit.repository.helpers import (
    KDF,
    STARTED,
    flip_byte,
    init_repo,
    names,
    open_repo,
    pack_of_chunk,
    random_bytes,
    read_stream,
    stream_entries,
    write_backup,
)

pytestmark = pytest.mark.unit

SIZE = 40_000


def _damage_middle_chunk(storage: Storage, repo: Repository, backup_id: str) -> bytes:
    """Flip a byte of a data chunk in the middle of the backup's stream; its id."""
    entries = stream_entries(repo, repo.load_manifest(backup_id))
    cid, _ = entries[len(entries) // 2]
    pack, offset, length = pack_of_chunk(repo, cid)
    flip_byte(storage, pack, offset + length // 2)
    return cid


def _verify_and_quarantine(storage: Storage, *backup_ids: str) -> Repository:
    """What 'respaldo verify' does, in a process of its own."""
    repo = open_repo(storage)
    report = verify_backups(repo, list(backup_ids))
    assert not report.ok
    assert quarantine_damaged(repo, report) >= 1
    return repo


def test_next_backup_stores_a_quarantined_chunk_anew(storage: Storage, repo: Repository) -> None:
    data = random_bytes(SIZE, seed=1)
    write_backup(repo, "b1", {"dump": data})
    cid = _damage_middle_chunk(storage, repo, "b1")
    _verify_and_quarantine(storage, "b1")

    later = open_repo(storage)  # the next backup, another process
    assert cid not in later.index
    _, stats = write_backup(later, "b2", {"dump": data})
    assert stats.damaged_rewritten == 1
    assert stats.new_chunks >= 1

    reader = open_repo(storage)
    assert read_stream(reader, reader.load_manifest("b2")) == data
    # The older backup reads the fresh copy too: it is whole again.
    assert read_stream(reader, reader.load_manifest("b1")) == data
    assert verify_repository(reader).ok


def test_without_a_good_copy_reading_says_damaged_and_points_at_repair(
    storage: Storage, repo: Repository
) -> None:
    data = random_bytes(SIZE, seed=2)
    write_backup(repo, "b1", {"dump": data})
    cid = _damage_middle_chunk(storage, repo, "b1")
    reader = _verify_and_quarantine(storage, "b1")
    with pytest.raises(IntegrityError) as info:
        read_stream(reader, reader.load_manifest("b1"))
    assert cid.hex()[:16] in str(info.value)
    assert "damaged" in str(info.value) and "quarantined" in str(info.value)
    assert "respaldo repair" in info.value.hint
    # verify again: the same damage, reported, and nothing quarantined twice.
    again = verify_backups(reader, ["b1"])
    assert not again.ok
    assert quarantine_damaged(reader, again) == 0
    assert len(names(storage, QUARANTINE_PREFIX)) == 1


def test_index_rebuild_does_not_bring_the_damaged_copy_back(
    storage: Storage, repo: Repository
) -> None:
    data = random_bytes(SIZE, seed=3)
    write_backup(repo, "b1", {"dump": data})
    cid = _damage_middle_chunk(storage, repo, "b1")
    _verify_and_quarantine(storage, "b1")
    records = names(storage, QUARANTINE_PREFIX)

    rebuilt = open_repo(storage, load_index=False)
    assert rebuild_index(rebuilt).quarantined == 1
    assert names(storage, QUARANTINE_PREFIX) == records
    assert cid not in rebuilt.index

    later = open_repo(storage)
    assert cid not in later.index
    _, stats = write_backup(later, "b2", {"dump": data})
    assert stats.damaged_rewritten == 1
    # Rebuilt again, now with two copies described: the good one is the one used.
    rebuild_index(open_repo(storage, load_index=False))
    reader = open_repo(storage)
    assert read_stream(reader, reader.load_manifest("b2")) == data
    assert verify_repository(reader).ok


def test_the_good_copy_wins_whatever_the_order_of_index_files(memory_storage: Storage) -> None:
    repo = init_repo(memory_storage)
    data = random_bytes(SIZE, seed=4)
    write_backup(repo, "b1", {"dump": data})
    cid = _damage_middle_chunk(memory_storage, repo, "b1")
    bad_pack = pack_of_chunk(repo, cid)[0]
    _verify_and_quarantine(memory_storage, "b1")
    write_backup(open_repo(memory_storage), "b2", {"dump": data})
    # Both copies are described; index files load in name order, so either may be first.
    reader = open_repo(memory_storage)
    assert pack_of_chunk(reader, cid)[0] != bad_pack


def test_garbage_collection_keeps_the_good_copy(storage: Storage, repo: Repository) -> None:
    data = random_bytes(SIZE, seed=5)
    other = random_bytes(SIZE, seed=6)
    write_backup(repo, "b1", {"dump": data, "other": other})
    cid = _damage_middle_chunk(storage, repo, "b1")
    _verify_and_quarantine(storage, "b1")
    write_backup(open_repo(storage), "b2", {"dump": data})
    report = collect_garbage(open_repo(storage), repack_threshold=0.01)
    assert not report.problems
    reader = open_repo(storage)
    assert read_stream(reader, reader.load_manifest("b2")) == data
    assert read_stream(reader, reader.load_manifest("b1")) == data
    assert verify_repository(reader).ok
    assert cid in reader.index


def test_garbage_collection_reports_a_chunk_with_no_good_copy(
    storage: Storage, repo: Repository
) -> None:
    data = random_bytes(SIZE, seed=7)
    write_backup(repo, "b1", {"dump": data})
    _damage_middle_chunk(storage, repo, "b1")
    _verify_and_quarantine(storage, "b1")
    report = collect_garbage(open_repo(storage))
    assert any("respaldo repair" in problem for problem in report.problems)
    assert len(names(storage, QUARANTINE_PREFIX)) == 1


def test_a_quarantined_chunk_is_never_copied_to_a_mirror(
    storage: Storage, repo: Repository
) -> None:
    data = random_bytes(SIZE, seed=8)
    write_backup(repo, "b1", {"dump": data})
    _damage_middle_chunk(storage, repo, "b1")
    source = _verify_and_quarantine(storage, "b1")
    mirror_store = MemoryStorage("mirror-of-" + storage.location)
    mirror = Repository.init_mirror(mirror_store, source, "mirror passphrase", kdf=KDF)
    mirror.pack_size = source.pack_size
    with pytest.raises(IntegrityError, match="cannot copy"):
        copy_backup(source, mirror, "b1")
    assert names(mirror_store, "manifests/") == []

    # Once a backup has stored the chunk anew, the copy carries the good one.
    write_backup(open_repo(storage), "b2", {"dump": data})
    source = open_repo(storage)
    copy_backup(source, mirror, "b1")
    mirror.load_index()
    assert read_stream(mirror, mirror.load_manifest("b1")) == data


def test_a_backup_that_used_a_copy_quarantined_meanwhile_says_so(
    memory_storage: Storage,
) -> None:
    repo = init_repo(memory_storage)
    data = random_bytes(SIZE, seed=9)
    write_backup(repo, "b1", {"dump": data})
    writer_repo = open_repo(memory_storage)  # a backup starts: its index has every copy
    _damage_middle_chunk(memory_storage, repo, "b1")
    with BackupWriter(writer_repo, "b2") as writer:
        writer.write_stream("dump", io.BytesIO(data))
        _verify_and_quarantine(memory_storage, "b1")  # verify runs meanwhile
        writer.commit(kind="full", source="erp", started_at=STARTED)
    assert writer.stats.unconfirmed_chunks == 1


def test_a_backup_with_nothing_quarantined_meanwhile_is_confirmed(mem_repo: Repository) -> None:
    data = random_bytes(SIZE, seed=10)
    write_backup(mem_repo, "b1", {"dump": data})
    _, stats = write_backup(mem_repo, "b2", {"dump": data})
    assert stats.unconfirmed_chunks == 0
    assert stats.damaged_rewritten == 0


def test_reading_around_a_damaged_index_file_skips_quarantined_copies(
    memory_storage: Storage,
) -> None:
    repo = init_repo(memory_storage)
    write_backup(repo, "b1", {"dump": random_bytes(SIZE, seed=11)})
    _damage_middle_chunk(memory_storage, repo, "b1")
    _verify_and_quarantine(memory_storage, "b1")
    [index_file] = names(memory_storage, "index/")
    flip_byte(memory_storage, index_file, 40)

    reader = open_repo(memory_storage)
    assert reader.damaged_index_files  # chunks are looked up in the pack headers
    with pytest.raises(IntegrityError, match="quarantined"):
        read_stream(reader, reader.load_manifest("b1"))


def _with_an_unreadable_record(storage: Storage, repo: Repository) -> tuple[bytes, bytes, str]:
    """b1 with a damaged chunk, quarantined; b2 holds a fresh copy; then the record is
    damaged. Returns (data, damaged chunk id, the record's name)."""
    data = random_bytes(SIZE, seed=11)
    write_backup(repo, "b1", {"dump": data})
    cid = _damage_middle_chunk(storage, repo, "b1")
    _verify_and_quarantine(storage, "b1")
    write_backup(open_repo(storage), "b2", {"dump": data})
    [record] = names(storage, QUARANTINE_PREFIX)
    flip_byte(storage, record, 40)
    return data, cid, record


def test_garbage_collection_refuses_while_a_record_is_unreadable(
    storage: Storage, repo: Repository
) -> None:
    _, _, record = _with_an_unreadable_record(storage, repo)
    before = {name: storage.get(name) for name in names(storage, "")}
    with pytest.raises(RepositoryError) as refused:
        collect_garbage(open_repo(storage), repack_threshold=0.01)
    assert record in refused.value.message and "respaldo repair" in (refused.value.hint or "")
    assert {name: storage.get(name) for name in names(storage, "")} == before


def test_verify_all_quarantines_anew_what_an_unreadable_record_named(
    storage: Storage, repo: Repository
) -> None:
    data, cid, record = _with_an_unreadable_record(storage, repo)
    bad_pack = pack_of_chunk(repo, cid)[0]
    verifier = open_repo(storage)
    report = verify_repository(verifier)
    assert any(record in str(p) for p in report.problems)
    assert quarantine_damaged(verifier, report) == 1
    assert [key for key in verifier.quarantine.damaged] == [(cid, bad_pack.rsplit("/", 1)[-1])]
    # repair re-reads every copy and deletes the unreadable record: the state is cleared.
    repaired = repair_repository(open_repo(storage), [])
    assert repaired.records_replaced == [record] and not repaired.problems
    assert record not in names(storage, QUARANTINE_PREFIX)
    reader = open_repo(storage)
    assert not reader.quarantine.unreadable
    assert verify_repository(reader).ok
    assert read_stream(reader, reader.load_manifest("b1")) == data


def test_while_a_record_is_unreadable_a_reader_takes_another_copy(
    storage: Storage, repo: Repository
) -> None:
    data, cid, _ = _with_an_unreadable_record(storage, repo)
    bad_pack = pack_of_chunk(repo, cid)[0].rsplit("/", 1)[-1]
    reader = open_repo(storage)
    # Index files load in name order (random): put the damaged copy's file first, so
    # that the index chooses the damaged copy, as it may in the field.
    plaintexts = [reader._read_index_file(name) for name in names(storage, INDEX_PREFIX)]
    plaintexts.sort(key=lambda p: bad_pack not in {pid for pid, _ in decode_index(p)})
    reader.index = ChunkIndex.from_files(plaintexts, reader.quarantine.excluded())
    location = reader.index.get(cid)
    assert location is not None and location.pack_id == bad_pack
    # Both backups still read whole, from the good copy that b2 stored.
    assert read_stream(reader, reader.load_manifest("b2")) == data
    assert read_stream(reader, reader.load_manifest("b1")) == data

"""Damage is detected, named (backup and object) and, by verify, reported in full."""

from __future__ import annotations

import pytest

from respaldo.errors import IntegrityError
from respaldo.repository import (
    Repository,
    iter_stream,
    verify_backups,
    verify_repository,
)
from respaldo.repository.crypto import AAD_INDEX
from respaldo.repository.index import seal_index
from respaldo.repository.packs import PackEntry
from respaldo.storage.base import Storage
from tests.unit.repository.helpers import (
    flip_byte,
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


@pytest.fixture
def three(repo: Repository) -> dict[str, bytes]:
    """Three backups of distinct data, so each has packs of its own."""
    datas = {f"b{i}": random_bytes(SIZE, seed=100 + i) for i in (1, 2, 3)}
    for backup_id, data in datas.items():
        write_backup(repo, backup_id, {"dump": data})
    return datas


def _middle_chunk(repo: Repository, backup_id: str) -> tuple[str, int, int]:
    """(pack name, offset, length) of a data chunk in the middle of a backup's stream."""
    entries = stream_entries(repo, repo.load_manifest(backup_id))
    cid, _ = entries[len(entries) // 2]
    return pack_of_chunk(repo, cid)


def _packs_of(repo: Repository, backup_id: str) -> set[str]:
    return {
        pack_of_chunk(repo, cid)[0]
        for cid, _ in stream_entries(repo, repo.load_manifest(backup_id))
    }


def test_flipped_byte_in_a_chunk(
    storage: Storage, repo: Repository, three: dict[str, bytes]
) -> None:
    pack2, offset2, length2 = _middle_chunk(repo, "b2")
    pack3, offset3, length3 = _middle_chunk(repo, "b3")
    assert pack2 != pack3
    flip_byte(storage, pack2, offset2 + length2 // 2)
    flip_byte(storage, pack3, offset3 + length3 - 1)  # inside the tag

    reopened = open_repo(storage)
    with pytest.raises(IntegrityError) as info:
        read_stream(reopened, reopened.load_manifest("b2"))
    error = info.value
    assert error.backup == "b2"
    assert error.obj == pack2
    assert "b2" in str(error)
    assert pack2 in str(error)
    assert "'dump'" in str(error)
    assert "authentication failed" in str(error)
    assert error.hint
    assert read_stream(reopened, reopened.load_manifest("b1")) == three["b1"]

    # verify keeps going: both damaged backups are reported, the good one is not.
    report = verify_backups(reopened, ["b2", "b1", "b3"])
    assert report.backups == 3
    assert {p.backup for p in report.problems} == {"b2", "b3"}
    assert {p.obj for p in report.problems} == {pack2, pack3}
    assert all("authentication failed" in p.message for p in report.problems)
    assert report.bytes == 3 * SIZE - _lost(reopened, ["b2", "b3"])
    # verify_repository checks the same backups and also finds the headers intact.
    full = verify_repository(reopened)
    assert {p.backup for p in full.problems} == {"b2", "b3"}
    assert not full.ok


def _lost(repo: Repository, backup_ids: list[str]) -> int:
    """Plaintext bytes of the one damaged chunk of each backup (the middle one)."""
    total = 0
    for backup_id in backup_ids:
        entries = stream_entries(repo, repo.load_manifest(backup_id))
        total += entries[len(entries) // 2][1]
    return total


def test_iter_stream_stops_at_the_damage_without_yielding_it(
    storage: Storage, repo: Repository, three: dict[str, bytes]
) -> None:
    pack, offset, _ = _middle_chunk(repo, "b2")
    flip_byte(storage, pack, offset + 20)
    got = bytearray()
    with pytest.raises(IntegrityError):
        for piece in iter_stream(repo, repo.load_manifest("b2"), "dump"):
            got += piece
    assert three["b2"].startswith(bytes(got))
    assert len(got) < SIZE


def test_flipped_byte_in_a_pack_header(
    storage: Storage, repo: Repository, three: dict[str, bytes]
) -> None:
    pack = sorted(_packs_of(repo, "b1"))[0]
    flip_byte(storage, pack, -10)  # inside the sealed header, before the trailer
    report = verify_repository(open_repo(storage))
    assert [p.obj for p in report.problems] == [pack]
    assert "pack header is damaged" in report.problems[0].message
    # The header only serves verify and rebuild: the data still restores.
    assert read_stream(repo, repo.load_manifest("b1")) == three["b1"]


def test_damaged_pack_trailer(storage: Storage, repo: Repository, three: dict[str, bytes]) -> None:
    pack = sorted(_packs_of(repo, "b1"))[0]
    flip_byte(storage, pack, -1)  # the header length's most significant byte
    report = verify_repository(open_repo(storage))
    assert [p.obj for p in report.problems] == [pack]
    assert "damaged" in report.problems[0].message


def test_flipped_byte_in_an_index_file(
    storage: Storage, repo: Repository, three: dict[str, bytes]
) -> None:
    index_name = names(storage, "index/")[1]
    flip_byte(storage, index_name, 40)
    # Opening reads around it (tests/unit/repository/test_damaged_index.py)...
    reopened = open_repo(storage)
    assert index_name in reopened.damaged_index_files[index_name]
    # ...and verify reports it, with or without loading the index.
    for repo_ in (reopened, open_repo(storage, load_index=False)):
        report = verify_repository(repo_)
        assert any(
            p.obj == index_name and "index file is damaged" in p.message for p in report.problems
        )


def test_flipped_byte_in_a_manifest(
    storage: Storage, repo: Repository, three: dict[str, bytes]
) -> None:
    flip_byte(storage, "manifests/b2", 30)
    with pytest.raises(IntegrityError) as info:
        repo.load_manifest("b2")
    assert info.value.obj == "manifests/b2"
    assert info.value.backup == "b2"
    assert "manifests/b2" in str(info.value)
    report = verify_backups(repo, ["b1", "b2", "b3"])
    assert [(p.backup, p.obj) for p in report.problems] == [("b2", "manifests/b2")]
    assert report.bytes == 2 * SIZE


def test_truncated_pack(storage: Storage, repo: Repository, three: dict[str, bytes]) -> None:
    pack, _, _ = _middle_chunk(repo, "b2")
    data = storage.get(pack)
    storage.put(pack, data[: len(data) // 2])
    reopened = open_repo(storage)
    with pytest.raises(IntegrityError) as info:
        read_stream(reopened, reopened.load_manifest("b2"))
    assert info.value.obj == pack
    assert info.value.backup == "b2"
    report = verify_repository(reopened)
    assert any(p.obj == pack and p.backup == "" for p in report.problems)  # its header
    assert any(p.obj == pack and p.backup == "b2" for p in report.problems)  # its chunks
    assert {p.backup for p in report.problems} <= {"", "b2"}


def test_truncated_to_nothing(storage: Storage, repo: Repository, three: dict[str, bytes]) -> None:
    pack, _, _ = _middle_chunk(repo, "b2")
    storage.put(pack, b"")
    report = verify_repository(open_repo(storage))
    assert any(p.obj == pack and "too short" in p.message for p in report.problems)
    assert any(p.obj == pack and "truncated" in p.message for p in report.problems)


def test_deleted_pack(storage: Storage, repo: Repository, three: dict[str, bytes]) -> None:
    pack, _, _ = _middle_chunk(repo, "b2")
    storage.delete(pack)
    reopened = open_repo(storage)
    with pytest.raises(IntegrityError, match="pack is missing") as info:
        read_stream(reopened, reopened.load_manifest("b2"))
    assert info.value.obj == pack
    assert info.value.backup == "b2"
    report = verify_repository(reopened)
    messages = {(p.message.split(": ")[-1], p.obj) for p in report.problems}
    assert ("pack listed in the index is missing", pack) in messages
    assert ("pack is missing", pack) in messages
    assert read_stream(reopened, reopened.load_manifest("b3")) == three["b3"]


def test_deleted_list_chunk_pack_is_reported_per_stream(
    storage: Storage, repo: Repository, three: dict[str, bytes]
) -> None:
    manifest = repo.load_manifest("b2")
    pack, _, _ = pack_of_chunk(repo, bytes.fromhex(manifest.streams[0].lists[0]))
    storage.delete(pack)
    with pytest.raises(IntegrityError, match="pack is missing"):
        read_stream(repo, manifest)
    report = verify_backups(repo, ["b2"])
    assert any(
        "chunk list of stream 'dump'" in p.message and p.obj == pack for p in report.problems
    )


def test_a_manifest_moved_to_another_backup_id_fails_authentication(
    storage: Storage, repo: Repository, three: dict[str, bytes]
) -> None:
    storage.put("manifests/b9", storage.get("manifests/b1"))
    with pytest.raises(IntegrityError, match="authentication failed") as info:
        repo.load_manifest("b9")
    assert info.value.obj == "manifests/b9"
    # Swapping two manifests is caught the same way.
    one, two = storage.get("manifests/b1"), storage.get("manifests/b2")
    storage.put("manifests/b1", two)
    storage.put("manifests/b2", one)
    for backup_id in ("b1", "b2"):
        with pytest.raises(IntegrityError):
            repo.load_manifest(backup_id)


def test_a_chunk_served_for_another_id_is_rejected(
    storage: Storage, repo: Repository, three: dict[str, bytes]
) -> None:
    """Even an authentic index that points a chunk id at another chunk's bytes (a bug,
    a tampered index) cannot make a restore return the wrong data."""
    entries = stream_entries(repo, repo.load_manifest("b1"))
    a, b = entries[3][0], entries[4][0]
    groups = repo.index.by_pack()
    for pack_entries in groups.values():
        for i, entry in enumerate(pack_entries):
            # Point each of the two ids at the other's sealed bytes.
            other = {a: b, b: a}.get(entry.chunk_id)
            if other is not None:
                loc = repo.index.get(other)
                assert loc is not None
                pack_entries[i] = PackEntry(entry.chunk_id, loc.offset, loc.length, loc.raw_length)
    assert repo.index.get(a) != repo.index.get(b)
    assert repo.index.get(a).pack_id == repo.index.get(b).pack_id  # type: ignore[union-attr]
    for name in names(storage, "index/"):
        storage.delete(name)
    name, blob = seal_index(repo.sealer, groups.items())
    storage.put(name, blob)
    assert repo.sealer.open(blob, AAD_INDEX)
    reopened = open_repo(storage)
    with pytest.raises(IntegrityError, match="authentication failed"):
        read_stream(reopened, reopened.load_manifest("b1"))
    assert read_stream(reopened, reopened.load_manifest("b2")) == three["b2"]

"""A backup that deduplicated against a pack gone or cut short is not recorded: its packs
are checked before its manifest is written, the lost copies are quarantined, and the
next backup stores that data anew and restores."""

from __future__ import annotations

import os

import pytest

from respaldo.errors import BackupNotFound, IntegrityError
from respaldo.repository import Repository, pack_check
from respaldo.repository.copy import copy_backup
from respaldo.storage.base import Storage
from tests.unit.repository.helpers import (
    KDF,
    init_repo,
    names,
    open_repo,
    random_bytes,
    read_stream,
    write_backup,
)

pytestmark = pytest.mark.unit


def lose_a_pack(storage: Storage, how: str) -> str:
    """Delete, or cut in half, the middle one of the packs stored; return its name."""
    packs = names(storage, "packs/")
    victim = packs[len(packs) // 2]
    if how == "missing":
        storage.delete(victim)
    else:
        blob = storage.get(victim)
        storage.delete(victim)
        storage.put(victim, blob[: len(blob) // 2])
    return victim


def fails_then_heals(repo: Repository, data: bytes, victim: str, how: str) -> None:
    """The second backup of ``data`` fails naming ``victim``; the third stores what it
    lost anew and restores."""
    storage = repo.storage
    with pytest.raises(IntegrityError) as failed:
        write_backup(open_repo(storage), "b2", {"dump": data})
    assert f"{victim} ({how})" in str(failed.value), failed.value
    assert "quarantined" in (failed.value.hint or "")
    with pytest.raises(BackupNotFound):  # it does not exist
        repo.load_manifest("b2")

    fresh = open_repo(storage)
    manifest, stats = write_backup(fresh, "b3", {"dump": data})
    assert stats.new_chunks > 0 and stats.damaged_rewritten == stats.new_chunks
    assert read_stream(open_repo(storage), manifest) == data


@pytest.mark.parametrize("how", ["missing", "truncated"])
def test_a_backup_over_a_lost_pack_fails_and_the_next_one_heals(repo: Repository, how: str) -> None:
    data = random_bytes(200_000, seed=3)
    write_backup(repo, "b1", {"dump": data})
    victim = lose_a_pack(repo.storage, how)
    fails_then_heals(repo, data, victim, how)


def test_many_packs_are_checked_with_one_listing(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A local directory's (and memory's) listing costs more than a stat of each pack:
    # they list only here. S3 does (tests/integration/repository/test_pack_check_s3.py).
    monkeypatch.setattr(pack_check, "_by_listing", lambda storage, count: True)
    data = random_bytes(200_000, seed=4)
    write_backup(repo, "b1", {"dump": data})
    stats = []
    original = type(repo.storage).stat

    def counted(self: Storage, name: str):  # type: ignore[no-untyped-def]
        stats.append(name)
        return original(self, name)

    monkeypatch.setattr(type(repo.storage), "stat", counted)
    write_backup(open_repo(repo.storage), "b1-again", {"dump": data})
    # The manifest's own existence check, no stat of a pack.
    assert [n for n in stats if n.startswith("packs/")] == []

    victim = lose_a_pack(repo.storage, "missing")
    fails_then_heals(repo, data, victim, "missing")


def test_copies_before_the_cut_of_a_short_pack_stay_usable(repo: Repository) -> None:
    """Only the copies past the cut are quarantined: the older backups that use those
    before it still restore."""
    data = random_bytes(200_000, seed=6)
    write_backup(repo, "b1", {"dump": data})
    victim = lose_a_pack(repo.storage, "truncated")
    with pytest.raises(IntegrityError):
        write_backup(open_repo(repo.storage), "b2", {"dump": data})
    fresh = open_repo(repo.storage)
    pack_id = victim.rsplit("/", 1)[1]
    kept = fresh.index.by_pack(lambda p, _: p == pack_id).get(pack_id, [])
    size = repo.storage.stat(victim).size
    assert kept and all(e.offset + e.length <= size for e in kept)


def test_a_copy_to_a_mirror_that_lost_a_pack_fails_and_the_next_heals() -> None:
    from respaldo.storage.memory import MemoryStorage

    primary = init_repo(MemoryStorage("packcheck-primary"))
    mirror = Repository.init_mirror(MemoryStorage("packcheck-mirror"), primary, "pw", kdf=KDF)
    data = os.urandom(150_000)
    write_backup(primary, "b1", {"dump": data})
    copy_backup(primary, mirror, "b1")
    victim = lose_a_pack(mirror.storage, "missing")
    write_backup(primary, "b2", {"dump": data})

    with pytest.raises(IntegrityError) as failed:
        copy_backup(primary, Repository.open(mirror.storage, "pw"), "b2")
    assert victim in str(failed.value)
    assert "manifests/b2" not in names(mirror.storage, "manifests/")

    again = copy_backup(primary, Repository.open(mirror.storage, "pw"), "b2")
    assert again.new_chunks > 0
    reopened = Repository.open(mirror.storage, "pw")
    assert read_stream(reopened, reopened.load_manifest("b2")) == data

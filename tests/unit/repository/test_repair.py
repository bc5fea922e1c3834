"""``repair``: quarantined chunks rewritten from a mirror, or lost and accounted for."""

from __future__ import annotations

import pytest

from respaldo.repository import (
    Repository,
    collect_garbage,
    verify_backups,
    verify_repository,
)
from respaldo.repository.copy import copy_backup
from respaldo.repository.repair import lost_chunks_of, repair_repository
from respaldo.repository.verify import quarantine_damaged
from respaldo.storage.memory import MemoryStorage
from tests.unit.repository.helpers import (
    KDF,
    init_repo,
    open_repo,
    random_bytes,
    read_stream,
    snapshot,
    write_backup,
)
from tests.unit.repository.test_quarantine import _damage_middle_chunk

pytestmark = pytest.mark.unit

SIZE = 40_000


@pytest.fixture
def pair(request: pytest.FixtureRequest) -> tuple[MemoryStorage, MemoryStorage]:
    """A primary with backups b1, b2 (same data) and b3 (other data), and a mirror."""
    primary = MemoryStorage(request.node.name + "-primary")
    mirror = MemoryStorage(request.node.name + "-mirror")
    repo = init_repo(primary)
    Repository.init_mirror(mirror, repo, "another passphrase", kdf=KDF)
    write_backup(repo, "b1", {"dump": random_bytes(SIZE, seed=1)})
    write_backup(repo, "b2", {"dump": random_bytes(SIZE, seed=1)})
    write_backup(repo, "b3", {"dump": random_bytes(SIZE, seed=3)})
    return primary, mirror


def _mirror(storage: MemoryStorage) -> Repository:
    return open_repo(storage, "another passphrase")


def _damage_and_verify(primary: MemoryStorage) -> bytes:
    repo = open_repo(primary)
    cid = _damage_middle_chunk(primary, repo, "b1")
    report = verify_backups(repo, ["b1", "b2", "b3"])
    assert quarantine_damaged(repo, report) == 1
    return cid


def test_repair_rewrites_a_chunk_from_the_mirror(
    pair: tuple[MemoryStorage, MemoryStorage],
) -> None:
    primary, mirror = pair
    for backup_id in ("b1", "b3"):
        copy_backup(open_repo(primary), _mirror(mirror), backup_id)
    _damage_and_verify(primary)

    dry = repair_repository(open_repo(primary), [_mirror(mirror)], dry_run=True)
    before = snapshot(primary)
    assert (dry.quarantined, dry.repaired_total, dry.lost_chunks) == (1, 1, [])
    assert snapshot(primary) == before  # a dry run writes nothing

    report = repair_repository(open_repo(primary), [_mirror(mirror)])
    assert (report.quarantined, report.repaired_total, report.packs_written) == (1, 1, 1)
    assert report.lost_chunks == [] and report.lost_backups == []

    repaired = open_repo(primary)  # without any fallback: the primary is whole again
    assert read_stream(repaired, repaired.load_manifest("b1")) == random_bytes(SIZE, seed=1)
    assert verify_repository(repaired).ok
    again = repair_repository(repaired, [_mirror(mirror)])
    assert (again.already_good, again.repaired_total, again.packs_written) == (1, 0, 0)


def test_without_a_good_copy_repair_names_the_backups_that_lose_data(
    pair: tuple[MemoryStorage, MemoryStorage],
) -> None:
    primary, mirror = pair  # nothing copied: the mirror has no copy
    cid = _damage_and_verify(primary)

    report = repair_repository(open_repo(primary), [_mirror(mirror)])
    assert report.lost_chunks == [cid]
    assert [(b.backup_id, b.source, b.chunks_lost, b.streams) for b in report.lost_backups] == [
        ("b1", "erp", 1, ("dump",)),
        ("b2", "erp", 1, ("dump",)),
    ]
    repo = open_repo(primary)
    assert [c.chunk_id for c in lost_chunks_of(repo, "b1")] == [cid]
    assert lost_chunks_of(repo, "b3") == []
    # Running it again records nothing new.
    before = snapshot(primary)
    repair_repository(open_repo(primary), [_mirror(mirror)])
    assert snapshot(primary) == before

    # The data comes back with a new backup of it: the old backups are whole again.
    write_backup(open_repo(primary), "b4", {"dump": random_bytes(SIZE, seed=1)})
    healed = open_repo(primary)
    assert lost_chunks_of(healed, "b1") == []
    assert read_stream(healed, healed.load_manifest("b1")) == random_bytes(SIZE, seed=1)


def test_a_mirror_whose_copy_is_damaged_too_does_not_count(
    pair: tuple[MemoryStorage, MemoryStorage],
) -> None:
    primary, mirror = pair
    copy_backup(open_repo(primary), _mirror(mirror), "b1")
    mirrored = _mirror(mirror)
    _damage_middle_chunk(mirror, mirrored, "b1")
    cid = _damage_and_verify(primary)
    report = repair_repository(open_repo(primary), [_mirror(mirror)])
    assert report.lost_chunks == [cid]
    assert any("unusable too" in problem for problem in report.problems)


def test_garbage_collection_counts_the_damage_repair_can_still_mend(
    pair: tuple[MemoryStorage, MemoryStorage],
) -> None:
    # prune fails on 'unrepaired' (operations/prune.py): before 'repair', the chunk is
    # one; once 'repair' has recorded it lost (no good copy anywhere), prune has nothing
    # to send the operator to do, and the line about it is all that remains.
    primary, mirror = pair
    _damage_and_verify(primary)
    before = collect_garbage(open_repo(primary), dry_run=True)
    assert before.unrepaired == 1
    # One chunk said "1 chunks that backups reference have only damaged copies".
    one = "1 chunk that backups reference has only damaged copies: run 'respaldo repair'"
    assert one in before.problems, before.problems
    assert repair_repository(open_repo(primary), [_mirror(mirror)]).lost_chunks
    after = collect_garbage(open_repo(primary), dry_run=True)
    assert after.unrepaired == 0
    assert one in after.problems, after.problems

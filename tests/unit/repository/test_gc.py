"""Garbage collection: what it deletes, what it repacks, what it never touches, and that an
interruption at any step leaves a repository that verifies and a next run that finishes."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator

import pytest

from respaldo.errors import IntegrityError, LeaseLost, ObjectNotFound, RepositoryLocked
from respaldo.repository import (
    BackupWriter,
    Lease,
    LockKind,
    Manifest,
    Repository,
    collect_garbage,
    verify_repository,
)
from respaldo.repository.packs import PACK_PREFIX
from respaldo.storage.base import ObjectInfo, Storage
from tests.unit.repository.helpers import (
    STARTED,
    DelegatingStorage,
    compressible_bytes,
    flip_byte,
    names,
    open_repo,
    pack_of_chunk,
    random_bytes,
    read_stream,
    snapshot,
    stream_entries,
    write_backup,
)

pytestmark = pytest.mark.unit


def history(repo: Repository, count: int = 5) -> dict[str, tuple[Manifest, bytes]]:
    """``count`` backups of a growing, changing "database": each shares most of its data
    with the one before, as successive dumps do."""
    base = random_bytes(120_000, seed=7)
    out = {}
    for i in range(count):
        data = base[: 40_000 + 20_000 * i] + random_bytes(15_000, seed=100 + i)
        manifest, _ = write_backup(repo, f"b{i}", {"dump": data, "globals": b"roles %d" % i})
        out[f"b{i}"] = (manifest, data)
    return out


def delete_backups(repo: Repository, *ids: str) -> None:
    for backup_id in ids:
        repo.storage.delete(f"manifests/{backup_id}")


def assert_sound(storage: Storage, kept: dict[str, tuple[Manifest, bytes]]) -> None:
    """Every kept backup reads back byte for byte and the whole repository verifies."""
    fresh = open_repo(storage)
    for manifest, data in kept.values():
        assert read_stream(fresh, manifest) == data
    report = verify_repository(fresh)
    assert report.ok, report.problems
    assert sorted(fresh.backup_ids()) == sorted(kept)


def stored_bytes(storage: Storage) -> int:
    return sum(i.size for i in storage.list(PACK_PREFIX)) + sum(
        i.size for i in storage.list("index/")
    )


def test_deleting_backups_then_collecting_keeps_the_others(
    storage: Storage, repo: Repository
) -> None:
    backups = history(repo)
    before = stored_bytes(storage)
    delete_backups(repo, "b0", "b1", "b3")
    report = collect_garbage(repo)
    kept = {k: v for k, v in backups.items() if k in ("b2", "b4")}
    assert_sound(storage, kept)
    assert report.backups == 2
    assert report.packs_deleted > 0 and report.chunks_dropped > 0
    assert report.bytes_reclaimed > 0
    assert stored_bytes(storage) == before - report.bytes_reclaimed == report.bytes_after
    # Exactly one index file describes what remains; no lock is left behind.
    assert len(names(storage, "index/")) == 1
    assert names(storage, "locks/") == []
    # Nothing more to do: a second run changes nothing.
    again = collect_garbage(repo)
    assert not again.changed and again.bytes_reclaimed == 0


def test_collecting_everything(storage: Storage, repo: Repository) -> None:
    history(repo, 2)
    delete_backups(repo, "b0", "b1")
    collect_garbage(repo)
    assert names(storage, PACK_PREFIX) == [] and names(storage, "index/") == []
    assert_sound(storage, {})
    # The empty repository takes new backups.
    manifest, _ = write_backup(repo, "b9", {"dump": b"fresh start" * 100})
    assert_sound(storage, {"b9": (manifest, b"fresh start" * 100)})


def test_mostly_dead_packs_are_repacked(storage: Storage, repo: Repository) -> None:
    """A backup that shares runs of an older one's chunks, with new data between them,
    keeps a part of each old pack alive: those packs are rewritten with only the live
    chunks (content-defined chunking realigns a few bytes into each shared run)."""
    old = random_bytes(150_000, seed=3)
    old_manifest, _ = write_backup(repo, "old", {"dump": old})
    entries = stream_entries(repo, old_manifest)
    offsets = [0]
    for _, length in entries:
        offsets.append(offsets[-1] + length)
    new = b"".join(
        old[offsets[i] : offsets[i + 5]] + random_bytes(2000, seed=1000 + i)
        for i in range(0, len(entries) - 5, 10)
    )
    new_manifest, stats = write_backup(repo, "new", {"dump": new})
    assert stats.new_chunks < stats.chunks  # some of old's chunks are shared
    shared = {pack_of_chunk(repo, cid)[0] for cid, _ in stream_entries(repo, new_manifest)}
    delete_backups(repo, "old")
    report = collect_garbage(repo, repack_threshold=0.5, small_pack_fraction=0)
    assert report.packs_repacked > 0 and report.packs_written > 0
    assert report.bytes_reclaimed > 0
    assert shared - set(names(storage, PACK_PREFIX)), "the partly live packs were rewritten"
    assert_sound(storage, {"new": (new_manifest, new)})
    # Every pack left is now mostly live: a dry run finds nothing to repack.
    after = collect_garbage(repo, dry_run=True, small_pack_fraction=0)
    assert after.packs_repacked == 0 and after.packs_deleted == 0


def test_threshold_one_never_repacks_partly_live_packs(mem_repo: Repository) -> None:
    history(mem_repo)
    delete_backups(mem_repo, "b0", "b1", "b2", "b3")
    report = collect_garbage(mem_repo, repack_threshold=1.0, small_pack_fraction=0)
    assert report.packs_repacked == 0 and report.packs_written == 0


def test_small_packs_are_merged(storage: Storage, repo: Repository) -> None:
    kept = {}
    for i in range(4):
        data = random_bytes(2_000, seed=i)  # each backup is one small pack
        manifest, _ = write_backup(repo, f"s{i}", {"dump": data})
        kept[f"s{i}"] = (manifest, data)
    assert len(names(storage, PACK_PREFIX)) == 4
    report = collect_garbage(repo, small_pack_fraction=0.5)
    assert report.packs_repacked == 4 and report.packs_written == 1
    assert len(names(storage, PACK_PREFIX)) == 1
    assert_sound(storage, kept)


def test_dry_run_changes_nothing_and_predicts(storage: Storage, repo: Repository) -> None:
    backups = history(repo)
    before = snapshot(storage)
    preview = collect_garbage(repo, dry_run=True, assume_deleted={"b0", "b1", "b3"})
    assert preview.dry_run and preview.bytes_reclaimed > 0 and preview.packs_deleted > 0
    assert snapshot(storage) == before
    with pytest.raises(ValueError, match="dry run"):
        collect_garbage(repo, assume_deleted={"b0"})

    delete_backups(repo, "b0", "b1", "b3")
    real = collect_garbage(repo)
    assert real.packs_deleted == preview.packs_deleted
    assert real.packs_repacked == preview.packs_repacked
    assert real.chunks_dropped == preview.chunks_dropped
    # The estimate of what is written back (new packs' headers, the index) is close.
    assert abs(real.bytes_reclaimed - preview.bytes_reclaimed) <= 0.02 * real.bytes_before
    assert_sound(storage, {k: v for k, v in backups.items() if k in ("b2", "b4")})


def test_packs_of_an_interrupted_writer_are_removed(storage: Storage, repo: Repository) -> None:
    backups = history(repo, 2)
    packs_before = set(names(storage, PACK_PREFIX))
    writer = BackupWriter(repo, "died")
    writer.write_stream("dump", io.BytesIO(random_bytes(80_000, seed=55)))
    writer.abort()  # like a crash: packs uploaded, no index, no manifest
    leftovers = set(names(storage, PACK_PREFIX)) - packs_before
    assert leftovers
    # How the history's chunks fall into packs depends on which sealing thread ends first,
    # so its last packs are sometimes small enough to be merged; merging is tested above,
    # and here it would only change the names this test compares.
    report = collect_garbage(repo, small_pack_fraction=0)
    assert report.packs_unindexed == len(leftovers)
    assert set(names(storage, PACK_PREFIX)) == packs_before
    assert_sound(storage, backups)


def data_objects(storage: Storage) -> dict[str, bytes]:
    return {k: v for k, v in snapshot(storage).items() if not k.startswith("locks/")}


def test_collection_refuses_while_a_backup_runs(mem_repo: Repository) -> None:
    backups = history(mem_repo, 2)
    delete_backups(mem_repo, "b0")
    with BackupWriter(mem_repo, "running") as writer:
        data = random_bytes(30_000, seed=9)
        writer.write_stream("dump", io.BytesIO(data))
        before = data_objects(mem_repo.storage)
        with pytest.raises(RepositoryLocked, match="in use") as caught:
            collect_garbage(mem_repo, wait=0)
        assert "backup running" in str(caught.value)
        # The writer's last pack may still be uploading on its thread: the collector
        # must have deleted and changed nothing, and whatever appeared is that pack.
        after = data_objects(mem_repo.storage)
        assert {k: after.get(k) for k in before} == before
        assert all(k.startswith(PACK_PREFIX) for k in after.keys() - before.keys())
        manifest = writer.commit(kind="full", source="erp", started_at=backups["b1"][0].started_at)
    collect_garbage(mem_repo)
    assert_sound(mem_repo.storage, {"b1": backups["b1"], "running": (manifest, data)})


def test_collection_waits_for_a_backup_to_finish(mem_repo: Repository) -> None:
    backups = history(mem_repo, 2)
    delete_backups(mem_repo, "b0")
    writer = BackupWriter(mem_repo, "running")
    data = random_bytes(30_000, seed=9)
    writer.write_stream("dump", io.BytesIO(data))
    result: list[Manifest] = []

    def finish() -> None:
        result.append(writer.commit(kind="full", source="erp", started_at=STARTED))

    threading.Timer(0.3, finish).start()
    report = collect_garbage(mem_repo, wait=20)
    assert result and report.backups == 2  # it ran after the backup committed
    assert_sound(mem_repo.storage, {"b1": backups["b1"], "running": (result[0], data)})


def test_a_damaged_manifest_stops_collection(storage: Storage, repo: Repository) -> None:
    history(repo, 3)
    delete_backups(repo, "b0")
    flip_byte(storage, "manifests/b1", 40)
    before = snapshot(storage)
    with pytest.raises(IntegrityError, match="refusing to collect garbage") as caught:
        collect_garbage(repo)
    assert caught.value.backup == "b1"
    assert snapshot(storage) == before


def test_a_missing_live_chunk_stops_collection(mem_repo: Repository) -> None:
    backups = history(mem_repo, 3)
    delete_backups(mem_repo, "b0")
    cid = stream_entries(mem_repo, backups["b2"][0])[0][0]
    name, _, _ = pack_of_chunk(mem_repo, cid)
    mem_repo.storage.delete(name)
    before = snapshot(mem_repo.storage)
    with pytest.raises(IntegrityError, match="in no pack") as caught:
        collect_garbage(mem_repo)
    assert snapshot(mem_repo.storage) == before
    # The count agrees with its noun ("1 chunks ... are" before).
    said = str(caught.value)
    count = int(said.split()[0])
    verb = (
        "1 chunk that backups reference is" if count == 1 else "chunks that backups reference are"
    )
    assert verb in said, said


def test_a_damaged_live_chunk_is_not_copied(mem_repo: Repository) -> None:
    """Repacking authenticates every chunk it copies; a pack with a damaged live chunk is
    kept as it is (and reported), never repacked into a pack that hides the damage."""
    old = compressible_bytes(100_000, seed=1)
    write_backup(mem_repo, "old", {"dump": old})
    keep_manifest, _ = write_backup(mem_repo, "keep", {"dump": old[:20_000]})
    cid = stream_entries(mem_repo, keep_manifest)[0][0]
    name, offset, _ = pack_of_chunk(mem_repo, cid)
    flip_byte(mem_repo.storage, name, offset + 20)
    delete_backups(mem_repo, "old")
    report = collect_garbage(mem_repo, repack_threshold=0.05)
    assert any(name in p and "damaged" in p for p in report.problems)
    assert name in names(mem_repo.storage, PACK_PREFIX)
    problems = verify_repository(open_repo(mem_repo.storage)).problems
    assert problems and all(p.backup == "keep" for p in problems)


def test_wal_and_other_objects_are_never_touched(mem_repo: Repository) -> None:
    history(mem_repo, 2)
    mem_repo.storage.put("wal/7000000000000000001/00000001/000000010000000000000001", b"w")
    delete_backups(mem_repo, "b0", "b1")
    collect_garbage(mem_repo)
    assert names(mem_repo.storage, "wal/") == [
        "wal/7000000000000000001/00000001/000000010000000000000001"
    ]
    assert names(mem_repo.storage, "config") == ["config"]
    assert len(names(mem_repo.storage, "keys/")) == 1


class Interrupted(Exception):
    """Stands for the process dying (kill -9) at that point."""


class DyingStorage(DelegatingStorage):
    """Fails every change after the first ``budget`` puts and deletes (of data, not of
    locks): the state a crash at that point leaves."""

    def __init__(self, inner: Storage, budget: int) -> None:
        super().__init__(inner)
        self.budget = budget

    def _spend(self, name: str) -> None:
        if name.startswith("locks/"):
            return
        if self.budget <= 0:
            raise Interrupted(name)
        self.budget -= 1

    def put(self, name: str, data: bytes) -> None:
        self._spend(name)
        self.inner.put(name, data)

    def delete(self, name: str) -> None:
        self._spend(name)
        self.inner.delete(name)


def test_interrupted_at_every_step(storage: Storage, repo: Repository) -> None:
    """Stop a collection after each of its writes and deletes in turn: every time, the
    repository verifies and every kept backup restores; the next run finishes the work,
    ending where an uninterrupted run ends."""
    backups = history(repo, 6)
    delete_backups(repo, "b0", "b2", "b3")
    kept = {k: v for k, v in backups.items() if k in ("b1", "b4", "b5")}
    steps = 0
    while True:
        dying = open_repo(DyingStorage(storage, steps))
        try:
            collect_garbage(dying, repack_threshold=0.3, small_pack_fraction=0.5)
        except Interrupted:
            # A real crash leaves its lock, which goes stale (the kill -9 test has that);
            # here the exception let the collector release it.
            assert names(storage, "locks/") == []
            assert_sound(storage, kept)
            steps += 1
            continue
        break
    assert steps > 5
    final = collect_garbage(open_repo(storage), repack_threshold=0.3, small_pack_fraction=0.5)
    assert not final.changed
    assert_sound(storage, kept)


def test_a_collection_that_lost_its_lock_stops(mem_repo: Repository) -> None:
    """Another process removed the collector's lock (it judged it stale): the collector
    notices on its next refresh and deletes nothing more."""
    history(mem_repo, 3)
    delete_backups(mem_repo, "b0", "b1")
    packs = set(names(mem_repo.storage, PACK_PREFIX))
    old_index = set(names(mem_repo.storage, "index/"))

    noticed = threading.Event()

    class Thief(DyingStorage):
        def put(self, name: str, data: bytes) -> None:
            self.inner.put(name, data)
            if name.startswith("index/"):
                for lock in names(self.inner, "locks/"):
                    self.inner.delete(lock)
                # The collector's next refresh finds its lock gone. Waited for, not
                # slept on: a sleep of 0.5 s against a lease of 0.4 s (a refresh every
                # 0.1 s) failed on a loaded machine with 'not refreshed for ...' when
                # the refresher ran late, never finding the lock gone.
                assert noticed.wait(60), "the collector's lease was never refreshed"

        def stat(self, name: str) -> ObjectInfo:
            try:
                return self.inner.stat(name)
            except ObjectNotFound:
                if name.startswith("locks/"):
                    noticed.set()
                raise

    thief_repo = open_repo(Thief(mem_repo.storage, 10**6))
    thief_repo.lock_stale_after = 4.0  # a refresh every 1 s; lost after 3 s unrefreshed
    with pytest.raises(LeaseLost, match="removed it as stale"):
        collect_garbage(thief_repo)
    assert packs <= set(names(mem_repo.storage, PACK_PREFIX))  # no pack was deleted
    assert old_index <= set(names(mem_repo.storage, "index/"))
    assert verify_repository(open_repo(mem_repo.storage)).ok
    collect_garbage(open_repo(mem_repo.storage))  # and the next run finishes the work


def test_the_collectors_lock_excludes_writers(mem_repo: Repository) -> None:
    with (
        Lease.acquire(mem_repo.storage, LockKind.EXCLUSIVE, "garbage collection"),
        pytest.raises(RepositoryLocked, match="garbage collection is running"),
    ):
        write_backup(mem_repo, "late", {"dump": b"x" * 100})
    assert mem_repo.backup_ids() == []


def test_dry_run_does_not_count_packs_of_running_backups(mem_repo: Repository) -> None:
    history(mem_repo, 2)
    with BackupWriter(mem_repo, "running") as writer:
        writer.write_stream("dump", io.BytesIO(random_bytes(80_000, seed=4)))  # packs stored
        report = collect_garbage(mem_repo, dry_run=True)
        assert report.packs_deleted == 0
        assert any("backups are running" in p for p in report.problems)
        writer.commit(kind="full", source="erp", started_at=STARTED)


def test_a_manifest_deleted_during_the_mark_is_skipped(mem_repo: Repository) -> None:
    """Deleting manifests needs no lock (a prune of another catalog may do it meanwhile):
    one that vanishes between the listing and its reading is simply not live."""
    backups = history(mem_repo, 3)

    class Vanishing(DyingStorage):
        def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
            listed = list(self.inner.list(prefix))
            if prefix == "manifests/" and "manifests/b0" in {i.name for i in listed}:
                self.inner.delete("manifests/b0")
            return iter(listed)

    report = collect_garbage(open_repo(Vanishing(mem_repo.storage, 10**6)))
    assert report.backups == 2
    assert_sound(mem_repo.storage, {k: v for k, v in backups.items() if k != "b0"})


def test_merging_small_packs_reclaims_space_or_is_not_done(
    storage: Storage, repo: Repository
) -> None:
    """Three small packs of live chunks beside a large kept backup: a prune's dry run said
    "3 repacked into 1 ... would reclaim about -8.3 KiB" (it counted the index rewritten
    for the kept chunks uncompressed, the index files deleted as stored, compressed).
    Merging is done only when it reclaims space, and the dry run says what the real
    collection then does."""
    write_backup(repo, "big", {"dump": random_bytes(1_500_000, seed=99)})
    for i in range(3):
        write_backup(repo, f"s{i}", {"dump": random_bytes(2_000, seed=i)})
    before = snapshot(storage)
    preview = collect_garbage(repo, dry_run=True, small_pack_fraction=0.5)
    assert snapshot(storage) == before
    real = collect_garbage(repo, small_pack_fraction=0.5)
    assert preview.bytes_reclaimed >= 0 and real.bytes_reclaimed >= 0
    assert real.packs_repacked == preview.packs_repacked


def test_a_collection_of_one_backup_says_each_count_with_its_noun(mem_repo: Repository) -> None:
    """Its progress lines said "1 backups reference …; 1 packs to delete" and "wrote 1
    index files" (respaldo prune's output)."""
    history(mem_repo, 2)
    delete_backups(mem_repo, "b0")
    said: list[str] = []
    collect_garbage(mem_repo, repack_threshold=0.0, step=said.append)
    assert said[0].startswith("1 backup references "), said
    assert "; 1 pack to delete, " in said[0], said
    assert "wrote 1 index file" in said, said

"""Locks and leases: shared leases for writers, the exclusive lock of garbage collection,
two-phase taking, stale locks, refresh and loss."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from respaldo.errors import IntegrityError, LeaseLost, RepositoryLocked
from respaldo.repository import (
    BackupWriter,
    Lease,
    LockKind,
    Repository,
    collect_garbage,
    verify_repository,
)
from respaldo.repository.locks import LOCK_PREFIX, LockInfo, read_locks, reading_lease, this_host
from respaldo.storage.base import ObjectInfo, Storage
from tests.unit.repository.helpers import (
    STARTED,
    DelegatingStorage,
    init_repo,
    names,
    open_repo,
    random_bytes,
    read_stream,
    write_backup,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.unit


def plant_lock(
    storage: Storage,
    kind: LockKind,
    *,
    age: timedelta = timedelta(0),
    host: str = "elsewhere.example",
    pid: int = 4242,
    purpose: str = "a planted lock",
) -> str:
    """A lock object as another process would have written it."""
    when = datetime.now(UTC) - age
    name = f"{LOCK_PREFIX}{kind.value}-{'0' * 31}{len(names(storage, LOCK_PREFIX))}"
    info = LockInfo(name, kind, purpose, host, pid, when, when)
    storage.put(name, info.to_bytes())
    return name


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_shared_leases_coexist_and_exclude_collection(mem_repo: Repository) -> None:
    storage = mem_repo.storage
    with (
        Lease.acquire(storage, LockKind.SHARED, "backup one"),
        Lease.acquire(storage, LockKind.SHARED, "backup two"),
    ):
        assert len(names(storage, LOCK_PREFIX)) == 2
        with pytest.raises(RepositoryLocked) as caught:
            Lease.acquire(storage, LockKind.EXCLUSIVE, "garbage collection")
        assert len(caught.value.holders) == 2
        assert "backup one" in str(caught.value) and "backup two" in str(caught.value)
        assert "running backups" in caught.value.hint
        # The refused lock left nothing behind.
        assert len(names(storage, LOCK_PREFIX)) == 2
    assert names(storage, LOCK_PREFIX) == []
    with Lease.acquire(storage, LockKind.EXCLUSIVE, "garbage collection"):
        with pytest.raises(RepositoryLocked, match="garbage collection is running"):
            Lease.acquire(storage, LockKind.SHARED, "backup three")
        with pytest.raises(RepositoryLocked):
            Lease.acquire(storage, LockKind.EXCLUSIVE, "another collection")
    assert names(storage, LOCK_PREFIX) == []


def test_waiting_for_a_lock_to_go(mem_repo: Repository) -> None:
    storage = mem_repo.storage
    held = Lease.acquire(storage, LockKind.EXCLUSIVE, "garbage collection")
    releasing = threading.Event()

    def release() -> None:
        # Set before the release: set after it, a waiter that takes the lock at once can
        # look before the timer's thread gets to set it.
        releasing.set()
        held.release()

    # Taken only once the holder let go (timed, 0.2 s < waited < 5 s, it failed when
    # the test's thread ran late between starting the timer and reading the clock);
    # the wait bounds a hang only.
    threading.Timer(0.3, release).start()
    with Lease.acquire(storage, LockKind.SHARED, "backup", wait=120, poll=0.05):
        assert releasing.is_set()


def test_writers_wait_for_a_running_collection(mem_repo: Repository) -> None:
    held = Lease.acquire(mem_repo.storage, LockKind.EXCLUSIVE, "garbage collection")
    with pytest.raises(RepositoryLocked):
        write_backup(mem_repo, "refused", {"dump": b"x" * 1000})
    assert mem_repo.backup_ids() == []
    mem_repo.lock_wait = 10
    threading.Timer(0.2, held.release).start()
    write_backup(mem_repo, "waited", {"dump": b"x" * 1000})
    assert mem_repo.backup_ids() == ["waited"]
    assert names(mem_repo.storage, LOCK_PREFIX) == []


def test_stale_locks_are_ignored_and_removed(mem_repo: Repository) -> None:
    storage = mem_repo.storage
    old = plant_lock(storage, LockKind.SHARED, age=timedelta(minutes=11))
    gone = plant_lock(storage, LockKind.SHARED, host=this_host(), pid=dead_pid())
    live = plant_lock(storage, LockKind.SHARED, age=timedelta(minutes=9))
    with pytest.raises(RepositoryLocked) as caught:
        Lease.acquire(storage, LockKind.EXCLUSIVE, "garbage collection")
    assert len(caught.value.holders) == 1
    assert names(storage, LOCK_PREFIX) == [live]
    assert old not in names(storage, LOCK_PREFIX) and gone not in names(storage, LOCK_PREFIX)
    # A shorter timeout makes the nine-minute-old lock stale too.
    with Lease.acquire(storage, LockKind.EXCLUSIVE, "gc", stale_after=60):
        pass
    assert names(storage, LOCK_PREFIX) == []


def test_a_live_pid_of_another_host_is_not_judged_here(mem_repo: Repository) -> None:
    plant_lock(mem_repo.storage, LockKind.SHARED, host="elsewhere.example", pid=dead_pid())
    with pytest.raises(RepositoryLocked):
        Lease.acquire(mem_repo.storage, LockKind.EXCLUSIVE, "gc")


def test_damaged_lock_objects_are_removed(mem_repo: Repository) -> None:
    storage = mem_repo.storage
    storage.put(f"{LOCK_PREFIX}shared-garbage", b"not json")
    storage.put(f"{LOCK_PREFIX}exclusive-future", json.dumps({"version": 99}).encode())
    with Lease.acquire(storage, LockKind.EXCLUSIVE, "gc"):
        assert f"{LOCK_PREFIX}shared-garbage" not in names(storage, LOCK_PREFIX)


def test_a_lock_of_a_newer_format_is_respected(mem_repo: Repository) -> None:
    storage = mem_repo.storage
    now = datetime.now(UTC).isoformat()
    doc = {"version": 2, "kind": "shared", "host": "h", "pid": 1, "created": now, "refreshed": now}
    storage.put(f"{LOCK_PREFIX}shared-v2", json.dumps(doc).encode())
    with pytest.raises(RepositoryLocked):
        Lease.acquire(storage, LockKind.SHARED, "backup")


class RacingStorage(DelegatingStorage):
    """Holds every ``list`` of locks until both racers have put their own lock, and with
    ``hold_deletes`` every delete of a lock until both have read the other's."""

    def __init__(self, inner: Storage, racers: int, *, hold_deletes: bool) -> None:
        super().__init__(inner)
        self.barrier = threading.Barrier(racers, timeout=10)
        self.deletes = threading.Barrier(racers, timeout=10) if hold_deletes else None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if prefix == LOCK_PREFIX:
            self.barrier.wait()
        return self.inner.list(prefix)

    def delete(self, name: str) -> None:
        if self.deletes is not None and name.startswith(LOCK_PREFIX):
            self.deletes.wait()
        self.inner.delete(name)


@pytest.mark.parametrize("other", [LockKind.EXCLUSIVE, LockKind.SHARED])
@pytest.mark.parametrize("hold_deletes", [True, False], ids=["lockstep", "free"])
def test_two_racers_never_both_proceed(
    mem_repo: Repository, other: LockKind, hold_deletes: bool
) -> None:
    """Each puts its lock, then lists. In lockstep each sees the other and both back off;
    otherwise the one that reads after the other backed off may proceed: never both."""
    racing = RacingStorage(mem_repo.storage, 2, hold_deletes=hold_deletes)
    outcomes: list[str] = []

    def take(kind: LockKind) -> None:
        try:
            with Lease.acquire(racing, kind, f"racer {kind.value}"):
                outcomes.append("took")
        except RepositoryLocked:
            outcomes.append("backed off")

    threads = [threading.Thread(target=take, args=(k,)) for k in (LockKind.EXCLUSIVE, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert len(outcomes) == 2 and outcomes.count("took") <= 1
    if hold_deletes:
        assert outcomes == ["backed off", "backed off"]
    assert names(mem_repo.storage, LOCK_PREFIX) == []


def test_refresh_keeps_a_lease_fresh(mem_repo: Repository) -> None:
    storage = mem_repo.storage
    # A refresh every 0.75 s, given up after 2.25 s without one. (It was 0.25 s and
    # 0.75 s, and a sleep of 1.5 s: a refresher 0.5 s late on a loaded machine lost the
    # lease and failed the test.) Waited for: refreshed past the time it would be stale.
    stale_after = 3.0
    with Lease.acquire(storage, LockKind.SHARED, "slow backup", stale_after=stale_after) as lease:
        first = read_locks(storage)[0][0].refreshed
        past = first + timedelta(seconds=stale_after)
        wait_for("refreshes past stale_after", lambda: read_locks(storage)[0][0].refreshed > past)
        lease.check()
        # Another taker with the same timeout sees it live.
        with pytest.raises(RepositoryLocked):
            Lease.acquire(storage, LockKind.EXCLUSIVE, "gc", stale_after=stale_after)


def test_a_removed_lease_is_lost(mem_repo: Repository) -> None:
    storage = mem_repo.storage
    lease = Lease.acquire(storage, LockKind.SHARED, "backup", refresh=False)
    storage.delete(lease.name)
    with pytest.raises(LeaseLost, match="removed it as stale"):
        lease.refresh()
    with pytest.raises(LeaseLost):
        lease.check()
    lease.release()
    lease.release()  # idempotent


def test_an_unrefreshed_lease_is_given_up(mem_repo: Repository) -> None:
    lease = Lease.acquire(mem_repo.storage, LockKind.SHARED, "b", stale_after=0.2, refresh=False)
    time.sleep(0.3)
    with pytest.raises(LeaseLost, match="refreshed"):
        lease.check()
    lease.release()


def test_a_writer_that_lost_its_lease_does_not_commit(mem_repo: Repository) -> None:
    storage = mem_repo.storage
    with BackupWriter(mem_repo, "orphan") as writer:
        writer.write_stream("dump", io.BytesIO(random_bytes(50_000)))
        # Another process judged the lease stale and removed it (then collected garbage).
        for name in names(storage, LOCK_PREFIX):
            storage.delete(name)
        with pytest.raises(LeaseLost):
            writer.commit(kind="full", source="erp", started_at=STARTED)
    assert mem_repo.backup_ids() == []
    assert names(storage, LOCK_PREFIX) == []


def test_writer_reloads_an_index_older_than_a_collection(storage: Storage) -> None:
    """A long-lived process loaded the index, then garbage collection ran elsewhere:
    its next backup must not deduplicate against chunks that collection removed."""
    repo = init_repo(storage)
    shared = random_bytes(60_000, seed=1)
    write_backup(repo, "old", {"dump": shared})
    long_lived = open_repo(storage)  # index loaded now, knows the chunks of "old"
    other = open_repo(storage)
    storage.delete("manifests/old")
    report = collect_garbage(other)
    assert report.packs_deleted > 0
    manifest, stats = write_backup(long_lived, "new", {"dump": shared})
    assert stats.new_chunks == stats.chunks  # nothing deduplicated against removed chunks
    assert read_stream(open_repo(storage), manifest) == shared
    assert verify_repository(open_repo(storage)).ok


def test_a_reader_sees_a_backup_another_handle_wrote_after_it_loaded(
    storage: Storage,
) -> None:
    """A long-lived process (``respaldo serve``) loaded the index, then another process
    (the CLI, a worker elsewhere) wrote a backup: reading it under a lease must find its
    chunks, not call them "not in the index"."""
    repo = init_repo(storage)
    write_backup(repo, "old", {"dump": random_bytes(30_000, seed=1)})
    long_lived = open_repo(storage)
    data = random_bytes(60_000, seed=2)
    manifest, _ = write_backup(open_repo(storage), "new", {"dump": data})
    with reading_lease(long_lived, "restore of new"):
        assert read_stream(long_lived, manifest) == data


def test_a_reader_without_a_lease_keeps_the_index_it_loaded(storage: Storage) -> None:
    """Without the lease's check (the proof the test above needs one), the long-lived
    handle's index lacks the other handle's chunks."""
    repo = init_repo(storage)
    long_lived = open_repo(storage)
    manifest, _ = write_backup(repo, "new", {"dump": random_bytes(60_000, seed=3)})
    with pytest.raises(IntegrityError, match="not in the index"):
        read_stream(long_lived, manifest)


def test_a_holder_whose_wall_clock_jumped_gives_its_lock_up(mem_repo: Repository) -> None:
    """The host's clock steps forward by more than stale_after (a VM resumed, NTP
    corrected a slow clock) while garbage collection holds the exclusive lock. Every
    other process on the host now judges that lock stale by its time, removes it and
    goes ahead (a backup deduplicating against packs the collection is about to delete).
    The collection must see the same at its next step, not carry on deleting until its
    next refresh: check() runs before every object it writes or deletes."""
    storage = mem_repo.storage
    jump = [timedelta(0)]

    def clock() -> datetime:
        return datetime.now(UTC) + jump[0]

    holder = Lease.acquire(
        storage, LockKind.EXCLUSIVE, "garbage collection", refresh=False, clock=clock
    )
    holder.check()
    jump[0] = timedelta(seconds=601)  # default stale_after: 600 s
    backup = Lease.acquire(storage, LockKind.SHARED, "backup", refresh=False, clock=clock)
    try:
        with pytest.raises(LeaseLost, match="clock"):
            holder.check()
    finally:
        backup.release()
        holder.release()
    assert names(storage, LOCK_PREFIX) == []


class _HeldLockPuts(DelegatingStorage):
    """A store whose next put of a name below ``prefix`` (by default a shared lock: a
    writer refreshing its lease) can be held back, as a slow S3 holds a request that it
    is retrying."""

    def __init__(self, inner: Storage, prefix: str = f"{LOCK_PREFIX}shared-") -> None:
        super().__init__(inner)
        self.prefix = prefix
        self.armed = False
        self.held = threading.Event()
        self.go = threading.Event()

    def put(self, name: str, data: bytes) -> None:
        if self.armed and name.startswith(self.prefix):
            self.armed = False
            self.held.set()
            assert self.go.wait(60), "the held put was never let go"
        self.inner.put(name, data)


def _commit_held_past_its_lease(
    storage: Storage, monkeypatch: pytest.MonkeyPatch, prefix: str, seed: int
) -> Repository:
    """Commit a backup deduplicated against a deleted one's packs while its next put below
    ``prefix`` is held back for longer than a lease lives; meanwhile a collection finds
    its lock stale and deletes those packs. Asserts the commit lost its lease; returns
    the repository (through the holding store)."""
    from respaldo.repository import locks

    held = _HeldLockPuts(storage, prefix=prefix)
    repo = init_repo(held)
    data = random_bytes(60_000, seed=seed)
    write_backup(repo, "old", {"dump": data})
    held.delete("manifests/old")  # its packs are garbage now, still indexed
    now = [1000.0]
    monkeypatch.setattr(
        locks, "time", type("Clock", (), {"monotonic": lambda: now[0], "sleep": time.sleep})
    )
    outcome: list[BaseException | None] = []

    with BackupWriter(repo, "new") as writer:
        writer.write_stream("dump", io.BytesIO(data))  # deduplicated against "old"

        def commit() -> None:
            try:
                writer.commit(kind="full", source="erp", started_at=STARTED)
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

        held.armed = True
        committing = threading.Thread(target=commit)
        committing.start()
        assert held.held.wait(60)
        # The put has been under way for longer than a lease lives: to every other
        # process the lock, last refreshed long ago, is stale.
        now[0] += 601
        (lock,) = names(held, LOCK_PREFIX)
        aged = json.loads(held.get(lock))
        aged["refreshed"] = (datetime.now(UTC) - timedelta(seconds=601)).isoformat()
        held.inner.put(lock, json.dumps(aged).encode())
        assert collect_garbage(open_repo(held)).packs_deleted > 0
        held.go.set()
        committing.join()

    assert isinstance(outcome[0], LeaseLost), outcome
    return repo


def test_a_refresh_that_landed_after_its_lock_was_removed_as_stale_loses_the_lease(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backup's last refresh (just before its manifest) is slow: S3 retries its PUT for
    longer than a lease lives. Meanwhile garbage collection finds the lock stale, removes
    it, and deletes the packs that no manifest references, among them those the backup
    deduplicated against. The held PUT then lands and puts the lock back: the refresh
    must not count as a success (before, the manifest followed, referencing deleted
    packs: a backup that verified bad at once, called completed)."""
    repo = _commit_held_past_its_lease(storage, monkeypatch, f"{LOCK_PREFIX}shared-", seed=3)
    assert repo.backup_ids() == []
    assert verify_repository(open_repo(storage)).ok


def test_a_manifest_that_landed_after_the_lease_could_go_stale_is_withdrawn(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refresh before the manifest was in time, but the manifest's own PUT is held up
    (S3 retrying it) for longer than a lease lives, and the lease's refreshes meanwhile
    fail too. Garbage collection finds the lock stale, marks what the manifests it lists
    reference (not this one: it has not landed), and deletes the rest, among it packs
    the backup deduplicated against; then the manifest lands. The backup must not stand
    as completed: before, it did, and verified bad at once."""
    repo = _commit_held_past_its_lease(storage, monkeypatch, "manifests/new", seed=4)
    assert repo.backup_ids() == []
    assert verify_repository(open_repo(storage)).ok

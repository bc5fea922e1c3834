"""Locks and leases: what keeps garbage collection away from running backups.

A *lock* is a small plain-JSON object ``locks/<kind>-<32 hex>``::

    {"version": 1, "kind": "shared", "purpose": "backup 20261128T083000Z-3f9a1c2e",
     "host": "db1", "pid": 4242, "created": "<ISO 8601>", "refreshed": "<ISO 8601>"}

Writers (a backup, a copy) hold a *shared* lease; garbage collection holds the one
*exclusive* lock. Shared leases do not conflict with each other; an exclusive lock
conflicts with every other lock.

Taking a lock is two-phase, which needs nothing but put, list, get and delete (no
rename, no append, no conditional writes), so it works the same on a disk and on S3:

1. put our own lock object;
2. list ``locks/`` and read every other lock. Stale ones (below) are deleted and ignored.
   If a live one conflicts with ours, delete ours and back off: wait and retry, or raise
   :class:`RepositoryLocked`.

Of two processes that race, at least one sees the other's object in step 2 (each put
its own before listing), so they never both proceed; both may back off, and retry after
a random delay.

A lock is *stale*, and ignored and deleted by whoever finds it, when it was not
refreshed for ``stale_after`` seconds (its holder hung, or died on another machine), or
when its holder was a process on this host that no longer exists. Holders refresh their
lock in a background thread every ``stale_after / 4`` by putting it again (the one
object in a repository that is ever replaced); a holder that finds its lock gone, or
could not refresh it for most of ``stale_after``, or whose wall clock says it was last
refreshed most of ``stale_after`` ago (the clock jumped forward: others judge by it),
or whose refresh landed only after most of ``stale_after`` (its put, held up by a slow
store, may have put back a lock that another process had removed as stale), has *lost*
it (:class:`LeaseLost`) and must not commit what the lock protected. A store has no
clock to ask: ``refreshed`` is the holder's wall clock and its age the finder's, so the
clocks of the hosts that share a repository must agree to well within ``stale_after``
(10 minutes by default). Job leases do not depend on this: a PostgreSQL catalog's are
judged by its server's clock (:mod:`respaldo.catalog.clock`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from respaldo import cancellation
from respaldo.errors import (
    LeaseLost,
    ObjectNotFound,
    RepositoryLocked,
    StorageError,
    WriteRefused,
)
from respaldo.processes import pid_alive as pid_alive
from respaldo.processes import this_host as this_host
from respaldo.repository.index import INDEX_PREFIX
from respaldo.storage.base import Storage

if TYPE_CHECKING:
    from respaldo.repository.repo import Repository

log = logging.getLogger(__name__)

LOCK_PREFIX = "locks/"
LOCK_VERSION = 1
DEFAULT_STALE_AFTER = 600.0
# A holder gives its lock up as lost once this share of stale_after has passed without a
# successful refresh: others may treat it as stale only after the whole of stale_after.
LOST_AFTER_SHARE = 0.75

Clock = Callable[[], datetime]


class LockKind(StrEnum):
    SHARED = "shared"
    EXCLUSIVE = "exclusive"

    def conflicts_with(self, other: LockKind) -> bool:
        return self is LockKind.EXCLUSIVE or other is LockKind.EXCLUSIVE


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class LockInfo:
    """A lock object as read from the repository."""

    name: str
    kind: LockKind
    purpose: str
    host: str
    pid: int
    created: datetime
    refreshed: datetime

    @classmethod
    def parse(cls, name: str, data: bytes) -> LockInfo:
        """Raises ValueError (or KeyError, TypeError) for anything that is not a lock."""
        doc = json.loads(data)
        return cls(
            name=name,
            kind=LockKind(doc["kind"]),
            purpose=str(doc.get("purpose", "")),
            host=str(doc["host"]),
            pid=int(doc["pid"]),
            created=datetime.fromisoformat(doc["created"]),
            refreshed=datetime.fromisoformat(doc["refreshed"]),
        )

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "version": LOCK_VERSION,
                "kind": self.kind.value,
                "purpose": self.purpose,
                "host": self.host,
                "pid": self.pid,
                "created": self.created.isoformat(),
                "refreshed": self.refreshed.isoformat(),
            },
            sort_keys=True,
        ).encode()

    def stale_reason(
        self,
        now: datetime,
        stale_after: float,
        *,
        host: str | None = None,
        is_alive: Callable[[int], bool] = pid_alive,
    ) -> str | None:
        """Why this lock no longer protects anything, or None if it is live."""
        age = (now - self.refreshed).total_seconds()
        if age > stale_after:
            return f"not refreshed for {age:.0f} s"
        if self.host == (host if host is not None else this_host()) and not is_alive(self.pid):
            return f"process {self.pid} is gone"
        return None

    def describe(self, now: datetime | None = None) -> str:
        ago = ((now or _utcnow()) - self.refreshed).total_seconds()
        return (
            f"{self.kind.value} lock for {self.purpose or 'unknown work'} "
            f"(pid {self.pid} on {self.host}, refreshed {max(ago, 0):.0f} s ago)"
        )


def read_locks(storage: Storage) -> tuple[list[LockInfo], list[str]]:
    """Every lock object: (parsed locks, names of objects that are not valid locks)."""
    locks: list[LockInfo] = []
    damaged: list[str] = []
    for info in storage.list(LOCK_PREFIX):
        try:
            data = storage.get(info.name)
        except ObjectNotFound:
            continue  # released while we listed
        try:
            doc = json.loads(data)
            if isinstance(doc, dict) and doc.get("version") != LOCK_VERSION:
                # A lock of another format version: respect it as the strongest kind (its
                # holder knows what it protects); it still goes stale like any other.
                data = json.dumps({**doc, "kind": LockKind.EXCLUSIVE.value}).encode()
            locks.append(LockInfo.parse(info.name, data))
        except (ValueError, KeyError, TypeError):
            damaged.append(info.name)
    return locks, damaged


def _delete_quietly(storage: Storage, name: str) -> None:
    with contextlib.suppress(ObjectNotFound):
        storage.delete(name)


class Lease:
    """A lock this process holds, refreshed in the background until released.

    Create one with :meth:`acquire`; use as a context manager or call :meth:`release`.
    Thread-safe.
    """

    def __init__(
        self,
        storage: Storage,
        info: LockInfo,
        *,
        stale_after: float,
        clock: Clock = _utcnow,
    ) -> None:
        self.storage = storage
        self.info = info
        self.stale_after = stale_after
        self._clock = clock
        self._last_ok = time.monotonic()
        self._lost: LeaseLost | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.released = False

    @property
    def name(self) -> str:
        return self.info.name

    # --- taking ----------------------------------------------------------------------

    @classmethod
    def acquire(
        cls,
        storage: Storage,
        kind: LockKind,
        purpose: str,
        *,
        stale_after: float = DEFAULT_STALE_AFTER,
        wait: float = 0.0,
        poll: float | None = None,
        refresh: bool = True,
        clock: Clock = _utcnow,
    ) -> Lease:
        """Take a lock of ``kind``; wait up to ``wait`` seconds for conflicting ones.

        Raises RepositoryLocked naming the conflicting holders if they are still there
        after ``wait``, JobCancelled when the current job is cancelled while it waits
        (nothing of ours is left in the repository), and storage errors. With
        ``refresh``, a daemon thread keeps the lock fresh until :meth:`release`. ``poll``
        (default: a twentieth of ``wait``, between 0.05 and 1 second) is the time between
        attempts, randomised.
        """
        if poll is None:
            poll = min(1.0, max(0.05, wait / 20))
        now = clock()
        info = LockInfo(
            name=f"{LOCK_PREFIX}{kind.value}-{secrets.token_hex(16)}",
            kind=kind,
            purpose=purpose,
            host=this_host(),
            pid=os.getpid(),
            created=now,
            refreshed=now,
        )
        deadline = time.monotonic() + wait
        while True:
            info = _replace_refreshed(info, clock())
            storage.put(info.name, info.to_bytes())
            try:
                conflicts = _conflicts(storage, info, stale_after, clock())
            except BaseException:
                _delete_quietly(storage, info.name)
                raise
            if not conflicts:
                break
            _delete_quietly(storage, info.name)
            left = deadline - time.monotonic()
            if left <= 0:
                raise _locked(kind, purpose, conflicts, stale_after, clock())
            # Jitter, so that two processes that keep meeting stop meeting.
            _pause(min(left, poll * random.uniform(0.5, 1.5)))
        lease = cls(storage, info, stale_after=stale_after, clock=clock)
        if refresh:
            lease._start()
        return lease

    # --- holding ---------------------------------------------------------------------

    def _start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"lease-{self.info.kind.value}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        interval = max(self.stale_after / 4, 0.01)
        while not self._stop.wait(interval):
            try:
                self.refresh()
            except LeaseLost:
                return  # recorded in self._lost; check() reports it
            except StorageError as exc:
                log.warning("cannot refresh %s (will retry): %s", self.info.name, exc)

    def refresh(self) -> None:
        """Prove the lock is still ours and renew it. Raises LeaseLost (then forever) and
        storage errors (the lock may still be ours: retry)."""
        with self._lock:
            if self._lost is not None:
                raise self._lost
            if self.released:
                raise LeaseLost(f"{self.info.name} was released")
            started = time.monotonic()
            silent = started - self._last_ok
            if silent > self.stale_after * LOST_AFTER_SHARE:
                raise self._lose(f"it was not refreshed for {silent:.0f} s")
            # Not renewed either: another process may be removing it as stale right now.
            self._check_clock()
            if self._lost is not None:
                raise self._lost
            try:
                self.storage.stat(self.info.name)
            except ObjectNotFound:
                raise self._lose("another process removed it as stale") from None
            self.info = _replace_refreshed(self.info, self._clock())
            self.storage.put(self.info.name, self.info.to_bytes())
            # Counted only if it landed in time: a put held up (a slow store retrying it)
            # until others could judge the lock stale may have put back a lock they had
            # removed, and garbage collection may be deleting what this lock protects.
            since = time.monotonic() - self._last_ok
            if since > self.stale_after * LOST_AFTER_SHARE:
                raise self._lose(
                    f"its refresh landed {since:.0f} s after the last one, when other "
                    "processes may have removed it as stale"
                )
            self._last_ok = started

    def _lose(self, why: str) -> LeaseLost:
        self._lost = LeaseLost(
            f"lost the {self.info.kind.value} lock for {self.info.purpose}: {why}",
            hint="garbage collection may have run meanwhile; the work was not committed, "
            "run it again",
        )
        return self._lost

    def check(self) -> None:
        """Raise LeaseLost if the lock is lost, or was not refreshed for so long that
        another process may already treat it as stale."""
        with self._lock:
            if self._lost is None:
                silent = time.monotonic() - self._last_ok
                if silent > self.stale_after * LOST_AFTER_SHARE:
                    self._lose(f"it could not be refreshed for {silent:.0f} s")
                else:
                    self._check_clock()
            if self._lost is not None:
                raise self._lost

    def _check_clock(self) -> None:
        """Lose the lock if, by the wall clock, it is nearly stale: others judge it by
        its ``refreshed`` time on their clocks, and a clock that stepped forward (a VM
        resumed, NTP corrected a slow clock) makes it stale at once for every other
        process on this host, while the monotonic time the holder counts says nothing."""
        age = (self._clock() - self.info.refreshed).total_seconds()
        if age > self.stale_after * LOST_AFTER_SHARE:
            self._lose(
                f"the clock says it was refreshed {age:.0f} s ago (did the clock jump?): "
                "other processes may treat it as stale"
            )

    def release(self) -> None:
        """Stop refreshing and delete the lock object. Idempotent; never raises for a
        lock that is gone already."""
        with self._lock:
            if self.released:
                return
            self.released = True
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        try:
            _delete_quietly(self.storage, self.info.name)
        except StorageError as exc:  # it goes stale and is removed by the next taker
            log.warning("cannot remove %s: %s", self.info.name, exc)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _pause(seconds: float) -> None:
    """Wait between two attempts, woken by the current job's cancellation (a daily
    verify waiting up to ``[locks] wait_seconds`` for a garbage collection must stop when
    its job is cancelled, not when the wait ends). Raises JobCancelled."""
    token = cancellation.current()
    if token is None:
        time.sleep(seconds)
    elif token.wait(seconds):
        token.check()


def _replace_refreshed(info: LockInfo, when: datetime) -> LockInfo:
    return LockInfo(info.name, info.kind, info.purpose, info.host, info.pid, info.created, when)


def _conflicts(
    storage: Storage, own: LockInfo, stale_after: float, now: datetime
) -> list[LockInfo]:
    locks, damaged = read_locks(storage)
    for name in damaged:
        log.warning("removing %s: not a valid lock object", name)
        _delete_quietly(storage, name)
    live = []
    for lock in locks:
        if lock.name == own.name:
            continue
        reason = lock.stale_reason(now, stale_after)
        if reason is not None:
            log.warning("removing stale lock %s (%s): %s", lock.name, lock.describe(now), reason)
            _delete_quietly(storage, lock.name)
            continue
        if own.kind.conflicts_with(lock.kind):
            live.append(lock)
    return live


def _locked(
    kind: LockKind, purpose: str, conflicts: list[LockInfo], stale_after: float, now: datetime
) -> RepositoryLocked:
    """The error for a lock of ``kind`` taken for ``purpose`` that ``conflicts`` stop. The
    exclusive lock is garbage collection's, an index rebuild's, WAL retention's or a
    rewind's: each is named, so that no one is told to run prune again after a rebuild."""
    holders = [lock.describe(now) for lock in conflicts]
    if kind is LockKind.EXCLUSIVE:
        message = "the repository is in use: " + "; ".join(holders)
        again = "prune" if purpose == "garbage collection" else "it"
        hint = f"{purpose} waits for running backups; run {again} again when they end"
    else:
        running = conflicts[0].purpose or "garbage collection"
        message = f"{running} is running: " + "; ".join(holders)
        hint = "try again when it has finished (or raise [locks] wait_seconds)"
    hint += (
        f"; a lock whose holder died is ignored after {timedelta(seconds=stale_after)} "
        "(at once on the same host)"
    )
    return RepositoryLocked(message, holders=holders, hint=hint)


def shared_lease(repo: Repository, purpose: str) -> Lease:
    """Take a shared lease on ``repo`` (see :class:`Lease`) for a writer, or a reader that
    must not see packs disappear under it, then make sure the repository's in-memory
    index does not predate a garbage collection.

    The index was loaded when the repository was opened, maybe long ago. A garbage
    collection since then deleted packs that it may still point at: deduplicating
    against them would make a backup depend on chunks that are gone. Collection always
    removes the index files it replaces, so a loaded index file that no longer exists
    means: reload. Under the lease no collection can start until it is released. An
    index file not loaded yet means another process (the CLI, a worker elsewhere) wrote
    a backup since: a long-lived reader (``respaldo serve``) reloads too, else that
    backup's chunks were "not in the index" to its restores and restore tests.
    """
    lease = Lease.acquire(
        repo.storage,
        LockKind.SHARED,
        purpose,
        stale_after=repo.lock_stale_after,
        wait=repo.lock_wait,
    )
    try:
        present = {info.name for info in repo.storage.list(INDEX_PREFIX)}
        if repo.index_files - present:
            log.info("the index changed since it was loaded (garbage collection); reloading")
            repo.load_index()
        elif present - repo.index_files:
            log.info("another process wrote to the index since it was loaded; reloading")
            repo.load_index()
    except BaseException:
        lease.release()
        raise
    return lease


_warned: set[str] = set()
_warned_lock = threading.Lock()


@contextlib.contextmanager
def reading_lease(
    repo: Repository, purpose: str, warn: Callable[[str], None] | None = None
) -> Iterator[Lease | None]:
    """A shared lease for a reader (verify, restore, drill), or none where the store
    refuses writes: a repository on read-only media must still verify and restore.

    Without a lease nothing keeps garbage collection from repacking or deleting what is
    being read (a concurrent prune would show as missing chunks, never as wrong data:
    everything read is authenticated). Making sure no prune runs meanwhile is then the
    operator's job, which ``warn`` is told (by default the log, once per store and
    process).
    """
    try:
        lease = shared_lease(repo, purpose)
    except WriteRefused as exc:
        message = (
            f"{repo.storage.location} is read-only for us ({exc.message}): reading without "
            "a lease, so nothing keeps garbage collection away; make sure no 'respaldo "
            "prune' runs on this repository meanwhile"
        )
        if warn is not None:
            warn(message)
        else:
            with _warned_lock:
                first = repo.storage.location not in _warned
                _warned.add(repo.storage.location)
            if first:  # a copy of many backups reads under one lease each: say it once
                log.warning("%s", message)
        yield None
        return
    with lease:
        yield lease

"""Rewind a repository on a versioned S3 bucket to how it was at a moment in the past.

The answer to "someone with our credentials deleted or overwrote the backups": with
Object Lock the versions of the last ``object_lock_days`` are still in the bucket, and a
rewind makes them current again (see :mod:`respaldo.storage.object_lock`). It needs no
passphrase, since it moves whole objects; the catalog is rebuilt from the repository
afterwards (``respaldo catalog rebuild``), and ``respaldo verify --all`` proves the result.
"""

from __future__ import annotations

from datetime import UTC, datetime

from respaldo.config import Settings
from respaldo.operations.repositories import open_store
from respaldo.repository.locks import LOCK_PREFIX, Lease, LockKind
from respaldo.storage.object_lock import RewindReport, require_locking_store, rewind


def rewind_repository(
    settings: Settings,
    name: str,
    to: datetime,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> RewindReport:
    """Rewind the repository ``name`` to time ``to`` (``dry_run``: only plan it).

    Takes the exclusive lease (leases are not rewound), so that no backup or prune writes
    meanwhile. Raises ConfigError for a repository that is not on a versioned S3 bucket or
    a time that is not in the past, RepositoryLocked while others hold leases.
    """
    store = open_store(settings.repository(name))
    try:
        locking = require_locking_store(store, "rewind")
        when = now or datetime.now(UTC)
        if dry_run:
            return rewind(locking, to, now=when, exempt=(LOCK_PREFIX,), dry_run=True)
        with Lease.acquire(
            store,
            LockKind.EXCLUSIVE,
            "rewind",
            stale_after=settings.locks.stale_after_seconds,
            wait=settings.locks.wait_seconds,
        ):
            return rewind(locking, to, now=when, exempt=(LOCK_PREFIX,))
    finally:
        store.close()

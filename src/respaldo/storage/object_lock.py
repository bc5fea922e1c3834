"""Immutable storage: objects locked against deletion for a time, and old versions kept.

S3 Object Lock keeps every version of an object in a *versioned* bucket, and a version
under a lock cannot be deleted or overwritten by anyone (COMPLIANCE mode) or by anyone
without the ``s3:BypassGovernanceRetention`` permission (GOVERNANCE mode) until its
retain-until date. A delete without a version id only hides the object behind a *delete
marker*; the locked version stays. This is what makes a repository survive someone who
holds its credentials (ransomware, a rogue administrator): whatever they delete or
overwrite, the versions of the last ``days`` are still there, and :func:`rewind` makes
the repository look as it did before the attack.

Two things follow for a repository that deduplicates:

- A pack written 25 days ago may hold chunks of today's backup; with a 30-day lock it
  would become deletable in 5 days. :func:`extend_locks` (run by ``prune``, after garbage
  collection has removed what no backup needs) renews the lock of every object still in
  the store once less than half of the period is left, so every object a kept backup
  needs stays locked for at least ``days / 2`` ahead, as long as prune runs at least that
  often. New objects are locked for the whole period when they are written.
- Deleting (garbage collection, WAL retention, expired backups) only adds delete markers;
  the space comes back when the lock has ended and a bucket lifecycle rule removes
  noncurrent versions (``NoncurrentVersionExpiration``). Without such a rule old versions
  are kept, and billed, for ever: :func:`bucket_warnings` says so.

Leases (``locks/``) are exempt: they are rewritten every minute and removed when their
holder ends; locking them would keep thousands of versions and protect nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from respaldo.errors import ConfigError, ObjectNotFound, StorageError
from respaldo.storage.base import ObjectInfo, Storage

log = logging.getLogger(__name__)

LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")
RENEW_FRACTION = 0.5
"""A lock is renewed when less than this share of the period is left."""


@dataclass(frozen=True, slots=True)
class LockPolicy:
    """How new objects are locked: ``mode`` for ``days`` from the moment they are written."""

    mode: str
    days: int

    def __post_init__(self) -> None:
        if self.mode not in LOCK_MODES:
            raise ConfigError(
                f"unknown object_lock_mode {self.mode!r}",
                hint='use "GOVERNANCE" or "COMPLIANCE" (see docs/configuration.md)',
            )
        if isinstance(self.days, bool) or not isinstance(self.days, int) or self.days < 1:
            raise ConfigError(
                f"object_lock_days must be a whole number of days, 1 or more, not {self.days!r}"
            )

    @property
    def period(self) -> timedelta:
        return timedelta(days=self.days)

    def until(self, now: datetime) -> datetime:
        """The retain-until date of an object written (or renewed) at ``now``."""
        return now + self.period

    def needs_renewal(self, until: datetime | None, now: datetime) -> bool:
        """Whether a lock ending at ``until`` (``None``: no lock) is to be renewed at ``now``."""
        return until is None or until - now < self.period * RENEW_FRACTION


@dataclass(frozen=True, slots=True)
class BucketLockState:
    """What the bucket itself says about locking and about old versions."""

    object_lock_enabled: bool
    versioning: str
    """``Enabled``, ``Suspended`` or ``""`` (never enabled)."""
    noncurrent_expiration_days: int | None
    """Days after which a lifecycle rule covering the store removes noncurrent versions."""


@dataclass(frozen=True, slots=True)
class ObjectVersion:
    """One version of an object, or a delete marker, as a versioned store lists it."""

    name: str
    version_id: str
    modified: datetime
    size: int = 0
    delete_marker: bool = False
    latest: bool = False


@runtime_checkable
class LockingStorage(Protocol):
    """A store that keeps versions and can lock them (S3 with Object Lock)."""

    @property
    def location(self) -> str: ...

    @property
    def lock_policy(self) -> LockPolicy | None:
        """How this store locks what it writes; ``None``: it writes without a lock."""
        ...

    @property
    def lock_exempt(self) -> tuple[str, ...]:
        """Name prefixes written without a lock (and left alone by renewal and rewind)."""
        ...

    def bucket_lock_state(self) -> BucketLockState: ...

    def list_modified(self, prefix: str = "") -> Iterator[tuple[ObjectInfo, datetime]]:
        """The current objects below ``prefix`` with the time each was last written."""
        ...

    def locked_until(self, name: str) -> datetime | None:
        """The retain-until date of the current version; ObjectNotFound if there is none."""
        ...

    def extend_lock(self, name: str, until: datetime) -> None:
        """Lock the current version until ``until`` (the store refuses to shorten a lock)."""
        ...

    def versions(self, prefix: str = "") -> Iterator[ObjectVersion]:
        """Every version and delete marker below ``prefix``, newest first per name."""
        ...

    def restore_version(self, name: str, version_id: str) -> None:
        """Make an old version the current one again (a copy; history is kept)."""
        ...

    def delete(self, name: str) -> None: ...


def locking_store(storage: Storage) -> LockingStorage | None:
    """The versioned, lockable store behind ``storage`` (through wrappers), if it is one."""
    inner: object = storage
    while not isinstance(inner, LockingStorage):
        inner = getattr(inner, "inner", None)
        if inner is None:
            return None
    return inner


def require_locking_store(storage: Storage, what: str) -> LockingStorage:
    store = locking_store(storage)
    if store is None:
        raise ConfigError(
            f"{what} needs a versioned S3 bucket; {storage.location} is not one",
            hint="object locks and old versions exist only on S3 repositories",
        )
    return store


def bucket_warnings(store: LockingStorage) -> list[str]:
    """Problems of the bucket behind a locking store; raises ConfigError if it cannot lock."""
    state = store.bucket_lock_state()
    policy = store.lock_policy
    if policy is not None and not state.object_lock_enabled:
        raise ConfigError(
            f"object_lock_mode is set but the bucket of {store.location} has no Object Lock",
            hint="Object Lock is enabled when a bucket is created (aws s3api create-bucket "
            "--object-lock-enabled-for-bucket), or on a versioned bucket with "
            "put-object-lock-configuration; or remove object_lock_mode",
        )
    warnings = []
    if state.versioning == "Enabled" and state.noncurrent_expiration_days is None:
        warnings.append(
            f"the bucket of {store.location} keeps old versions for ever: deleted backups "
            "never free space; add a lifecycle rule with NoncurrentVersionExpiration "
            "(docs/configuration.md)"
        )
    elif (
        policy is not None
        and state.noncurrent_expiration_days is not None
        and state.noncurrent_expiration_days < policy.days
    ):
        # Harmless for locked versions (S3 keeps them until the lock ends) but it says the
        # bucket's owner expects a shorter history than the lock gives.
        warnings.append(
            f"the bucket's lifecycle removes old versions after "
            f"{state.noncurrent_expiration_days} days, before object_lock_days "
            f"({policy.days}) ends; locked versions are kept until their lock ends anyway"
        )
    return warnings


@dataclass
class LockRenewal:
    """What :func:`extend_locks` did (or, in a dry run, would do) in one store."""

    mode: str
    until: datetime
    checked: int = 0
    extended: int = 0
    failed: list[str] = field(default_factory=list)


def extend_locks(store: LockingStorage, now: datetime, *, dry_run: bool = False) -> LockRenewal:
    """Renew the lock of every current object whose lock ends within half the period.

    Objects written recently enough are known to be locked long enough from their
    modification time alone; only older ones cost a HEAD request, and a renewal one more.
    An object that vanishes meanwhile is skipped; other failures are listed and the rest
    go on (the next run renews what was missed).
    """
    policy = store.lock_policy
    if policy is None:
        raise ConfigError(f"{store.location} has no object_lock_mode to renew locks for")
    report = LockRenewal(mode=policy.mode, until=policy.until(now))
    for info, modified in store.list_modified():
        if info.name.startswith(store.lock_exempt):
            continue
        report.checked += 1
        if not policy.needs_renewal(policy.until(modified), now):
            continue
        try:
            if not policy.needs_renewal(store.locked_until(info.name), now):
                continue
            if not dry_run:
                store.extend_lock(info.name, report.until)
        except ObjectNotFound:
            continue
        except StorageError as exc:
            report.failed.append(f"{info.name}: {exc}")
            log.warning("could not renew the lock of %s: %s", info.name, exc)
            continue
        report.extended += 1
    return report


# --- rewind ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RewindStep:
    """One change that makes a name look as it did at the rewind time."""

    name: str
    action: str
    """``restore`` (bring back ``version_id``) or ``delete`` (did not exist then)."""
    version_id: str = ""
    size: int = 0


def plan_rewind(
    versions: Iterable[ObjectVersion], to: datetime, *, exempt: tuple[str, ...] = ()
) -> list[RewindStep]:
    """The steps that make every name below the store look as it did at time ``to``.

    For each name, the version current at ``to`` is the newest version or marker written
    at or before it. If that is a real version and it is not the current one, it is
    restored; if the name had no version then (or was deleted) but has a current version
    now, it is deleted. Names under ``exempt`` prefixes are left alone. Pure.
    """
    by_name: dict[str, list[ObjectVersion]] = {}
    for version in versions:
        if not version.name.startswith(exempt):
            by_name.setdefault(version.name, []).append(version)
    steps = []
    for name in sorted(by_name):
        history = by_name[name]
        current = next((v for v in history if v.latest), None)
        # Newest first: among versions of the same second, the first listed is the newer.
        then = next((v for v in history if v.modified <= to), None)
        if then is not None and not then.delete_marker:
            if current is None or current.version_id != then.version_id:
                steps.append(RewindStep(name, "restore", then.version_id, then.size))
        elif current is not None and not current.delete_marker:
            steps.append(RewindStep(name, "delete", size=current.size))
    return steps


@dataclass
class RewindReport:
    to: datetime
    steps: list[RewindStep]
    applied: int = 0
    failed: list[str] = field(default_factory=list)

    @property
    def restored(self) -> int:
        return sum(1 for step in self.steps if step.action == "restore")

    @property
    def deleted(self) -> int:
        return sum(1 for step in self.steps if step.action == "delete")


def rewind(
    store: LockingStorage, to: datetime, *, now: datetime, dry_run: bool = False
) -> RewindReport:
    """Make the store's current objects those it had at ``to``; history stays.

    Every step adds a version (a copy of the old one, or a delete marker), so a rewind
    can itself be rewound. Raises ConfigError for a time in the future or a bucket that
    keeps no versions.
    """
    if to.tzinfo is None:
        raise ConfigError("the rewind time needs a time zone (e.g. 2026-11-28T09:00:00Z)")
    if to >= now:
        raise ConfigError(
            f"cannot rewind to {to.isoformat()}: it is not in the past",
            hint="give the time just before the damage, e.g. 2026-11-28T09:00:00Z",
        )
    state = store.bucket_lock_state()
    if state.versioning != "Enabled":
        raise ConfigError(
            f"the bucket of {store.location} does not keep versions: there is nothing to rewind to",
            hint="enable versioning (and Object Lock) on the bucket before the next incident",
        )
    report = RewindReport(to, plan_rewind(store.versions(), to, exempt=store.lock_exempt))
    if dry_run:
        return report
    for step in report.steps:
        try:
            if step.action == "restore":
                store.restore_version(step.name, step.version_id)
            else:
                store.delete(step.name)
        except StorageError as exc:
            report.failed.append(f"{step.action} {step.name}: {exc}")
            log.warning("rewind could not %s %s: %s", step.action, step.name, exc)
            continue
        report.applied += 1
    return report

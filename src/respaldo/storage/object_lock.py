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
  collection has removed what no backup needs) asks every object still in the store for
  its lock (a HEAD each, in parallel) and renews those with less than half of the period
  left, to the whole period from now. Between two prunes ``interval`` apart, every
  object a kept backup needs stays locked for at least ``days / 2 - interval`` ahead.
  Every object is asked, not only old ones: objects written before the lock was
  configured, or whose renewal failed, have no lock that their age would tell of.
- Deleting (garbage collection, WAL retention, expired backups) only adds delete markers;
  the space comes back when the lock has ended and a bucket lifecycle rule removes
  noncurrent versions (``NoncurrentVersionExpiration``). Without such a rule old versions
  are kept, and billed, for ever: :func:`bucket_warnings` says so.

Leases (``locks/``) are exempt: they are rewritten every minute and removed when their
holder ends; locking them would keep thousands of versions and protect nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, TypeVar, runtime_checkable

from respaldo.errors import ConfigError, ObjectNotFound, StorageError
from respaldo.phrases import counted
from respaldo.storage.base import ObjectInfo, Storage
from respaldo.storage.retry import call_with_retries

log = logging.getLogger(__name__)

LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")
RENEW_FRACTION = 0.5
"""A lock is renewed when less than this share of the period is left."""
PARALLEL = 16
"""Requests in flight while renewing locks or rewinding: each object is one or two
requests, and a large repository has tens of thousands of objects."""
T = TypeVar("T")


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


@dataclass(frozen=True, slots=True)
class ObjectVersion:
    """One version of an object, or a delete marker, as a versioned store lists it."""

    name: str
    version_id: str
    modified: datetime
    size: int = 0
    delete_marker: bool = False
    latest: bool = False
    etag: str = ""


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

    def noncurrent_expiration_days(self) -> int | None:
        """Days after which the bucket's lifecycle removes old versions of this store's
        objects (None: never). Needs s3:GetLifecycleConfiguration."""
        ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    def locked_until(self, name: str) -> datetime | None:
        """The retain-until date of the current version; ObjectNotFound if there is none."""
        ...

    def extend_lock(self, name: str, until: datetime) -> None:
        """Lock the current version until ``until`` (the store refuses to shorten a lock)."""
        ...

    def versions(self, prefix: str = "") -> Iterator[ObjectVersion]:
        """Every version and delete marker below ``prefix``, newest first per name.

        Of entries with the same time (servers that keep whole seconds), the current one
        comes first, then versions before delete markers.
        """
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


def no_object_lock(location: str) -> ConfigError:
    """The error for a store set to lock whose bucket cannot."""
    return ConfigError(
        f"object_lock_mode is set but the bucket of {location} has no Object Lock; "
        "nothing was written",
        hint="Object Lock is enabled when a bucket is created (aws s3api create-bucket "
        "--object-lock-enabled-for-bucket), or on a versioned bucket with "
        "put-object-lock-configuration; or remove object_lock_mode",
    )


def bucket_warnings(store: LockingStorage) -> list[str]:
    """Problems of the bucket behind a locking store; raises ConfigError if it cannot lock."""
    state = store.bucket_lock_state()
    policy = store.lock_policy
    if policy is not None and not state.object_lock_enabled:
        raise no_object_lock(store.location)
    if state.versioning != "Enabled":
        return []
    try:
        expiry = store.noncurrent_expiration_days()
    except StorageError as exc:
        # Only a warning depends on it: a missing permission must not stop anything.
        return [
            f"cannot read the lifecycle rules of the bucket of {store.location} ({exc}); "
            "make sure old versions expire (docs/configuration.md)"
        ]
    warnings = []
    if expiry is None:
        warnings.append(
            f"the bucket of {store.location} keeps old versions for ever: deleted backups "
            "never free space; add a lifecycle rule with NoncurrentVersionExpiration "
            "(docs/configuration.md)"
        )
    elif policy is not None and expiry < policy.days:
        # Harmless for locked versions (S3 keeps them until the lock ends) but it says the
        # bucket's owner expects a shorter history than the lock gives.
        after = counted(expiry, "{count} day", "{count} days")  # "1 days" before
        warnings.append(
            f"the bucket's lifecycle removes old versions after {after}, before "
            f"object_lock_days ({policy.days}) ends; locked versions are kept until their "
            "lock ends anyway"
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

    One HEAD per object (a renewal one more), ``PARALLEL`` at a time, each retried on
    transient errors. An object that vanishes meanwhile is skipped; other failures are
    listed and the rest go on (the next run renews what was missed).
    """
    policy = store.lock_policy
    if policy is None:
        raise ConfigError(f"{store.location} has no object_lock_mode to renew locks for")
    report = LockRenewal(mode=policy.mode, until=policy.until(now))
    listed = _retried(store, "list", lambda: list(store.list()))
    names = [info.name for info in listed if not info.name.startswith(store.lock_exempt)]
    report.checked = len(names)

    def renew(name: str) -> bool:
        until = _retried(store, f"stat {name}", lambda: store.locked_until(name))
        if not policy.needs_renewal(until, now):
            return False
        if not dry_run:
            _retried(store, f"lock {name}", lambda: store.extend_lock(name, report.until))
        return True

    for name, renewed, error in _each(names, renew):
        if isinstance(error, ObjectNotFound):
            continue
        if error is not None:
            report.failed.append(f"{name}: {error}")
            log.warning("could not renew the lock of %s: %s", name, error)
        elif renewed:
            report.extended += 1
    return report


def _retried(store: LockingStorage, what: str, func: Callable[[], T]) -> T:
    return call_with_retries(what, store.location, func)


def _each(
    items: list[T], func: Callable[[T], bool]
) -> Iterator[tuple[T, bool, StorageError | None]]:
    """``func`` over ``items``, PARALLEL at a time: (item, result, storage error)."""

    def one(item: T) -> tuple[T, bool, StorageError | None]:
        try:
            return item, func(item), None
        except StorageError as exc:
            return item, False, exc

    with ThreadPoolExecutor(PARALLEL, thread_name_prefix="lock") as pool:
        yield from pool.map(one, items)


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
    at or before it (the first such in the listing, which is newest first). If that is a
    real version and the current one is not the same bytes (another ETag or size), it is
    restored; if the name had no version then (or was deleted) but has a current version
    now, it is deleted. So a rewind run again after a partial failure redoes only what is
    left. Of a version and a marker in the same second, the listing puts the version
    first: bringing back an object deleted within that second is harmless in a
    repository, hiding one it needs is not. Names under ``exempt`` prefixes are left
    alone. Pure.
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
            if not _same(current, then):
                steps.append(RewindStep(name, "restore", then.version_id, then.size))
        elif current is not None and not current.delete_marker:
            steps.append(RewindStep(name, "delete", size=current.size))
    return steps


def _same(current: ObjectVersion | None, then: ObjectVersion) -> bool:
    if current is None or current.delete_marker:
        return False
    if current.version_id == then.version_id:
        return True
    return bool(then.etag) and (current.etag, current.size) == (then.etag, then.size)


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
    store: LockingStorage,
    to: datetime,
    *,
    now: datetime,
    exempt: tuple[str, ...] = (),
    dry_run: bool = False,
) -> RewindReport:
    """Make the store's current objects those it had at ``to``; history stays.

    Every step adds a version (a copy of the old one, or a delete marker), so a rewind
    can itself be rewound. Names under ``exempt`` (and the store's own lock exemptions)
    are left alone. Steps run ``PARALLEL`` at a time, each retried on transient errors.
    Raises ConfigError for a time in the future or a bucket that keeps no versions.
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
    skip = tuple(exempt) + store.lock_exempt
    report = RewindReport(to, plan_rewind(store.versions(), to, exempt=skip))
    if dry_run:
        return report

    def apply(step: RewindStep) -> bool:
        if step.action == "restore":
            _retried(
                store,
                f"restore {step.name}",
                lambda: store.restore_version(step.name, step.version_id),
            )
        else:
            _retried(store, f"delete {step.name}", lambda: store.delete(step.name))
        return True

    for step, _, error in _each(report.steps, apply):
        if error is not None and not (
            step.action == "delete" and isinstance(error, ObjectNotFound)
        ):
            report.failed.append(f"{step.action} {step.name}: {error}")
            log.warning("rewind could not %s %s: %s", step.action, step.name, error)
        else:
            report.applied += 1
    return report

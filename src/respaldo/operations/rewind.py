"""Rewind a repository on a versioned S3 bucket to how it was at a moment in the past.

The answer to "someone with our credentials deleted or overwrote the backups": with
Object Lock the versions of the last ``object_lock_days`` are still in the bucket, and a
rewind makes them current again (see :mod:`respaldo.storage.object_lock`). It needs no
passphrase, since it moves whole objects; the catalog is rebuilt from the repository
afterwards (``respaldo catalog rebuild``), and ``respaldo verify --all`` proves the result.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import Field

from respaldo.config import Settings
from respaldo.domain import AuditAction, AuditOutcome
from respaldo.errors import InvalidInput
from respaldo.operations import audit
from respaldo.operations.models import ResultModel
from respaldo.operations.repositories import open_store
from respaldo.operations.zone import configured_zone, offset_warnings
from respaldo.phrases import N_, Phrase
from respaldo.repository.locks import LOCK_PREFIX, Lease, LockKind
from respaldo.storage import object_lock
from respaldo.storage.object_lock import RewindReport, require_locking_store


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
            return object_lock.rewind(locking, to, now=when, exempt=(LOCK_PREFIX,), dry_run=True)
        with Lease.acquire(
            store,
            LockKind.EXCLUSIVE,
            "rewind",
            stale_after=settings.locks.stale_after_seconds,
            wait=settings.locks.wait_seconds,
        ):
            return object_lock.rewind(locking, to, now=when, exempt=(LOCK_PREFIX,))
    finally:
        store.close()


class RewindStepView(ResultModel):
    name: str
    action: str
    """``restore`` (bring back ``version_id``) or ``delete`` (written after the time)."""
    version_id: str


class RewindResult(ResultModel):
    """What a rewind did (``dry_run``: would do); ``failed`` names what could not be."""

    repository: str
    to: str
    dry_run: bool
    restored: int
    deleted: int
    applied: int
    failed: list[str]
    steps: list[RewindStepView]
    restored_bytes: int = Field(exclude=True)
    warnings: list[str] = Field(default_factory=list)
    """Said before the rewind: a ``--to`` whose UTC offset is not the installation's
    zone's at that time (as restore's ``--target-time``)."""

    @property
    def ok(self) -> bool:
        return not self.failed


def parse_time(text: str, field: str = "to") -> datetime:
    """An ISO 8601 time with a zone. Raises InvalidInput (naming ``field``) otherwise."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            field,
            f"{text!r} is not a date and time",
            hint="use ISO 8601 with a time zone, e.g. 2026-11-28T09:00:00Z",
        ) from None
    if when.tzinfo is None:
        raise InvalidInput(
            field,
            f"{text!r} has no time zone",
            hint="add one, e.g. 2026-11-28T09:00:00Z or 2026-11-28T10:00:00+01:00",
        )
    return when


def rewind(settings: Settings, name: str, to: str, *, dry_run: bool = False) -> RewindResult:
    """``rewind``: :func:`rewind_repository` to the ISO 8601 time ``to`` (InvalidInput if
    it is not one, with a zone). A time whose UTC offset is not ``[schedules] time_zone``'s
    at that moment is warned about, as a restore's target time is: an hour off keeps, or
    brings back, what was written or deleted in that hour. Audited unless ``dry_run``
    (``rewind``, :func:`audit.run_local`): it hides what was written after ``to``, and runs
    without the catalog, which it makes stale ('catalog rebuild' follows)."""
    if dry_run:
        return _rewind(settings, name, to, dry_run=True)
    return audit.run_local(
        settings, AuditAction.REWIND, name, lambda: _rewind(settings, name, to), _audited
    )


def _audited(report: RewindResult) -> tuple[str, AuditOutcome, str]:
    detail = f"to {report.to}: restored {report.restored} objects, hid {report.deleted}" + (
        f"; {len(report.failed)} failed" if report.failed else ""
    )
    return report.repository, AuditOutcome.SUCCESS if report.ok else AuditOutcome.FAILURE, detail


def _rewind(settings: Settings, name: str, to: str, *, dry_run: bool = False) -> RewindResult:
    when = parse_time(to)
    warnings = offset_warnings(
        when,
        configured_zone(settings),
        what=Phrase(N_("the rewind time")),
        effect=Phrase(N_("the repository goes back to that moment")),
    )
    report = rewind_repository(settings, name, when, dry_run=dry_run)
    return RewindResult(
        warnings=warnings,
        repository=name,
        to=report.to.isoformat(),
        dry_run=dry_run,
        restored=report.restored,
        deleted=report.deleted,
        applied=report.applied,
        failed=list(report.failed),
        steps=[
            RewindStepView(name=s.name, action=s.action, version_id=s.version_id)
            for s in report.steps
        ],
        restored_bytes=sum(s.size for s in report.steps if s.action == "restore"),
    )

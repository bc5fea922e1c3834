"""The audit log, for every interface: record an action, read the entries.

Append-only for the application: this module has only :func:`record` (and
:func:`append`, the same within a transaction the caller already holds, and
:func:`record_local` and :func:`run_local` for the commands that run without the catalog)
and :func:`entries`; the catalog class below it has only ``append`` and ``list``, and the
database refuses UPDATE and DELETE on ``audit_log`` (triggers made by its migration).

What gets recorded: every login (success and failure, with the name tried and the
address), every change (users, API tokens, backups created, deleted, pinned, restores,
restore tests, cancelled jobs, repository keys, rewinds and repairs) and every request
refused for a missing permission.
Passwords and tokens are never recorded: callers pass names, and :func:`scrub` removes
anything shaped like a token from the detail all the same.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from pydantic import Field
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from respaldo.catalog import AuditEntry, AuditLog, open_catalog
from respaldo.config import Settings
from respaldo.domain import AuditAction, AuditOutcome
from respaldo.errors import CatalogError, CatalogNotFound
from respaldo.operations.context import Context
from respaldo.operations.models import ResultModel, UtcTime
from respaldo.operations.principal import Principal, local_principal
from respaldo.operations.zone import parse_instant

log = logging.getLogger(__name__)

T = TypeVar("T")

# A JWT (three base64url parts, the first one a JSON header) or a respaldo API token.
_TOKEN_SHAPED = re.compile(r"eyJ[\w-]*\.[\w-]*\.[\w-]*|rsp_[\w-]+")
_DETAIL_MAX = 2000


class AuditEntryInfo(ResultModel):
    """One entry of the audit log."""

    id: int = Field(description="Position in the log (increasing).")
    at: UtcTime = Field(description="When, in UTC.")
    actor: str = Field(description="The user, 'token:NAME', or the OS user of a CLI command.")
    method: str | None = Field(description="How the actor authenticated.")
    address: str | None = Field(description="The client's address (None for the CLI).")
    action: str = Field(description="What was done, e.g. 'login', 'backup.create'.")
    target: str | None = Field(description="What it was done to: a backup id, a user...")
    outcome: AuditOutcome = Field(description="success, failure or denied.")
    detail: str | None = Field(description="The reason of a failure, or what changed.")

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditEntryInfo:
        return cls(
            id=entry.id,
            at=entry.at,
            actor=entry.actor,
            method=entry.method,
            address=entry.address,
            action=entry.action,
            target=entry.target,
            outcome=AuditOutcome(entry.outcome),
            detail=entry.detail,
        )


def scrub(text: str | None) -> str | None:
    """``text`` with anything shaped like a token replaced, and cut to a sane length."""
    if text is None:
        return None
    return _TOKEN_SHAPED.sub("[redacted]", text)[:_DETAIL_MAX]


def append(
    session: Session,
    actor: Principal | str,
    action: AuditAction,
    target: str | None,
    outcome: AuditOutcome,
    detail: str | None = None,
    *,
    address: str | None = None,
    now: datetime | None = None,
) -> None:
    """Add an entry within the caller's transaction: it commits with the change it
    records, or not at all. ``actor`` is a principal, or the name tried at a failed
    login (then ``address`` says where from)."""
    if isinstance(actor, Principal):
        name, method, address = actor.name, actor.method.value, actor.address or address
    else:
        name, method = actor, None
    AuditLog(session).append(
        at=now or datetime.now(UTC),
        actor=name[:255],
        method=method,
        address=address,
        action=AuditAction(action).value,
        target=target[:255] if target is not None else None,
        outcome=AuditOutcome(outcome).value,
        detail=scrub(detail),
    )


def record(
    ctx: Context,
    actor: Principal | str,
    action: AuditAction,
    target: str | None,
    outcome: AuditOutcome,
    detail: str | None = None,
    *,
    address: str | None = None,
) -> None:
    """Add an entry in a transaction of its own (for an action whose own changes, if
    any, were committed elsewhere: a job started, a failed login)."""
    with ctx.catalog.begin() as session:
        append(session, actor, action, target, outcome, detail, address=address)


def record_local(
    settings: Settings,
    action: AuditAction,
    target: str | None,
    outcome: AuditOutcome,
    detail: str | None = None,
) -> bool:
    """Record a command of the OS user that runs without the catalog (``key add``,
    ``key remove``, ``key passwd``, ``rewind``): in the catalog if it opens, and False
    when nothing was recorded. Those commands must work where there is no catalog (the
    keys are the way back after a disaster), so a catalog that is missing or cannot be
    reached never fails them: with none at the configured place (another machine, before
    ``init``, or after the disaster) that is said at debug level, as there is no log to
    keep; with one there that cannot be opened or written, a warning says that the audit
    log misses this change, since its owner expects every change in it."""
    try:
        catalog = open_catalog(settings.catalog.url)
    except CatalogNotFound as exc:
        log.debug("%s not audited: %s", action.value, exc)
        return False
    except (CatalogError, SQLAlchemyError) as exc:
        log.warning("%s not recorded in the audit log: the catalog: %s", action.value, exc)
        return False
    try:
        with catalog.begin() as session:
            append(session, local_principal(), action, target, outcome, detail)
    except (CatalogError, SQLAlchemyError) as exc:
        log.warning("%s not recorded in the audit log: the catalog: %s", action.value, exc)
        return False
    finally:
        catalog.close()
    return True


def run_local(
    settings: Settings,
    action: AuditAction,
    target: str | None,
    work: Callable[[], T],
    said: Callable[[T], tuple[str | None, AuditOutcome, str | None]],
) -> T:
    """``work()``, recorded with :func:`record_local`: a failure (what it raised, with
    ``target``) or what ``said(result)`` says of its result (target, outcome, detail)."""
    try:
        result = work()
    except Exception as exc:
        record_local(settings, action, target, AuditOutcome.FAILURE, str(exc))
        raise
    done_to, outcome, detail = said(result)
    record_local(settings, action, done_to, outcome, detail)
    return result


def parse_since(text: str) -> datetime:
    """A day (``2026-12-01``, from midnight UTC) or an ISO 8601 time with its UTC offset
    (:func:`respaldo.operations.zone.parse_instant`)."""
    return parse_instant("since", text)


def entries(
    ctx: Context,
    *,
    since: datetime | None = None,
    user: str | None = None,
    action: AuditAction | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[AuditEntryInfo]:
    """Entries, newest first; ``user`` is an actor's name exactly as recorded."""
    with ctx.catalog.read() as session:
        found = AuditLog(session).list(
            since=since,
            actor=user,
            action=action.value if action is not None else None,
            limit=limit,
            offset=offset,
        )
        return [AuditEntryInfo.of(entry) for entry in found]

"""The audit log: append and read, nothing else.

:class:`AuditLog` has no method that changes or removes an entry, by design (a test
checks that it stays so), and the migration that made ``audit_log`` added triggers that
make the database itself refuse UPDATE and DELETE. Removing entries is a job for the
database's administrator, outside respaldo.
"""

from __future__ import annotations

import builtins
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from respaldo.catalog.columns import row_count
from respaldo.catalog.models import AuditEntry


class AuditLog:
    """Entries of the audit log within one Session (never commits)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def append(
        self,
        *,
        at: datetime,
        actor: str,
        method: str | None,
        address: str | None,
        action: str,
        target: str | None,
        outcome: str,
        detail: str | None,
    ) -> AuditEntry:
        entry = AuditEntry(
            at=at,
            actor=actor,
            method=method,
            address=address,
            action=action,
            target=target,
            outcome=outcome,
            detail=detail,
        )
        self.session.add(entry)
        self.session.flush()
        return entry

    def list(
        self,
        *,
        since: datetime | None = None,
        actor: str | None = None,
        action: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[AuditEntry]:
        """Entries, newest first, filtered by time, actor and action."""
        query = sa.select(AuditEntry)
        if since is not None:
            query = query.where(AuditEntry.at >= since)
        if actor is not None:
            query = query.where(AuditEntry.actor == actor)
        if action is not None:
            query = query.where(AuditEntry.action == action)
        query = query.order_by(AuditEntry.id.desc())
        query = query.limit(row_count(limit)).offset(row_count(offset))
        return builtins.list(self.session.scalars(query))

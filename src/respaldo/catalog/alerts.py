"""Queries on ``alert_states`` and ``notifications``: what was told, and when.

The decisions (alert, repeat, stay quiet, resolve) are made by the application layer
(:mod:`respaldo.operations.alerts`); this module only reads and writes the rows.
"""

from __future__ import annotations

import builtins
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from respaldo.catalog.columns import row_count
from respaldo.catalog.models import AlertState, NotificationRecord


class AlertStates:
    """Changes and queries within one Session (never commits)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, key: str) -> AlertState | None:
        return self.session.get(AlertState, key)

    def get_or_new(self, key: str, *, level: str, now: datetime) -> AlertState:
        """The row of ``key``; a new, not firing one (flushed) if there was none."""
        state = self.get(key)
        if state is None:
            state = AlertState(key=key, firing=False, level=level, updated_at=now)
            self.session.add(state)
            self.session.flush()
        return state

    def delete(self, key: str) -> None:
        """Forget the row of ``key`` (none: nothing to do)."""
        state = self.get(key)
        if state is not None:
            self.session.delete(state)
            self.session.flush()

    def firing_under(self, prefix: str) -> builtins.list[AlertState]:
        """The conditions firing now whose key starts with ``prefix``, oldest first."""
        query = sa.select(AlertState).where(
            AlertState.firing.is_(True), AlertState.key.startswith(prefix, autoescape=True)
        )
        return builtins.list(self.session.scalars(query.order_by(AlertState.fired_at)))

    def firing(self) -> builtins.list[AlertState]:
        """The conditions firing now, oldest first."""
        query = sa.select(AlertState).where(AlertState.firing.is_(True))
        return builtins.list(self.session.scalars(query.order_by(AlertState.fired_at)))


class Notifications:
    """The log of messages sent to notification targets (within one Session)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(
        self,
        *,
        sent_at: datetime,
        level: str,
        kind: str,
        key: str | None,
        target: str,
        ok: bool,
        error: str | None,
    ) -> NotificationRecord:
        row = NotificationRecord(
            sent_at=sent_at, level=level, kind=kind[:64], key=key, target=target, ok=ok, error=error
        )
        self.session.add(row)
        self.session.flush()
        return row

    def last_to(self, target: str) -> NotificationRecord | None:
        """The newest record of a message to ``target``, or None."""
        query = (
            sa.select(NotificationRecord)
            .where(NotificationRecord.target == target)
            .order_by(NotificationRecord.sent_at.desc(), NotificationRecord.id.desc())
            .limit(1)
        )
        return self.session.scalars(query).first()

    def forget_sent(self, before: datetime) -> int:
        """Delete the records of messages sent before ``before`` (retention: the table
        had one row per message, kept for ever). Returns how many."""
        result = self.session.execute(
            sa.delete(NotificationRecord)
            .where(NotificationRecord.sent_at < before)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    def list(self, *, limit: int = 50) -> builtins.list[NotificationRecord]:
        """The newest records first."""
        query = sa.select(NotificationRecord).order_by(
            NotificationRecord.sent_at.desc(), NotificationRecord.id.desc()
        )
        return builtins.list(self.session.scalars(query.limit(row_count(limit))))

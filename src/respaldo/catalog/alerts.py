"""Queries on ``alert_states``, ``notifications`` and ``alert_deliveries``: what was told,
to whom, and when.

The decisions (alert, repeat, stay quiet, resolve) are made by the application layer
(:mod:`respaldo.operations.alerts`); this module only reads and writes the rows.
"""

from __future__ import annotations

import builtins
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from respaldo.catalog.columns import row_count
from respaldo.catalog.models import AlertDelivery, AlertState, NotificationRecord


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


PENDING = "pending"
SENT = "sent"
GIVEN_UP = "given_up"


class Deliveries:
    """Each alert's delivery to each target (``alert_deliveries``), within one Session
    (never commits)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(
        self,
        *,
        created_at: datetime,
        target: str,
        level: str,
        kind: str,
        key: str | None,
        alert: str,
    ) -> AlertDelivery:
        """A new pending delivery, due at once and never tried."""
        row = AlertDelivery(
            created_at=created_at,
            target=target,
            level=level,
            kind=kind[:64],
            key=key,
            alert=alert,
            state=PENDING,
            attempts=0,
            next_try_at=created_at,
        )
        self.session.add(row)
        self.session.flush()
        return row

    def get(self, delivery_id: int) -> AlertDelivery | None:
        return self.session.get(AlertDelivery, delivery_id)

    def pending(self, target: str | None = None) -> builtins.list[AlertDelivery]:
        """The pending deliveries (to ``target``), in the order their alerts were made."""
        query = sa.select(AlertDelivery).where(AlertDelivery.state == PENDING)
        if target is not None:
            query = query.where(AlertDelivery.target == target)
        return builtins.list(self.session.scalars(query.order_by(AlertDelivery.id)))

    def pending_targets(self) -> builtins.list[str]:
        """The targets that have pending deliveries."""
        query = sa.select(AlertDelivery.target).where(AlertDelivery.state == PENDING).distinct()
        return sorted(self.session.scalars(query))

    def claim(
        self, delivery_id: int, *, attempts: int, now: datetime, next_try_at: datetime
    ) -> bool:
        """Note that this process tries the delivery now (its attempt ``attempts + 1``,
        the next at ``next_try_at`` should this one never end); False when another did
        first (the attempts it saw changed, or it is no longer pending)."""
        result = self.session.execute(
            sa.update(AlertDelivery)
            .where(
                AlertDelivery.id == delivery_id,
                AlertDelivery.state == PENDING,
                AlertDelivery.attempts == attempts,
            )
            .values(attempts=attempts + 1, tried_at=now, next_try_at=next_try_at)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0) == 1

    def end(self, delivery_id: int, *, state: str, now: datetime, error: str | None) -> None:
        """The delivery was sent, or is given up (``error``: why)."""
        self.session.execute(
            sa.update(AlertDelivery)
            .where(AlertDelivery.id == delivery_id, AlertDelivery.state == PENDING)
            .values(state=state, ended_at=now, next_try_at=None, error=error)
            .execution_options(synchronize_session=False)
        )

    def failed(self, delivery_id: int, *, error: str) -> None:
        """The attempt claimed failed: why (it stays pending, tried again at the time the
        claim set)."""
        self.session.execute(
            sa.update(AlertDelivery)
            .where(AlertDelivery.id == delivery_id, AlertDelivery.state == PENDING)
            .values(error=error)
            .execution_options(synchronize_session=False)
        )

    def unsettled(self, *, since: datetime) -> builtins.list[AlertDelivery]:
        """The pending deliveries and those given up since ``since``, oldest first."""
        query = sa.select(AlertDelivery).where(
            sa.or_(
                AlertDelivery.state == PENDING,
                sa.and_(AlertDelivery.state == GIVEN_UP, AlertDelivery.ended_at >= since),
            )
        )
        return builtins.list(self.session.scalars(query.order_by(AlertDelivery.id)))

    def forget_ended(self, before: datetime) -> int:
        """Delete the deliveries sent or given up before ``before``. Returns how many."""
        result = self.session.execute(
            sa.delete(AlertDelivery)
            .where(AlertDelivery.state != PENDING, AlertDelivery.ended_at < before)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

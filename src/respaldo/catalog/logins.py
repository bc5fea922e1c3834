"""Queries on ``login_failures``: the failed logins of every API server on the catalog.

A row is one failed login for one key (``user:NAME`` or ``address:ADDR``) at a time on
the limiter's clock (wall-clock seconds: every server reads the same). The policy (how
many, which window) is :mod:`respaldo.operations.login_limit`'s; this module only counts,
adds and deletes, and serialises the attempts (:meth:`LoginFailures.lock`) so that two
servers checking at once cannot both see room for one more.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import sqlalchemy as sa
from sqlalchemy.orm import Session

from respaldo.catalog.models import LoginFailure

_PG_LOGIN_LOCK: Final = 0x7265_7370_6C6F_6769
"""The advisory lock that serialises login checks on a PostgreSQL catalog ("resplogi")."""


class LoginFailures:
    """Changes and queries within one Session (never commits)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def lock(self) -> None:
        """Take the catalog-wide login lock until the transaction ends. SQLite's writing
        transactions already run one at a time (``BEGIN IMMEDIATE``); PostgreSQL's do
        not, so an advisory lock makes check-then-add atomic across servers. Logins are
        rare and the transaction short: one lock for all keys costs nothing."""
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOGIN_LOCK}
            )

    def expire(self, before: float) -> None:
        """Delete the failures at or before ``before`` (out of every window)."""
        self.session.execute(sa.delete(LoginFailure).where(LoginFailure.at <= before))

    def nth_newest(self, key: str, n: int, *, after: float) -> float | None:
        """The time of ``key``'s ``n``-th newest failure later than ``after``, or None
        when it has fewer."""
        query = (
            sa.select(LoginFailure.at)
            .where(LoginFailure.key == key, LoginFailure.at > after)
            .order_by(LoginFailure.at.desc(), LoginFailure.id.desc())
            .offset(n - 1)
            .limit(1)
        )
        found = self.session.scalars(query).first()
        return float(found) if found is not None else None

    def add(self, keys: Iterable[str], at: float) -> list[int]:
        """One failure per key at ``at``; their ids."""
        rows = [LoginFailure(key=key, at=at) for key in keys]
        self.session.add_all(rows)
        self.session.flush()
        return [row.id for row in rows]

    def forget(self, ids: Iterable[int] = (), *, key: str | None = None) -> None:
        """Delete the failures ``ids`` and, with ``key``, every failure of that key."""
        conditions: list[sa.ColumnElement[bool]] = [LoginFailure.id.in_(list(ids))]
        if key is not None:
            conditions.append(LoginFailure.key == key)
        self.session.execute(sa.delete(LoginFailure).where(sa.or_(*conditions)))

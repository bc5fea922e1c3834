"""Column types the catalog tables share: aware UTC datetimes and enums stored by value;
the range of its integers."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

INT64_MAX = 2**63 - 1
"""The largest integer that SQLite's INTEGER and PostgreSQL's bigint hold: no row id and
no number of rows goes beyond it."""


def row_count(n: int) -> int:
    """``n`` as a LIMIT or OFFSET the database takes. No table holds more rows, so a
    larger one (typed at the command line, sent to the API) selects the same rows, where
    binding it failed (SQLite: OverflowError, a 500 to the API and a traceback to the
    CLI; PostgreSQL: bigint out of range)."""
    return min(n, INT64_MAX)


def row_id(n: int) -> bool:
    """Whether ``n`` can be a row's id: one beyond the 64-bit range names no row (and
    binding it fails as in :func:`row_count`)."""
    return -INT64_MAX - 1 <= n <= INT64_MAX


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime, stored as UTC, returned as an aware UTC datetime.

    PostgreSQL stores ``timestamptz``. SQLite has no time zone type, so values are stored
    as naive UTC text in one fixed format: text order is then time order, which ``ORDER
    BY`` and range comparisons rely on. Binding a naive datetime raises ValueError: a
    local time silently taken for UTC is off by hours, and that would decide what expires.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to the catalog; use UTC")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def enum_column_type(enum_class: type[Enum], length: int = 16) -> sa.Enum:
    """An enum stored as its *value* (``"in_progress"``, not ``"IN_PROGRESS"``) in a VARCHAR.

    No database enum type and no CHECK constraint: adding a member then needs no table
    rebuild on SQLite. Python refuses unknown members on write; on read, an unknown value
    (written by a newer respaldo) raises LookupError rather than being guessed at.
    """
    return sa.Enum(
        enum_class,
        native_enum=False,
        create_constraint=False,
        length=length,
        validate_strings=True,
        values_callable=lambda members: [member.value for member in members],
    )

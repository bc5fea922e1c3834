"""Column types the catalog tables share: aware UTC datetimes and enums stored by value."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


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

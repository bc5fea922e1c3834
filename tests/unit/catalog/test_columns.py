"""Aware UTC datetimes and enum columns survive SQLite; copies follow their backup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, StatementError

from respaldo.catalog import BackupRecords, Catalog
from respaldo.catalog.models import BackupCopy, BackupRecord
from respaldo.domain import BackupKind, CopyStatus, TriggeredBy

from .support import T0

pytestmark = pytest.mark.unit

MADRID_WINTER = timezone(timedelta(hours=1))


def _create(catalog: Catalog, now: datetime) -> str:
    with catalog.begin() as session:
        return (
            BackupRecords(session)
            .create_pending(
                kind=BackupKind.FULL,
                repository="local",
                triggered_by=TriggeredBy.SCHEDULE,
                retention_days=7,
                now=now,
            )
            .id
        )


def test_aware_datetimes_round_trip_as_utc(catalog: Catalog) -> None:
    local = datetime(2026, 11, 28, 9, 30, 0, 123456, tzinfo=MADRID_WINTER)
    backup_id = _create(catalog, local)
    # A fresh session reads from the database, not the identity map.
    with catalog.begin() as session:
        record = session.get(BackupRecord, backup_id)
        assert record is not None
        assert record.created_at == datetime(2026, 11, 28, 8, 30, 0, 123456, tzinfo=UTC)
        assert record.created_at.tzinfo is UTC
    assert backup_id.startswith("20261128T083000Z-")


def test_sqlite_stores_one_utc_text_format(catalog: Catalog) -> None:
    # Text order is time order only if every row uses the same format and zone.
    _create(catalog, datetime(2026, 11, 28, 9, 30, tzinfo=MADRID_WINTER))
    with catalog.engine.connect() as connection:
        stored = connection.scalar(sa.text("SELECT created_at FROM backup_records"))
    assert stored == "2026-11-28 08:30:00.000000"


def test_naive_datetimes_never_reach_the_database(catalog: Catalog) -> None:
    backup_id = _create(catalog, T0)
    with catalog.begin() as session:
        record = session.get(BackupRecord, backup_id)
        assert record is not None
        record.verified_at = datetime(2026, 11, 28, 8, 30)  # naive on purpose
        with pytest.raises(StatementError, match="naive datetime"):
            session.flush()
        session.rollback()


def test_enums_are_stored_by_value(catalog: Catalog) -> None:
    _create(catalog, T0)
    with catalog.engine.connect() as connection:
        row = connection.execute(
            sa.text("SELECT backup_type, status, triggered_by FROM backup_records")
        ).one()
    assert tuple(row) == ("full", "pending", "schedule")


def test_copies_need_their_backup_and_go_with_it(catalog: Catalog) -> None:
    backup_id = _create(catalog, T0)
    with catalog.begin() as session:
        record = session.get(BackupRecord, backup_id)
        assert record is not None
        record.copies.append(
            BackupCopy(repository="offsite", status=CopyStatus.PENDING, updated_at=T0)
        )
    with pytest.raises(IntegrityError), catalog.begin() as session:
        session.add(
            BackupCopy(
                backup_id="20261128T083000Z-00000000",
                repository="offsite",
                status=CopyStatus.PENDING,
                updated_at=T0,
            )
        )
    with pytest.raises(IntegrityError), catalog.begin() as session:
        session.add(
            BackupCopy(
                backup_id=backup_id, repository="offsite", status=CopyStatus.FAILED, updated_at=T0
            )
        )
    with catalog.begin() as session:
        # Through SQL, not the ORM cascade: the foreign key itself must do it.
        session.execute(sa.delete(BackupRecord).where(BackupRecord.id == backup_id))
    with catalog.engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT count(*) FROM backup_copies")) == 0

"""Queries on ``backup_copies``: where else each backup lives, and how its copy went."""

from __future__ import annotations

import builtins
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from respaldo.catalog.backups import BackupRecords
from respaldo.catalog.models import BackupCopy, BackupRecord
from respaldo.domain import CopyStatus, validate_backup_id

COPY_LOST_DATA = "lost data: "
"""How the error of a copy row begins when the copy was found to have lost data in its
repository after it completed (:mod:`respaldo.operations.lost_packs`): the status counts
such a copy as missing however old it is."""


class BackupCopies:
    """Changes and queries within one Session (never commits)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def mark(
        self,
        backup_id: str,
        repository: str,
        status: CopyStatus,
        *,
        error: str | None = None,
        now: datetime | None = None,
    ) -> BackupCopy:
        """Record the state of a backup's copy in ``repository`` (insert or update).

        Idempotent. Raises RecordNotFound if there is no such backup.
        """
        BackupRecords(self.session).get(backup_id)
        copy = self.session.get(BackupCopy, (validate_backup_id(backup_id), repository))
        when = now or datetime.now(UTC)
        if copy is None:
            copy = BackupCopy(
                backup_id=backup_id, repository=repository, status=status, updated_at=when
            )
            self.session.add(copy)
        copy.status = status
        copy.error_message = error if status is CopyStatus.FAILED else None
        copy.updated_at = when
        self.session.flush()
        return copy

    def forget(self, backup_id: str, repository: str) -> None:
        """Remove the row of ``backup_id``'s copy in ``repository``, if there is one."""
        copy = self.session.get(BackupCopy, (validate_backup_id(backup_id), repository))
        if copy is not None:
            self.session.delete(copy)
            self.session.flush()

    def for_backup(self, backup_id: str) -> builtins.list[BackupCopy]:
        query = sa.select(BackupCopy).where(BackupCopy.backup_id == backup_id)
        return builtins.list(self.session.scalars(query.order_by(BackupCopy.repository)))

    def missing_in(self, repository: str) -> builtins.list[str]:
        """Ids of completed backups with no completed copy in ``repository``, oldest first.

        Not those deleted from their primary already (retention expired them while a
        mirror could not be reached): there is nothing left to copy, and they are not
        to be kept anywhere."""
        done = sa.select(BackupCopy.backup_id).where(
            BackupCopy.repository == repository, BackupCopy.status == CopyStatus.COMPLETED
        )
        query = (
            sa.select(BackupRecord.id)
            .where(BackupRecord.status == "completed", BackupRecord.id.not_in(done))
            .where(BackupRecord.repository != repository)
            .where(BackupRecord.primary_deleted_at.is_(None))
            .order_by(BackupRecord.created_at, BackupRecord.id)
        )
        return builtins.list(self.session.scalars(query))

    def held_in(self, repository: str) -> builtins.set[str]:
        """Ids of completed backups the catalog says ``repository`` holds: written to it
        (its primary at the time) and not deleted from it since (``primary_deleted_at``),
        or copied into it (a completed copy)."""
        copied = sa.select(BackupCopy.backup_id).where(
            BackupCopy.repository == repository, BackupCopy.status == CopyStatus.COMPLETED
        )
        written = sa.and_(
            BackupRecord.repository == repository, BackupRecord.primary_deleted_at.is_(None)
        )
        query = sa.select(BackupRecord.id).where(
            BackupRecord.status == "completed", sa.or_(written, BackupRecord.id.in_(copied))
        )
        return builtins.set(self.session.scalars(query))

    def lost_data(self, backup_id: str, repository: str) -> str | None:
        """What the copy of ``backup_id`` in ``repository`` was found to have lost (its
        failed row's error, :data:`COPY_LOST_DATA` first); None for any other copy."""
        copy = self.session.get(BackupCopy, (validate_backup_id(backup_id), repository))
        if copy is None or copy.status is not CopyStatus.FAILED:
            return None
        error = copy.error_message or ""
        return error if error.startswith(COPY_LOST_DATA) else None

    def lost_in(self) -> dict[str, builtins.set[str]]:
        """Repository -> the ids of the backups whose copy there was found to have lost
        data (:meth:`lost_data`)."""
        query = sa.select(BackupCopy.repository, BackupCopy.backup_id).where(
            BackupCopy.status == CopyStatus.FAILED,
            BackupCopy.error_message.startswith(COPY_LOST_DATA, autoescape=True),
        )
        found: dict[str, builtins.set[str]] = {}
        for repository, backup_id in self.session.execute(query):
            found.setdefault(repository, builtins.set()).add(backup_id)
        return found

    def set_offsite_location(
        self, backup_id: str, *, s3_url: str | None, storage_tier: str | None
    ) -> None:
        """Record where the offsite (S3) copy of a backup lives, in the record's own
        ``s3_url`` and ``storage_tier`` columns of the specification."""
        record = BackupRecords(self.session).get(backup_id)
        if s3_url is not None:
            record.s3_url = s3_url
        if storage_tier is not None:
            record.storage_tier = storage_tier
        self.session.flush()

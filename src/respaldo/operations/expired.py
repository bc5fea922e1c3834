"""What respaldo says of a backup deleted from its primary repository while a mirror
could not be reached (``backup_records.primary_deleted_at``, migration 0018).

A prune that expired it records that, and so does a deletion by hand that a mirror
failed (:func:`respaldo.operations.deletion.delete_backup`); the record does not say
which, so neither do the words. Its record stays until it is deleted from the mirror
too (a later prune that reaches it, or deleting it again). Every command that is asked
for it by its id (a restore of any kind, a copy) says so in the same words, rather than
failing on the manifest the primary no longer holds ("no backup ... in file:///...",
"no object manifests/...").
"""

from __future__ import annotations

from respaldo.catalog import BackupCopies, BackupRecord
from respaldo.domain import CopyStatus
from respaldo.errors import RecordNotFound
from respaldo.operations.context import Context


def expired_record(ctx: Context, backup_id: str) -> BackupRecord | None:
    """The record of ``backup_id`` if it was deleted from its primary (by a prune that
    expired it or by hand) and waits for a mirror; None otherwise, without a record or
    without a catalog."""
    try:
        record = ctx.record(backup_id)
    except (RecordNotFound, RuntimeError):  # RuntimeError: a context without catalog
        return None
    return record if record.primary_deleted_at is not None else None


def expired_said(record: BackupRecord) -> str:
    """``backup ID was deleted from repository NAME on DATE UTC (expired by a prune, or
    by hand) while a mirror could not be reached``. It said "expired: a prune deleted
    it" of a backup deleted by hand too."""
    assert record.primary_deleted_at is not None
    return (
        f"backup {record.id} was deleted from repository {record.repository} on "
        f"{record.primary_deleted_at:%Y-%m-%d %H:%M} UTC (expired by a prune, or by hand) "
        "while a mirror could not be reached"
    )


def still_held_in(ctx: Context, backup_id: str) -> list[str]:
    """The repositories the catalog says still hold ``backup_id`` (its completed
    copies), in name order: where it can be read until it is deleted there too."""
    with ctx.catalog.read() as session:
        copies = BackupCopies(session).for_backup(backup_id)
        return [c.repository for c in copies if c.status is CopyStatus.COMPLETED]

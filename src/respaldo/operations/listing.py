"""What the catalog knows, as result models (:mod:`respaldo.operations.views`): ``list``,
``show`` and ``drills``.

Read in read-only sessions (:meth:`respaldo.catalog.Catalog.read`): listing never waits
for a running backup's write.
"""

from __future__ import annotations

from respaldo.catalog import BackupRecords, DrillRuns
from respaldo.domain import BackupKind, BackupStatus
from respaldo.operations.catalog_rebuild import backups_the_catalog_misses
from respaldo.operations.context import Context
from respaldo.operations.models import ResultModel
from respaldo.operations.views import BackupView, DrillCheckView, DrillRunView


class BackupListing(ResultModel):
    """The backups asked for, newest first. ``unrecorded_in`` names the primary
    repository when the catalog holds no record at all but that repository holds backups
    (a new catalog, or the wrong one: 'catalog rebuild' records them)."""

    backups: list[BackupView]
    unrecorded_in: str | None = None


def list_backups(
    ctx: Context,
    *,
    database: str | None = None,
    kind: BackupKind | None = None,
    status: BackupStatus | None = None,
    limit: int | None = None,
) -> BackupListing:
    """Backups in the catalog, newest first, filtered by each argument given."""
    with ctx.catalog.read() as session:
        records = BackupRecords(session).list(
            database=database, kind=kind, status=status, limit=limit
        )
        views = [BackupView.from_record(r) for r in records]
    missed = backups_the_catalog_misses(ctx) if not views else None
    return BackupListing(backups=views, unrecorded_in=missed)


def show_backup(ctx: Context, backup_id: str) -> BackupView:
    """One backup's record. Raises RecordNotFound."""
    return BackupView.from_record(ctx.record(backup_id))


def list_drills(
    ctx: Context, *, backup_id: str | None = None, limit: int = 20
) -> list[DrillRunView]:
    """Past restore tests (of ``backup_id`` only, if given), newest first."""
    with ctx.catalog.read() as session:
        return [
            DrillRunView.from_run(r)
            for r in DrillRuns(session).list(backup_id=backup_id, limit=limit)
        ]


__all__ = [
    "BackupListing",
    "BackupView",
    "DrillCheckView",
    "DrillRunView",
    "list_backups",
    "list_drills",
    "show_backup",
]

"""What the catalog knows, as result models (:mod:`respaldo.operations.views`): ``list``,
``show`` and ``drills``.

Read in read-only sessions (:meth:`respaldo.catalog.Catalog.read`): listing never waits
for a running backup's write.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from respaldo.catalog import BackupRecords, DrillRuns
from respaldo.domain import BackupKind, BackupStatus
from respaldo.errors import InvalidInput
from respaldo.operations.catalog_rebuild import backups_the_catalog_misses
from respaldo.operations.context import Context
from respaldo.operations.models import ResultModel
from respaldo.operations.views import BackupView, DrillCheckView, DrillRunView
from respaldo.operations.zone import parse_instant


class BackupListing(ResultModel):
    """The backups asked for, newest first. ``total`` counts every backup matching the
    filters (``backups`` is the page ``limit``/``offset`` asked for). ``unrecorded_in``
    names the primary repository when the catalog holds no record at all but that
    repository holds backups (a new catalog, or the wrong one: 'catalog rebuild' records
    them)."""

    backups: list[BackupView]
    total: int
    unrecorded_in: str | None = None


def list_backups(
    ctx: Context,
    *,
    database: str | None = None,
    kind: BackupKind | None = None,
    status: BackupStatus | None = None,
    limit: int | None = None,
    offset: int = 0,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    verified: bool | None = None,
) -> BackupListing:
    """Backups in the catalog, newest first, filtered by each argument given; not those
    deleted from the primary (by a prune or by hand) while a mirror could not be reached.

    ``since`` and ``until`` bound the backups' creation time (inclusive): aware times,
    or ISO 8601 text (a date alone is its midnight UTC; a time without its UTC offset is
    refused, :func:`respaldo.operations.zone.parse_instant`).
    Raises InvalidInput for malformed ones, a negative offset or a limit below 1.
    """
    if limit is not None and limit < 1:
        raise InvalidInput("limit", f"must be at least 1, got {limit}")
    if offset < 0:
        raise InvalidInput("offset", f"must not be negative, got {offset}")
    filters: dict[str, Any] = {
        "database": database,
        "kind": kind,
        "status": status,
        "since": parse_time("since", since),
        "until": parse_time("until", until),
        "verified": verified,
        # Deleted from the primary by a prune or by hand that could not reach a mirror:
        # its record only waits for that mirror (``primary_deleted_at``); not a backup
        # to choose from.
        "primary_deleted": False,
    }
    with ctx.catalog.read() as session:
        records = BackupRecords(session)
        views = [
            BackupView.from_record(r) for r in records.list(limit=limit, offset=offset, **filters)
        ]
        total = records.count(**filters) if limit is not None or offset else len(views)
    missed = backups_the_catalog_misses(ctx) if not total else None
    return BackupListing(backups=views, total=total, unrecorded_in=missed)


def parse_time(field: str, value: str | datetime | None) -> datetime | None:
    """``value`` as an aware time (see :func:`list_backups`). Raises InvalidInput."""
    if value is None or isinstance(value, datetime):
        if value is not None and value.tzinfo is None:
            # Not taken for UTC (which zone is not guessed): a caller's mistake.
            raise InvalidInput(field, f"{value.isoformat()} has no UTC offset")
        return value
    return parse_instant(field, value)


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

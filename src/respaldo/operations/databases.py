"""The configured databases with the state of their backups (``GET /admin/databases``):
each one's newest backups and its status (:mod:`respaldo.operations.status`: its
backups against their RPO, restore tests, offsite copies; its server and WAL archiving
only when asked, since that connects to each server)."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import Field

from respaldo.catalog import BackupRecords
from respaldo.operations.context import Context
from respaldo.operations.health import NewestBackup, newest_backups
from respaldo.operations.models import ResultModel
from respaldo.operations.status import DatabaseStatus, compute_status
from respaldo.operations.views import BackupView


class DatabaseView(ResultModel):
    """One configured database and its backups."""

    name: str = Field(description="The database's name in respaldo's configuration.")
    retention_days: int = Field(description="Days a completed backup is kept by default.")
    last_backup: BackupView | None = Field(
        description="Its newest backup whatever its status (a running or failed one too)."
    )
    newest_completed: list[NewestBackup] = Field(
        description="Its newest completed backup of each type, with its age: the recovery "
        "point it offers now."
    )
    status: DatabaseStatus | None = Field(
        description="Green, amber or red, item by item (respaldo status)."
    )


def list_databases(
    ctx: Context, *, servers: bool = False, now: datetime | None = None
) -> list[DatabaseView]:
    """Every configured database, in configuration order, with its newest backups and
    status (``servers``: with its server's and WAL archiving's)."""
    when = now or datetime.now(UTC)
    newest = newest_backups(ctx, now=when)
    report = compute_status(ctx, when, servers=servers)
    statuses = {s.database: s for s in report.databases}
    with ctx.catalog.read() as session:
        last = {
            db.name: [
                BackupView.from_record(r)
                for r in BackupRecords(session).list(database=db.name, limit=1)
            ]
            for db in ctx.settings.databases
        }
    return [
        DatabaseView(
            name=db.name,
            retention_days=db.retention_days,
            last_backup=last[db.name][0] if last[db.name] else None,
            newest_completed=[n for n in newest if n.database == db.name],
            status=statuses.get(db.name),
        )
        for db in ctx.settings.databases
    ]

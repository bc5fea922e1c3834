"""``/admin/restore-tests``, ``/admin/databases``, ``/admin/status``, ``/admin/retention``:
what the catalog knows beside the backups themselves."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from respaldo.api.deps import ContextDep
from respaldo.api.problems import problem_responses
from respaldo.api.security import CanRead
from respaldo.operations.databases import DatabaseView, list_databases
from respaldo.operations.listing import list_drills
from respaldo.operations.prune_report import RetentionPreview, retention_preview
from respaldo.operations.status import StatusReport, compute_status
from respaldo.operations.views import DrillRunView

router = APIRouter(prefix="/admin", tags=["catalog"])

ERRORS = problem_responses(401, 403, 404, 422, 503)


@router.get("/restore-tests", response_model=list[DrillRunView], responses=ERRORS)
def get_restore_tests(
    principal: CanRead,
    context: ContextDep,
    backup_id: Annotated[
        str | None, Query(alias="backupId", description="Only the tests of this backup.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 20,
) -> list[DrillRunView]:
    """Restore tests, newest first, each with its checks."""
    return list_drills(context, backup_id=backup_id, limit=limit)


@router.get("/databases", response_model=list[DatabaseView], responses=ERRORS)
def get_databases(
    principal: CanRead,
    context: ContextDep,
    servers: Annotated[
        bool,
        Query(description="Also check each database's server and WAL archiving (slower)."),
    ] = False,
) -> list[DatabaseView]:
    """The configured databases, each with its newest backups and their status (its
    backups against their RPO, restore tests, offsite copies)."""
    return list_databases(context, servers=servers)


@router.get("/status", response_model=StatusReport, responses=ERRORS)
def get_status(
    principal: CanRead,
    context: ContextDep,
    servers: Annotated[
        bool,
        Query(
            description="Ask each database's server (reachable, WAL archiving); false: "
            "the catalog alone, as 'respaldo status --no-servers'."
        ),
    ] = True,
) -> StatusReport:
    """The health picture, the report 'respaldo status --json' prints and the page's
    health shows: every configured database and file set, green, amber or red item by
    item with the reason, and the items of no one database (the catalog, the primary
    repository); ``level`` is the worst."""
    return compute_status(context, datetime.now(UTC), servers=servers)


@router.get("/retention", response_model=RetentionPreview, responses=ERRORS)
def get_retention(
    principal: CanRead,
    context: ContextDep,
    database: Annotated[str | None, Query(description="Only this database's backups.")] = None,
) -> RetentionPreview:
    """What prune would decide now: keep or expire for every backup, with each rule that
    keeps it or why none does. Changes nothing."""
    return retention_preview(context, database=database)

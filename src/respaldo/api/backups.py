"""``/admin/backups``: the original BackupManager contract, and one backup in full.

Each route parses the request, authorises the caller, calls one function of
``respaldo.operations`` and returns its result model (what ``--json`` prints).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Request, Response

from respaldo.api.deps import ContextDep, WorkersDep
from respaldo.api.models import BackupRequest, RestoreBody, RestoreTestBody
from respaldo.api.paging import page_headers
from respaldo.api.problems import problem_responses
from respaldo.api.security import CanApprove, CanCreate, CanRead
from respaldo.domain import BackupKind, BackupStatus
from respaldo.operations import admin
from respaldo.operations.background import StartedBackup, StartedJob
from respaldo.operations.backup_detail import BackupDetail, backup_detail
from respaldo.operations.deletion import DeletedBackup
from respaldo.operations.listing import list_backups
from respaldo.operations.views import BackupView

router = APIRouter(prefix="/admin/backups", tags=["backups"])

BackupId = Annotated[str, Path(description="A backup id, e.g. 20261128T083000Z-1a2b3c4d.")]

READ_ERRORS = problem_responses(401, 403, 404, 422, 503)
CHANGE_ERRORS = problem_responses(400, 401, 403, 404, 409, 422, 503)


@router.get("", response_model=list[BackupView], responses=READ_ERRORS)
def get_backups(
    principal: CanRead,
    context: ContextDep,
    request: Request,
    response: Response,
    type: Annotated[BackupKind | None, Query(description="Only backups of this type.")] = None,
    status: Annotated[BackupStatus | None, Query(description="Only this status.")] = None,
    database: Annotated[str | None, Query(description="Only this database.")] = None,
    # Text, not a datetime: a time without its UTC offset is refused (which zone is not
    # guessed), and a day alone must be told from one (both parse to a naive midnight).
    since: Annotated[
        str | None,
        Query(
            alias="from",
            description="Only backups made at or after this time: ISO 8601 with its UTC "
            "offset (2026-12-01T08:00:00-06:00, or Z), or a day (2026-12-01, from midnight "
            "UTC). A time without an offset is refused (422).",
        ),
    ] = None,
    until: Annotated[
        str | None,
        Query(alias="to", description="Only backups made at or before this time (as from)."),
    ] = None,
    verified: Annotated[bool | None, Query(description="Only (un)verified backups.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 100,
    offset: Annotated[int, Query(ge=0, description="Skip this many first.")] = 0,
) -> list[BackupView]:
    """Backups, newest first, as ``respaldo list --json`` prints them. The total number
    matching the filters is in ``X-Total-Count``; ``Link`` names the other pages."""
    listing = list_backups(
        context,
        database=database,
        kind=type,
        status=status,
        limit=limit,
        offset=offset,
        since=since,
        until=until,
        verified=verified,
    )
    response.headers.update(page_headers(request, listing.total, limit, offset))
    return listing.backups


@router.post("", status_code=202, response_model=StartedBackup, responses=CHANGE_ERRORS)
def post_backup(
    principal: CanCreate,
    context: ContextDep,
    workers: WorkersDep,
    body: BackupRequest,
    response: Response,
) -> StartedBackup:
    """Start a backup: answers at once with its record (``pending``) and the job's id;
    the backup runs in the service. Its record (``GET /admin/backups/{id}``) and job
    (``GET /admin/jobs/{jobId}``) follow it."""
    started = admin.create_backup(context, workers, principal, body.type, body.database)
    response.headers["Location"] = f"/admin/jobs/{started.job_id}"
    return started


@router.post("/test", status_code=202, response_model=StartedJob, responses=CHANGE_ERRORS)
def post_restore_test(
    principal: CanApprove,
    context: ContextDep,
    workers: WorkersDep,
    body: Annotated[RestoreTestBody | None, Body()] = None,
) -> StartedJob:
    """Start a restore test of ``database``: the newest completed backup of each kind it
    relies on (logical, physical), as 'respaldo drill DATABASE' does; or of ``backupId``."""
    test = body or RestoreTestBody()
    return admin.restore_test(context, workers, principal, test.backup_id, test.database)


@router.get("/{backup_id}", response_model=BackupDetail, responses=READ_ERRORS)
def get_backup(principal: CanRead, context: ContextDep, backup_id: BackupId) -> BackupDetail:
    """One backup: its record, manifest summary and streams, its copy in each
    repository and its restore tests."""
    return backup_detail(context, backup_id)


@router.delete("/{backup_id}", response_model=DeletedBackup, responses=CHANGE_ERRORS)
def delete(principal: CanApprove, context: ContextDep, backup_id: BackupId) -> DeletedBackup:
    """Delete a backup from every repository and the catalog. Refused (409) for what
    retention never expires: the newest completed or verified backup of its database
    and type, a pinned or a running one."""
    return admin.delete(context, principal, backup_id)


@router.post(
    "/{backup_id}/restore", status_code=202, response_model=StartedJob, responses=CHANGE_ERRORS
)
def post_restore(
    principal: CanApprove,
    context: ContextDep,
    workers: WorkersDep,
    backup_id: BackupId,
    body: Annotated[RestoreBody | None, Body()] = None,
) -> StartedJob:
    """Start restoring a logical backup: into a new database by default (named in the
    answer), or over the live database with ``{"replace": true, "confirm": "<its
    name>"}`` (its stop and start hooks run around the swap)."""
    restore = body or RestoreBody()
    return admin.restore(
        context,
        workers,
        principal,
        backup_id,
        replace=restore.replace,
        confirm=restore.confirm,
        target_database=restore.target_database,
        repository=restore.repository,
    )


@router.post("/{backup_id}/pin", response_model=BackupView, responses=CHANGE_ERRORS)
def pin(principal: CanApprove, context: ContextDep, backup_id: BackupId) -> BackupView:
    """Pin a backup: retention keeps it until it is unpinned."""
    return admin.pin(context, principal, backup_id, True)


@router.post("/{backup_id}/unpin", response_model=BackupView, responses=CHANGE_ERRORS)
def unpin(principal: CanApprove, context: ContextDep, backup_id: BackupId) -> BackupView:
    """Release a pinned backup to the retention rules."""
    return admin.pin(context, principal, backup_id, False)

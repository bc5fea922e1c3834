"""``/admin/jobs``: what runs and what ran, with live progress; cancelling one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from respaldo.api.deps import ContextDep
from respaldo.api.problems import problem_responses
from respaldo.api.security import CanApprove, CanRead
from respaldo.domain import JobStatus
from respaldo.operations import admin, jobs
from respaldo.operations.jobs import JobInfo

router = APIRouter(prefix="/admin/jobs", tags=["jobs"])

JobId = Annotated[int, Path(description="A job id, as a started job's jobId.")]


@router.get("", response_model=list[JobInfo], responses=problem_responses(401, 403, 422, 503))
def get_jobs(
    principal: CanRead,
    context: ContextDep,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 50,
) -> list[JobInfo]:
    """Jobs, newest first."""
    return jobs.list_jobs(context, limit=limit, status=status)


@router.get(
    "/{job_id}", response_model=JobInfo, responses=problem_responses(401, 403, 404, 422, 503)
)
def get_job(principal: CanRead, context: ContextDep, job_id: JobId) -> JobInfo:
    """One job; a running one's progress (bytes done, total when known) is at most a
    few seconds old."""
    return jobs.get(context, job_id)


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    response_model=JobInfo,
    responses=problem_responses(401, 403, 404, 409, 422, 503),
)
def cancel_job(principal: CanApprove, context: ContextDep, job_id: JobId) -> JobInfo:
    """Cancel a job: a queued one at once; a running one stops within seconds, cleans
    up and ends ``cancelled`` (follow it with ``GET /admin/jobs/{id}``)."""
    return admin.cancel_job(context, principal, job_id)

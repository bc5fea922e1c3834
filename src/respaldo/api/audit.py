"""``GET /admin/audit``: the audit log (``admin:approve``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from respaldo.api.security import AUTH_RESPONSES, CanApprove, context_of
from respaldo.domain import AuditAction
from respaldo.operations import audit
from respaldo.operations.audit import AuditEntryInfo

router = APIRouter(tags=["audit"])


@router.get(
    "/admin/audit",
    response_model=list[AuditEntryInfo],
    response_model_by_alias=True,
    responses=AUTH_RESPONSES,
)
def get_audit(
    request: Request,
    principal: CanApprove,
    since: Annotated[
        str | None, Query(description="A day (2026-12-01, UTC) or an ISO 8601 time.")
    ] = None,
    user: Annotated[str | None, Query(description="Only this actor.")] = None,
    action: Annotated[AuditAction | None, Query(description="Only this action.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 100,
    offset: Annotated[int, Query(ge=0, description="Skip this many first.")] = 0,
) -> list[AuditEntryInfo]:
    """Audit entries, newest first."""
    when = audit.parse_since(since) if since is not None else None
    return audit.entries(
        context_of(request), since=when, user=user, action=action, limit=limit, offset=offset
    )

"""``GET /health``: 200 while the service can do its job (a mirror down included:
``"status": "degraded"``), 503 when it cannot (:class:`~respaldo.operations.health.Health`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from respaldo.operations.context import Context
from respaldo.operations.health import Health, check_health

router = APIRouter()


def _context(request: Request) -> Context:
    context: Context = request.app.state.context
    return context


ContextDep = Annotated[Context, Depends(_context)]


@router.get(
    "/health",
    response_model=Health,
    responses={
        200: {
            "description": "The service works: `status` is `ok`, or `degraded` (a mirror "
            "does not answer; it is named)"
        },
        503: {
            "model": Health,
            "description": "The service cannot do its job (`status` `failing`): the catalog "
            "or the primary repository does not answer, or a check of the service is stuck",
        },
    },
)
def get_health(context: ContextDep, response: Response) -> Health:
    """Catalog reachable, repositories there (each waited for at most 2 s), age of the
    newest backup per source and kind. 200 while the service can do its job, a secondary
    repository down included (`"status": "degraded"`, the repository named and `ok`
    false); 503 when the catalog or the primary repository does not answer or a check of
    the service is stuck (`"status": "failing"`)."""
    health = check_health(context)
    response.status_code = 503 if health.status == "failing" else 200
    return health

"""``GET /health``: 200 when the catalog and every repository answer, else 503."""

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


@router.get("/health", response_model=Health)
def get_health(context: ContextDep, response: Response) -> Health:
    """Catalog reachable, repositories there, age of the newest backup per source and kind."""
    health = check_health(context)
    response.status_code = 200 if health.ok else 503
    return health

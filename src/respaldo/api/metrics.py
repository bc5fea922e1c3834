"""``GET /metrics``: the Prometheus metrics, read from the catalog at each scrape.

Unauthenticated, like ``/health``: bind ``[server] listen`` to loopback and scrape from
the same machine, or expose it only through a proxy that restricts who may read it
(docs/monitoring.md). 503 with a one-line reason when the catalog cannot be read.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from respaldo.errors import RespaldoError
from respaldo.operations.metrics import CONTENT_TYPE, Metrics

router = APIRouter()


@router.get("/metrics", response_class=Response, include_in_schema=False)
def get_metrics(request: Request) -> Response:
    """Every metric of docs/monitoring.md, in the Prometheus text format."""
    metrics: Metrics = request.app.state.metrics
    try:
        body = metrics.render()
    except RespaldoError as exc:
        return Response(f"{exc}\n", status_code=503, media_type="text/plain; charset=utf-8")
    return Response(body, media_type=CONTENT_TYPE)

"""``GET /metrics``: the Prometheus metrics, read from the catalog at each scrape.

Unauthenticated, like ``/health``: bind ``[server] listen`` to loopback and scrape from
the same machine, or expose it only through a proxy that restricts who may read it
(docs/monitoring.md). 503 with a fixed sentence when the catalog cannot be read (its
error can name the catalog server's host, port and role): the reason goes to the log,
scrubbed of secrets.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response

from respaldo.errors import RespaldoError
from respaldo.operations.context import Context
from respaldo.operations.metrics import CONTENT_TYPE, Metrics
from respaldo.operations.scrub import Scrubber

log = logging.getLogger(__name__)

router = APIRouter()

CATALOG_FAILS = "the catalog cannot be read; the server's log says why"


@router.get("/metrics", response_class=Response, include_in_schema=False)
def get_metrics(request: Request) -> Response:
    """Every metric of docs/monitoring.md, in the Prometheus text format."""
    metrics: Metrics = request.app.state.metrics
    try:
        body = metrics.render()
    except RespaldoError as exc:
        context: Context = request.app.state.context
        log.warning("GET /metrics: %s", Scrubber(context.settings)(str(exc)))
        return Response(
            f"{CATALOG_FAILS}\n", status_code=503, media_type="text/plain; charset=utf-8"
        )
    return Response(body, media_type=CONTENT_TYPE)

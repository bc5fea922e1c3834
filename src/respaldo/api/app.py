"""``create_app(settings)``: the FastAPI application, built per call (no import-time state)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from respaldo import __version__
from respaldo.api import (
    audit,
    auth,
    backups,
    catalog,
    docs_page,
    health,
    jobs,
    metrics,
    problems,
    security,
)
from respaldo.api.nostore import NoStore
from respaldo.config import Settings
from respaldo.operations.auth import Authenticator
from respaldo.operations.context import Context
from respaldo.operations.metrics import Metrics
from respaldo.operations.workers import Workers

MAX_BODY_BYTES = 1024 * 1024
"""The largest request body the server reads (larger: 413)."""


def create_app(
    settings: Settings,
    context: Context | None = None,
    workers: Workers | None = None,
    *,
    authenticator: Authenticator | None = None,
) -> FastAPI:
    """The API for ``settings``. With ``context`` (the service's own) and ``workers``
    (the threads running the jobs it starts), routes use them and the caller stops and
    closes them; whatever is not given the app makes at start-up and stops at shutdown
    (jobs still running are cancelled then). The JWT secret (and the ERP's key) are read
    here: a bad one is a ConfigError before the server listens. ``authenticator``
    replaces the one made from ``settings`` (tests give one with their own clock)."""
    authenticator = authenticator or Authenticator.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = context if context is not None else Context.open(settings)
        own = workers is None
        pool = workers if workers is not None else Workers(ctx, size=settings.server.job_workers)
        app.state.context, app.state.workers = ctx, pool
        # One registry per application, reading the catalog at each scrape.
        app.state.metrics = Metrics(ctx)
        try:
            yield
        finally:
            if own:
                pool.stop("the API server stopped")
            if context is None:
                ctx.close()

    app = FastAPI(
        title="respaldo",
        version=__version__,
        description="Backups, restores and restore tests of PostgreSQL databases.",
        lifespan=lifespan,
        docs_url=None,  # docs_page serves it, with files of its own
        redoc_url=None,
        # Bodies are read before the route's login is checked: without a bound, anyone
        # who reaches the port made the service hold 1 GB for one 300 MB post (a 401
        # at the end). Every body the API and the page take is a few fields.
        max_body_size=MAX_BODY_BYTES,
    )
    docs_page.install(app, "respaldo")
    # problems first: security's handlers (401, 403, 429 with their headers) are the
    # more specific ones and replace its handler for those errors.
    problems.install(app, settings)
    security.install(app, authenticator, settings.server.trusted_proxies)
    app.add_middleware(NoStore)
    if settings.server.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.server.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["X-Total-Count", "Link", "Location"],
        )
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(audit.router)
    app.include_router(metrics.router)
    app.include_router(backups.router)
    app.include_router(jobs.router)
    app.include_router(catalog.router)
    return app

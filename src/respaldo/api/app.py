"""``create_app(settings)``: the FastAPI application, built per call (no import-time state)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from respaldo.api import audit, auth, health, metrics, security
from respaldo.config import Settings
from respaldo.operations.auth import Authenticator
from respaldo.operations.context import Context
from respaldo.operations.metrics import Metrics


def create_app(
    settings: Settings,
    context: Context | None = None,
    *,
    authenticator: Authenticator | None = None,
) -> FastAPI:
    """The API for ``settings``. With ``context`` (the service's own), routes use it and
    the caller closes it; without, the app opens one at start-up and closes it at
    shutdown. The JWT secret (and the ERP's key) are read here: a bad one is a
    ConfigError before the server listens. ``authenticator`` replaces the one made from
    ``settings`` (tests give one with their own clock)."""
    authenticator = authenticator or Authenticator.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = context is None
        app.state.context = context if context is not None else Context.open(settings)
        # One registry per application, reading the catalog at each scrape.
        app.state.metrics = Metrics(app.state.context)
        try:
            yield
        finally:
            if own:
                app.state.context.close()

    app = FastAPI(title="respaldo", lifespan=lifespan)
    security.install(app, authenticator, settings.server.trusted_proxies)
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(audit.router)
    app.include_router(metrics.router)
    return app

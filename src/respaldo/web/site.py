"""``create_site``: the API application with the page installed on it."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from respaldo.api import create_app
from respaldo.config import Settings
from respaldo.web.pages import install

__all__ = ["create_site"]


def create_site(settings: Settings, *args: Any, **kwargs: Any) -> FastAPI:
    """The API application (:func:`respaldo.api.create_app`, same arguments) with the
    page installed on it."""
    app = create_app(settings, *args, **kwargs)
    install(app)
    return app

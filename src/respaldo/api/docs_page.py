"""The API's interactive page (``/docs``), with its files served from here.

FastAPI's default page loads Swagger UI from a CDN (an unpinned version, no integrity
check). The page shares its origin, and so its cookies and the web page's forms, with the
API: a script from elsewhere could drive both. Its files come from the
``fastapi-swagger`` package instead (Swagger UI 5, which reads FastAPI's OpenAPI 3.1; only
its files are used), and a Content-Security-Policy tells the browser to run nothing else:
no other origin, and no inline script but the page's own (by hash).
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

STATIC = "/docs/static"
_INLINE = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def install(app: FastAPI, title: str) -> None:
    """Serve ``/docs`` (for ``app.openapi_url``) and its files under :data:`STATIC`.
    The app must be made with ``docs_url=None`` and ``redoc_url=None``."""
    files = Path(str(resources.files("fastapi_swagger.resources")))
    app.mount(STATIC, StaticFiles(directory=files), "api-docs")
    page = get_swagger_ui_html(
        openapi_url=app.openapi_url or "/openapi.json",
        title=f"{title} – API",
        swagger_js_url=f"{STATIC}/swagger-ui-bundle.js",
        swagger_css_url=f"{STATIC}/swagger-ui.css",
        swagger_favicon_url=f"{STATIC}/favicon-32x32.png",
    )
    body = bytes(page.body)
    policy = _policy(body.decode())

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(body, headers={"Content-Security-Policy": policy})


def _policy(html: str) -> str:
    """Nothing from another origin; inline, only the page's own scripts (by hash)."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
        for s in _INLINE.findall(html)
    )
    return (
        f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )

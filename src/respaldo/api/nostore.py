"""Nothing respaldo answers from its data is kept in a browser's or a proxy's cache.

Its answers hold tokens (``POST /auth/token``: RFC 6749 5.1 requires ``no-store``),
the audit log, users, backups and their failures. Without a ``Cache-Control`` a browser
keeps each page, and shows it again from its cache on "Back": after a logout, on a
shared machine, the next person saw the audit log and the users the last one had opened.
Every answer that sets no cache policy of its own gets ``Cache-Control: no-store``; the
static files (the page's style and script, the API docs' files) carry an ``ETag`` and
keep their revalidation.
"""

from __future__ import annotations

from starlette.types import ASGIApp

from respaldo.api.headers import AddedHeaders, Headers


def no_store(present: set[bytes]) -> Headers:
    """``Cache-Control: no-store`` unless the answer has a cache policy or an ``ETag``."""
    if b"cache-control" in present or b"etag" in present:
        return []
    return [(b"cache-control", b"no-store")]


class NoStore(AddedHeaders):
    """ASGI middleware adding ``Cache-Control: no-store`` as described above."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app, no_store)

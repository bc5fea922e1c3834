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

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class NoStore:
    """ASGI middleware adding ``Cache-Control: no-store`` as described above."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                if b"cache-control" not in names and b"etag" not in names:
                    headers.append((b"cache-control", b"no-store"))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_policy)

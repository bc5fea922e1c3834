"""The page refuses to be shown inside another site's frame.

SameSite=Strict keeps the session's cookies out of a frame that another *site* puts the
page in, but not out of one a same-site origin does: a sibling subdomain, or another port
of the same host (the ERP at ``erp.example.com`` and respaldo at
``backup.example.com``; a tool on port 8080 of the same machine). There the page would
load logged in, and a transparent frame over a decoy could get its buttons clicked ("run
a restore test", "cancel" a job). Every answer of the site tells the browser never to
frame it: ``Content-Security-Policy: frame-ancestors 'none'`` (and ``X-Frame-Options:
DENY`` for browsers that predate it). An answer that sets its own policy (the API's
``/docs``, which says ``frame-ancestors 'none'`` too) keeps it.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

FRAME_POLICY = b"frame-ancestors 'none'"


class NoFraming:
    """ASGI middleware adding the headers above to every HTTP answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", FRAME_POLICY))
                if b"x-frame-options" not in names:
                    headers.append((b"x-frame-options", b"DENY"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

"""One ASGI middleware for the headers respaldo adds to every HTTP answer.

Each policy (``api.nostore``, ``web.framing``) says only which headers an answer lacks;
the wrapping of starlette's ``send`` is written once, here.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

Headers = list[tuple[bytes, bytes]]
# Given the lower-cased names of the headers an answer already sets, the headers to add.
Policy = Callable[[set[bytes]], Headers]


class AddedHeaders:
    """ASGI middleware adding ``policy``'s headers to the start of every HTTP answer."""

    def __init__(self, app: ASGIApp, policy: Policy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                added = self.policy({name.lower() for name, _ in headers})
                if added:
                    message = {**message, "headers": headers + added}
            await send(message)

        await self.app(scope, receive, send_with_headers)

"""Real notification receivers on loopback, for the alert tests: a JSON webhook (a tiny
``http.server``), an SMTP server (aiosmtpd), and a target that hangs (:func:`mute`). Each
records what it received; waiting for a message is a wait on a condition, never a
sleep."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.servers.tls import self_signed


@dataclass
class Inbox:
    """What a receiver got, in order; :meth:`wait` blocks until ``n`` items are there."""

    items: list[Any] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def add(self, item: Any) -> None:
        with self.cond:
            self.items.append(item)
            self.cond.notify_all()

    def wait(self, n: int = 1, timeout: float = 60.0) -> list[Any]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.items) >= n, timeout=timeout)
            return list(self.items)


class Webhook:
    """A JSON webhook on 127.0.0.1: POSTs are parsed and kept in ``inbox``."""

    def __init__(self) -> None:
        self.inbox = Inbox()
        inbox = self.inbox

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                inbox.add({"path": self.path, "json": json.loads(body)})
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Handler:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_DATA(  # noqa: N802 (aiosmtpd calls it by this name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.content
        raw = content if isinstance(content, bytes) else str(content).encode()
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.inbox.add(message)
        return "250 OK"


class _Controller(Controller):
    """aiosmtpd's Controller that may be given port 0: the port the system gave is read
    back as the server starts listening, before :meth:`start` dials it (and callers read
    ``port``). A port picked free beforehand could be taken by then. Given a port (one of
    :func:`tests.ports.reserved_port`), it listens there beside the socket that holds it
    (SO_REUSEPORT)."""

    def _create_server(self) -> Any:
        async def bound() -> asyncio.Server:
            server = await self.loop.create_server(
                self._factory_invoker,
                host=self.hostname,
                port=self.port,
                ssl=self.ssl_context,
                reuse_port=self.port != 0,
            )
            self.port = int(server.sockets[0].getsockname()[1])
            return server

        return bound()


class Smtp:
    """An SMTP server on 127.0.0.1 (no TLS, no auth): each mail is kept in ``inbox``.
    ``port``: listen there, a :func:`tests.ports.reserved_port` (a server that comes back
    where one was down), else on a port the system gives."""

    def __init__(self, port: int | None = None) -> None:
        self.inbox = Inbox()
        self.controller = _Controller(_Handler(self.inbox), hostname="127.0.0.1", port=port or 0)
        self.controller.start()
        self.port = self.controller.port

    def url(self, to: str = "ops@example.com") -> str:
        return f"mailto://127.0.0.1:{self.port}?from=respaldo@example.com&to={to}"

    def close(self) -> None:
        self.controller.stop()


class SmtpTls:
    """An SMTP server on 127.0.0.1 that takes mail only after STARTTLS (a certificate
    made here) and AUTH with ``user`` / ``password``; ``logins`` records each attempt
    (user, accepted, over TLS)."""

    def __init__(self, directory: Path, user: str, password: str) -> None:
        self.inbox = Inbox()
        self.logins: list[tuple[str, bool, bool]] = []
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*self_signed(directory, "smtp"))

        def authenticate(
            server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
        ) -> AuthResult:
            ok = (
                isinstance(data, LoginPassword)
                and data.login.decode() == user
                and data.password.decode() == password
            )
            login = data.login.decode() if isinstance(data, LoginPassword) else "?"
            self.logins.append((login, ok, session.ssl is not None))
            # handled=False: aiosmtpd answers (235, or 535 for a refused login). Its
            # default, handled=True, left a refused client without an answer until its
            # read timeout, where a real server refuses at once.
            return AuthResult(success=ok, handled=False)

        self.controller = _Controller(
            _Handler(self.inbox),
            hostname="127.0.0.1",
            port=0,
            tls_context=context,
            require_starttls=True,
            auth_required=True,
            auth_require_tls=True,
            authenticator=authenticate,
        )
        self.controller.start()
        self.port = self.controller.port

    def url(self, user: str) -> str:
        """A mailtos:// URL with STARTTLS, the password as ``{secret}``; the certificate
        is the test's own, so apprise is told not to verify it (``verify=no``)."""
        return (
            f"mailtos://{user}:{{secret}}@127.0.0.1:{self.port}?mode=starttls&verify=no"
            "&from=respaldo@example.com&to=ops@example.com"
        )

    def close(self) -> None:
        self.controller.stop()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    server = Webhook()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    server = Smtp()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def mute() -> Iterator[socket.socket]:
    """A notification target that hangs: the connection is taken (the kernel's backlog)
    and nothing ever answers, as a mail server or webhook stuck in its own work. Its URL
    is ``json://127.0.0.1:PORT/``; closed, it refuses at once."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as server:
        yield server

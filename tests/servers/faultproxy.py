"""A fault-injecting HTTP proxy on loopback, between respaldo and an S3 test server.

The proxy forwards every request to ``upstream`` unchanged, except those a :class:`Rule`
matches (method and a regular expression on the path, for the next ``times`` matching
requests or for all of them). A matched request gets its fault instead of the server's
answer:

- ``"500"`` / ``"503"``: an S3-style XML error answer with that status (InternalError,
  SlowDown) — what a struggling server or a throttling gateway sends;
- ``"403"``: AccessDenied, as a bucket policy that refuses some keys answers: permanent,
  so neither botocore nor respaldo retries it (a failure with no backoff to wait out);
- ``"reset"``: the connection is closed with a TCP RST before any answer (SO_LINGER 0), as
  a crashed load balancer or a dropped NAT entry does;
- ``"stall"``: no answer at all until the client gives up and closes the connection (or
  the proxy stops) — the client's read timeout is what ends it.

And faults that strike *after* the server has done the request (it stored, replaced or
deleted the object), on the way back:

- ``"lost"``: the server's answer never arrives; the connection is reset instead (a
  PUT that landed, but whose client cannot know it);
- ``"truncate"``: the answer's headers (its Content-Length the true one), then half the
  body, then a reset — a connection that dies mid-download;
- ``"short"``: the answer with half its body and a Content-Length that says so (a broken
  gateway or cache): nothing on the wire is wrong, the bytes are simply too few;
- ``"flip"``: the answer with one bit of its body inverted (a bad NIC or middlebox on a
  connection without TLS).

Rules are checked in order; the first that matches and still has ``times`` left applies.
Every request is logged (method, path, what was done), so a test can assert that a fault
really happened and what was retried. Requests are served by a thread each
(``ThreadingHTTPServer``), with HTTP/1.1 keep-alive towards the client and one upstream
connection per client connection.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import urlsplit

Fault = Literal["403", "500", "503", "reset", "stall", "lost", "truncate", "short", "flip"]

_ERROR_CODES = {"403": "AccessDenied", "500": "InternalError", "503": "SlowDown"}
# Headers that belong to one hop, not to the request: never forwarded.
_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "expect", "te"}


@dataclass
class Rule:
    """Answer the next ``times`` requests matching ``method`` and ``path`` with ``fault``.

    ``times=None`` means every matching request, for as long as the rule is installed.
    ``path`` is a regular expression searched in the request path (bucket and key).
    """

    fault: Fault
    path: str = ""
    method: str | None = None
    times: int | None = 1
    after: int = 0
    """Let the first ``after`` matching requests through before the fault applies (to
    strike in the middle of an upload, at a point that does not depend on timing)."""
    ranged: bool | None = None
    """Only requests with (True) or without (False) a Range header; None: either."""
    hits: int = 0
    passed: int = 0

    def matches(self, method: str, path: str, ranged: bool = False) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method is not None and self.method != method:
            return False
        if self.ranged is not None and self.ranged != ranged:
            return False
        return re.search(self.path, path) is not None


@dataclass(frozen=True)
class Logged:
    method: str
    path: str
    action: str
    """``"forwarded <status>"`` or the fault that was injected."""


@dataclass
class FaultProxy:
    """The proxy: ``start()`` it, point a client at :attr:`url`, add rules, ``stop()`` it."""

    upstream: str
    rules: list[Rule] = field(default_factory=list)
    log: list[Logged] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _released: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the proxy is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule and let stalled requests end (their connections are closed)."""
        with self._lock:
            self.rules.clear()
        self._released.set()
        self._released = threading.Event()

    def injected(self) -> list[Logged]:
        with self._lock:
            return [entry for entry in self.log if not entry.action.startswith("forwarded")]

    def _decide(
        self, method: str, path: str, ranged: bool = False
    ) -> tuple[Fault | None, threading.Event]:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path, ranged):
                    if rule.passed < rule.after:
                        rule.passed += 1
                        continue
                    rule.hits += 1
                    self.log.append(Logged(method, path, rule.fault))
                    return rule.fault, self._released
            return None, self._released

    def _record(self, method: str, path: str, action: str) -> None:
        with self._lock:
            self.log.append(Logged(method, path, action))

    def start(self) -> FaultProxy:
        upstream = urlsplit(self.upstream)
        assert upstream.hostname is not None and upstream.port is not None
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            upstream_conn: http.client.HTTPConnection | None = None

            def log_message(self, format: str, *args: object) -> None:
                pass  # the proxy's own log is ``proxy.log``

            def _upstream(self) -> http.client.HTTPConnection:
                if self.upstream_conn is None:
                    assert upstream.hostname is not None
                    self.upstream_conn = http.client.HTTPConnection(
                        upstream.hostname, upstream.port, timeout=120
                    )
                return self.upstream_conn

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _handle(self) -> None:
                body = self._body()
                ranged = self.headers.get("Range") is not None
                fault, released = proxy._decide(self.command, self.path, ranged)
                if fault in _ERROR_CODES:
                    assert fault is not None
                    self._error(int(fault), _ERROR_CODES[fault])
                elif fault == "reset":
                    self._reset()
                elif fault == "stall":
                    self._stall(released)
                else:
                    self._forward(body, fault)

            def _error(self, status: int, code: str) -> None:
                payload = (
                    f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                    f"<Message>injected by the fault proxy</Message></Error>"
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _reset(self) -> None:
                # Linger 0: close() sends RST instead of FIN, and the client sees
                # "connection reset by peer" rather than a clean end of the stream.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True

            def _stall(self, released: threading.Event) -> None:
                # Wait until the client hangs up (its read timeout) or the test releases
                # stalled requests; answer nothing either way.
                self.connection.settimeout(0.2)
                while not released.is_set():
                    try:
                        if self.connection.recv(1, socket.MSG_PEEK) == b"":
                            break  # the client closed its end
                    except TimeoutError:
                        continue
                    except OSError:
                        break
                self.close_connection = True

            def _forward(self, body: bytes, fault: Fault | None = None) -> None:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                try:
                    conn = self._upstream()
                    conn.request(self.command, self.path, body=body, headers=headers)
                    answer = conn.getresponse()
                    payload = answer.read()
                except (OSError, http.client.HTTPException):
                    self.upstream_conn = None
                    proxy._record(self.command, self.path, "upstream failed")
                    self._reset()
                    return
                proxy._record(self.command, self.path, f"forwarded {answer.status}")
                if fault == "lost":
                    self._reset()
                    return
                head = self.command == "HEAD"
                sent = payload
                if fault in ("truncate", "short"):
                    sent = payload[: len(payload) // 2]
                elif fault == "flip" and payload:
                    middle = len(payload) // 2
                    sent = (
                        payload[:middle] + bytes([payload[middle] ^ 0x01]) + payload[middle + 1 :]
                    )
                self.send_response(answer.status, answer.reason)
                for key, value in answer.getheaders():
                    if key.lower() in _HOP or (key.lower() == "content-length" and not head):
                        continue
                    self.send_header(key, value)
                if not head:
                    declared = len(sent) if fault == "short" else len(payload)
                    self.send_header("Content-Length", str(declared))
                self.end_headers()
                if not head:
                    self.wfile.write(sent)
                if fault == "truncate":
                    self.wfile.flush()
                    self._reset()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            with contextlib.suppress(RuntimeError):
                self._thread.join(10)

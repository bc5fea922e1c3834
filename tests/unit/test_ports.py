"""tests/ports.py: a closed port stays closed while the tests run; a reserved one is
refused but for the test's own server."""

from __future__ import annotations

import smtplib
import socket

import pytest

from tests.ports import closed_port, held_port, reserved_port
from tests.servers.notify import Smtp


def test_a_closed_port_refuses_connections_and_nothing_else_can_bind_it() -> None:
    port = closed_port()
    assert closed_port() == port  # one for the whole session
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
    # What a server of another test does (PostgreSQL, uvicorn and asyncio set SO_REUSEADDR):
    # it cannot take the port, so the address stays unreachable for the test that uses it.
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with pytest.raises(OSError, match="in use"):
            server.bind(("127.0.0.1", port))


def test_a_reserved_port_is_refused_until_our_server_listens_and_after_it_stops() -> None:
    port = reserved_port()
    assert reserved_port() != port  # one per server
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
    # Another test's server (SO_REUSEADDR, not SO_REUSEPORT) cannot take it meanwhile.
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with pytest.raises(OSError, match="in use"):
            server.bind(("127.0.0.1", port))
    for _ in range(2):  # up, down, up again, on the same port
        smtp = Smtp(port)
        try:
            assert smtp.port == port
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
                client.sendmail("a@example.com", ["b@example.com"], "Subject: hola\n\nx")
            assert len(smtp.inbox.wait(1)) == 1
        finally:
            smtp.close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=10).close()


def test_a_held_port_is_refused_and_given_to_no_connection_but_a_server_listens_there() -> None:
    port = held_port()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
    # No SO_REUSEADDR: what a client connection's end would need.
    with socket.socket() as plain, pytest.raises(OSError, match="in use"):
        plain.bind(("127.0.0.1", port))
    # What PostgreSQL does: SO_REUSEADDR, bind, listen.
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        socket.create_connection(("127.0.0.1", port), timeout=10).close()

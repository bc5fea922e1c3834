"""tests/ports.py: a closed port stays closed while the tests run."""

from __future__ import annotations

import socket

import pytest

from tests.ports import closed_port


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

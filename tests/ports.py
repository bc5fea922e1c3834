"""Loopback ports for tests, without the pick-then-bind race.

A port found free (bind to 0, read it, close) may be taken by another test's server or
client before whoever was told the number uses it: a server then fails to start, and a
port meant to be closed may answer. So:

- :func:`closed_port`: a port nobody can listen on, for an address meant to be
  unreachable. A socket of this process keeps it bound without listening for the rest
  of the test session: nothing else can bind it (SO_REUSEADDR or not), and a connection
  to it is refused at once. One such port serves every test of the process.
- :func:`reserved_port`: a port for a server that is down at first (refused) and then
  started there, stopped and started again (the SMTP server of the alert delivery tests):
  a socket of this process holds it bound with SO_REUSEPORT, never listening, so dialling
  it is refused while no server listens, nothing else can bind it meanwhile, and a
  server that sets SO_REUSEPORT too (``tests.servers.notify.Smtp``) listens there beside
  it. Picked free and released instead, it could be taken before the server started
  there (which then failed to start) or answer while it was meant to be down.
- :func:`held_port`: the same for a server the test has started by others on a port it
  names (PostgreSQL, by ``respaldo restore --start --port``), which binds with
  SO_REUSEADDR and not SO_REUSEPORT: the holding socket sets SO_REUSEADDR, so that server
  listens beside it, and no connection of any process is given the port as its own end
  (connect() skips ports bound by bind()). A free port released instead was taken now
  and then by such a connection, on a machine with many: "could not listen".
- A server the test starts is given port 0 and asked which port it got (the
  ``serve`` helpers of tests/integration/logical/test_serve.py, the SMTP and webhook
  servers of tests/servers/notify.py, moto in tests/servers/s3.py). Servers that cannot
  listen on port 0 (PostgreSQL, ``weed``) are started again on another port when theirs
  was taken (sample/cluster.py, tests/servers/s3.py).
"""

from __future__ import annotations

import socket

_closed: list[socket.socket] = []
_held: list[socket.socket] = []


def closed_port() -> int:
    """A loopback TCP port that stays closed (refused when dialled) while the tests run."""
    if not _closed:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        _closed.append(sock)  # bound, never listening, never closed: the port stays ours
    return int(_closed[0].getsockname()[1])


def reserved_port() -> int:
    """A loopback TCP port refused while no server of the test listens there; only one
    that sets SO_REUSEPORT (as this user) can. Held until the process ends (a few per
    session). bind(0) and connect() never hand out a port bound this way."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    _held.append(sock)  # bound, never listening: the port stays ours
    return int(sock.getsockname()[1])


def held_port() -> int:
    """A loopback TCP port refused while nothing listens there, where a server that
    binds with SO_REUSEADDR (PostgreSQL) can listen; no client connection is ever given
    it. Held until the process ends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    _held.append(sock)  # bound, never listening: the port stays ours
    return int(sock.getsockname()[1])

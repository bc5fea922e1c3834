"""Loopback ports for tests, without the pick-then-bind race.

A port found free (bind to 0, read it, close) may be taken by another test's server or
client before whoever was told the number uses it: a server then fails to start, and a
port meant to be closed may answer. So:

- :func:`closed_port`: a port nobody can listen on, for an address meant to be
  unreachable. A socket of this process keeps it bound without listening for the rest
  of the test session: nothing else can bind it (SO_REUSEADDR or not), and a connection
  to it is refused at once. One such port serves every test of the process.
- A server the test starts is given port 0 and asked which port it got (the
  ``serve`` helpers of tests/integration/logical/test_serve.py, the SMTP and webhook
  servers of tests/servers/notify.py, moto in tests/servers/s3.py). Servers that cannot
  listen on port 0 (PostgreSQL, ``weed``) are started again on another port when theirs
  was taken (sample/cluster.py, tests/servers/s3.py).
"""

from __future__ import annotations

import socket

_held: list[socket.socket] = []


def closed_port() -> int:
    """A loopback TCP port that stays closed (refused when dialled) while the tests run."""
    if not _held:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        _held.append(sock)  # bound, never listening, never closed: the port stays ours
    return int(_held[0].getsockname()[1])

"""Which server logs say the port was taken (a drill then starts its server again on
another port), and which do not: only the FATAL of a server that could listen nowhere,
after a bind that the address was in use refused, and only in what this start wrote.
The lines are PostgreSQL 15's, as a restored server wrote them."""

from __future__ import annotations

from pathlib import Path

import pytest

from respaldo.postgres.datadir import _port_taken

pytestmark = pytest.mark.unit

STARTING = "2026-12-06 00:15:29.159 UTC [11497] LOG:  starting PostgreSQL 15.18 on x86_64\n"
TAKEN = (
    '2026-12-06 00:15:29.159 UTC [11497] LOG:  could not bind IPv4 address "127.0.0.1": '
    "Address already in use\n"
    "2026-12-06 00:15:29.159 UTC [11497] HINT:  Is another postmaster already running on "
    "port 34233? If not, wait a few seconds and retry.\n"
    '2026-12-06 00:15:29.159 UTC [11497] WARNING:  could not create listen socket for "127.0.0.1"\n'
    "2026-12-06 00:15:29.159 UTC [11497] FATAL:  could not create any TCP/IP sockets\n"
    "2026-12-06 00:15:29.166 UTC [11497] LOG:  database system is shut down\n"
)


def test_a_server_that_could_listen_nowhere_took_no_port(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text(STARTING + TAKEN)
    assert _port_taken(log, 0) == (
        'could not bind IPv4 address "127.0.0.1": Address already in use'
    )


def test_one_address_refused_while_another_listens_is_no_taken_port(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text(
        STARTING
        + '2026-12-06 00:15:35.329 UTC [12317] LOG:  could not bind IPv4 address "0.0.0.0": '
        "Address already in use\n"
        '2026-12-06 00:15:35.330 UTC [12317] LOG:  listening on IPv6 address "::", port 42179\n'
        "2026-12-06 00:15:35.403 UTC [12317] LOG:  database system is ready to accept "
        "connections\n"
    )
    assert _port_taken(log, 0) is None


def test_an_address_that_cannot_be_bound_is_no_taken_port(tmp_path: Path) -> None:
    # Another port would not help: the address is not this host's.
    log = tmp_path / "server.log"
    log.write_text(
        STARTING + '2026-12-06 00:20:01.000 UTC [1] LOG:  could not bind IPv4 address "10.9.9.9": '
        "Cannot assign requested address\n"
        "2026-12-06 00:20:01.000 UTC [1] FATAL:  could not create any TCP/IP sockets\n"
    )
    assert _port_taken(log, 0) is None


def test_only_what_this_start_wrote_counts(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text(STARTING + TAKEN)
    since = log.stat().st_size
    with log.open("a") as fh:
        fh.write(STARTING)
    assert _port_taken(log, since) is None
    assert _port_taken(tmp_path / "absent.log", 0) is None

"""Where a restored server listens: on 127.0.0.1 and a free port unless ``--listen`` and
``--port`` say otherwise, whatever the backup's configuration says.

The backup is of a server whose ``postgresql.auto.conf`` says ``listen_addresses = '*'``
(a production server's), and the original keeps running on this host on its own port:
the restored copy must neither go on the network nor take (or clash with) that port.
The witness is the restored server itself (``SHOW``), reached where respaldo says it is.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from sample.cluster import TempCluster

from tests.integration.physical.conftest import Archiving, free_port
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def open_backup(archiving: Archiving) -> Iterator[str]:
    """A backup whose configuration listens on every address; the original's own
    configuration is put back afterwards (it never reloaded it: it listens as before)."""
    archiving.pg.execute("ALTER SYSTEM SET listen_addresses = '*'")
    try:
        yield str(archiving.backup()["id"])
    finally:
        archiving.pg.execute("ALTER SYSTEM RESET listen_addresses")


def _settings(server: TempCluster) -> tuple[str, int]:
    return str(server.scalar("SHOW listen_addresses")), int(str(server.scalar("SHOW port")))


def test_start_listens_on_localhost_and_a_free_port(
    archiving: Archiving, open_backup: str, restored_servers: list[TempCluster]
) -> None:
    datadir = archiving.new_datadir()

    run = archiving.run(
        "restore", open_backup, "--target-datadir", str(datadir), "--immediate", "--start"
    )

    assert run.code == 0, str(run)
    found = re.search(r"the restored server runs on 127\.0\.0\.1 port (\d+), promoted", run.err)
    assert found is not None, str(run)
    port = int(found.group(1))
    assert port != archiving.pg.port  # the original's, which it keeps
    restored = archiving.restored(datadir, port)
    restored_servers.append(restored)
    assert _settings(restored) == ("127.0.0.1", port)
    assert restored.scalar("SELECT pg_is_in_recovery()") is False


def test_listen_and_port_are_taken_as_given(
    archiving: Archiving, open_backup: str, restored_servers: list[TempCluster]
) -> None:
    datadir = archiving.new_datadir()
    port = free_port()

    run = archiving.run(
        "restore", open_backup, "--target-datadir", str(datadir), "--immediate", "--start",
        "--listen", "127.0.0.1, localhost", "--port", str(port),
    )  # fmt: skip

    assert run.code == 0, str(run)
    assert f"runs on 127.0.0.1,localhost port {port}, promoted" in run.err
    restored = archiving.restored(datadir, port)
    restored_servers.append(restored)
    assert _settings(restored) == ("127.0.0.1,localhost", port)


def test_the_printed_start_command_starts_it_where_it_says(
    archiving: Archiving, open_backup: str, restored_servers: list[TempCluster]
) -> None:
    datadir = archiving.new_datadir()

    run = archiving.run("restore", open_backup, "--target-datadir", str(datadir), "--immediate")

    assert run.code == 0, str(run)
    line = next(line for line in run.err.splitlines() if line.startswith("start it with: "))
    command = shlex.split(line.removeprefix("start it with: ").partition(" (")[0])
    log = datadir / "respaldo-start.log"
    assert command[-5:] == ["start", "-D", str(datadir), "-l", str(log)]
    assert Path(command[-6]).name == "pg_ctl"
    if os.geteuid() == 0:
        assert command[:4] == ["runuser", "-u", "postgres", "--"]  # pg_ctl refuses root
    assert not log.exists()  # pg_ctl makes it
    restored = archiving.start_as_printed(run, restored_servers)
    # The server logs "ready" once its startup process has exited, a moment after the
    # promotion that start_as_printed waits for: the line is waited for, in that log.
    wait_for(
        "the log to say the server is ready",
        lambda: "database system is ready to accept connections" in log.read_text(),
    )
    assert restored.port != archiving.pg.port
    assert _settings(restored) == ("127.0.0.1", restored.port)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--listen", "10.0.0.1; rm -rf /", "'10.0.0.1; rm -rf /' is not an address"),
        ("--listen", "", "'' is not an address"),
        ("--port", "70000", "70000 is not a TCP port"),
    ],
)
def test_a_bad_listen_or_port_is_refused_before_anything_is_written(
    archiving: Archiving, option: str, value: str, message: str
) -> None:
    record = archiving.backup()
    datadir = archiving.new_datadir()

    run = archiving.run(
        "restore", record["id"], "--target-datadir", str(datadir), "--start", option, value
    )

    assert run.code != 0, str(run)
    assert message in run.err, str(run)
    assert not datadir.exists()


def test_listen_is_refused_for_a_logical_restore(archiving: Archiving) -> None:
    run = archiving.run("restore", "20260101T000000Z-00000000", "-t", "x", "--listen", "*")
    assert run.code == 1, str(run)
    assert "listen" in run.err and "only applies to a restore into a data directory" in run.err


def test_the_originals_port_given_again_fails_saying_it_is_taken(
    archiving: Archiving, open_backup: str
) -> None:
    # 127.0.0.1 is the original's; ::1 binds, then the original's Unix socket on that
    # port stops the server: a taken port, not a failed recovery.
    datadir = archiving.new_datadir()
    port = archiving.pg.port

    run = archiving.run(
        "restore", open_backup, "--target-datadir", str(datadir), "--immediate", "--start",
        "--listen", "127.0.0.1,::1", "--port", str(port),
    )  # fmt: skip

    assert run.code == 1, str(run)
    assert f"the restored server in {datadir} could not listen" in run.err, str(run)
    assert f".s.PGSQL.{port}.lock" in run.err or "Address already in use" in run.err
    assert "another process took the port: start it on another (--port)" in run.err
    assert "recovery target" not in run.err
    assert archiving.pg.scalar("SELECT 1") == 1  # the original runs on

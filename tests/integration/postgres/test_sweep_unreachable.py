"""The start-up sweep (94ac48d) drops the scratch databases of a restore or drill whose
job it finds lapsed, on that job's server. A server that does not answer (its machine
down, packets dropped) held the first command to find the job, a plain ``respaldo
list``, for the whole connect timeout (10 s, measured 14 s for the command); the sweep
now waits a few seconds for it, says so on one line and goes on: the staging database
is left to the next restore or drill there, as before."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from respaldo.catalog.jobs import Jobs
from respaldo.config import load_settings
from respaldo.domain import JobKind, JobStatus, TriggeredBy
from respaldo.operations import jobs
from respaldo.operations.context import Context
from respaldo.operations.reconcile import SWEEP_CONNECT_TIMEOUT
from tests.configs import local_config

pytestmark = pytest.mark.integration


@dataclass
class Silent:
    """A server that takes connections and never says a word: how a PostgreSQL whose
    machine hangs looks to libpq. Records how long each client waited before it gave up
    (from the connection's arrival to its close: the client's own timeout)."""

    port: int
    waited: list[float] = field(default_factory=list)


@contextmanager
def silent_server() -> Iterator[Silent]:
    listener = socket.create_server(("127.0.0.1", 0))
    server = Silent(listener.getsockname()[1])

    def hold(conn: socket.socket) -> None:
        arrived = time.monotonic()
        with conn:
            while conn.recv(4096):  # the startup packet; no answer is ever sent
                pass
        server.waited.append(time.monotonic() - arrived)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # closed: the test is over
                return
            threading.Thread(target=hold, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join()


def test_a_lapsed_drill_on_a_server_that_does_not_answer_holds_no_command(
    tmp_path: Path,
) -> None:
    with silent_server() as server:
        config = local_config(
            tmp_path,
            f"""
[[databases]]
name = "erp"
dsn = "postgresql://respaldo@127.0.0.1:{server.port}/erp"
""",
        )
        dead = subprocess.Popen(["true"])
        dead.wait()
        with Context.open(load_settings(config), create=True) as ctx:
            request = jobs.JobRequest(JobKind.DRILL, "erp", TriggeredBy.CLI, "ana", {})
            job = jobs.submit(ctx, request, here=True)
            with ctx.catalog.begin() as session:
                Jobs(session).start(job.id, pid=dead.pid)  # its process is gone: lapsed
        respaldo = Path(sys.executable).with_name("respaldo")
        done = subprocess.run(
            [str(respaldo), "--config", str(config), "list"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if "scratch databases" in line]
    assert len(said) == 1, done.stderr
    assert "the next restore or drill there tries again" in said[0], said
    assert "Traceback" not in done.stderr
    # The sweep waited for the server, and gave up after its own short timeout: libpq
    # counts at least the timeout asked for, so 10 s (connect's default) cannot pass.
    (waited,) = server.waited
    assert SWEEP_CONNECT_TIMEOUT - 0.5 <= waited < 8, waited
    with Context.open(load_settings(config)) as ctx:
        assert jobs.get(ctx, job.id).status is JobStatus.FAILED

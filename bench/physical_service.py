"""The small-cluster target through a running ``respaldo serve`` (``physical_bench --paired N
--via-service``).

Physical backups run every few hours inside the long-running service (scheduler and
jobs), where no start-up is paid per backup. This starts one real ``respaldo serve`` on
loopback, as the server's OS user (the process itself, not a ``runuser`` in front of it,
so that ``/proc/PID/stat`` is the service's), with every schedule off, waits for
``/health`` (the integration tests' :func:`~tests.integration.logical.test_serve.answers`),
creates an admin API token with ``respaldo token create`` (the tests' ``token`` helper
calls the same :func:`~respaldo.operations.api_tokens.create_token`; the CLI runs it as
the catalog's owner). Then, per round, ``pg_basebackup -c fast -Ft -D DIR`` (GNU time)
and ``POST /admin/backups {"type": "incremental"}`` followed by ``GET /admin/jobs/{id}``
every ``poll`` seconds until the job ended:

- wall: from sending the POST to the first GET that sees the job ended; it overstates
  the job by at most ``poll`` plus one GET's round trip (the API has no long-poll);
- job: the job's own ``finished_at - created_at`` (catalog timestamps, microseconds),
  which the polling does not inflate;
- CPU: utime+stime+cutime+cstime of the serve process from ``/proc/PID/stat`` before the
  POST and after the end (pg_basebackup is its child, waited for, so counted), in clock
  ticks (10 ms); it includes the POST's and the GETs' handling (the count is reported).
"""

from __future__ import annotations

import json
import os
import pwd
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.integration.logical.test_serve import answers

TICK = os.sysconf("SC_CLK_TCK")
ENDED = {"completed", "failed", "cancelled", "skipped"}


def cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime of ``pid`` (children it waited for included)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # the name may hold spaces
    return sum(int(x) for x in fields[11:15]) / TICK


def free_port() -> int:
    """A port free on loopback now, for the service a bench run starts alone (the tests
    start theirs on port 0 instead: another test may take a port found free first)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_config(config: Path, port: int) -> Path:
    """``config`` plus every schedule off and ``[server]`` on ``port``."""
    text = config.read_text() + (
        '\n[schedules]\ntime_zone = "UTC"\nfull = "off"\nincremental = "off"\n'
        'restore_test = "off"\ncleanup = "off"\nverify = "off"\nreport = "off"\n'
        f'\n[server]\nlisten = "127.0.0.1:{port}"\njob_workers = 1\n'
    )
    path = config.with_name("serve.toml")
    path.write_text(text)
    return path


@contextmanager
def serving(
    program: list[str], config: Path, user: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``PROGRAM --config CONFIG serve`` as ``user`` (when root), stopped by SIGTERM at
    the end. ``program`` starts respaldo in the same process (``env`` execs), so that
    the pid is the service's."""
    entry = pwd.getpwnam(user)
    as_user: dict[str, Any] = (
        {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        if os.geteuid() == 0
        else {}
    )
    log = config.with_name("serve.log").open("wb")
    if env and ("RESPALDO_BENCH_PROFILE" in env or "RESPALDO_BENCH_PHASES" in env):
        # bench/serve_profiled.py
        root = str(Path(__file__).resolve().parent.parent)
        env = {**env, "PYTHONPATH": root}
        program = [sys.executable, "-m", "bench.serve_profiled"]
    process = subprocess.Popen(
        [*program, "--config", str(config), "serve"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {}), "HOME": entry.pw_dir},
        cwd=config.parent,
        **as_user,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


class Client:
    def __init__(self, port: int, token: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 (http on loopback only)
            self.base + path, data=data, method=method, headers=self.headers
        )
        with urllib.request.urlopen(request, timeout=600) as answer:  # noqa: S310
            return json.loads(answer.read())


def service_backup(client: Client, pid: int, database: str, poll: float) -> dict[str, Any]:
    """One physical backup through the API, timed (see the module's docstring)."""
    load = os.getloadavg()[0]
    cpu0 = cpu_seconds(pid)
    started = time.monotonic()
    job_id = client.call("POST", "/admin/backups", {"type": "incremental", "database": database})[
        "jobId"
    ]
    polls = 0
    while True:
        job = client.call("GET", f"/admin/jobs/{job_id}")
        polls += 1
        if job["status"] in ENDED:
            break
        time.sleep(poll)  # the measurement's resolution, not a synchronisation
    seconds = time.monotonic() - started
    cpu = cpu_seconds(pid) - cpu0
    if job["status"] != "completed":
        raise RuntimeError(f"job {job_id} ended {job['status']}: {job.get('error')}")
    created = datetime.fromisoformat(job["createdAt"])
    finished = datetime.fromisoformat(job["finishedAt"])
    return {
        "job_id": job_id,
        "seconds": seconds,
        "job_seconds": (finished - created).total_seconds(),
        "cpu_seconds": cpu,
        "polls": polls,
        "load": load,
    }


def get_cost(client: Client, pid: int, job_id: int, count: int = 50) -> float:
    """The service's CPU seconds per ``GET /admin/jobs/{id}`` (of an ended job), over
    ``count`` calls: what the polling adds to a backup's CPU figure."""
    cpu0 = cpu_seconds(pid)
    for _ in range(count):
        client.call("GET", f"/admin/jobs/{job_id}")
    return (cpu_seconds(pid) - cpu0) / count


def wait_until_answering(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 300
    while not answers(port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"respaldo serve did not start: {log.read_text()[-3000:]}")
        time.sleep(0.1)


def create_token(program: list[str], config: Path, as_server: Any) -> str:
    done = subprocess.run(
        as_server(
            [*program, "--config", str(config), "token", "create", "bench", "--role", "admin"]
        ),
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


__all__ = [
    "Client",
    "cpu_seconds",
    "create_token",
    "free_port",
    "get_cost",
    "service_backup",
    "service_config",
    "serving",
    "wait_until_answering",
]

if __name__ == "__main__":  # pragma: no cover
    sys.exit("run it through bench.physical_bench --paired N --via-service")

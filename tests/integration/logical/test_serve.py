"""A real ``respaldo serve`` process: scheduled backups, health, SIGTERM and kill -9.

The schedule is one full backup of erp every 2 seconds (a seconds field), everything
else off. Synchronisation is on what the catalog and the server show, never on sleeps.
"""

from __future__ import annotations

import dataclasses
import json
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sample.cluster import TempCluster

from respaldo.domain import Role
from respaldo.processes import this_host
from tests.integration.api.conftest import token
from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.test_jobs import (
    backup_inside_pg_dump,
    jobs,
    partitioned_table,
    pg_dump_waiting,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


ANY_PORT = 0
"""``[server] listen = "127.0.0.1:0"``: serve listens on a port the system gives and
says which (:func:`listening_port`). A port found free beforehand and handed over can
be taken by another test's server or client before serve binds it."""


def listening_port(process: subprocess.Popen[str], scheme: str = "http") -> int:
    """The port the ``respaldo serve`` ``process`` listens on, from its line "listening on
    SCHEME://HOST:PORT" (read from its stderr, up to that line). Fails the test with what
    it printed when it ends without listening."""
    assert process.stderr is not None
    said = []
    for line in process.stderr:
        said.append(line)
        found = re.search(rf"listening on {scheme}://[^\s,]*:(\d+)", line)
        if found:
            return int(found.group(1))
    process.wait()
    raise AssertionError(f"serve did not listen (exit {process.returncode}):\n{''.join(said)}")


def serve_config(respaldo: Respaldo, port: int = ANY_PORT) -> Path:
    """The test's config with only the erp database, and a schedule for the test."""
    text = respaldo.config.read_text()
    text = text[: text.index('[[databases]]\nname = "erp_hooked"')]
    text += f"""
[schedules]
time_zone = "UTC"
full = "*/2 * * * * *"
incremental = "off"
restore_test = "off"
cleanup = "off"
verify = "off"

[server]
listen = "127.0.0.1:{port}"
"""
    path = respaldo.tmp / "serve.toml"
    path.write_text(text)
    return path


@contextmanager
def serving(config: Path) -> Iterator[subprocess.Popen[str]]:
    argv = [sys.executable, "-m", "respaldo.cli.main", "--config", str(config), "serve"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def health(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def scrape_metrics(port: int) -> dict[tuple[str, ...], float]:
    """GET /metrics, parsed by prometheus_client: (name, label values...) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
        assert answer.status == 200
        text = answer.read().decode()
    return {
        (s.name, *s.labels.values()): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def answers(port: int) -> bool:
    try:
        health(port)
    except OSError:
        return False
    return True


def by_status(respaldo: Respaldo, status: str) -> list[dict[str, Any]]:
    return [job for job in jobs(respaldo) if job["status"] == status]


def test_serve_takes_scheduled_backups_answers_health_and_stops_on_sigterm(
    respaldo: Respaldo,
) -> None:
    config = serve_config(respaldo)
    listed = dataclasses.replace(respaldo, config=config).run("schedule", "--json", "--next", "2")
    assert listed.code == 0, str(listed)
    (entry,) = listed.json()
    assert (entry["name"], entry["cron"], entry["timeZone"]) == (
        "full:erp",
        "*/2 * * * * *",
        "UTC",
    )
    assert len(entry["nextRuns"]) == 2
    with serving(config) as process:
        port = listening_port(process)
        wait_for("a scheduled backup", lambda: bool(by_status(respaldo, "completed")))
        job = by_status(respaldo, "completed")[0]
        assert (job["triggeredBy"], job["requestedBy"]) == ("schedule", "full:erp")
        (record,) = [r for r in respaldo.records() if r.id == job["resultId"]]
        assert record.triggered_by == "schedule"
        assert record.status == "completed"
        status, body = health(port)
        assert status == 200, body
        assert ("erp", "full") in {(b["database"], b["kind"]) for b in body["newestBackups"]}
        # /metrics of the same process: the newest erp backup (the schedule may have
        # taken another one since the record above was read).
        scraped = scrape_metrics(port)
        newest = scraped[("respaldo_backup_last_success_timestamp_seconds", "erp", "full")]
        completed = {
            r.completed_at.timestamp()
            for r in respaldo.records()
            if r.status == "completed" and r.completed_at is not None
        }
        assert newest in completed and record.completed_at is not None
        assert newest >= record.completed_at.timestamp()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert "SIGTERM: stopping" in err
    assert by_status(respaldo, "running") == []
    assert not [r for r in respaldo.records() if r.status == "in_progress"]


def test_sigterm_mid_backup_cancels_the_job_and_leaves_nothing_running(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    config = serve_config(respaldo)
    with backup_inside_pg_dump(respaldo, pg, "serve", config=config) as (process, pg_dump):
        (running,) = by_status(respaldo, "running")
        # Meanwhile the schedule fired again: those runs are recorded as skipped.
        wait_for("a skipped run", lambda: bool(by_status(respaldo, "skipped")))
        assert by_status(respaldo, "skipped")[0]["error"] == (
            f"the previous run (job {running['id']}) still runs"
        )
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
        assert not pg_dump.is_running() or pg_dump.status() == "zombie"
    assert process.returncode == 0, err
    job = next(j for j in jobs(respaldo) if j["id"] == running["id"])
    assert (job["status"], job["error"]) == ("cancelled", "respaldo serve stopped (SIGTERM)")
    assert by_status(respaldo, "running") == []
    assert [r.status for r in respaldo.records()] == ["failed"]
    assert respaldo.repository().backup_ids() == []  # no manifest


def test_kill_9_mid_backup_leaves_a_job_that_fails_at_the_next_start(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    config = serve_config(respaldo)
    with backup_inside_pg_dump(respaldo, pg, "serve", config=config) as (process, _):
        (running,) = [j for j in respaldo_jobs_raw(respaldo) if j["status"] == "running"]
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
    # Anything that opens the catalog next (here: respaldo jobs) fails the job.
    job = next(j for j in jobs(respaldo) if j["id"] == running["id"])
    assert job["status"] == "failed"
    assert job["error"] == f"process {process.pid} died while the job ran (found at start-up)"
    assert by_status(respaldo, "running") == []


def test_a_serve_killed_mid_backup_runs_it_again_when_it_starts_again(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    config = serve_config(respaldo)
    with backup_inside_pg_dump(respaldo, pg, "serve", config=config) as (process, _):
        (running,) = [j for j in respaldo_jobs_raw(respaldo) if j["status"] == "running"]
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
    # Started again (by its service manager), without the schedule: the backup that
    # runs next is the retry of the lost one, which the restarted service finds first.
    config.write_text(config.read_text().replace('full = "*/2 * * * * *"', 'full = "off"'))
    with serving(config) as restarted:
        listening_port(restarted)

        def retried() -> dict[str, Any] | None:
            return next((j for j in jobs(respaldo) if j["retryOf"] == running["id"]), None)

        wait_for("the retry to end", lambda: (r := retried()) is not None and r["finishedAt"])
        restarted.send_signal(signal.SIGTERM)
        restarted.communicate(timeout=120)
    lost = next(j for j in jobs(respaldo) if j["id"] == running["id"])
    assert (lost["status"], lost["error"]) == (
        "failed",
        f"process {process.pid} died while the job ran (found at start-up)",
    )
    retry = retried()
    assert retry is not None
    assert (retry["status"], retry["attempt"], retry["triggeredBy"]) == (
        "completed",
        2,
        "schedule",
    )
    completed = [r for r in respaldo.records() if r.status.value == "completed"]
    assert [r.id for r in completed] == [retry["resultId"]]


def test_a_serve_stopped_mid_backup_runs_it_again_when_it_starts_again(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    # systemctl restart during the nightly backup: the run ends cancelled (nobody asked);
    # the service started again takes it again, as it does a run lost to kill -9. Before,
    # that night had no backup, and the status stayed amber until the RPO lapsed.
    config = serve_config(respaldo)
    with backup_inside_pg_dump(respaldo, pg, "serve", config=config) as (process, _):
        (running,) = by_status(respaldo, "running")
        wait_for("a skipped run", lambda: bool(by_status(respaldo, "skipped")))
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert by_status(respaldo, "skipped")  # the schedule fired again while it ran
    # Started again with a daily time: no time of it was missed meanwhile.
    config.write_text(config.read_text().replace('"*/2 * * * * *"', '"0 3 * * *"'))
    with serving(config) as restarted:
        listening_port(restarted)

        def retried() -> dict[str, Any] | None:
            return next((j for j in jobs(respaldo) if j["retryOf"] == running["id"]), None)

        wait_for("the retry to end", lambda: (r := retried()) is not None and r["finishedAt"])
        restarted.send_signal(signal.SIGTERM)
        restarted.communicate(timeout=120)
    retry = retried()
    assert retry is not None
    assert (retry["status"], retry["attempt"], retry["requestedBy"]) == (
        "completed",
        2,
        "full:erp",
    )
    completed = [r for r in respaldo.records() if r.status.value == "completed"]
    assert [r.id for r in completed] == [retry["resultId"]]


def respaldo_jobs_raw(respaldo: Respaldo) -> list[dict[str, Any]]:
    """The jobs as stored, without the start-up check that fails lapsed ones."""
    from respaldo.catalog import Jobs, open_catalog

    catalog = open_catalog(f"sqlite:///{respaldo.catalog_file}")
    try:
        with catalog.read() as session:
            return [{"id": j.id, "status": j.status.value} for j in Jobs(session).list()]
    finally:
        catalog.close()


def test_serve_stops_on_a_sigterm_that_another_of_its_threads_took(respaldo: Respaldo) -> None:
    # The kernel gives a signal sent to a process to any of its threads. Python runs the
    # handler in the main thread only, and wakes it only if the signal came to it: serve's
    # main thread waited without a timeout and ignored such a SIGTERM for minutes (seen
    # under load, with jobs running). Sent here to one of its other threads on purpose.
    import ctypes

    config = serve_config(respaldo)
    text = config.read_text().replace('full = "*/2 * * * * *"', 'full = "off"')
    config.write_text(text)
    with serving(config) as process:
        listening_port(process)
        others = [int(t.name) for t in Path(f"/proc/{process.pid}/task").iterdir()]
        others.remove(process.pid)  # the main thread's id is the process's
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.tgkill(process.pid, others[0], signal.SIGTERM) == 0, ctypes.get_errno()
        _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert "SIGTERM: stopping" in err


def test_serve_refuses_to_start_on_a_port_in_use(respaldo: Respaldo) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        with serving(serve_config(respaldo, port)) as process:
            _, err = process.communicate(timeout=120)
    assert process.returncode == 1, err
    assert f"respaldo: error: cannot listen on 127.0.0.1:{port}" in err
    assert jobs(respaldo) == []  # nothing was scheduled


def test_kill_9_with_a_request_waiting_for_a_worker_fails_it_as_not_started(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    respaldo.backup()  # what the restore test will test
    config = serve_config(respaldo)
    text = config.read_text().replace('full = "*/2 * * * * *"', 'full = "off"')
    config.write_text(text + "job_workers = 1\n")  # [server] is the last section
    headers = {
        **token(respaldo.settings(), "admin", Role.ADMIN),
        "Content-Type": "application/json",
    }

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(), headers, method="POST"
        )
        with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 (http only)
            assert answer.status == 202
            started: dict[str, Any] = json.loads(answer.read())
            return started

    partitioned_table(pg, respaldo.dbname)
    with pg.connect(respaldo.dbname, autocommit=False) as locker:
        locker.execute("LOCK TABLE ONLY public.bitacora IN ACCESS EXCLUSIVE MODE")
        with serving(config) as process:
            port = listening_port(process)
            backup = post("/admin/backups", {"type": "full", "database": "erp"})
            wait_for("pg_dump to wait for the lock", lambda: pg_dump_waiting(pg, respaldo.dbname))
            # The one worker is busy: the restore test waits, queued, in the service.
            drill = post("/admin/backups/test", {"database": "erp"})
            assert {j["id"]: j["status"] for j in respaldo_jobs_raw(respaldo)}[
                drill["jobId"]
            ] == "queued"
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=60)
        locker.rollback()
    # Anything that opens the catalog next (here: respaldo jobs) fails both.
    found = {j["id"]: j for j in jobs(respaldo)}
    assert (found[drill["jobId"]]["status"], found[drill["jobId"]]["error"]) == (
        "failed",
        f"not started: respaldo serve (pid {process.pid} on {this_host()}) "
        "stopped before running it",
    )
    assert found[backup["jobId"]]["status"] == "failed"
    assert by_status(respaldo, "queued") == []
    assert by_status(respaldo, "running") == []

"""A job whose process is killed (-9) with a SQLite catalog: the running service's sweep
fails it at once (reason, alert), and queues a retry it runs itself when the job is the
service's (a schedule's or the API's) and its kind may be retried (``[queue] retries``);
a service restarted after being killed does the same at its start. A command line's job
and a restore are failed and alerted, never retried.

The lost job runs in a real child process (a real job, its body blocking) killed with
SIGKILL; the catalog and the alert's webhook are real.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from respaldo.catalog import Deliveries
from respaldo.config import Settings
from respaldo.domain import BackupStatus, JobKind, JobStatus
from respaldo.notify import Alert, Event, Level
from respaldo.operations import alert_delivery, alerts, jobs
from respaldo.operations.context import Context
from respaldo.operations.listing import show_backup
from respaldo.operations.repositories import init_repositories
from respaldo.operations.verify import verify
from respaldo.repository import KdfParams
from respaldo.scheduling.service import Service
from tests.lost_jobs import API_CHILD, Runner, kill_once_started, retries_of
from tests.servers.notify import Webhook, mute, webhook  # noqa: F401

pytestmark = pytest.mark.unit

# The child: opens the catalog, runs one job whose body says its id and then blocks.
CHILD = """
import json, sys, threading
from respaldo.config import Settings
from respaldo.domain import JobKind, TriggeredBy
from respaldo.operations import jobs
from respaldo.operations.context import Context
from respaldo.operations.jobs import JobRequest

settings = Settings(**json.loads(sys.argv[1]))
kind, by = JobKind(sys.argv[2]), TriggeredBy(sys.argv[3])
ctx = Context.open(settings)
job = jobs.submit(ctx, JobRequest(kind, "erp", by, "nightly", {"type": "full"}), here=True)

def body(_):
    print(job.id, flush=True)
    threading.Event().wait()

if sys.argv[4] == "hold":  # accepted, held to run later: never started
    body(ctx)
jobs.run(ctx, job.id, body)
"""


# A service started after a job was lost: it queues its retry, held to run, and says the
# retry's id; it is killed before it starts the retry.
SERVE_CHILD = """
import json, sys, threading
from respaldo.config import Settings
from respaldo.operations import jobs
from respaldo.operations.context import Context

ctx = Context.open(Settings(**json.loads(sys.argv[1])), retry_lost=True)
(retry,) = [j for j in jobs.list_jobs(ctx, limit=100) if j.retry_of == int(sys.argv[2])]
print(retry.id, flush=True)
threading.Event().wait()
"""


def _plain(tmp_path: Path) -> dict[str, Any]:
    tree = tmp_path / "tree"
    if not tree.exists():
        tree.mkdir()
        (tree / "a.txt").write_text("a\n")
        (tmp_path / "passphrase").write_text("lost jobs passphrase\n")
        (tmp_path / "passphrase").chmod(0o600)
    return {
        "catalog": {"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        "repositories": [{"name": "local", "url": f"file://{tmp_path / 'repo'}"}],
        "passphrase_file": str(tmp_path / "passphrase"),
        "cache_dir": str(tmp_path / "cache"),
        "file_sets": [{"name": "docs", "paths": [str(tree)]}],
    }


@pytest.fixture
def mute_levels() -> list[str]:
    """The levels the mute target takes: warnings only, so that the lost jobs' own
    (critical) alerts do not go to it (a test that wants them to parametrizes this)."""
    return ["warning"]


@pytest.fixture
def settings(
    tmp_path: Path,
    webhook: Webhook,  # noqa: F811
    mute: socket.socket,  # noqa: F811
    mute_levels: list[str],
) -> Settings:
    hanging = f"json://127.0.0.1:{mute.getsockname()[1]}/"
    targets = [
        {"name": "hook", "url": webhook.url},
        {"name": "mute", "url": hanging, "levels": mute_levels},
    ]
    return Settings(**_plain(tmp_path), notifications={"targets": targets})


def _refused_before(ctx: Context) -> None:
    """A warning the mute target refused earlier, due to be tried again now."""
    alert = Alert(
        Level.WARNING, Event.FAILED, "copy", "here", datetime.now(UTC) - timedelta(hours=1)
    )
    with ctx.catalog.begin() as session:
        Deliveries(session).add(
            created_at=alert.at,
            target="mute",
            level=alert.level.value,
            kind=alert.kind,
            key=None,
            alert=alert_delivery.encode(alert),
        )


def _attempts_to_mute(ctx: Context) -> list[int]:
    """The attempts of each alert pending for the mute target, oldest first."""
    with ctx.catalog.read() as session:
        return [row.attempts for row in Deliveries(session).pending("mute")]


@pytest.fixture
def ctx(settings: Settings) -> Iterator[Context]:
    """The running service's context, opened before the job is lost."""
    with Context.open(settings, create=True) as opened:
        yield opened


def lose_job(tmp_path: Path, kind: str, by: str, *, started: bool = True) -> tuple[int, int]:
    """Run a job of ``kind`` triggered ``by`` in a child process and kill it (-9) while
    the job runs (or, not ``started``, while it holds it queued); the job's id and the
    dead process's pid."""
    how = "run" if started else "hold"
    return kill_once_started(
        [sys.executable, "-c", CHILD, json.dumps(_plain(tmp_path)), kind, by, how]
    )


# The mute target takes the lost job's alert too: the sweep must not wait on it.
@pytest.mark.parametrize("mute_levels", [["warning", "critical"]])
def test_the_running_service_fails_alerts_and_retries_a_job_whose_process_was_killed(
    ctx: Context,
    tmp_path: Path,
    webhook: Webhook,  # noqa: F811
    mute: socket.socket,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _refused_before(ctx)
    lost, pid = lose_job(tmp_path, "backup", "schedule")
    # Nothing notices on its own: the service keeps its catalog open.
    assert jobs.get(ctx, lost).status is JobStatus.RUNNING
    runner = Runner()
    service = Service(ctx, [], runner=runner)
    # The sweep does not wait on the target that hangs: sending again what it refused,
    # and the lost job's own alert, is the resend's, a run of its own (before, the sweep
    # tried them and waited its [notifications] timeout_seconds per target, before it
    # started the retry, and every sweep due meanwhile was skipped).
    service.sweep()
    assert _attempts_to_mute(ctx) == [0, 0]  # the older warning, then the job's alert
    service.join_retries()
    failed = jobs.get(ctx, lost)
    assert failed.status is JobStatus.FAILED
    assert failed.error == f"process {pid} died while the job ran (found at start-up)"
    assert webhook.inbox.items == []  # recorded, not sent: no target is tried
    (retry,) = retries_of(ctx, lost)
    assert (retry.kind, retry.target, retry.params, retry.attempt) == (
        JobKind.BACKUP,
        "erp",
        {"type": "full"},
        2,
    )
    assert retry.requested_by == "nightly" and retry.worker_pid == os.getpid()
    assert runner.ran == [retry.id] and retry.status is JobStatus.COMPLETED
    # Found once: a second sweep neither fails nor retries it again.
    service.sweep()
    service.join_retries()
    assert len(retries_of(ctx, lost)) == 1 and runner.ran == [retry.id]
    # The resend sends the job's alert to the webhook, and tries the refused warning
    # first (the target gone now: refused at once; the job's alert waits behind it), and
    # looks for an older version's undelivered alerts at its first run only.
    mute.close()
    adopted: list[Context] = []

    def adopt(context: Context) -> bool:
        adopted.append(context)
        return True

    monkeypatch.setattr(alerts, "adopt_undelivered", adopt)
    assert [(d.target, d.ok) for d in service.resend()] == [("hook", True), ("mute", False)]
    (alert,) = webhook.inbox.wait(1)
    assert alert["json"]["title"] == "[respaldo] CRITICAL: backup of erp failed"
    assert service.resend() == []  # the warning's next try is not due yet
    assert adopted == [ctx] and _attempts_to_mute(ctx) == [1, 0]


def test_a_lost_backup_started_through_the_api_is_taken_again_by_its_retry(
    ctx: Context, tmp_path: Path
) -> None:
    # The request's record was reserved for the lost job: the sweep fails it with the
    # reason, and the retry takes a backup of its own (a record reserved once cannot be
    # started again) that completes and verifies.
    init_repositories(ctx.settings, KdfParams(1, 1024, 1))
    argv = [sys.executable, "-c", API_CHILD, json.dumps(_plain(tmp_path)), "here"]
    lost, pid = kill_once_started(argv)
    reserved = jobs.get(ctx, lost).result_id
    assert reserved is not None
    service = Service(ctx, [])
    service.sweep()
    service.join_retries()
    old = show_backup(ctx, reserved)
    assert old.status is BackupStatus.FAILED
    assert f"process {pid} died" in (old.error_message or "")
    (retry,) = retries_of(ctx, lost)
    assert retry.status is JobStatus.COMPLETED, retry.error
    assert "reserved" not in retry.params and retry.result_id not in (None, reserved)
    assert retry.result_id is not None
    new = show_backup(ctx, retry.result_id)
    assert new.status is BackupStatus.COMPLETED
    checked = verify(ctx, backup_ids=[new.id])
    assert checked.backups == 1 and checked.problems == []


# The mute target takes the lost job's alert too: the start must not wait on it.
@pytest.mark.parametrize("mute_levels", [["critical"]])
def test_a_service_restarted_after_being_killed_retries_its_lost_job(
    settings: Settings,
    ctx: Context,
    tmp_path: Path,
    webhook: Webhook,  # noqa: F811
    mute: socket.socket,  # noqa: F811
) -> None:
    lost, _ = lose_job(tmp_path, "verify", "api")
    # As serve opens the catalog (and as a worker does, with alerts_later alone).
    with Context.open(settings, retry_lost=True, alerts_later=True) as restarted:
        (retry,) = retries_of(restarted, lost)
        # Held by the restarted service, which runs it: no other process will.
        assert (retry.status, retry.worker_pid) == (JobStatus.QUEUED, os.getpid())
        # The lost job's alert is recorded, not sent: no target was tried (before, the
        # start waited [notifications] timeout_seconds on the one that hangs).
        assert _attempts_to_mute(restarted) == [0] and webhook.inbox.items == []
        runner = Runner()
        service = Service(restarted, [], runner=runner)
        service.sweep()
        assert jobs.get(restarted, lost).status is JobStatus.FAILED
        assert runner.ran == [retry.id]
        # The service's resend sends it (its first run is at the start).
        mute.close()  # gone now: refused at once
        assert [(d.target, d.ok) for d in service.resend()] == [("hook", True), ("mute", False)]
        (alert,) = webhook.inbox.wait(1)
        assert alert["json"]["title"] == "[respaldo] CRITICAL: verify of erp failed"


@pytest.mark.parametrize(("kind", "by"), [("backup", "cli"), ("restore", "api")])
def test_a_command_lines_job_or_a_restore_is_failed_and_alerted_but_not_retried(
    ctx: Context,
    tmp_path: Path,
    webhook: Webhook,  # noqa: F811
    kind: str,
    by: str,
) -> None:
    lost, pid = lose_job(tmp_path, kind, by)
    runner = Runner()
    service = Service(ctx, [], runner=runner)
    service.sweep()
    service.join_retries()
    assert jobs.get(ctx, lost).error == f"process {pid} died while the job ran (found at start-up)"
    service.resend()  # the job's alert, which the sweep recorded
    assert webhook.inbox.wait(1)
    assert retries_of(ctx, lost) == [] and runner.ran == []


def test_a_retry_the_service_held_but_never_started_is_run_by_the_next_service(
    ctx: Context, tmp_path: Path
) -> None:
    # The held retry is the service's own (work that was cut off), not a request whose
    # asker decides: the service that finds it lost runs it again, within the retries.
    lost, _ = lose_job(tmp_path, "backup", "schedule")
    argv = [sys.executable, "-c", SERVE_CHILD, json.dumps(_plain(tmp_path)), str(lost)]
    held, pid = kill_once_started(argv)
    runner = Runner()
    service = Service(ctx, [], runner=runner)
    service.sweep()
    service.join_retries()
    error = jobs.get(ctx, held).error or ""
    assert error.startswith("not started:") and f"pid {pid}" in error
    (again,) = retries_of(ctx, held)
    assert again.attempt == 3 and again.params == {"type": "full"}
    assert runner.ran == [again.id] and again.status is JobStatus.COMPLETED


def test_a_request_the_service_never_started_is_failed_not_run_again(
    ctx: Context, tmp_path: Path
) -> None:
    # Whoever asked decides whether it still stands (docs/service.md): only work that
    # was cut off is retried.
    lost, pid = lose_job(tmp_path, "backup", "api", started=False)
    runner = Runner()
    service = Service(ctx, [], runner=runner)
    service.sweep()
    service.join_retries()
    error = jobs.get(ctx, lost).error or ""
    assert error.startswith("not started:") and f"pid {pid}" in error
    assert retries_of(ctx, lost) == [] and runner.ran == []

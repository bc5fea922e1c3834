"""The queue's rules that need no PostgreSQL: which queue, which retries, and that a
SQLite catalog refuses workers with a clear message."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from respaldo.catalog import Job
from respaldo.config import Settings
from respaldo.domain import JobKind
from respaldo.errors import ConfigError
from respaldo.operations import jobs, queue
from respaldo.operations.context import Context
from respaldo.operations.jobs import cli_request
from respaldo.operations.recurring import RecurringFailure

pytestmark = pytest.mark.unit


def _settings(tmp_path: Path, **extra: Any) -> Settings:
    return Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        databases=[
            {"name": "erp", "dsn": "postgresql://respaldo@127.0.0.1/erp", "queue": "site-a"},
            {"name": "crm", "dsn": "postgresql://respaldo@127.0.0.1/crm"},
        ],
        cache_dir=tmp_path / "cache",
        **extra,
    )


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    with Context.open(_settings(tmp_path), create=True) as context:
        yield context


def test_a_databases_jobs_go_to_its_queue_the_rest_to_the_default(tmp_path: Path) -> None:
    settings = _settings(tmp_path, queue={"default_queue": "central"})
    assert queue.queue_of(settings, JobKind.BACKUP, "erp") == "site-a"
    assert queue.queue_of(settings, JobKind.DRILL, "erp") == "site-a"
    assert queue.queue_of(settings, JobKind.BACKUP, "crm") == "central"
    assert queue.queue_of(settings, JobKind.PRUNE, None) == "central"
    assert queue.queue_of(settings, JobKind.VERIFY, None) == "central"


def test_lost_backups_are_retried_n_times_and_restores_never(tmp_path: Path) -> None:
    settings = _settings(tmp_path, queue={"retries": {"backup": 2}})

    def allowed(kind: JobKind, attempt: int) -> bool:
        return queue.retries_allowed(settings, Job(kind=kind, attempt=attempt))

    assert [allowed(JobKind.BACKUP, n) for n in (1, 2, 3)] == [True, True, False]
    assert allowed(JobKind.RESTORE, 1) is False
    assert allowed(JobKind.PRUNE, 1) is False  # not listed: 0
    assert queue.retries_allowed(_settings(tmp_path), Job(kind=JobKind.RESTORE, attempt=1)) is False


def test_restores_cannot_be_given_automatic_retries(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="restores are never retried automatically"):
        _settings(tmp_path, queue={"retries": {"restore": 1}})


def test_workers_need_a_postgresql_catalog(ctx: Context) -> None:
    assert queue.has_queue(ctx) is False
    with pytest.raises(ConfigError) as caught:
        queue.run_worker(ctx, queue.WorkerOptions())
    assert str(caught.value) == "workers need a PostgreSQL catalog; this one is SQLite"
    assert "docs/scaling.md" in caught.value.hint
    with pytest.raises(ConfigError):
        queue.enqueue(ctx, cli_request(JobKind.BACKUP, "erp"))
    assert jobs.list_jobs(ctx) == []  # nothing recorded


def _said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "respaldo.operations.queue"]


def test_a_workers_failing_sweep_and_heartbeat_are_logged_once_per_cause(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A worker sweeps and beats every lease renewal period: a catalog that stays
    # unreachable must not put a traceback in the log every few seconds.
    causes = [OSError(111, "Connection refused")] * 3

    def recover(context: Context) -> None:
        if causes:
            raise causes.pop(0)

    def beat(context: Context, worker_id: int, *, stopping: bool = False) -> None:
        raise OSError(111, "Connection refused")

    async def settle(context: Context, app: object) -> None:
        return None

    monkeypatch.setattr(queue, "recover", recover)
    monkeypatch.setattr(queue, "_settle_stalled", settle)
    monkeypatch.setattr(queue, "_beat", beat)
    caplog.set_level(logging.INFO, logger="respaldo.operations.queue")
    sweeps = RecurringFailure(queue.log, "could not sweep for lost jobs", "sweeping works again")
    beats = RecurringFailure(queue.log, "could not renew the heartbeat", "renewed again")

    async def passes() -> None:
        for _ in range(4):
            await queue._sweep_once(ctx, cast(Any, None), sweeps)
            await queue._beat_once(ctx, 7, beats)

    # In a thread of its own: asyncio.run refuses a thread where an earlier test's library
    # left an event loop marked running (seen once in CI, in the same pytest worker).
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(passes())
        except BaseException as exc:  # re-raised in the test's thread below
            failure.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    runner.join()
    if failure:
        raise failure[0]
    assert _said(caplog) == [
        "could not sweep for lost jobs (ConnectionRefusedError: [Errno 111] Connection refused)",
        "could not renew the heartbeat (ConnectionRefusedError: [Errno 111] Connection refused)",
        "sweeping works again",
    ]
    assert all(r.exc_info for r in caplog.records if "could not" in r.getMessage())

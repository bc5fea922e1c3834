"""Jobs started by requests: the reserved record of a backup that never started is
failed with the reason; the workers cancel what they run when the service stops; CORS is
off unless origins are configured."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from respaldo.api import create_app
from respaldo.cancellation import CancelToken
from respaldo.config import Settings
from respaldo.domain import BackupKind, JobKind, JobStatus, TriggeredBy
from respaldo.errors import InvalidTransition, JobCancelled
from respaldo.operations import jobs
from respaldo.operations.context import Context
from respaldo.operations.listing import show_backup
from respaldo.operations.recorded import reserve_record
from respaldo.operations.scheduled import run_queued
from respaldo.operations.workers import Workers


def _reserved_job(context: Context) -> tuple[str, int]:
    record = reserve_record(
        context,
        kind=BackupKind.FILES,
        source="docs",
        retention_days=7,
        triggered_by=TriggeredBy.API,
    )
    request = jobs.JobRequest(
        JobKind.BACKUP, "docs", TriggeredBy.API, "ana", {"type": "files", "reserved": record.id}
    )
    return record.id, jobs.submit(context, request, result_id=record.id).id


@pytest.fixture
def with_files(settings: Settings, tmp_path: Path) -> Settings:
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "a.txt").write_text("a\n")
    return settings.model_copy(
        update={
            "file_sets": Settings(
                file_sets=[{"name": "docs", "paths": [str(tmp_path / "tree")]}]
            ).file_sets
        }
    )


def test_a_reserved_record_whose_job_was_cancelled_before_it_ran_is_failed(
    with_files: Settings, context: Context
) -> None:
    context.settings = with_files
    backup_id, job_id = _reserved_job(context)
    assert show_backup(context, backup_id).status.value == "pending"
    jobs.cancel(context, job_id)
    with pytest.raises(InvalidTransition):
        run_queued(context, job_id)
    record = show_backup(context, backup_id)
    assert record.status.value == "failed"
    assert "cancelled" in (record.error_message or "")


def test_a_reserved_record_is_taken_by_its_job(with_files: Settings, context: Context) -> None:
    context.settings = with_files
    backup_id, job_id = _reserved_job(context)
    run_queued(context, job_id)
    assert show_backup(context, backup_id).status.value == "completed"
    assert jobs.get(context, job_id).result_id == backup_id


def test_stopping_the_workers_cancels_what_runs_and_what_comes_after(
    with_files: Settings, context: Context
) -> None:
    context.settings = with_files
    inside = threading.Event()

    def blocked(ctx: Context, job_id: int, token: CancelToken) -> None:
        def body(_: Context) -> None:
            inside.set()
            while not token.wait(60):
                pass
            token.check()

        jobs.run(ctx, job_id, body, token=token)

    workers = Workers(context, runner=blocked)
    first = jobs.submit(context, jobs.JobRequest(JobKind.PRUNE, None, TriggeredBy.API, "ana"))
    workers.start(first.id)
    assert inside.wait(60)
    workers.stop("respaldo serve stopped (SIGTERM)")
    assert jobs.get(context, first.id).status is JobStatus.CANCELLED
    backup_id, late = _reserved_job(context)
    real = Workers(context)
    real.stop("stopped")
    with pytest.raises(JobCancelled):
        real.start(late)
    assert jobs.get(context, late).status is JobStatus.CANCELLED
    assert show_backup(context, backup_id).status.value == "failed"


def test_cors_is_off_by_default_and_allows_only_the_configured_origins(
    settings: Settings, context: Context
) -> None:
    preflight = {
        "Origin": "https://erp.example.com",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    with TestClient(create_app(settings, context)) as client:
        off = client.options("/admin/backups", headers=preflight)
    assert "access-control-allow-origin" not in off.headers
    allowed = settings.model_copy(
        update={
            "server": settings.server.model_copy(update={"cors_origins": [preflight["Origin"]]})
        }
    )
    with TestClient(create_app(allowed, context)) as client:
        on = client.options("/admin/backups", headers=preflight)
        other = client.options(
            "/admin/backups", headers={**preflight, "Origin": "https://evil.example"}
        )
        listed = client.get("/admin/backups", headers={"Origin": preflight["Origin"]})
    assert on.status_code == 200
    assert on.headers["access-control-allow-origin"] == "https://erp.example.com"
    assert "access-control-allow-origin" not in other.headers
    assert listed.status_code == 401  # CORS does not bypass authentication
    assert listed.headers["access-control-allow-origin"] == "https://erp.example.com"
    assert "X-Total-Count" in listed.headers["access-control-expose-headers"]


def test_cors_origins_must_be_origins() -> None:
    with pytest.raises(ValueError, match="scheme://host"):
        Settings(server={"cors_origins": ["erp.example.com/app"]})
    with pytest.raises(ValueError, match="go together"):
        Settings(server={"tls_certificate": "/etc/respaldo/cert.pem"})

"""The record of a backup run as a job: it names its job, and a cancelled backup's record
says it was cancelled, whichever error the cancellation surfaced as."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from respaldo import cancellation
from respaldo.catalog import BackupRecords
from respaldo.domain import BackupKind, JobKind, JobStatus, TriggeredBy
from respaldo.errors import ConnectionFailed, JobCancelled, PostgresError, RespaldoError
from respaldo.operations import jobs
from respaldo.operations.context import Context
from respaldo.operations.jobs import JobRequest
from respaldo.operations.recorded import BackupResult, recorded_backup
from respaldo.operations.snapshot import backup_source
from respaldo.repository import Manifest, Repository, WriteStats
from tests.unit.operations.support import Installation

pytestmark = pytest.mark.unit

REQUEST = JobRequest(JobKind.BACKUP, "erp", TriggeredBy.CLI, "ana", {"type": "full"})


@pytest.fixture
def inst(tmp_path: Path) -> Iterator[Installation]:
    installation = Installation.create(tmp_path)
    yield installation
    installation.close()


def _backup(ctx: Context, body: object) -> BackupResult:
    return recorded_backup(
        ctx,
        kind=BackupKind.FULL,
        source="erp",
        retention_days=7,
        triggered_by=TriggeredBy.CLI,
        pinned=False,
        body=body,  # type: ignore[arg-type]
    )


def test_a_cancelled_backup_records_the_cancellation_not_the_killed_child(
    inst: Installation,
) -> None:
    """Cancelling kills the child (pg_dump, pg_basebackup): what surfaces in the body may
    be the child's death, not JobCancelled. The record says why it ended all the same."""

    def body(
        repo: Repository, backup_id: str, started_at: datetime, heartbeat: object
    ) -> tuple[Manifest, WriteStats]:
        token = cancellation.current()
        assert token is not None
        token.cancel("cancelled by request")  # as the lease thread does
        raise PostgresError("pg_basebackup", -9, "")  # what reading the killed child gives

    job = jobs.submit(inst.ctx, REQUEST)
    with pytest.raises(JobCancelled):
        jobs.run(inst.ctx, job.id, lambda ctx: _backup(ctx, body))
    done = jobs.get(inst.ctx, job.id)
    assert (done.status, done.error) == (JobStatus.CANCELLED, "cancelled by request")
    assert done.result_id is not None
    record = inst.ctx.record(done.result_id)
    assert record.status.value == "failed"
    assert record.error_message == "cancelled: cancelled by request"
    assert record.job_id == job.id


def test_a_backup_whose_repository_does_not_open_is_a_failed_backup_with_the_reason(
    inst: Installation,
) -> None:
    """A primary repository that does not open (S3 down, a disk not mounted) fails the
    backup before it writes anything: it is a failed backup all the same, so that status
    turns amber, the failure counter moves and the page lists it, as for any other."""
    (inst.root / "repo").rename(inst.root / "unmounted")

    def body(*_: object) -> tuple[Manifest, WriteStats]:
        raise AssertionError("the body runs only once the repository is open")

    with inst.context() as ctx:
        job = jobs.submit(ctx, REQUEST)
        with pytest.raises(RespaldoError) as raised:
            jobs.run(ctx, job.id, lambda job_ctx: _backup(job_ctx, body))
        done = jobs.get(ctx, job.id)
        assert done.status is JobStatus.FAILED
        assert done.result_id is not None
        record = ctx.record(done.result_id)
    assert record.status.value == "failed"
    assert record.error_message == str(raised.value)
    assert record.job_id == job.id


@pytest.mark.parametrize("kind", [BackupKind.FULL, BackupKind.INCREMENTAL])
def test_a_backup_of_a_server_that_does_not_answer_is_a_failed_backup(
    inst: Installation, kind: BackupKind
) -> None:
    """Logical or physical, a backup whose server is down is a failed backup record
    (the physical one connected before it made its record, and left none)."""
    with inst.context() as ctx:
        with pytest.raises(ConnectionFailed) as raised:
            backup_source(ctx, "erp", kind)
        with ctx.catalog.read() as session:
            records = BackupRecords(session).list(database="erp", kind=kind)
    assert [(r.status.value, r.error_message) for r in records] == [("failed", str(raised.value))]

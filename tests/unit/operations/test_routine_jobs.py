"""A schedule that runs every few minutes (``wal_copy``) keeps the job rows that say
something: its newest run and its failures, not one completed row every 5 minutes (288 a
day, which pushed every backup and restore off the page's and ``respaldo jobs``' list).
The repositories and the catalog are real."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from respaldo.domain import JobKind, JobStatus
from respaldo.operations import jobs
from respaldo.operations.metrics import render_metrics
from respaldo.repository.wal import ClusterRecord, put_wal, write_cluster
from respaldo.scheduling.service import Service
from tests.unit.operations.support import NOW, Installation

pytestmark = pytest.mark.unit


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Installation]:
    installation = Installation.create(tmp_path)
    try:
        repo = installation.repository()
        write_cluster(repo, ClusterRecord("erp", "7312345678901234567", NOW, "wal-push"))
        put_wal(repo, "7312345678901234567", "00000001", "000000010000000000000001", b"wal")
        yield installation
    finally:
        installation.close()


def _wal_copies(setup: Installation) -> list[jobs.JobInfo]:
    return [j for j in jobs.list_jobs(setup.ctx, limit=500) if j.kind is JobKind.WAL_COPY]


def test_a_wal_copy_keeps_its_newest_run_and_its_failures(
    setup: Installation, tmp_path: Path
) -> None:
    service = Service.create(setup.ctx)
    entry = next(e for e in service.schedule if e.name == "wal_copy")
    for _ in range(3):
        service.fire(entry)
    (kept,) = _wal_copies(setup)
    assert kept.status is JobStatus.COMPLETED

    mirror = tmp_path / "second"
    aside = mirror.with_name("second.aside")
    mirror.rename(aside)
    mirror.write_text("not a repository")
    try:
        service.fire(entry)
        service.fire(entry)
    finally:
        mirror.unlink()
        aside.rename(mirror)
    service.fire(entry)
    statuses = [j.status for j in _wal_copies(setup)]  # newest first
    assert statuses == [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.FAILED], statuses
    assert jobs.last_of_schedule(setup.ctx, "wal_copy", datetime.now(UTC)) == _wal_copies(setup)[0]


def test_a_mirror_down_for_long_leaves_an_hour_of_failed_wal_copies(
    setup: Installation, tmp_path: Path
) -> None:
    service = Service.create(setup.ctx)
    entry = next(e for e in service.schedule if e.name == "wal_copy")
    mirror = tmp_path / "second"
    mirror.rename(mirror.with_name("second.aside"))
    mirror.write_text("not a repository")
    for _ in range(jobs.ROUTINE_FAILURES_KEPT + 3):
        service.fire(entry)
    statuses = [j.status for j in _wal_copies(setup)]
    # The newest run and the twelve failures before it.
    assert statuses == [JobStatus.FAILED] * (jobs.ROUTINE_FAILURES_KEPT + 1), statuses


def test_the_job_counters_keep_counting_the_wal_copies_forgotten(setup: Installation) -> None:
    # /metrics' respaldo_jobs is a counter: a rate over it must not see a reset each time
    # a wal_copy forgets its earlier runs.
    service = Service.create(setup.ctx)
    entry = next(e for e in service.schedule if e.name == "wal_copy")
    for _ in range(3):
        service.fire(entry)
    assert len(_wal_copies(setup)) == 1
    text = render_metrics(setup.ctx).decode()
    assert 'respaldo_jobs_total{kind="wal_copy",status="completed"} 3.0' in text, text

"""The jobs table does not grow for ever: a prune forgets the jobs that ended more than
``[jobs] keep_days`` ago, but never what the service and the metrics still need (the
newest run of each schedule: the service's missed runs are counted from it; the prunes'
outcomes: the reclaimed-bytes counter sums them), and the job counters of ``/metrics``
never go down when rows are forgotten. The repository and the catalog are real."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from respaldo.catalog import Jobs
from respaldo.domain import JobKind, JobStatus, TriggeredBy
from respaldo.operations import jobs
from respaldo.operations.metrics import render_metrics
from respaldo.operations.prune_report import prune_backups
from tests.unit.operations.support import Installation

# Histories of many backups: written without flushing each to the disk (conftest.py).
pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("no_disk_sync")]

KEEP_DAYS = 30


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Installation]:
    installation = Installation.create(
        tmp_path, secondary=False, extra=f"[jobs]\nkeep_days = {KEEP_DAYS}\n"
    )
    try:
        yield installation
    finally:
        installation.close()


def ended(
    setup: Installation,
    age: timedelta,
    kind: JobKind,
    status: JobStatus,
    *,
    schedule: str | None = None,
    outcome: dict[str, object] | None = None,
) -> int:
    """A job of ``kind`` that ended ``status`` ``age`` ago; its id."""
    when = datetime.now(UTC) - age
    with setup.ctx.catalog.begin() as session:
        rows = Jobs(session)
        job = rows.submit(
            kind,
            target="erp",
            triggered_by=TriggeredBy.SCHEDULE if schedule else TriggeredBy.CLI,
            requested_by=schedule or "ana",
            now=when - timedelta(minutes=5),
        )
        if status is not JobStatus.SKIPPED:
            rows.start(job.id, pid=1, now=when - timedelta(minutes=4))
        rows.finish(job.id, status, outcome=outcome, now=when)
        return job.id


def job_metrics(setup: Installation) -> dict[str, float]:
    text = render_metrics(setup.ctx).decode()
    found = re.findall(r"^(respaldo_jobs\{[^}]*\}|respaldo_job_last_success\S*) (\S+)$", text, re.M)
    return {name: float(value) for name, value in found}


def test_prune_forgets_jobs_older_than_keep_days_but_not_what_is_still_needed(
    setup: Installation,
) -> None:
    old, recent = timedelta(days=KEEP_DAYS + 10), timedelta(days=KEEP_DAYS - 10)
    gone = [
        ended(setup, old, JobKind.BACKUP, JobStatus.COMPLETED),
        ended(setup, old, JobKind.DRILL, JobStatus.FAILED),
        ended(setup, old, JobKind.RESTORE, JobStatus.CANCELLED),
        ended(
            setup, old + timedelta(days=1), JobKind.BACKUP, JobStatus.COMPLETED, schedule="full:erp"
        ),
        ended(setup, old, JobKind.BACKUP, JobStatus.SKIPPED, schedule="full:erp"),
    ]
    kept = [
        # The newest run of a schedule that has not run since: serve counts its missed
        # runs from it.
        ended(setup, old, JobKind.VERIFY, JobStatus.COMPLETED, schedule="verify"),
        # A prune's outcome: the reclaimed-bytes counter is their sum.
        ended(
            setup,
            old,
            JobKind.PRUNE,
            JobStatus.COMPLETED,
            outcome={"bytes_reclaimed": {"local": 7}},
        ),
        ended(setup, recent, JobKind.BACKUP, JobStatus.FAILED),
        ended(setup, recent, JobKind.BACKUP, JobStatus.COMPLETED, schedule="full:erp"),
    ]
    with setup.ctx.catalog.begin() as session:
        waiting = Jobs(session).submit(
            JobKind.BACKUP, target="crm", triggered_by=TriggeredBy.CLI, requested_by="ana",
            now=datetime.now(UTC) - timedelta(days=KEEP_DAYS + 10),
        ).id  # fmt: skip
    before = job_metrics(setup)

    report = prune_backups(setup.ctx)
    assert report.ok

    left = {j.id for j in jobs.list_jobs(setup.ctx, limit=1000)}
    assert left.isdisjoint(gone), left
    assert set(kept) | {waiting} <= left
    assert jobs.last_of_schedule(setup.ctx, "verify", datetime.now(UTC)) is not None
    # The counters of the jobs that ended are the same (the prune's own job aside: it
    # ran outside any job here), and so is each kind's last success.
    assert job_metrics(setup) == before


def test_keep_days_zero_keeps_every_job(tmp_path: Path) -> None:
    setup = Installation.create(tmp_path, secondary=False, extra="[jobs]\nkeep_days = 0\n")
    try:
        first = ended(setup, timedelta(days=3650), JobKind.BACKUP, JobStatus.COMPLETED)
        assert prune_backups(setup.ctx).ok
        assert [j.id for j in jobs.list_jobs(setup.ctx)] == [first]
    finally:
        setup.close()


def test_dry_run_forgets_nothing(setup: Installation) -> None:
    first = ended(setup, timedelta(days=KEEP_DAYS + 10), JobKind.BACKUP, JobStatus.COMPLETED)
    assert prune_backups(setup.ctx, dry_run=True).ok
    assert [j.id for j in jobs.list_jobs(setup.ctx)] == [first]

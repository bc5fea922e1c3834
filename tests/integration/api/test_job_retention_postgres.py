"""Job retention on a PostgreSQL catalog: the jobs forgotten are counted in
``job_tallies`` (an upsert of PostgreSQL's dialect), so the job counters never go down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from respaldo.catalog import Jobs, read_figures
from respaldo.config import Settings
from respaldo.domain import JobKind, JobStatus, TriggeredBy
from respaldo.operations import jobs
from respaldo.operations.context import Context
from tests.integration.api.conftest import CatalogRole

pytestmark = pytest.mark.integration


def test_forgotten_jobs_keep_their_counts_and_last_success(
    catalog_role: CatalogRole, tmp_path: Path
) -> None:
    settings = Settings(
        catalog={"url": catalog_role.url}, jobs={"keep_days": 30}, cache_dir=tmp_path / "cache"
    )
    now = datetime.now(UTC)
    with Context.open(settings, create=True) as ctx:
        ok, failed = JobStatus.COMPLETED, JobStatus.FAILED
        ended = [(50, ok), (40, ok), (45, failed), (1, failed), (60, ok)]
        for age, status in ended[:4]:
            _ended(ctx, now - timedelta(days=age), status)
        assert jobs.forget_old(ctx, now) == 3
        assert jobs.forget_old(ctx, now) == 0
        # A second forgetting adds to the tallies (the upsert's update).
        _ended(ctx, now - timedelta(days=ended[4][0]), ended[4][1])
        with ctx.catalog.read() as session:
            before = read_figures(session)
        assert jobs.forget_old(ctx, now) == 1
        with ctx.catalog.read() as session:
            after = read_figures(session)
        assert len(jobs.list_jobs(ctx)) == 1
    assert after.jobs == before.jobs
    assert after.jobs == {
        (JobKind.BACKUP, JobStatus.COMPLETED): 3,
        (JobKind.BACKUP, JobStatus.FAILED): 2,
    }
    # The newest success was forgotten: its time is still known (an older one forgotten
    # later does not replace it).
    assert after.job_last_success_at == before.job_last_success_at
    assert after.job_last_success_at[JobKind.BACKUP] == now - timedelta(days=40)


def _ended(ctx: Context, when: datetime, status: JobStatus) -> None:
    with ctx.catalog.begin() as session:
        rows = Jobs(session)
        job = rows.submit(
            JobKind.BACKUP,
            target="erp",
            triggered_by=TriggeredBy.CLI,
            requested_by="ana",
            now=when - timedelta(minutes=5),
        )
        rows.start(job.id, pid=1, now=when - timedelta(minutes=4))
        rows.finish(job.id, status, now=when)

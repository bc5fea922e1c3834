"""Jobs written by a newer respaldo (a kind this version does not know) in a shared
catalog: during a rolling upgrade of a fleet the new ``serve`` queues them while older
workers and commands still run, and after a downgrade they stay in the table. This
version leaves them alone: it opens the catalog, sweeps, lists its jobs and serves its
metrics around them, and says plainly what it cannot read. The catalog is real."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from respaldo.domain import JobKind
from respaldo.errors import CatalogError
from respaldo.operations import jobs, reconcile
from respaldo.operations.metrics import render_metrics
from tests.unit.operations.support import Installation

pytestmark = pytest.mark.unit


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Installation]:
    installation = Installation.create(tmp_path, secondary=False)
    try:
        yield installation
    finally:
        installation.close()


def newer_job(setup: Installation, status: str) -> int:
    """A row as a newer respaldo writes it: a kind unknown here, running on another host."""
    now = datetime.now(UTC)
    with setup.ctx.catalog.begin() as session:
        row = session.execute(
            sa.text(
                "INSERT INTO jobs (kind, status, triggered_by, requested_by, created_at, "
                "started_at, heartbeat_at, worker_pid, worker_host, cancel_requested, attempt) "
                "VALUES ('frobnicate', :status, 'schedule', 'frobnicate', :now, :now, :now, "
                "1, 'newer-host', false, 1) RETURNING id"
            ),
            {"status": status, "now": now},
        )
        return int(row.scalar_one())


def test_this_version_works_around_jobs_of_a_kind_it_does_not_know(
    setup: Installation,
) -> None:
    jobs.run_now(setup.ctx, jobs.cli_request(JobKind.VERIFY, None), lambda _: None)
    running = newer_job(setup, "running")
    newer_job(setup, "completed")

    with setup.context() as opened:  # every command's start sweeps the jobs
        assert reconcile.sweep_here(opened) == []
        listed = jobs.list_jobs(opened)
        assert [j.kind for j in listed] == [JobKind.VERIFY]
        assert b'respaldo_jobs_total{kind="verify",status="completed"} 1.0' in render_metrics(
            opened
        )
        with pytest.raises(CatalogError, match="newer respaldo") as caught:
            jobs.get(opened, running)
        assert caught.value.hint is not None and "upgrade" in caught.value.hint


def test_retention_of_old_jobs_leaves_a_newer_versions_jobs_alone(setup: Installation) -> None:
    """The prune's forgetting of jobs older than [jobs] keep_days read back each row it
    deleted, a newer respaldo's too: LookupError, which failed every prune of this
    version once such a job was that old. They are the newer version's to forget."""
    # Two runs of the newer version's schedule: the older is not its newest run.
    newer = [newer_job(setup, "completed"), newer_job(setup, "completed")]
    jobs.run_now(setup.ctx, jobs.cli_request(JobKind.VERIFY, None), lambda _: None)
    later = datetime.now(UTC) + timedelta(days=setup.ctx.settings.jobs.keep_days + 1)
    assert jobs.forget_old(setup.ctx, later) == 1  # this version's verify
    assert jobs.list_jobs(setup.ctx) == []
    with setup.ctx.catalog.begin() as session:
        left = session.execute(sa.text("SELECT id FROM jobs ORDER BY id")).scalars().all()
    assert left == newer

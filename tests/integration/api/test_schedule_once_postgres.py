"""A schedule's firings on a PostgreSQL catalog (``queue.submit_scheduled``, what every
``serve`` of the catalog calls): one run of a schedule is queued at a time, however many
``serve`` fire it at once and however many firings were skipped behind it.

The catalog is one database of the test cluster for the module; each test fires a
schedule of its own. With a SQLite catalog the service runs its jobs itself and checks
its own running ones (tests/unit/scheduling/test_service.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from psycopg import sql
from sample.cluster import TempCluster

from respaldo.config import Settings
from respaldo.domain import JobKind, JobStatus, TriggeredBy
from respaldo.operations import queue
from respaldo.operations.context import Context
from respaldo.operations.jobs import JobRequest

pytestmark = pytest.mark.integration

START = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def catalog(pg: TempCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The catalog database's name (created and migrated once for the module)."""
    name = f"fire_{uuid.uuid4().hex[:10]}"
    pg.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    secret = pg.password.get_secret_value()
    url = f"postgresql://{pg.superuser}:{secret}@{pg.host}:{pg.port}/{name}"
    cache = tmp_path_factory.mktemp("fire") / "cache"
    with Context.open(Settings(catalog={"url": url}, cache_dir=cache), create=True):
        pass
    yield url
    pg.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def ctx(catalog: str, tmp_path: Path) -> Iterator[Context]:
    with Context.open(Settings(catalog={"url": catalog}, cache_dir=tmp_path / "cache")) as opened:
        assert queue.has_queue(opened)
        yield opened


def request(schedule: str) -> JobRequest:
    return JobRequest(JobKind.VERIFY, None, TriggeredBy.SCHEDULE, schedule, {"slices": 7})


def test_a_run_still_queued_after_many_skipped_firings_is_not_queued_again(
    ctx: Context,
) -> None:
    # No worker takes the first run: each later firing is skipped behind it. Before, a
    # firing looked for the unfinished run among the schedule's five newest jobs only,
    # so the sixth found just skipped ones and queued a second run beside the first.
    schedule = "verify"
    fired = [
        queue.submit_scheduled(ctx, request(schedule), START + timedelta(seconds=n))
        for n in range(7)
    ]
    assert None not in fired
    statuses = [job.status for job in fired if job is not None]
    assert statuses == [JobStatus.QUEUED] + [JobStatus.SKIPPED] * 6, statuses

"""A schedule's firings on a PostgreSQL catalog (``queue.submit_scheduled``, what every
``serve`` of the catalog calls): one run of a schedule is queued at a time, however many
``serve`` fire it at once and however many firings were skipped behind it.

The catalog is one database of the test cluster for the module; each test fires a
schedule of its own. With a SQLite catalog the service runs its jobs itself and checks
its own running ones (tests/unit/scheduling/test_service.py).
"""

from __future__ import annotations

import threading
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
from respaldo.operations.jobs import JobInfo, JobRequest
from tests.waiting import wait_for

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


def test_two_serves_firing_different_times_at_once_queue_one_run(
    ctx: Context, pg: TempCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One serve's scheduler is late by an interval: it fires 03:00 while the other fires
    # 03:01, at the same moment. The first is held inside its transaction after it
    # looked for an unfinished run (none) and before it commits its queued job; the
    # second then fires. Before, the second could not see the first's uncommitted job
    # (READ COMMITTED), found none either, and both were queued: two runs at once.
    # Now the second waits for the first's commit (the schedule's lock), then skips.
    schedule = "full:erp"
    held, go = threading.Event(), threading.Event()
    defer = queue._defer
    answers: dict[str, JobInfo | BaseException | None] = {}

    def deferring(context: Context, session: object, job: object) -> None:
        if threading.current_thread().name == "first":
            held.set()
            go.wait(timeout=300)
        defer(context, session, job)  # type: ignore[arg-type]

    monkeypatch.setattr(queue, "_defer", deferring)

    def fire(at: datetime) -> None:
        try:
            answers[threading.current_thread().name] = queue.submit_scheduled(
                ctx, request(schedule), at
            )
        except BaseException as exc:  # shown by the assertion below
            answers[threading.current_thread().name] = exc

    first = threading.Thread(target=fire, args=(START,), name="first")
    second = threading.Thread(target=fire, args=(START + timedelta(minutes=1),), name="second")
    first.start()
    try:
        wait_for("the first firing held before its commit", held.is_set)
        second.start()
        database = ctx.catalog.engine.url.database

        def waiting_on_a_lock() -> bool:
            found = pg.scalar(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = %s AND wait_event_type = 'Lock'",
                [database],
            )
            return bool(found)

        # Either the second ended (it did not wait for the first) or it waits for it.
        wait_for("the second firing", lambda: not second.is_alive() or waiting_on_a_lock())
    finally:
        go.set()
        first.join()
        second.join()
    assert isinstance(answers["first"], JobInfo), answers
    assert isinstance(answers["second"], JobInfo), answers
    assert answers["first"].status is JobStatus.QUEUED, answers
    assert answers["second"].status is JobStatus.SKIPPED, answers
    assert answers["second"].error == f"the previous run (job {answers['first'].id}) still runs"


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

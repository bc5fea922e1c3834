"""A running job's progress as the page shows it: bytes, rate and time left."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from respaldo.domain import JobKind, JobStatus, TriggeredBy
from respaldo.operations.jobs import JobInfo
from respaldo.web.pages import progress_of

pytestmark = pytest.mark.unit


def _job(**changes: Any) -> JobInfo:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "id": 7,
        "kind": JobKind.BACKUP,
        "target": "erp",
        "params": {},
        "status": JobStatus.RUNNING,
        "triggered_by": TriggeredBy.API,
        "requested_by": "ana",
        "created_at": now - timedelta(seconds=20),
        "started_at": now - timedelta(seconds=10),
        "finished_at": None,
        "heartbeat_at": now,
        "worker_pid": 1,
        "worker_host": "h",
        "cancel_requested": False,
        "progress_done": 100 * 1024 * 1024,
        "progress_total": 400 * 1024 * 1024,
        "error": None,
        "result_id": None,
    }
    values.update(changes)
    fields = set(JobInfo.model_fields)
    return JobInfo(**{k: v for k, v in values.items() if k in fields})


def test_a_running_job_has_a_rate_and_a_time_left() -> None:
    progress = progress_of(_job())
    assert progress is not None
    assert progress.done == 100 * 1024 * 1024
    assert progress.rate is not None
    assert progress.rate == pytest.approx(10 * 1024 * 1024, rel=0.2)
    assert progress.left == pytest.approx(30, rel=0.2)


def test_no_total_means_no_time_left_and_no_progress_means_nothing() -> None:
    unknown = progress_of(_job(progress_total=None))
    assert unknown is not None
    assert unknown.left is None
    assert unknown.rate is not None
    assert progress_of(_job(progress_done=None)) is None


def test_a_finished_job_has_no_rate() -> None:
    done = progress_of(_job(status=JobStatus.COMPLETED))
    assert done is not None
    assert (done.rate, done.left) == (None, None)


def test_the_rate_is_judged_by_the_catalogs_clock_alone() -> None:
    # The catalog's clock is an hour behind this machine's: the rate is the progress over
    # the time between its start and its last renewal, both by that clock.
    behind = datetime.now(UTC) - timedelta(hours=1)
    progress = progress_of(_job(started_at=behind - timedelta(seconds=10), heartbeat_at=behind))
    assert progress is not None
    assert progress.rate == pytest.approx(10 * 1024 * 1024)
    assert progress.left == pytest.approx(30)

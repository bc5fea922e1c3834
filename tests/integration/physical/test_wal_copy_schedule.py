"""The ``wal_copy`` schedule: archived WAL reaches the mirror every few minutes, not
only with the copy after a backup.

Real parts: an archiving cluster, its primary repository and a second local repository
as the mirror, the service's own firing of the schedule (``Service.fire``, as APScheduler
calls it) and the job it runs from its catalog row.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from respaldo.domain import JobKind, JobStatus
from respaldo.errors import ObjectNotFound
from respaldo.operations import jobs
from respaldo.operations.context import Context
from respaldo.operations.status import compute_status
from respaldo.operations.wal import open_wal_repository
from respaldo.repository.wal import read_cluster, wal_object
from respaldo.scheduling.service import Service
from tests.integration.physical.conftest import Archiving

pytestmark = pytest.mark.integration


def _copies(ctx: Context) -> list[jobs.JobInfo]:
    """The WAL copy jobs, newest first."""
    return [j for j in jobs.list_jobs(ctx) if j.kind is JobKind.WAL_COPY]


def _walcopy(ctx: Context, now: datetime) -> tuple[str, str]:
    """The level of ``walcopy:erp:offsite`` at ``now``, and the segment it names."""
    report = compute_status(ctx, now)
    (item,) = [i for i in report.items if i.key == "walcopy:erp:offsite"]
    segment = re.search(r"[0-9A-F]{24}", item.reason)
    assert segment is not None, item.reason
    return item.level, segment.group()


def _held(archiving: Archiving, repository: str | None, segment: str) -> bool:
    settings = archiving.settings()
    primary = open_wal_repository(settings)
    try:
        record = read_cluster(primary, "erp")
    finally:
        primary.close()
    assert record is not None
    repo = open_wal_repository(settings, repository)
    try:
        repo.storage.stat(wal_object(record.system_identifier, segment[:8], segment))
    except ObjectNotFound:
        return False
    finally:
        repo.close()
    return True


def test_the_wal_copy_schedule_brings_the_mirror_up_to_date_and_catches_up_after_a_failure(
    mirrored: Archiving,
) -> None:
    archiving = mirrored
    ctx = Context.open(archiving.settings())
    service = Service.create(ctx)
    entry = next(e for e in service.schedule if e.name == "wal_copy")
    assert entry.kind is JobKind.WAL_COPY

    first = archiving.switch_and_archive()
    assert _held(archiving, None, first) and not _held(archiving, "offsite", first)
    # What the server says it archived, looked for in the mirror: behind since then.
    later = datetime.now(UTC) + timedelta(minutes=31)
    assert _walcopy(ctx, later) == ("red", first)
    service.fire(entry)
    assert _walcopy(ctx, later) == ("green", first)
    (done,) = _copies(ctx)
    assert done.status is JobStatus.COMPLETED, done.error
    assert _held(archiving, "offsite", first)

    # The mirror is unreachable: the job fails and says where; the primary keeps its WAL.
    offsite = archiving.base / "offsite"
    away = offsite.rename(archiving.base / "offsite-away")
    offsite.write_text("not a repository")  # a mount gone wrong: nothing can be written
    second = archiving.switch_and_archive()
    service.fire(entry)
    failed = next(j for j in _copies(ctx) if j.id != done.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and "offsite" in failed.error
    assert _held(archiving, None, first) and _held(archiving, None, second)

    # Back: the next run copies what the failed one could not.
    offsite.unlink()
    away.rename(offsite)
    service.fire(entry)
    # The earlier run that ended well is forgotten (one every 5 minutes); the failure stays.
    assert [j.status for j in _copies(ctx)] == [JobStatus.COMPLETED, JobStatus.FAILED]
    assert _held(archiving, "offsite", second)

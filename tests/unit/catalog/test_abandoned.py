"""Finding abandoned records without changing them, sparing some when failing them, and
records and drill runs that follow the job they run in."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from respaldo.catalog import BackupRecords, Catalog, DrillRuns, Jobs
from respaldo.domain import BackupKind, BackupStatus, DrillStatus, JobKind, JobStatus, TriggeredBy

from .support import T0

pytestmark = pytest.mark.unit

HOST = "test-host"
DEAD = 4242


def _is_alive(pid: int) -> bool:
    return pid != DEAD


def _started(records: BackupRecords, pid: int) -> str:
    record = records.create_pending(
        kind=BackupKind.FULL,
        repository="local",
        triggered_by=TriggeredBy.CLI,
        retention_days=7,
        database_name="erp",
        now=T0,
    )
    records.start(record.id, pid, host=HOST, now=T0)
    return record.id


def test_abandoned_finds_without_changing(catalog: Catalog) -> None:
    with catalog.begin() as session:
        records = BackupRecords(session)
        gone = _started(records, DEAD)
        alive = _started(records, 1)
    with catalog.begin() as session:
        found = BackupRecords(session).abandoned(host=HOST, is_alive=_is_alive)
        assert [(r.id, reason) for r, reason in found] == [
            (gone, f"process {DEAD} died during the backup (found at start-up)")
        ]
    with catalog.begin() as session:
        records = BackupRecords(session)
        assert records.get(gone).status is BackupStatus.IN_PROGRESS
        assert records.get(alive).status is BackupStatus.IN_PROGRESS


def test_fail_abandoned_spares_what_it_is_told_to(catalog: Catalog) -> None:
    with catalog.begin() as session:
        records = BackupRecords(session)
        spared = _started(records, DEAD)
        failed = _started(records, DEAD)
    with catalog.begin() as session:
        done = BackupRecords(session).fail_abandoned(
            T0 + timedelta(minutes=1), host=HOST, is_alive=_is_alive, spare=[spared]
        )
        assert [r.id for r in done] == [failed]
    with catalog.begin() as session:
        records = BackupRecords(session)
        assert records.get(spared).status is BackupStatus.IN_PROGRESS
        assert records.get(failed).status is BackupStatus.FAILED


# -- records and drill runs follow their job ---------------------------------------------


def _job(catalog: Catalog, kind: JobKind = JobKind.BACKUP, *, pid: int = 1) -> int:
    with catalog.begin() as session:
        jobs = Jobs(session)
        job = jobs.submit(kind, target="erp", triggered_by=TriggeredBy.CLI, requested_by="ana")
        jobs.start(job.id, pid=pid, now=T0)  # on this host
        return job.id


def _in_job(records: BackupRecords, job_id: int | None, pid: int = 1) -> str:
    record = records.create_pending(
        kind=BackupKind.FULL,
        repository="local",
        triggered_by=TriggeredBy.CLI,
        retention_days=7,
        database_name="erp",
        job_id=job_id,
        now=T0,
    )
    records.start(record.id, pid, host=HOST, now=T0)
    return record.id


def test_a_record_is_abandoned_exactly_when_its_job_has_ended(catalog: Catalog) -> None:
    running, lapsed, cancelled = _job(catalog), _job(catalog), _job(catalog)
    with catalog.begin() as session:
        records = BackupRecords(session)
        # Its pid is dead, but its job runs (its lease is renewed): the job decides.
        alive = _in_job(records, running, pid=DEAD)
        orphan = _in_job(records, lapsed)
        stopped = _in_job(records, cancelled)
        Jobs(session).fail_lapsed(
            lease=timedelta(minutes=5), is_alive=_dead_or(lapsed, session), now=T0
        )
        Jobs(session).finish(cancelled, JobStatus.CANCELLED, error="cancelled by request")
    with catalog.read() as session:
        found = BackupRecords(session).abandoned(host=HOST, is_alive=_is_alive)
        assert {r.id: reason for r, reason in found} == {
            orphan: f"job {lapsed} failed: process 7 died while the job ran (found at start-up)",
            stopped: f"job {cancelled} cancelled: cancelled by request",
        }
    with catalog.begin() as session:
        failed = BackupRecords(session).fail_abandoned(T0, host=HOST, is_alive=_is_alive)
        assert {r.id for r in failed} == {orphan, stopped}
    with catalog.read() as session:
        records = BackupRecords(session)
        assert records.get(alive).status is BackupStatus.IN_PROGRESS
        assert records.get(alive).job_id == running
        assert records.get(orphan).status is BackupStatus.FAILED
        assert records.get(orphan).error_message == (
            f"job {lapsed} failed: process 7 died while the job ran (found at start-up)"
        )


def _dead_or(job_id: int, session: Session) -> Callable[[int], bool]:
    """A liveness probe under which only the process of ``job_id`` is dead (its pid is
    set to 7 first)."""
    Jobs(session).get(job_id).worker_pid = 7
    return lambda pid: pid != 7


def test_a_record_whose_job_is_gone_from_the_catalog_is_abandoned(catalog: Catalog) -> None:
    with catalog.begin() as session:
        orphan = _in_job(BackupRecords(session), 4321)
    with catalog.read() as session:
        found = BackupRecords(session).abandoned(host=HOST, is_alive=_is_alive)
        assert [(r.id, reason) for r, reason in found] == [
            (orphan, "job 4321 is no longer in the catalog")
        ]


def test_a_record_without_a_job_falls_back_to_its_pid(catalog: Catalog) -> None:
    # Written before records named their job (or outside any job): its process decides.
    with catalog.begin() as session:
        records = BackupRecords(session)
        gone = _in_job(records, None, pid=DEAD)
        alive = _in_job(records, None, pid=1)
    with catalog.read() as session:
        found = BackupRecords(session).abandoned(host=HOST, is_alive=_is_alive)
        assert [(r.id, reason) for r, reason in found] == [
            (gone, f"process {DEAD} died during the backup (found at start-up)")
        ]
        assert BackupRecords(session).get(alive).status is BackupStatus.IN_PROGRESS


def test_a_drill_run_is_abandoned_exactly_when_its_job_has_ended(catalog: Catalog) -> None:
    running, lapsed = _job(catalog, JobKind.DRILL), _job(catalog, JobKind.DRILL)
    with catalog.begin() as session:
        drills = DrillRuns(session)
        alive = drills.start("x", database="erp", scratch_name="s1", job_id=running, now=T0).id
        orphan = drills.start("x", database="erp", scratch_name="s2", job_id=lapsed, now=T0).id
        legacy = drills.start("x", database="erp", scratch_name="s3", now=T0)
        legacy.worker_pid, legacy.worker_host = DEAD, HOST
        Jobs(session).fail_lapsed(
            lease=timedelta(minutes=5), is_alive=_dead_or(lapsed, session), now=T0
        )
    with catalog.begin() as session:
        failed = DrillRuns(session).fail_abandoned(host=HOST, is_alive=_is_alive, now=T0)
        assert [(r.id, r.error_message) for r in failed] == [
            (orphan, f"job {lapsed} failed: process 7 died while the job ran (found at start-up)"),
            (legacy.id, f"process {DEAD} died during the drill (found at start-up)"),
        ]
    with catalog.read() as session:
        assert DrillRuns(session).get(alive).status is DrillStatus.RUNNING
        assert DrillRuns(session).get(orphan).status is DrillStatus.FAILED
        assert DrillRuns(session).get(orphan).job_id == lapsed

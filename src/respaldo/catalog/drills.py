"""Queries on ``drill_runs``: the history of restore tests.

A run names the job it runs in and, like a backup record, is abandoned exactly when that
job has ended while the run still says ``running`` (see :mod:`respaldo.catalog.jobs`).
"""

from __future__ import annotations

import builtins
import json
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from respaldo.catalog.columns import row_count, row_id
from respaldo.catalog.jobs import orphan_reason
from respaldo.catalog.models import BackupRecord, DrillRun, Job
from respaldo.domain import BackupKind, DrillStatus, JobStatus
from respaldo.errors import RecordNotFound
from respaldo.processes import pid_alive, this_host


def tested_kind(record: Any = BackupRecord) -> sa.ColumnElement[BackupKind]:
    """The kind of the backup a run tested, in a query that outer-joins ``record`` (the
    run's backup record, or an alias of it) on ``DrillRun.backup_id``: the run's own
    (``backup_kind``), else the record's (a run recorded before the column, its backup
    still there). None when neither says: such a run counts for no kind."""
    return sa.func.coalesce(DrillRun.backup_kind, record.backup_type)


class DrillRuns:
    """Changes and queries within one Session (never commits)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def start(
        self,
        backup_id: str,
        *,
        database: str | None,
        scratch_name: str,
        job_id: int | None = None,
        now: datetime | None = None,
    ) -> DrillRun:
        """Record a drill that is about to restore into ``scratch_name`` (by this process,
        on this host, in job ``job_id``)."""
        record = self.session.get(BackupRecord, backup_id)
        run = DrillRun(
            backup_id=backup_id,
            backup_kind=record.backup_type if record is not None else None,
            database_name=database,
            status=DrillStatus.RUNNING,
            scratch_name=scratch_name,
            started_at=now or datetime.now(UTC),
            worker_pid=os.getpid(),
            worker_host=this_host(),
            job_id=job_id,
        )
        self.session.add(run)
        self.session.flush()
        return run

    def finish(
        self,
        run_id: int,
        *,
        passed: bool,
        restore_seconds: float | None,
        checks: Sequence[dict[str, Any]],
        error: str | None = None,
        now: datetime | None = None,
    ) -> DrillRun:
        run = self.get(run_id)
        run.status = DrillStatus.PASSED if passed else DrillStatus.FAILED
        run.finished_at = now or datetime.now(UTC)
        run.restore_seconds = restore_seconds
        run.checks = json.dumps(list(checks))
        run.error_message = error
        self.session.flush()
        return run

    def cancel(self, run_id: int, *, reason: str, now: datetime | None = None) -> DrillRun:
        """Record a run stopped by a cancellation: it is no restore test, passed or failed."""
        run = self.get(run_id)
        run.status = DrillStatus.CANCELLED
        run.finished_at = now or datetime.now(UTC)
        run.error_message = reason
        self.session.flush()
        return run

    def get(self, run_id: int) -> DrillRun:
        run = self.session.get(DrillRun, run_id) if row_id(run_id) else None
        if run is None:
            raise RecordNotFound(f"no drill run {run_id}")
        return run

    def list(self, *, backup_id: str | None = None, limit: int = 50) -> builtins.list[DrillRun]:
        """Drill runs, newest first."""
        query = sa.select(DrillRun)
        if backup_id is not None:
            query = query.where(DrillRun.backup_id == backup_id)
        query = query.order_by(DrillRun.started_at.desc(), DrillRun.id.desc())
        query = query.limit(row_count(limit))
        return builtins.list(self.session.scalars(query))

    def between(self, start: datetime, end: datetime) -> builtins.list[DrillRun]:
        """Drill runs started in ``[start, end)``, oldest first."""
        query = sa.select(DrillRun).where(DrillRun.started_at >= start, DrillRun.started_at < end)
        return builtins.list(self.session.scalars(query.order_by(DrillRun.started_at, DrillRun.id)))

    def sources_tested(self, before: datetime) -> set[str]:
        """The sources (databases, file sets) with a restore test that passed or failed
        by ``before``: each had a backup then, whatever retention has deleted since (the
        runs are kept)."""
        query = (
            sa.select(DrillRun.database_name)
            .where(
                DrillRun.database_name.is_not(None),
                DrillRun.status.in_((DrillStatus.PASSED, DrillStatus.FAILED)),
                DrillRun.finished_at <= before,
            )
            .distinct()
        )
        return {name for name in self.session.scalars(query) if name is not None}

    def fail_abandoned(
        self,
        *,
        is_alive: Callable[[int], bool] = pid_alive,
        host: str | None = None,
        now: datetime | None = None,
    ) -> builtins.list[DrillRun]:
        """Mark as failed every running drill that nothing will finish (cancelled, one
        whose job was cancelled); return them.

        As :meth:`respaldo.catalog.backups.BackupRecords.fail_abandoned`: a run that
        names its job is abandoned exactly when that job has ended, with the job's
        reason; a run without a job, when its pid is on ``host`` (default: this one) and
        ``is_alive(pid)`` is false. The scratch database or directory it left is removed
        by the next drill (:func:`respaldo.operations.drill.remove_leftovers`).
        """
        failed = []
        for run, reason in self.abandoned(is_alive=is_alive, host=host):
            # A run whose job was cancelled was stopped, not failed (its process stopped
            # before it could say so, or died after the request).
            stopped = run.job_id is not None and _job_cancelled(self.session, run.job_id)
            run.status = DrillStatus.CANCELLED if stopped else DrillStatus.FAILED
            run.finished_at = now or datetime.now(UTC)
            run.error_message = reason
            failed.append(run)
        self.session.flush()
        return failed

    def abandoned(
        self, *, is_alive: Callable[[int], bool] = pid_alive, host: str | None = None
    ) -> builtins.list[tuple[DrillRun, str]]:
        """The runs :meth:`fail_abandoned` would fail, with the reason; changes nothing."""
        local_host = host if host is not None else this_host()
        query = (
            sa.select(DrillRun)
            .where(DrillRun.status == DrillStatus.RUNNING)
            .order_by(DrillRun.started_at, DrillRun.id)
        )
        gone = []
        for run in self.session.scalars(query):
            if run.job_id is not None:
                reason = orphan_reason(self.session, run.job_id)
            else:
                reason = _dead_worker(run, is_alive, local_host)
            if reason is not None:
                gone.append((run, reason))
        return gone

    def failed_scratch(self, host: str | None = None) -> builtins.list[str]:
        """The scratch names (a drill database, or a scratch directory) of failed runs
        of ``host`` (default: this one): what a drill killed on this host may have left,
        for :func:`respaldo.operations.drill.remove_leftovers` to look for."""
        query = sa.select(DrillRun.scratch_name).where(
            DrillRun.status.in_((DrillStatus.FAILED, DrillStatus.CANCELLED)),
            DrillRun.worker_host == (host if host is not None else this_host()),
            DrillRun.scratch_name.is_not(None),
        )
        return [name for name in self.session.scalars(query) if name]


def _job_cancelled(session: Session, job_id: int) -> bool:
    # Its status alone: the job may be of a kind a newer respaldo wrote.
    status = session.scalar(sa.select(Job.status).where(Job.id == job_id))
    return status is JobStatus.CANCELLED


def _dead_worker(run: DrillRun, is_alive: Callable[[int], bool], local_host: str) -> str | None:
    # The fallback for a run without a job: its pid, on its own host only.
    pid = run.worker_pid
    if pid is not None and run.worker_host == local_host and not is_alive(pid):
        return f"process {pid} died during the drill (found at start-up)"
    return None


def checks_of(run: DrillRun) -> builtins.list[dict[str, Any]]:
    """The checks of a run as stored (a list of {name, ok, detail})."""
    return builtins.list(json.loads(run.checks)) if run.checks else []

"""Queries on ``drill_runs``: the history of restore tests."""

from __future__ import annotations

import builtins
import json
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from respaldo.catalog.models import DrillRun
from respaldo.domain import DrillStatus
from respaldo.errors import RecordNotFound
from respaldo.processes import pid_alive, this_host


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
        now: datetime | None = None,
    ) -> DrillRun:
        """Record a drill that is about to restore into ``scratch_name`` (by this process)."""
        run = DrillRun(
            backup_id=backup_id,
            database_name=database,
            status=DrillStatus.RUNNING,
            scratch_name=scratch_name,
            started_at=now or datetime.now(UTC),
            worker_pid=os.getpid(),
            worker_host=this_host(),
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

    def get(self, run_id: int) -> DrillRun:
        run = self.session.get(DrillRun, run_id)
        if run is None:
            raise RecordNotFound(f"no drill run {run_id}")
        return run

    def list(self, *, backup_id: str | None = None, limit: int = 50) -> builtins.list[DrillRun]:
        """Drill runs, newest first."""
        query = sa.select(DrillRun)
        if backup_id is not None:
            query = query.where(DrillRun.backup_id == backup_id)
        query = query.order_by(DrillRun.started_at.desc(), DrillRun.id.desc()).limit(limit)
        return builtins.list(self.session.scalars(query))

    def fail_abandoned(
        self, *, is_alive: Callable[[int], bool] = pid_alive, now: datetime | None = None
    ) -> builtins.list[DrillRun]:
        """Mark as failed every running drill of this host whose process is gone; return
        them, so that the caller removes the scratch databases or clusters they left."""
        query = sa.select(DrillRun).where(
            DrillRun.status == DrillStatus.RUNNING, DrillRun.worker_host == this_host()
        )
        gone = []
        for run in self.session.scalars(query):
            if run.worker_pid is not None and not is_alive(run.worker_pid):
                run.status = DrillStatus.FAILED
                run.finished_at = now or datetime.now(UTC)
                run.error_message = (
                    f"process {run.worker_pid} died during the drill (found at start-up)"
                )
                gone.append(run)
        self.session.flush()
        return gone


def checks_of(run: DrillRun) -> builtins.list[dict[str, Any]]:
    """The checks of a run as stored (a list of {name, ok, detail})."""
    return builtins.list(json.loads(run.checks)) if run.checks else []

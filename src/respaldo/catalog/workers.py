"""Queries on ``workers``: the worker processes that take jobs from the queues.

A worker registers itself when it starts, renews ``heartbeat_at`` while it lives, and
removes its row when it stops. A worker killed with SIGKILL leaves its row: it counts
as alive until its heartbeat is older than the lease, then as lost (its running job is
failed, and retried, by the jobs' own lease) until :meth:`Workers.prune` removes it, a
display window later (:data:`respaldo.operations.queue.LOST_SHOWN`). Heartbeats are
written and judged by the catalog's clock (:mod:`.clock`), as the jobs' leases are.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from respaldo.catalog.clock import catalog_now
from respaldo.catalog.jobs import known_kind
from respaldo.catalog.models import Job, Worker
from respaldo.domain import JobStatus


class Workers:
    """Changes and queries within one Session (never commits)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def _now(self, now: datetime | None) -> datetime:
        """``now`` if given (tests), else the catalog's clock."""
        return now if now is not None else catalog_now(self.session)

    def register(
        self,
        *,
        name: str,
        host: str,
        pid: int,
        queues: Sequence[str] | None,
        now: datetime | None = None,
    ) -> Worker:
        """A new worker row, alive now. ``queues`` None: every queue."""
        when = self._now(now)
        worker = Worker(
            name=name,
            host=host,
            pid=pid,
            queues=None if queues is None else json.dumps(list(queues)),
            started_at=when,
            heartbeat_at=when,
            stopping=False,
        )
        self.session.add(worker)
        self.session.flush()
        return worker

    def beat(self, worker_id: int, *, stopping: bool = False, now: datetime | None = None) -> None:
        """Renew a worker's heartbeat (re-creating nothing: a pruned worker stays gone)."""
        worker = self.session.get(Worker, worker_id)
        if worker is not None:
            worker.heartbeat_at = self._now(now)
            worker.stopping = worker.stopping or stopping
            self.session.flush()

    def unregister(self, worker_id: int) -> None:
        worker = self.session.get(Worker, worker_id)
        if worker is not None:
            self.session.delete(worker)
            self.session.flush()

    def alive(self, *, lease: timedelta, now: datetime | None = None) -> builtins.list[Worker]:
        """Workers whose heartbeat is younger than ``lease``, oldest first."""
        since = self._now(now) - lease
        query = sa.select(Worker).where(Worker.heartbeat_at >= since).order_by(Worker.id)
        return builtins.list(self.session.scalars(query))

    def silent(self, *, lease: timedelta, now: datetime | None = None) -> dict[int, datetime]:
        """The workers silent for longer than ``lease`` (reads only), each with its last
        heartbeat: looked at again a while later, one whose heartbeat moved is alive,
        whatever the clock said (:func:`respaldo.operations.reconcile.silent_workers`)."""
        since = self._now(now) - lease
        query = sa.select(Worker.id, Worker.heartbeat_at).where(Worker.heartbeat_at < since)
        return {int(row.id): row.heartbeat_at for row in self.session.execute(query)}

    def confirmed_silent(self) -> set[tuple[int, datetime]]:
        """(worker, heartbeat) of the rows whose last heartbeat a sweep confirmed silent
        (:meth:`confirm_silent`) and that have not beaten since (reads only)."""
        query = sa.select(Worker.id, Worker.heartbeat_at, Worker.confirmed_silent_at).where(
            Worker.confirmed_silent_at.is_not(None)
        )
        return {
            (int(row.id), row.heartbeat_at)
            for row in self.session.execute(query)
            if row.confirmed_silent_at == row.heartbeat_at
        }

    def confirm_silent(self, confirmed: Mapping[int, datetime]) -> None:
        """Record that each worker of ``confirmed`` was silent at two looks with that
        heartbeat; a row that has beaten since (or is gone) is left as it is."""
        if not confirmed:
            return
        for worker in self.session.scalars(sa.select(Worker).where(Worker.id.in_(confirmed))):
            if worker.heartbeat_at == confirmed[worker.id]:
                worker.confirmed_silent_at = worker.heartbeat_at

    def prune(
        self,
        *,
        lease: timedelta,
        now: datetime | None = None,
        seen: Mapping[int, datetime] | None = None,
    ) -> int:
        """Remove the rows of workers silent for longer than ``lease``; return how many.
        With ``seen`` (what :meth:`silent` said a while before), only those whose last
        heartbeat is still the one seen then: a step of the catalog's clock made every
        live worker look silent, and its row, once removed, never came back."""
        since = self._now(now) - lease
        condition = Worker.heartbeat_at < since
        if seen is not None:
            still = self.silent(lease=lease, now=now)
            gone = [worker for worker, beat in still.items() if seen.get(worker) == beat]
            if not gone:
                return 0
            condition = condition & Worker.id.in_(gone)
        result = self.session.execute(sa.delete(Worker).where(condition))
        return int(getattr(result, "rowcount", 0) or 0)

    def listed(self) -> builtins.list[Worker]:
        """Every worker's row, oldest first."""
        return builtins.list(self.session.scalars(sa.select(Worker).order_by(Worker.id)))

    def failed_since_silent(self, worker: Worker) -> builtins.list[tuple[Job, int | None]]:
        """The jobs of ``worker`` (same host and process) that failed at or after its last
        heartbeat, each with the id of the job that runs it again (None: not retried):
        what was lost with a worker that went silent."""
        query = sa.select(Job).where(
            known_kind(),
            Job.status == JobStatus.FAILED,
            Job.worker_host == worker.host,
            Job.worker_pid == worker.pid,
            Job.finished_at >= worker.heartbeat_at,
        )
        failed = builtins.list(self.session.scalars(query.order_by(Job.id)))
        if not failed:
            return []
        retries = sa.select(Job.retry_of, sa.func.min(Job.id)).where(
            Job.retry_of.in_([job.id for job in failed])
        )
        retry_of = {
            int(lost): int(retry)
            for lost, retry in self.session.execute(retries.group_by(Job.retry_of))
            if lost is not None
        }
        return [(job, retry_of.get(job.id)) for job in failed]

    def running(self, worker: Worker) -> builtins.list[Job]:
        """The running jobs of ``worker`` (same host and process)."""
        query = sa.select(Job).where(
            known_kind(),
            Job.status == JobStatus.RUNNING,
            Job.worker_host == worker.host,
            Job.worker_pid == worker.pid,
        )
        return builtins.list(self.session.scalars(query.order_by(Job.id)))


def queues_of(worker: Worker) -> builtins.list[str] | None:
    """The queues a worker takes jobs from; None: every queue."""
    return None if worker.queues is None else [str(q) for q in json.loads(worker.queues)]

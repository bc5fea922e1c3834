"""The queue as the status sees it (PostgreSQL catalog only): whether jobs wait in a
queue that no live worker takes.

A job of the queue waits until a worker of its queue takes it. With no live worker for
that queue (every worker dead, ``[server] run_jobs = false`` and none started, a
database's ``queue`` that no worker was told to take), every job waits, until ``[queue]
expire_hours`` fails it as expired, and each later firing of its schedule is skipped as
overlapping meanwhile: nothing fails before, so nothing would be told until a backup's
RPO lapsed. A queue is red once a job has waited longer than a
lease (``[jobs] lease_seconds``: a restarting worker is back well within it) while no
live worker takes it (live: its heartbeat within :func:`~respaldo.operations.queue.stale_after`,
five renewal periods); green otherwise. Waiting behind a busy worker is not a fault.

A worker silent for longer than the lease (its machine lost, killed -9) is an amber item
of its own for :data:`~respaldo.operations.queue.LOST_SHOWN` (a day), naming the jobs that
failed with it: before, its row was removed once the lease lapsed, and nothing told it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from respaldo.catalog import Job, Worker, Workers, clock_offset, queues_of
from respaldo.domain import JobStatus
from respaldo.operations.context import Context
from respaldo.operations.queue import LOST_SHOWN, has_queue, stale_after
from respaldo.operations.status import StatusItem
from respaldo.phrases import N_, Phrase, counted, minute


def queue_items(ctx: Context, now: datetime) -> list[StatusItem]:
    """One item per queue that is configured or has jobs waiting (none with a SQLite
    catalog), as of ``now`` on this machine's clock. How long a job has waited, and
    whether a worker is alive, are judged on the catalog's clock, which wrote those
    times: ``now`` is moved onto it by this machine's offset from it. Raises what reading
    the catalog raises."""
    if not has_queue(ctx):
        return []
    settings = ctx.settings
    lease = timedelta(seconds=settings.jobs.lease_seconds)
    configured = {settings.queue.default_queue} | {d.queue for d in settings.databases if d.queue}
    waiting_query = (
        sa.select(Job.queue_name, sa.func.count(), sa.func.min(Job.created_at))
        .where(Job.status == JobStatus.QUEUED, Job.queue_name.is_not(None))
        .group_by(Job.queue_name)
    )
    with ctx.catalog.read() as session:
        # The status's "now" (this machine's clock; a test's chosen time) as the same
        # moment on the catalog's clock: a status read on a machine whose clock is off
        # neither calls a queue stuck early nor misses a stuck one.
        now -= timedelta(seconds=clock_offset(session) or 0.0)
        waiting = {
            str(name): (int(n), oldest) for name, n, oldest in session.execute(waiting_query)
        }
        # A worker silent for a few renewal periods (killed, stopped, hung) takes nothing:
        # counted, it kept its queue green for a lease after it died.
        takers = [
            queues_of(w)
            for w in Workers(session).alive(lease=stale_after(settings), now=now)
            if not w.stopping
        ]
        lost = [
            (w, Workers(session).failed_since_silent(w))
            for w in Workers(session).alive(lease=LOST_SHOWN, now=now)
            if w.heartbeat_at < now - lease
        ]
    items = [lost_item(w, failed, now, lease) for w, failed in lost]
    for name in sorted(configured | set(waiting)):
        count, oldest = waiting.get(name, (0, None))
        taken = sum(1 for queues in takers if queues is None or name in queues)
        age = (now - oldest).total_seconds() if oldest is not None else None
        stuck = taken == 0 and age is not None and age > lease.total_seconds()
        if stuck and oldest is not None:  # stuck: it has an age
            reason = counted(
                count,
                N_(
                    "{count} job waits in queue {quoted} (since {at} UTC) and no live worker "
                    "takes that queue: start 'respaldo worker --queue {name}', or 'respaldo "
                    "serve' with [server] run_jobs"
                ),
                N_(
                    "{count} jobs wait in queue {quoted} (the oldest since {at} UTC) and no "
                    "live worker takes that queue: start 'respaldo worker --queue {name}', or "
                    "'respaldo serve' with [server] run_jobs"
                ),
                quoted=repr(name),
                at=minute(oldest),
                name=name,
            )
        else:
            reason = waiting_reason(count, taken)
        items.append(
            StatusItem(
                key=f"queue:{name}",
                check="queue",
                level="red" if stuck else "green",
                reason=reason,
                at=oldest,
                age_seconds=age,
                limit_seconds=lease.total_seconds(),
                count=count,
            )
        )
    return items


def waiting_reason(count: int, taken: int) -> Phrase:
    """A served queue's green item: its waiting jobs and the live workers that take it.
    The workers are a count after a label: "1 live workers take this queue" agreed with
    nothing, and a message per both counts would need four."""
    return counted(
        count,
        N_("{count} job waiting; live workers that take this queue: {taken}"),
        N_("{count} jobs waiting; live workers that take this queue: {taken}"),
        taken=taken,
    )


def lost_item(
    worker: Worker, failed: list[tuple[Job, int | None]], now: datetime, lease: timedelta
) -> StatusItem:
    """The amber item of a worker not heard from for longer than ``lease``."""
    jobs = ", ".join(
        f"{job.id} ({job.kind.value}" + (f", retry {retry})" if retry else ")")
        for job, retry in failed
    )
    return StatusItem(
        key=f"worker:{worker.host}:{worker.pid}",
        check="queue",
        level="amber",
        reason=Phrase(
            N_(
                "worker {name} on {host} (process {pid}) is lost: no heartbeat since {at} "
                "UTC; jobs failed with it: {jobs}"
            ),
            name=worker.name,
            host=worker.host,
            pid=worker.pid,
            at=minute(worker.heartbeat_at),
            jobs=jobs or "-",
        ),
        at=worker.heartbeat_at,
        age_seconds=(now - worker.heartbeat_at).total_seconds(),
        limit_seconds=lease.total_seconds(),
    )

"""``respaldo worker``: take jobs from the queues; ``respaldo workers``: who takes them."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from respaldo.cli.app import app, err_console, out_console, print_json, state
from respaldo.operations import queue
from respaldo.operations.context import Context
from respaldo.operations.models import to_json_list


@app.command("worker")
def worker(
    ctx: typer.Context,
    queues: Annotated[
        list[str] | None,
        typer.Option("--queue", "-q", help="A queue to take jobs from (repeat); default: all."),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Shown by 'respaldo workers'.")] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=16, help="Jobs run at once.")
    ] = 1,
) -> None:
    """Run the queued jobs of a PostgreSQL catalog until SIGTERM or Ctrl-C.

    On SIGTERM it takes no new job and lets the running one finish; after \\[queue]
    shutdown_timeout_seconds the job is cancelled, and queued again for another worker.
    """
    settings = state(ctx).settings
    from respaldo.operations.scrub import scrub_logs

    # The worker's log is read by more people than its secrets are meant for.
    scrub_logs(settings)
    # alerts_later: the alerts of the lost jobs found at the start are recorded and sent
    # by the worker's resend (at once, and every lease renewal period), as its sweep's.
    with Context.open(settings, alerts_later=True) as context:
        queue.require_queue(context)
        options = queue.WorkerOptions(queues=queues or None, name=name, concurrency=concurrency)
        err_console.print(
            f"respaldo worker: taking jobs from {queue.describe_queues(options.queues)}",
            highlight=False,
        )
        queue.run_worker(context, options)
        err_console.print("respaldo worker: stopped", highlight=False)


@app.command("workers")
def workers(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List the workers, their queues and the jobs they run; a worker whose heartbeat
    stopped is shown stale, then lost (for a day, with the jobs lost with it)."""
    with Context.open(state(ctx).settings) as context:
        queue.require_queue(context)
        found = queue.list_workers(context)
    if as_json:
        print_json(to_json_list(found))
        return
    table = Table("name", "host", "pid", "queues", "heartbeat (UTC)", "state", "running")
    for info in found:
        table.add_row(
            info.name,
            info.host,
            str(info.pid),
            queue.describe_queues(info.queues),
            info.heartbeat_at.strftime("%H:%M:%S"),
            # A stopping worker takes no new job; it is only waiting for its running ones.
            # A stale one has not renewed its heartbeat for a while: dead, stopped, hung.
            _state(info),
            ", ".join(f"{j.kind.value} {j.target or ''} (job {j.id})" for j in info.running)
            or _lost_jobs(info)
            or "-",
        )
    out_console.print(table)


def _state(info: queue.WorkerInfo) -> str:
    """A stale worker has not renewed its heartbeat for a while (dead, stopped, hung); a
    lost one not for longer than the lease: its jobs were failed, and retried."""
    if info.state == "stale":
        return f"stale (no heartbeat for {info.heartbeat_age_seconds:.0f} s)"
    if info.state == "lost":
        return f"lost (last seen {info.heartbeat_at:%Y-%m-%d %H:%M:%S})"
    return info.state


def _lost_jobs(info: queue.WorkerInfo) -> str:
    """What failed with a lost worker, and which job runs each again."""
    return ", ".join(
        f"failed: {j.kind.value} {j.target or ''} (job {j.id}"
        + (f", retry {j.retry_id})" if j.retry_id is not None else ", not retried)")
        for j in info.failed
    )

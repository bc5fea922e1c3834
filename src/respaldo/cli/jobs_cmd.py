"""``respaldo jobs``, ``jobs show ID``, ``jobs cancel ID``: what runs and what ran."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from respaldo.cli.app import app, err_console, human_bytes, out_console, print_json, state
from respaldo.cli.text import escape
from respaldo.domain import AuditAction, AuditOutcome, JobStatus
from respaldo.errors import RespaldoError
from respaldo.operations import audit, jobs
from respaldo.operations.context import Context
from respaldo.operations.jobs import JobInfo
from respaldo.operations.models import to_json_list
from respaldo.operations.principal import local_principal

jobs_app = typer.Typer(
    help="List, show and cancel jobs (backups, restores, drills, prunes, verifies).",
    invoke_without_command=True,
)
app.add_typer(jobs_app, name="jobs")


@jobs_app.callback()
def list_jobs(
    ctx: typer.Context,
    status: Annotated[JobStatus | None, typer.Option("--status")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List jobs, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    context = Context.open(state(ctx).settings)
    try:
        found = jobs.list_jobs(context, limit=limit, status=status)
    finally:
        context.close()
    if as_json:
        _print_json(found)
        return
    table = Table("id", "kind", "target", "status", "by", "started (UTC)", "progress", "error")
    for job in found:
        table.add_row(
            str(job.id),
            job.kind.value,
            escape(job.target or "-"),
            job.status.value,
            escape(f"{job.triggered_by.value}:{job.requested_by or '-'}"),
            job.started_at.strftime("%Y-%m-%d %H:%M:%S") if job.started_at else "-",
            _progress(job),
            escape((job.error or "")[:60]),
        )
    out_console.print(table)


@jobs_app.command("show")
def show(
    ctx: typer.Context,
    job_id: Annotated[int, typer.Argument(help="A job id from 'respaldo jobs'.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show one job."""
    context = Context.open(state(ctx).settings)
    try:
        job = jobs.get(context, job_id)
    finally:
        context.close()
    if as_json:
        print_json(job.to_json())
        return
    for name, value in job.model_dump(mode="json").items():
        # As stored: an error's "[...]" is no markup (swallowed, or a crash).
        out_console.print(f"{name}: {value}", highlight=False, markup=False)


@jobs_app.command("cancel")
def cancel(
    ctx: typer.Context,
    job_id: Annotated[int, typer.Argument(help="A queued or running job's id.")],
) -> None:
    """Cancel a job: a running one stops within seconds, cleans up and says cancelled."""
    context = Context.open(state(ctx).settings)
    try:
        try:
            job = jobs.cancel(context, job_id)
        except RespaldoError as exc:
            audit.record(
                context,
                local_principal(),
                AuditAction.JOB_CANCEL,
                str(job_id),
                AuditOutcome.FAILURE,
                str(exc),
            )
            raise
        audit.record(
            context, local_principal(), AuditAction.JOB_CANCEL, str(job_id), AuditOutcome.SUCCESS
        )
    finally:
        context.close()
    if job.status is JobStatus.CANCELLED:
        err_console.print(f"job {job.id} cancelled")
    else:
        err_console.print(f"job {job.id} asked to stop; 'respaldo jobs show {job.id}' follows it")


def _progress(job: JobInfo) -> str:
    if job.progress_done is None:
        return "-"
    if job.progress_total:
        return f"{human_bytes(job.progress_done)} / {human_bytes(job.progress_total)}"
    return human_bytes(job.progress_done)


def _print_json(found: list[JobInfo]) -> None:
    print_json(to_json_list(found))

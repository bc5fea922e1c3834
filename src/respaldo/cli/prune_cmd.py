"""``respaldo prune [--dry-run]``: expire backups by policy, then collect garbage."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from respaldo.cli.app import app, err_console, human_bytes, out_console, print_json, state
from respaldo.cli.text import escape
from respaldo.domain import JobKind
from respaldo.operations.context import Context
from respaldo.operations.jobs import cli_request, run_now
from respaldo.operations.prune_report import GcView, PruneReport, prune_backups
from respaldo.phrases import counted


@app.command("prune")
def prune_command(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Show what would happen; change nothing.")
    ] = False,
    database: Annotated[
        str | None, typer.Option("--database", "-d", help="Only this database's backups.")
    ] = None,
    wait: Annotated[
        float | None,
        typer.Option(
            "--wait",
            min=0,
            help="Seconds to wait for running backups (default: \\[locks] wait_seconds).",
        ),
    ] = None,
    trust_clock: Annotated[
        bool,
        typer.Option(
            "--trust-clock",
            help="Expire by age even when the clock is far past the newest backup "
            "(\\[retention] clock_check_days): backups really stopped and the clock is right.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show every backup with keep or expire and the rule that decided it; then delete the
    expired ones from every repository and reclaim their space.

    Exit status 1 if a repository could not be pruned (the primary unreachable, or in use
    by backups for longer than --wait); running prune again finishes the work. A mirror
    that cannot be reached is left for the next prune that reaches it, with a warning and
    an alert; the others are pruned and the exit status is 0. Refused, changing
    nothing, when the clock is more than \\[retention] clock_check_days past the newest
    backup and backups would expire by age that had not then (--trust-clock: expire them).
    """
    with Context.open(state(ctx).settings) as context:
        result = run_now(
            context,
            cli_request(JobKind.PRUNE, database, {"dry_run": dry_run, "trust_clock": trust_clock}),
            lambda job_ctx: prune_backups(
                job_ctx, dry_run=dry_run, database=database, wait=wait, trust_clock=trust_clock
            ),
            outcome=PruneReport.outcome,
        )
    if as_json:
        print_json(result.to_json())
    else:
        _print(result)
    if not result.ok:
        raise typer.Exit(1)


def _print(result: PruneReport) -> None:
    table = Table("id", "database", "type", "status", "completed (UTC)", "decision", "rule")
    ordered = sorted(
        result.decisions,
        key=lambda d: (d.database_name or "", d.backup_type, d.time, d.id),
        reverse=True,
    )
    for d in ordered:
        verdict = "[green]keep[/]" if d.keep else "[red]expire[/]"
        table.add_row(
            d.id,
            d.database_name or "-",
            d.backup_type,
            d.status,
            d.completed_at.strftime("%Y-%m-%d %H:%M") if d.completed_at else "-",
            verdict,
            escape("; ".join(d.rules)),
        )
    out_console.print(table)
    expired = len(result.expired)
    if result.dry_run:
        of = counted(len(result.decisions), "{count} backup", "{count} backups")
        err_console.print(f"dry run: {expired} of {of} would expire")
    else:
        deleted = counted(len(result.deleted), "{count} backup deleted", "{count} backups deleted")
        err_console.print(f"{deleted}, {len(result.decisions) - expired} kept")
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    for outcome in result.repositories:
        if outcome.gc is not None:
            manifests = counted(
                outcome.manifests_deleted, "{count} manifest deleted", "{count} manifests deleted"
            )
            reclaimed = reclaim_words(outcome.gc.bytes_reclaimed, result.dry_run)
            err_console.print(
                f"{outcome.name}: {manifests}; {_gc_line(outcome.gc)}; {reclaimed}",
                highlight=False,
            )
            for problem in outcome.gc.problems:
                err_console.print(f"[yellow]{outcome.name}:[/] {escape(problem)}", highlight=False)
        if outcome.wal is not None and (outcome.wal.files_deleted or outcome.wal.kept_from):
            verb = "would delete" if result.dry_run else "deleted"
            kept = ", ".join(f"{s} from {f}" for s, f in sorted(outcome.wal.kept_from.items()))
            files = counted(outcome.wal.files_deleted, "{count} file", "{count} files")
            err_console.print(
                f"{outcome.name}: WAL {verb} {files}, "
                f"{human_bytes(outcome.wal.bytes_deleted)}; kept for PITR: {kept or 'none'}",
                highlight=False,
            )
        if outcome.object_lock is not None:
            verb = "would renew" if result.dry_run else "renewed"
            objects = counted(outcome.object_lock.checked, "{count} object", "{count} objects")
            err_console.print(
                f"{outcome.name}: object lock ({outcome.object_lock.mode}): {verb} "
                f"{outcome.object_lock.renewed} of {objects} until "
                f"{outcome.object_lock.until:%Y-%m-%d %H:%M} UTC; deleted objects keep their "
                "space until their lock ends",
                highlight=False,
            )
        if outcome.error is not None:
            err_console.print(
                f"[red]{outcome.name}:[/] {escape(str(outcome.error))}", highlight=False
            )


def _gc_line(gc: GcView) -> str:
    deleted = counted(gc.packs_deleted, "{count} pack deleted", "{count} packs deleted")
    line = (
        f"{deleted}, {gc.packs_repacked} repacked into "
        f"{gc.packs_written}, {human_bytes(gc.bytes_before)} -> {human_bytes(gc.bytes_after)}"
    )
    if gc.temporaries_removed:
        line += ", " + counted(
            gc.temporaries_removed,
            "{count} temporary file of an interrupted write removed",
            "{count} temporary files of interrupted writes removed",
        )
    return line


def reclaim_words(reclaimed: int, dry_run: bool) -> str:
    """What a collection reclaimed, in words. Writing more than it deleted (a repack
    whose index rewrite cost more than it saved) is said so, never as a negative
    reclaim ("would reclaim about -8.3 KiB")."""
    if reclaimed >= 0:
        verb = "would reclaim about" if dry_run else "reclaimed"
    else:
        verb = "would grow the repository by about" if dry_run else "grew the repository by"
    return f"{verb} {human_bytes(abs(reclaimed))}"

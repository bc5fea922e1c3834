"""``respaldo prune [--dry-run]``: expire backups by policy, then collect garbage."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from respaldo.cli.app import app, err_console, human_bytes, out_console, print_json, state
from respaldo.domain import JobKind
from respaldo.operations.context import Context
from respaldo.operations.jobs import cli_request, run_now
from respaldo.operations.prune import PruneResult, prune
from respaldo.repository import GcReport


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
            help="Seconds to wait for running backups (default: [locks] wait_seconds).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show every backup with keep or expire and the rule that decided it; then delete the
    expired ones from every repository and reclaim their space.

    Exit status 1 if a repository could not be pruned (unreachable, or in use by backups
    for longer than --wait); running prune again finishes the work.
    """
    context = Context.open(state(ctx).settings)
    try:
        result = run_now(
            context,
            cli_request(JobKind.PRUNE, database, {"dry_run": dry_run}),
            lambda job_ctx: prune(job_ctx, dry_run=dry_run, database=database, wait=wait),
        )
    finally:
        context.close()
    if as_json:
        print_json(to_json(result))
    else:
        _print(result)
    if not result.ok:
        raise typer.Exit(1)


def _print(result: PruneResult) -> None:
    table = Table("id", "database", "type", "status", "completed", "decision", "rule")
    ordered = sorted(
        result.decisions,
        key=lambda d: (d.backup.database or "", d.backup.kind, d.backup.time, d.backup.id),
        reverse=True,
    )
    for d in ordered:
        b = d.backup
        verdict = "[green]keep[/]" if d.keep else "[red]expire[/]"
        table.add_row(
            b.id,
            b.database or "-",
            b.kind,
            b.status,
            b.completed_at.strftime("%Y-%m-%d %H:%M") if b.completed_at else "-",
            verdict,
            d.rule,
        )
    out_console.print(table)
    expired = len(result.expired)
    if result.dry_run:
        err_console.print(f"dry run: {expired} of {len(result.decisions)} backups would expire")
    else:
        err_console.print(
            f"{len(result.deleted)} backups deleted, {len(result.decisions) - expired} kept"
        )
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    for outcome in result.repositories:
        if outcome.gc is not None:
            verb = "would reclaim about" if result.dry_run else "reclaimed"
            err_console.print(
                f"{outcome.name}: {outcome.manifests_deleted} manifests deleted; "
                f"{_gc_line(outcome.gc)}; {verb} {human_bytes(outcome.gc.bytes_reclaimed)}",
                highlight=False,
            )
            for problem in outcome.gc.problems:
                err_console.print(f"[yellow]{outcome.name}:[/] {problem}", highlight=False)
        if outcome.wal is not None and (outcome.wal.files_deleted or outcome.wal.kept_from):
            verb = "would delete" if result.dry_run else "deleted"
            kept = ", ".join(f"{s} from {f}" for s, f in sorted(outcome.wal.kept_from.items()))
            err_console.print(
                f"{outcome.name}: WAL {verb} {outcome.wal.files_deleted} files, "
                f"{human_bytes(outcome.wal.bytes_deleted)}; kept for PITR: {kept or 'none'}",
                highlight=False,
            )
        if outcome.locks is not None:
            verb = "would renew" if result.dry_run else "renewed"
            err_console.print(
                f"{outcome.name}: object lock ({outcome.locks.mode}): {verb} "
                f"{outcome.locks.extended} of {outcome.locks.checked} objects until "
                f"{outcome.locks.until:%Y-%m-%d %H:%M} UTC; deleted objects keep their "
                "space until their lock ends",
                highlight=False,
            )
        if outcome.error is not None:
            err_console.print(f"[red]{outcome.name}:[/] {outcome.error}", highlight=False)


def _gc_line(gc: GcReport) -> str:
    line = (
        f"{gc.packs_deleted} packs deleted, {gc.packs_repacked} repacked into "
        f"{gc.packs_written}, {human_bytes(gc.bytes_before)} -> {human_bytes(gc.bytes_after)}"
    )
    if gc.temporaries_removed:
        line += f", {gc.temporaries_removed} temporary files of interrupted writes removed"
    return line


def to_json(result: PruneResult) -> dict[str, Any]:
    return {
        "dryRun": result.dry_run,
        "now": result.now.isoformat(),
        "decisions": [
            {
                "id": d.backup.id,
                "databaseName": d.backup.database,
                "backupType": d.backup.kind,
                "status": d.backup.status,
                "completedAt": d.backup.completed_at.isoformat() if d.backup.completed_at else None,
                "decision": d.action.value,
                "rules": list(d.reasons),
            }
            for d in result.decisions
        ],
        "deleted": result.deleted,
        "repositories": [
            {
                "name": r.name,
                "location": r.location,
                "manifestsDeleted": r.manifests_deleted,
                "error": r.error,
                "gc": None
                if r.gc is None
                else {
                    "backups": r.gc.backups,
                    "packs": r.gc.packs,
                    "packsDeleted": r.gc.packs_deleted,
                    "packsRepacked": r.gc.packs_repacked,
                    "packsWritten": r.gc.packs_written,
                    "chunksDropped": r.gc.chunks_dropped,
                    "temporariesRemoved": r.gc.temporaries_removed,
                    "bytesBefore": r.gc.bytes_before,
                    "bytesAfter": r.gc.bytes_after,
                    "bytesReclaimed": r.gc.bytes_reclaimed,
                    "problems": r.gc.problems,
                },
                "wal": None
                if r.wal is None
                else {
                    "filesDeleted": r.wal.files_deleted,
                    "bytesDeleted": r.wal.bytes_deleted,
                    "keptFrom": r.wal.kept_from,
                },
                "objectLock": None
                if r.locks is None
                else {
                    "mode": r.locks.mode,
                    "until": r.locks.until.isoformat(),
                    "checked": r.locks.checked,
                    "renewed": r.locks.extended,
                    "failed": r.locks.failed,
                },
            }
            for r in result.repositories
        ],
        "bytesReclaimed": result.bytes_reclaimed,
        "warnings": result.warnings,
    }

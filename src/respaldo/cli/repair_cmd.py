"""``respaldo repair [REPOSITORY]``: rewrite quarantined chunks from a mirror."""

from __future__ import annotations

from typing import Annotated

import typer

from respaldo.cli.app import app, err_console, human_bytes, print_json, state
from respaldo.cli.text import escape
from respaldo.operations.context import Context
from respaldo.operations.repair import RepairResult, repair
from respaldo.phrases import counted


@app.command("repair")
def repair_command(
    ctx: typer.Context,
    repository: Annotated[
        str | None,
        typer.Argument(help="The configured repository to repair (default: the primary)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Show what would be done; write nothing.")
    ] = False,
    wal: Annotated[
        bool,
        typer.Option(
            "--wal",
            help="Also replace damaged archived WAL files from mirrors (reads the whole "
            "WAL archive of the repository).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Replace the chunks and archived WAL files found damaged with good copies from mirrors.

    A chunk with no good copy in any configured repository is lost: the backups that
    reference it are listed, marked damaged in the catalog, and refused by restore.
    Exit status 3 when data is lost or something could not be checked.
    """
    context = Context.open(state(ctx).settings)
    try:
        result = repair(context, repository, dry_run=dry_run, wal=wal)
    finally:
        context.close()
    if as_json:
        print_json(result.model_dump(mode="json", by_alias=True))
    else:
        _print(result)
    if not result.clean:
        raise typer.Exit(3)


def _print(result: RepairResult) -> None:
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    for problem in result.problems:
        err_console.print(f"[red]problem:[/] {escape(problem)}", highlight=False)
    if result.unreadable_records_replaced:
        err_console.print(
            f"{result.repository}: {'would replace' if result.dry_run else 'replaced'} "
            f"{len(result.unreadable_records_replaced)} unreadable quarantine record(s) "
            f"after re-reading every chunk copy ({result.damaged_copies_found} damaged "
            "copies recorded anew)",
            highlight=False,
        )
    _print_wal(result)
    if result.copies_completed:
        err_console.print(
            f"{result.repository}: the copies there of {', '.join(result.copies_completed)}, "
            "marked failed for the data they lost, are whole again: marked completed",
            highlight=False,
        )
    if not result.quarantined_chunks:
        err_console.print(f"{result.repository}: no quarantined chunks, nothing to repair")
        return
    would = "would rewrite" if result.dry_run else "rewrote"
    sources = ", ".join(f"{n} from {where}" for where, n in sorted(result.repaired_from.items()))
    err_console.print(
        f"{result.repository}: {result.quarantined_chunks} quarantined chunks; "
        f"{result.already_good} have a good copy already; {would} {result.repaired}"
        + (f" ({sources})" if sources else "")
        + (f", {human_bytes(result.bytes_written)} written" if result.bytes_written else ""),
        highlight=False,
    )
    if not result.lost_chunks:
        return
    chunks = counted(
        len(result.lost_chunks),
        "{count} chunk has no good copy in any repository",
        "{count} chunks have no good copy in any repository",
    )
    backups = counted(
        len(result.lost_backups), "{count} backup loses data", "{count} backups lose data"
    )
    err_console.print(
        f"[red]lost[/]: {chunks}; {backups}:",
        highlight=False,
    )
    for backup in result.lost_backups:
        lost = counted(backup.chunks_lost, "{count} chunk lost", "{count} chunks lost")
        err_console.print(
            f"  {backup.backup_id}  {backup.database}  {backup.kind}  "
            f"{backup.completed_at:%Y-%m-%d %H:%M} UTC  {lost} "
            f"(streams: {', '.join(backup.streams)})"
            + ("" if result.dry_run or backup.marked_in_catalog else "  [not in the catalog]"),
            highlight=False,
            markup=False,
        )
    if not result.dry_run:
        err_console.print(
            "those backups are marked damaged and restore refuses them; take a new backup "
            "now (it stores the lost chunks anew if the data still exists)",
            highlight=False,
        )


def _print_wal(result: RepairResult) -> None:
    if not result.wal_damaged:
        return
    would = "would replace" if result.dry_run else "replaced"
    sources = ", ".join(
        f"{n} from {where}" for where, n in sorted(result.wal_repaired_from.items())
    )
    err_console.print(
        f"{result.repository}: {len(result.wal_damaged)} archived WAL files damaged; "
        f"{would} {sum(result.wal_repaired_from.values())}" + (f" ({sources})" if sources else ""),
        highlight=False,
        markup=False,
    )
    for name in result.wal_lost:
        err_console.print(
            f"[red]lost[/]: archived WAL {escape(name)} has no good copy in any repository; "
            "recovery cannot replay past it: take a new physical backup",
            highlight=False,
        )

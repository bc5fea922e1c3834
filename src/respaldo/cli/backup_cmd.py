"""``respaldo backup DATABASE``: take a backup now."""

from __future__ import annotations

from typing import Annotated

import typer

from respaldo.catalog import record_to_api
from respaldo.cli.app import app, err_console, human_bytes, print_json, state
from respaldo.cli.progress import progress_bars
from respaldo.domain import BackupKind
from respaldo.operations.backup import backup_database
from respaldo.operations.context import Context


@app.command("backup")
def backup(
    ctx: typer.Context,
    database: Annotated[str, typer.Argument(help="A database name from the config.")],
    kind: Annotated[BackupKind, typer.Option("--type", help="Backup kind.")] = BackupKind.FULL,
    as_json: Annotated[bool, typer.Option("--json", help="Print the record as JSON.")] = False,
) -> None:
    """Back up a configured database; prints the backup id as the last line."""
    settings = state(ctx).settings
    with progress_bars() as progress:
        context = Context.open(settings, progress)
        try:
            result = backup_database(context, database, kind=kind)
        finally:
            context.close()
    stats = result.stats
    err_console.print(
        f"backup of {database} completed: {human_bytes(stats.size_bytes)} dumped, "
        f"{human_bytes(stats.size_compressed)} compressed, "
        f"{human_bytes(stats.stored_bytes)} new in the repository "
        f"({stats.new_chunks} of {stats.chunks} chunks new), "
        f"{result.record.duration or 0:.1f} s",
        highlight=False,
    )
    for outcome in result.copies:
        if outcome.ok:
            err_console.print(f"copied {outcome.backup_id} to {outcome.repository}")
        else:
            # The local backup stands; the copy is recorded failed and retried next time.
            err_console.print(
                f"[yellow]warning:[/] copy of {outcome.backup_id} to {outcome.repository} "
                f"failed: {outcome.error}",
                highlight=False,
            )
    if as_json:
        print_json(record_to_api(result.record))
    else:
        typer.echo(result.record.id)

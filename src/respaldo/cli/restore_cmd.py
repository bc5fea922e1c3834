"""``respaldo restore ID --target-database NAME``: restore a logical backup."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from respaldo.cli.app import app, err_console, human_bytes, state
from respaldo.cli.progress import progress_bars
from respaldo.operations.context import Context
from respaldo.operations.restore import restore_backup


@app.command("restore")
def restore(
    ctx: typer.Context,
    backup_id: Annotated[str, typer.Argument(help="Backup id.")],
    target_database: Annotated[
        str, typer.Option("--target-database", "-t", help="Database to restore into.")
    ],
    replace: Annotated[
        bool, typer.Option("--replace", help="Swap an existing database (kept as *_old_*).")
    ] = False,
    drop_old: Annotated[
        bool, typer.Option("--drop-old", help="With --replace: drop the old database.")
    ] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Parallel pg_restore.")] = 1,
    with_globals: Annotated[
        bool, typer.Option("--globals", help="Restore roles and tablespaces first.")
    ] = False,
    no_owner: Annotated[bool, typer.Option("--no-owner", help="Skip ownership.")] = False,
    database: Annotated[
        str | None, typer.Option("--database", "-d", help="Configured server to restore to.")
    ] = None,
    work_dir: Annotated[
        Path | None, typer.Option("--work-dir", help="Where --jobs spools the dump.")
    ] = None,
) -> None:
    """Verify and restore a backup into a new database, or swap it in with --replace."""
    settings = state(ctx).settings
    with progress_bars() as progress:
        context = Context.open(settings, progress)
        try:
            result = restore_backup(
                context,
                backup_id,
                target_database,
                database=database,
                replace=replace,
                drop_old=drop_old,
                jobs=jobs,
                with_globals=with_globals,
                no_owner=no_owner,
                work_dir=work_dir,
            )
        finally:
            context.close()
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    message = (
        f"restored {backup_id} into {result.target}: {human_bytes(result.bytes_restored)}, "
        f"{result.row_counts_checked} tables' row counts checked, {result.seconds:.1f} s"
    )
    if result.replaced:
        message += (
            f"; previous database kept as {result.old_database}"
            if result.old_database
            else "; previous database dropped"
        )
    err_console.print(message, highlight=False)

"""``respaldo wal-push %p`` and ``respaldo wal-fetch %f %p``: WAL archiving for the server.

The console script runs these through :mod:`respaldo.cli.wal_fast` without loading the
rest of the CLI; these Typer commands (the same functions) serve ``--help`` and callers of
:func:`respaldo.cli.main.invoke`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from respaldo.cli.app import app, state
from respaldo.cli.wal_fast import fetch_command, push_async_command, push_command
from respaldo.operations.wal_async_client import ALERT_BACKLOG, ASYNC_TIMEOUT


@app.command("wal-push")
def wal_push(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="The WAL file (archive_command's %p).")],
    database: Annotated[
        str | None,
        typer.Option("--database", "-d", help="Configured database this server holds."),
    ] = None,
    async_: Annotated[
        bool,
        typer.Option("--async", help="Leave the push to a background pusher that works ahead."),
    ] = False,
    spool: Annotated[
        Path | None, typer.Option("--spool", help="--async status directory (may be shared).")
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="--async: seconds to wait for the file.")
    ] = ASYNC_TIMEOUT,
    workers: Annotated[int, typer.Option("--workers", help="--async: parallel pushes.")] = 4,
    alert_backlog: Annotated[
        int, typer.Option("--alert-backlog", help="--async: files waiting = falling behind.")
    ] = ALERT_BACKLOG,
) -> None:
    """Archive one WAL file into the primary repository (for archive_command).

    archive_command = 'respaldo --config /etc/respaldo/respaldo.toml wal-push %p'
    """
    config = state(ctx).config_path
    if async_:
        code = push_async_command(
            config,
            path,
            database=database,
            spool=spool,
            timeout=timeout,
            workers=workers,
            alert_backlog=alert_backlog,
        )
    else:
        code = push_command(config, path, database=database)
    raise typer.Exit(code)


@app.command("wal-fetch")
def wal_fetch(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="The WAL file name (restore_command's %f).")],
    destination: Annotated[Path, typer.Argument(help="Where to write it (%p).")],
    system_id: Annotated[
        str | None, typer.Option("--system-id", help="Cluster the WAL belongs to.")
    ] = None,
    database: Annotated[
        str | None, typer.Option("--database", "-d", help="Or: the configured database.")
    ] = None,
    repository: Annotated[
        str | None,
        typer.Option("--repository", help="Repository to read from (default: the primary)."),
    ] = None,
    primary_first: Annotated[
        bool,
        typer.Option(
            "--primary-first",
            help="With --repository: try the primary first, read the named one for what "
            "it cannot give.",
        ),
    ] = False,
) -> None:
    """Fetch one archived WAL file (for restore_command). Exit 1: not in the archive;
    255: any other failure (the server then stops recovery instead of ending it)."""
    raise typer.Exit(
        fetch_command(
            state(ctx).config_path,
            file,
            destination,
            system_id=system_id,
            database=database,
            repository=repository,
            primary_first=primary_first,
        )
    )

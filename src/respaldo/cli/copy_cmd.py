"""``respaldo copy [ID… | --all] --to REPO``: (re)copy backups, then the archived WAL the
secondary lacks, to a secondary repository."""

from __future__ import annotations

from typing import Annotated

import typer

from respaldo.cli.app import app, err_console, human_bytes, state
from respaldo.cli.text import escape
from respaldo.errors import ConfigError
from respaldo.operations.context import Context
from respaldo.operations.copy import copy_backups, copy_wal_to
from respaldo.phrases import counted


@app.command("copy")
def copy(
    ctx: typer.Context,
    backup_ids: Annotated[list[str] | None, typer.Argument(help="Backup ids to copy.")] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Every completed backup the target lacks.")
    ] = False,
    to: Annotated[str, typer.Option("--to", help="Name of the secondary repository.")] = "",
) -> None:
    """Copy backups from the primary to a secondary repository; only missing chunks move.

    The archived WAL the secondary lacks is copied too (point-in-time recovery from it).
    Exit status 1 if any copy failed (each failed backup copy is recorded in the catalog).
    """
    if not to:
        raise ConfigError("name the secondary repository with --to")
    if bool(backup_ids) == all_:
        raise ConfigError("give backup ids or --all (not both)")
    with Context.open(state(ctx).settings) as context:
        outcomes = copy_backups(context, None if all_ else list(backup_ids or []), to)
        wal = copy_wal_to(context, to)
    failed = 0
    for outcome in outcomes:
        if outcome.stats is None:
            failed += 1
            # Refused (deleted from its primary, before or while it was copied): not a failure.
            said = "not copied" if outcome.refused else "failed"
            err_console.print(
                f"[red]{said}[/] {outcome.backup_id}: {escape(str(outcome.error))}",
                highlight=False,
            )
        elif outcome.stats.already_there:
            err_console.print(f"{outcome.backup_id}: already in {to}")
        else:
            chunks = counted(outcome.stats.chunks, "{count} chunk", "{count} chunks")
            err_console.print(
                f"{outcome.backup_id}: copied to {to}, {outcome.stats.new_chunks} of "
                f"{chunks} new, {human_bytes(outcome.stats.bytes_uploaded)}",
                highlight=False,
            )
    if not outcomes:
        err_console.print(f"nothing to copy: {to} holds every completed backup")
    if wal.stats is not None:
        files = counted(wal.stats.files, "{count} file", "{count} files")
        err_console.print(
            f"archived WAL: {wal.stats.copied} of {files} new in {to}, "
            f"{human_bytes(wal.stats.bytes_copied)}",
            highlight=False,
        )
    if not wal.ok:
        failed += 1
        err_console.print(f"[red]failed[/] {escape(str(wal.error))}", highlight=False)
    if failed:
        raise typer.Exit(1)

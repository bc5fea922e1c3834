"""``respaldo snapshot``, ``pin ID``, ``unpin ID``: backups kept until they are released."""

from __future__ import annotations

from typing import Annotated

import typer

from respaldo.cli.app import app, err_console, human_bytes, state
from respaldo.cli.copies import print_copies
from respaldo.cli.progress import progress_bars
from respaldo.cli.text import escape
from respaldo.domain import AuditAction, AuditOutcome
from respaldo.errors import RespaldoError
from respaldo.operations import audit
from respaldo.operations.context import Context
from respaldo.operations.principal import local_principal
from respaldo.operations.snapshot import set_pinned, take_snapshot
from respaldo.operations.views import kind_word
from respaldo.phrases import N_, counted


@app.command("snapshot")
def snapshot(
    ctx: typer.Context,
    physical: Annotated[
        bool, typer.Option("--physical", help="Also a physical backup of each database.")
    ] = False,
) -> None:
    """Back up every configured database and file set now and pin those backups:
    retention keeps them until 'respaldo unpin'. Prints their ids; exit 1 if any failed."""
    settings = state(ctx).settings
    with progress_bars() as progress:
        context = Context.open(settings, progress)
        try:
            result = take_snapshot(context, physical=physical)
            audit.record(
                context,
                local_principal(),
                AuditAction.SNAPSHOT,
                result.snapshot_id,
                AuditOutcome.SUCCESS if result.ok else AuditOutcome.FAILURE,
                counted(
                    len(result.backups),
                    N_("{count} backup pinned, {failed} failed"),
                    N_("{count} backups pinned, {failed} failed"),
                    failed=len(result.failures),
                ),
            )
        finally:
            context.close()
    for backup in result.backups:
        record = backup.view
        err_console.print(
            f"{record.id}: {kind_word(record.backup_type)} backup of {record.database_name}, "
            f"{human_bytes(backup.stats.size_bytes)}, pinned",
            highlight=False,
        )
        print_copies(backup)
        typer.echo(record.id)
    for source, error in result.failures:
        err_console.print(f"[red]failed:[/] {escape(source)}: {escape(error)}", highlight=False)
    pinned = counted(len(result.backups), "{count} backup pinned", "{count} backups pinned")
    err_console.print(
        f"snapshot {result.snapshot_id}: {pinned}"
        + (f", {len(result.failures)} failed" if result.failures else ""),
        highlight=False,
    )
    if not result.ok:
        raise typer.Exit(1)


def _pin(ctx: typer.Context, backup_id: str, pinned: bool) -> None:
    action = AuditAction.BACKUP_PIN if pinned else AuditAction.BACKUP_UNPIN
    context = Context.open(state(ctx).settings)
    try:
        try:
            record = set_pinned(context, backup_id, pinned)
        except RespaldoError as exc:
            audit.record(
                context, local_principal(), action, backup_id, AuditOutcome.FAILURE, str(exc)
            )
            raise
        audit.record(context, local_principal(), action, backup_id, AuditOutcome.SUCCESS)
    finally:
        context.close()
    word = "pinned: retention keeps it" if pinned else "unpinned: retention may expire it"
    err_console.print(f"{record.id} {word}", highlight=False)


@app.command("pin")
def pin(ctx: typer.Context, backup_id: Annotated[str, typer.Argument(help="Backup id.")]) -> None:
    """Pin a backup: retention never expires it until it is unpinned."""
    _pin(ctx, backup_id, True)


@app.command("unpin")
def unpin(ctx: typer.Context, backup_id: Annotated[str, typer.Argument(help="Backup id.")]) -> None:
    """Release a pinned backup (a snapshot's, say) to the retention rules."""
    _pin(ctx, backup_id, False)

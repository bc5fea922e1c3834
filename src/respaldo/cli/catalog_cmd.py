"""``respaldo catalog rebuild``: recreate catalog records from the repository."""

from __future__ import annotations

from typing import Annotated

import typer

from respaldo.cli.app import app, err_console, state
from respaldo.operations.catalog_rebuild import rebuild_catalog
from respaldo.operations.context import Context

catalog_app = typer.Typer(help="Maintain the catalog of backups.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")


@catalog_app.command("rebuild")
def rebuild(
    ctx: typer.Context,
    repository: Annotated[str | None, typer.Option("--repository", "-r")] = None,
) -> None:
    """Insert or update a record for every backup in the repository.

    Creates the catalog if it does not exist (after a disaster, or to move it).
    """
    context = Context.open(state(ctx).settings, create=True)
    try:
        result = rebuild_catalog(context, repository)
    finally:
        context.close()
    err_console.print(
        f"catalog rebuilt: {result.created} records created, {result.updated} updated "
        f"({context.catalog.url})",
        highlight=False,
    )
    for backup_id in result.lost_data:
        err_console.print(
            f"[yellow]damaged:[/] {backup_id} lost chunks ('respaldo repair' found no good "
            "copy); marked as failed verification",
            highlight=False,
        )
    for backup_id in result.missing_data:
        err_console.print(
            f"[yellow]damaged:[/] {backup_id} uses chunks that neither this repository nor a "
            "mirror holds (a pack missing or cut short); marked as failed verification",
            highlight=False,
        )
    for backup_id in result.damaged:
        err_console.print(f"[red]damaged manifest:[/] {backup_id} (run 'respaldo verify --all')")
    if result.damaged:
        raise typer.Exit(3)

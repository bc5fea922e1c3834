"""``respaldo init``: create the catalog and every configured repository."""

from __future__ import annotations

import typer

from respaldo.cli.app import app, err_console, state
from respaldo.operations.context import Context
from respaldo.operations.repositories import init_repositories


@app.command("init")
def init(ctx: typer.Context) -> None:
    """Create the catalog and each configured repository that does not exist yet.

    Idempotent: what exists is opened (checking the passphrase) and left as it is.
    """
    settings = state(ctx).settings
    context = Context.open(settings)
    err_console.print(f"catalog: {context.catalog.url}")
    context.close()
    for result in init_repositories(settings):
        verb = "created" if result.created else "exists, opened"
        err_console.print(
            f"repository [bold]{result.name}[/] ({result.location}): {verb}, "
            f"id {result.repository_id}"
        )
        for warning in result.warnings:
            err_console.print(f"[yellow]warning:[/] {warning}", highlight=False)

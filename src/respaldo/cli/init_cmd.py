"""``respaldo init``: create every configured repository and the catalog."""

from __future__ import annotations

import typer

from respaldo.cli.app import app, err_console, state
from respaldo.cli.text import escape
from respaldo.operations.initialize import initialize


@app.command("init")
def init(ctx: typer.Context) -> None:
    """Create each configured repository and the catalog, where they do not exist yet.

    Idempotent: what exists is opened (checking the passphrase) and left as it is. The
    only command (with 'catalog rebuild') that creates a catalog.
    """
    result = initialize(state(ctx).settings)
    for repo in result.repositories:
        verb = "created" if repo.created else "exists, opened"
        err_console.print(
            f"repository [bold]{repo.name}[/] ({escape(repo.location)}): {verb}, "
            f"id {repo.repository_id}"
        )
        for warning in repo.warnings:
            err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    err_console.print(f"catalog: {result.catalog}", markup=False)
    if any(repo.created for repo in result.repositories):
        # Key files live beside the data: whatever takes keys/ everywhere takes every
        # backup, and the passphrase alone cannot make a key file again.
        err_console.print(
            "keep a copy of the key apart from the passphrase: 'respaldo key export "
            "--output FILE' (docs/disaster-recovery.md)",
            markup=False,
        )

"""``respaldo notify test``: a test message to every configured notification target."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from respaldo.cli.app import app, err_console, out_console, print_json, state
from respaldo.cli.text import escape
from respaldo.operations.alerts import send_test

notify_app = typer.Typer(help="Notifications: try the configured targets.")
app.add_typer(notify_app, name="notify")


@notify_app.command("test")
def test(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Send a test message to every target in \\[notifications], whatever levels it takes,
    and show how each went. Exit status 1 if any failed (or none is configured)."""
    result = send_test(state(ctx).settings)
    if as_json:
        print_json(result.to_json())
    else:
        table = Table("target", "result", "error")
        for r in result.results:
            sent = "[green]sent[/]" if r.ok else "[red]failed[/]"
            table.add_row(escape(r.target), sent, escape(r.error or ""))
        out_console.print(table)
    if not result.results:
        err_console.print(
            "no notification target is configured ([[notifications.targets]])", markup=False
        )
        raise typer.Exit(1)
    if not result.ok:
        raise typer.Exit(1)

"""``respaldo check DATABASE``: what the server lacks for physical backups and PITR."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from respaldo.cli.app import app, err_console, print_json, state
from respaldo.cli.text import escape
from respaldo.operations.check import check_database

_STYLE = {"ok": "green", "missing": "red", "warning": "yellow"}


@app.command("check")
def check(
    ctx: typer.Context,
    database: Annotated[str, typer.Argument(help="A database name from the config.")],
    adopt: Annotated[
        bool,
        typer.Option(
            "--adopt",
            help="Record the server's cluster as this database's in the repository "
            "(after re-creating the server on purpose).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
) -> None:
    """Check wal_level, WAL senders, replication role and pg_hba, archive_mode and
    archive_command, and the repository's record of the cluster; say how to fix each.

    Exit status 3 when something is missing.
    """
    result = check_database(state(ctx).settings, database, adopt=adopt).view()
    if as_json:
        print_json([f.to_json() for f in result.findings])
    else:
        table = Table("check", "status", "server has", "how to fix", title=f"check of {database}")
        for f in result.findings:
            style = _STYLE[f.status]
            table.add_row(f.check, f"[{style}]{f.status}[/]", escape(f.value), escape(f.fix))
        err_console.print(table)
    if result.adopted:
        err_console.print(
            f"recorded the server's cluster as {database}'s in the repository; take a "
            "physical backup now: the archived WAL of this cluster cannot be replayed onto "
            "the backups of the one before"
        )
    if not result.ok:
        raise typer.Exit(3)

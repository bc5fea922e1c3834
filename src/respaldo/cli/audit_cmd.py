"""``respaldo audit``: the audit log, newest first."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from respaldo.cli.app import app, out_console, print_json, state
from respaldo.cli.text import escape
from respaldo.domain import AuditAction
from respaldo.operations import audit
from respaldo.operations.context import Context
from respaldo.operations.models import to_json_list


@app.command("audit")
def show_audit(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="A day (2026-12-01, from midnight UTC) or a time with its UTC offset "
            "(2026-12-01T08:00:00-06:00, or Z); a time without one is refused.",
        ),
    ] = None,
    user: Annotated[str | None, typer.Option("--user", help="Only this actor.")] = None,
    action: Annotated[AuditAction | None, typer.Option("--action")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show the audit log: logins, changes, restores, refused requests."""
    when = audit.parse_since(since) if since is not None else None
    with Context.open(state(ctx).settings) as context:
        found = audit.entries(context, since=when, user=user, action=action, limit=limit)
    if as_json:
        print_json(to_json_list(found))
        return
    table = Table("time (UTC)", "actor", "from", "action", "target", "outcome", "detail")
    for entry in found:
        table.add_row(
            entry.at.strftime("%Y-%m-%d %H:%M:%S"),
            # Escaped: a failed login records the name as anyone typed it.
            escape(f"{entry.actor} ({entry.method})" if entry.method else entry.actor),
            escape(entry.address or "-"),
            escape(entry.action),
            escape(entry.target or "-"),
            entry.outcome.value,
            escape((entry.detail or "")[:80]),
        )
    out_console.print(table)

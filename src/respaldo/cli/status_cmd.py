"""``respaldo status``: the health picture, per database, for people and for Nagios.

Exit status (docs/monitoring.md): 0 when nothing is red (amber included), 3 when
something is red, 1 when the status could not be computed at all (no config, say).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from respaldo.cli.app import app, out_console, print_json, state
from respaldo.cli.text import escape
from respaldo.operations.context import Context
from respaldo.operations.status import StatusItem, StatusReport, compute_status
from respaldo.operations.views import kind_word

EXIT_RED = 3
_STYLE = {"green": "green", "amber": "yellow", "red": "red"}


@app.command("status")
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    servers: Annotated[
        bool,
        typer.Option(
            "--servers/--no-servers",
            help="Ask each database's server (reachable, WAL archiving); --no-servers: "
            "the catalog alone.",
        ),
    ] = True,
) -> None:
    """Per database: the newest backups against their RPO, WAL archiving, the last restore
    test, offsite copies; each green, amber or red with the reason.

    Exit status 3 when something is red, 0 otherwise (Nagios-style checks).
    """
    with Context.open(state(ctx).settings) as context:
        report = compute_status(context, datetime.now(UTC), servers=servers)
    if as_json:
        print_json(report.to_json())
    else:
        _print(report)
    if report.red:
        raise typer.Exit(EXIT_RED)


def summary(report: StatusReport) -> str:
    """One line, first on stdout, as a Nagios check shows it: the level and the reds."""
    red = [i for i in report.items if i.level == "red"]
    amber = [i for i in report.items if i.level == "amber"]
    line = f"respaldo {report.level.upper()}"
    if red or amber:
        line += f": {len(red)} red, {len(amber)} amber"
    if red:
        line += " - " + "; ".join(f"{i.key}: {i.reason}" for i in red)
    return line


def _print(report: StatusReport) -> None:
    out_console.print(escape(summary(report)), highlight=False)
    if report.general:
        out_console.print(_table("respaldo", report.general))
    for db in report.databases:
        title = f"{db.database}: [{_STYLE[db.level]}]{db.level}[/]"
        if db.server_version:
            title += f" (PostgreSQL {escape(db.server_version)})"
        out_console.print(_table(title, db.items))


def _table(title: str, items: list[StatusItem]) -> Table:
    table = Table("check", "status", "why", title=title, title_justify="left")
    for item in items:
        style = _STYLE[item.level]
        table.add_row(escape(_what(item)), f"[{style}]{item.level}[/]", escape(item.reason))
    return table


def _what(item: StatusItem) -> str:
    if item.check == "rpo" and item.kind is not None:
        return f"{kind_word(item.kind)} backup"
    if item.check == "size" and item.kind is not None:
        return f"{kind_word(item.kind)} backup size"
    if item.check == "copy":
        return f"copy to {item.repository}"
    if item.check == "walcopy":
        return f"WAL in {item.repository}"
    if item.check == "queue":
        return f"queue {item.key.partition(':')[2]}"
    if item.check == "swap":
        return f"swap of {item.key.split(':', 2)[-1]}"
    if item.check == "notify":
        return f"alerts to {item.key.partition(':')[2]}"
    if item.check == "slot":
        return f"slot {item.key.split(':', 2)[-1]}"
    if item.check == "prune":
        return f"prune of {item.repository}"
    return {"restore_test": "restore test", "archive": "WAL archiving"}.get(item.check, item.check)

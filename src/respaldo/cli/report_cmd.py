"""``respaldo report drills [--month YYYY-MM] [--send]``: the monthly restore-test report."""

from __future__ import annotations

from typing import Annotated

import typer

from respaldo.cli.app import app, err_console, out_console, print_json, state
from respaldo.cli.text import escape
from respaldo.operations.context import Context
from respaldo.operations.reports import drill_report, render_report, send_drill_report

report_app = typer.Typer(help="Reports: the monthly restore-test report.")
app.add_typer(report_app, name="report")


@report_app.command("drills")
def drills(
    ctx: typer.Context,
    month: Annotated[
        str | None,
        typer.Option(
            "--month",
            help="YYYY-MM (in \\[schedules] time_zone); default: the month before this one.",
        ),
    ] = None,
    send: Annotated[
        bool, typer.Option("--send", help="Also send it to the targets that take 'report'.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Every restore test of a month: each check and the restore time (the measured RTO).

    With --send, exit status 1 if no target that takes reports could be reached.
    """
    settings = state(ctx).settings
    with Context.open(settings) as context:
        report = send_drill_report(context, month) if send else drill_report(context, month)
    if as_json:
        print_json(report.to_json())
        return
    out_console.print(
        render_report(report, settings.notifications.language).body, highlight=False, markup=False
    )
    for delivery in report.sent:
        status = "sent to" if delivery.ok else "[red]not sent[/] to"
        # The server's own words may hold "[...]": no markup (see cli/list_cmd.py).
        error = f": {escape(delivery.error)}" if delivery.error else ""
        err_console.print(f"{status} {escape(delivery.target)}{error}", highlight=False)

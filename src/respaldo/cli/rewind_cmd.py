"""``respaldo rewind REPOSITORY --to TIME``: bring back an S3 repository's past state."""

from __future__ import annotations

from typing import Annotated

import typer

from respaldo.cli.app import app, err_console, human_bytes, print_json, state
from respaldo.cli.text import escape
from respaldo.operations.rewind import rewind
from respaldo.phrases import counted


@app.command("rewind")
def rewind_command(
    ctx: typer.Context,
    repository: Annotated[str, typer.Argument(help="The configured repository to rewind.")],
    to: Annotated[
        str,
        typer.Option(
            "--to", help="The moment to go back to, with a time zone: 2026-11-28T09:00:00Z."
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Show what would change; change nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Make a repository on a versioned S3 bucket look as it did at --to.

    For the day someone deleted or overwrote the backups: every object is brought back
    to its version of that moment, and what was written later is hidden. Nothing is
    destroyed (each change is a new version), so a rewind can be rewound. Afterwards run
    'respaldo catalog rebuild' and 'respaldo verify --all'.
    """
    report = rewind(state(ctx).settings, repository, to, dry_run=dry_run)
    for warning in report.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    if as_json:
        print_json(report.to_json())
    else:
        verb = "would restore" if dry_run else "restored"
        objects = counted(report.restored, "{count} object", "{count} objects")
        err_console.print(
            f"{repository}: {verb} {objects} "
            f"({human_bytes(report.restored_bytes)}) and "
            f"{'would hide' if dry_run else 'hid'} {report.deleted} written after {report.to}",
            highlight=False,
        )
        for failure in report.failed:
            err_console.print(f"[red]failed:[/] {failure}", highlight=False)
        if not dry_run and report.steps and not report.failed:
            err_console.print(
                f"next: respaldo catalog rebuild --repository {repository}, then "
                f"respaldo verify --all --repository {repository}",
                highlight=False,
            )
    if not report.ok:
        raise typer.Exit(1)

"""``respaldo rewind REPOSITORY --to TIME``: bring back an S3 repository's past state."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from respaldo.cli.app import app, err_console, human_bytes, print_json, state
from respaldo.errors import ConfigError
from respaldo.operations.rewind import rewind_repository


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
    when = _parse_time(to)
    report = rewind_repository(state(ctx).settings, repository, when, dry_run=dry_run)
    if as_json:
        print_json(
            {
                "repository": repository,
                "to": report.to.isoformat(),
                "dryRun": dry_run,
                "restored": report.restored,
                "deleted": report.deleted,
                "applied": report.applied,
                "failed": report.failed,
                "steps": [
                    {"name": s.name, "action": s.action, "versionId": s.version_id}
                    for s in report.steps
                ],
            }
        )
    else:
        restored = sum(s.size for s in report.steps if s.action == "restore")
        verb = "would restore" if dry_run else "restored"
        err_console.print(
            f"{repository}: {verb} {report.restored} objects ({human_bytes(restored)}) and "
            f"{'would hide' if dry_run else 'hid'} {report.deleted} written after "
            f"{report.to.isoformat()}",
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
    if report.failed:
        raise typer.Exit(1)


def _parse_time(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"--to {text!r} is not a date and time",
            hint="use ISO 8601 with a time zone, e.g. 2026-11-28T09:00:00Z",
        ) from None
    if when.tzinfo is None:
        raise ConfigError(
            f"--to {text!r} has no time zone",
            hint="add one, e.g. 2026-11-28T09:00:00Z or 2026-11-28T10:00:00+01:00",
        )
    return when

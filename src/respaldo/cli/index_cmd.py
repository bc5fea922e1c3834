"""``respaldo index rebuild``: recreate the chunk index from the packs' headers."""

from __future__ import annotations

from typing import Annotated

import typer

from respaldo.cli.app import app, err_console, state
from respaldo.cli.text import escape
from respaldo.operations.context import Context
from respaldo.operations.keys import rebuild_repository_index
from respaldo.phrases import counted

index_app = typer.Typer(help="Inspect and repair the chunk index.", no_args_is_help=True)
app.add_typer(index_app, name="index")


@index_app.command("rebuild")
def rebuild(
    ctx: typer.Context,
    repository: Annotated[str | None, typer.Option("--repository", "-r")] = None,
) -> None:
    """Replace every index file with one made from the pack headers."""
    with (
        Context.open(state(ctx).settings, catalog=False) as context,
        err_console.status("reading pack headers"),
    ):
        report = rebuild_repository_index(context, repository)
    packs = counted(report.packs, "{count} pack", "{count} packs")
    chunks = counted(report.chunks, "{count} chunk", "{count} chunks")
    err_console.print(
        f"index rebuilt from {packs} ({chunks}): "
        f"{report.index_files_written} index files written, "
        f"{report.index_files_removed} removed"
    )
    if report.quarantined:
        err_console.print(
            f"{report.quarantined} damaged chunk copies stay quarantined "
            "('respaldo repair' replaces them from a mirror)",
            highlight=False,
        )
    for problem in report.problems:
        err_console.print(f"[red]problem:[/] {escape(problem)}", highlight=False)
    if report.problems:
        raise typer.Exit(3)

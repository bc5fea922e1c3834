"""``respaldo index rebuild``: recreate the chunk index from the packs' headers."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from respaldo.cli.app import app, err_console, state
from respaldo.operations.repositories import open_store
from respaldo.repository import Repository, rebuild_index

index_app = typer.Typer(help="Inspect and repair the chunk index.", no_args_is_help=True)
app.add_typer(index_app, name="index")


@index_app.command("rebuild")
def rebuild(
    ctx: typer.Context,
    repository: Annotated[str | None, typer.Option("--repository", "-r")] = None,
) -> None:
    """Replace every index file with one made from the pack headers."""
    settings = state(ctx).settings
    # The index may be what is broken: open without loading it.
    repo = Repository.open(
        open_store(settings.repository(repository)),
        settings.repository_passphrase(),
        cache_dir=settings.cache_dir,
        load_index=False,
    )
    with err_console.status("reading pack headers"):
        report = rebuild_index(repo)
    err_console.print(
        f"index rebuilt from {report.packs} packs ({report.chunks} chunks): "
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
        err_console.print(f"[red]problem:[/] {escape(str(problem))}", highlight=False)
    if report.problems:
        raise typer.Exit(3)

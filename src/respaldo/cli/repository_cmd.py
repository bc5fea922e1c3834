"""``respaldo repository restore-config``: get a lost or damaged repository config back."""

from __future__ import annotations

from typing import Annotated

import typer

from respaldo.cli.app import app, err_console, state
from respaldo.operations.repositories import restore_repository_config

repository_app = typer.Typer(help="Repair a repository itself.", no_args_is_help=True)
app.add_typer(repository_app, name="repository")


@repository_app.command("restore-config")
def restore_config(
    ctx: typer.Context,
    repository: Annotated[
        str | None, typer.Option("--repository", "-r", help="Repository name (default: primary).")
    ] = None,
    from_mirror: Annotated[
        str | None,
        typer.Option("--from-mirror", help="Take config only from this configured mirror."),
    ] = None,
) -> None:
    """Write the repository's config again when it is lost or damaged.

    From the copy a key file carries (the passphrase proves it), else from a mirror's
    config, else from the local cache. Writes nothing but config, and nothing at all when
    config is intact or no source proves to be this repository's.
    """
    result = restore_repository_config(state(ctx).settings, repository, from_mirror)
    err_console.print(
        f"config restored from {result.source}: repository id {result.repository_id}",
        highlight=False,
    )
    if result.chunker_assumed:
        err_console.print(
            "[yellow]warning:[/] the chunker parameters were not recoverable; those of "
            "the \\[chunker] settings were written (they only affect deduplication: the "
            "next backup may store more than usual)",
            highlight=False,
        )

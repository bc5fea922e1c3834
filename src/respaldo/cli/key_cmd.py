"""``respaldo key``: list, add, change and remove repository passphrases.

New passphrases come from ``RESPALDO_NEW_PASSPHRASE``, a 0600 file, or a hidden prompt,
never from the command line (argv is visible to every user of the machine).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from respaldo.cli.app import app, err_console, out_console, state
from respaldo.config import read_secret_file
from respaldo.errors import ConfigError
from respaldo.operations.context import Context
from respaldo.operations.keys import add_key, change_passphrase, list_keys, remove_key

key_app = typer.Typer(help="Manage the passphrases that open a repository.", no_args_is_help=True)
app.add_typer(key_app, name="key")

RepoOption = Annotated[
    str | None, typer.Option("--repository", "-r", help="Repository name (default: primary).")
]
ChangeRepoOption = Annotated[
    str | None,
    typer.Option(
        "--repository",
        "-r",
        help="Change this repository only (default: every configured repository).",
    ),
]
FileOption = Annotated[
    Path | None, typer.Option("--new-passphrase-file", help="0600 file with the new passphrase.")
]


def _new_passphrase(path: Path | None) -> str:
    """The new passphrase from the file, the environment or a prompt (the application
    function refuses one too weak for a new key)."""
    if path is not None:
        new = read_secret_file(path, "new passphrase file")
    elif os.environ.get("RESPALDO_NEW_PASSPHRASE"):
        new = os.environ["RESPALDO_NEW_PASSPHRASE"]
    else:
        new = str(typer.prompt("New passphrase", hide_input=True))
        if typer.prompt("Repeat it", hide_input=True) != new:
            raise ConfigError("the two passphrases differ")
    return new


@key_app.command("list")
def list_command(ctx: typer.Context, repository: RepoOption = None) -> None:
    """List key ids; the one the current passphrase opens is marked."""
    with Context.open(state(ctx).settings, catalog=False) as context:
        keys = list_keys(context, repository)
    for key in keys:
        mark = "*" if key.current else " "
        out_console.print(f"{mark} {key.id}  created {key.created}")


@key_app.command("add")
def add(
    ctx: typer.Context, repository: ChangeRepoOption = None, new_file: FileOption = None
) -> None:
    """Add another passphrase that opens every repository (or the one named)."""
    passphrase = _new_passphrase(new_file)
    with Context.open(state(ctx).settings, catalog=False) as context:
        added = add_key(context, passphrase, repository)
    for key in added:
        err_console.print(f"{key.repository}: added key {key.key}")


@key_app.command("passwd")
def passwd(
    ctx: typer.Context, repository: ChangeRepoOption = None, new_file: FileOption = None
) -> None:
    """Replace the current passphrase with a new one in every repository (or the one named)."""
    passphrase = _new_passphrase(new_file)
    with Context.open(state(ctx).settings, catalog=False) as context:
        changes = change_passphrase(context, passphrase, repository)
    for change in changes:
        old = ", ".join(change.old_keys) or "none"
        err_console.print(
            f"{change.repository}: passphrase changed: key {old} replaced by {change.new_key}"
        )
    err_console.print(
        "put the new passphrase in passphrase_file (or RESPALDO_PASSPHRASE): the old one "
        "no longer opens " + ("these repositories" if repository is None else repository)
    )


@key_app.command("remove")
def remove(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="Key id from 'respaldo key list'.")],
    repository: RepoOption = None,
) -> None:
    """Remove a passphrase. The last one cannot be removed."""
    with Context.open(state(ctx).settings, catalog=False) as context:
        remove_key(context, key_id, repository)
    err_console.print(f"removed key {key_id}")

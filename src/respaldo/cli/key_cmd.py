"""``respaldo key``: list, add, change and remove repository passphrases.

New passphrases come from ``RESPALDO_NEW_PASSPHRASE``, a 0600 file, or a hidden prompt,
never from the command line (argv is visible to every user of the machine). Adding,
changing and removing a key change who can restore: they are audited with the OS user as
the actor when the catalog opens, and work without it
(:func:`respaldo.operations.audit.run_local`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from respaldo.cli.app import app, err_console, out_console, state
from respaldo.config import read_secret_file
from respaldo.errors import ConfigError
from respaldo.operations.context import Context
from respaldo.operations.keys import (
    add_key,
    change_passphrase,
    export_key,
    import_key,
    list_keys,
    remove_key,
)

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
    """List key ids; the one the current passphrase opens is marked *, a damaged one !."""
    with Context.open(state(ctx).settings, catalog=False) as context:
        keys = list_keys(context, repository)
    for key in keys:
        if key.problem is not None:
            out_console.print(f"! {key.id}  {key.problem}", markup=False)
            continue
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


@key_app.command("export")
def export(
    ctx: typer.Context,
    repository: RepoOption = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write it to this new 0600 file (default: stdout)."),
    ] = None,
) -> None:
    """Print the key file the passphrase opens: keep it apart from the passphrase, so
    that 'respaldo key import' can bring the repository back if its keys are lost."""
    with Context.open(state(ctx).settings, catalog=False) as context:
        data = export_key(context, repository)
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{output} exists", hint="name a new file") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    err_console.print(f"key written to {output}")


@key_app.command("import")
def import_command(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A file written by 'respaldo key export'.")],
    repository: RepoOption = None,
) -> None:
    """Put an exported key file back into a repository whose keys are lost."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    with Context.open(state(ctx).settings, catalog=False) as context:
        imported = import_key(context, data, repository)
    err_console.print(f"{imported.repository}: key {imported.key} put back")
    if imported.config_missing:
        err_console.print(
            "its config is lost too: run 'respaldo repository restore-config "
            f"--repository {imported.repository}' next"
        )

"""``respaldo user add|list|remove|passwd|disable|enable``: the API's local users.

Passwords are read from the terminal (asked twice, not echoed) or, when stdin is not a
terminal, from its first line; never from the command line, where every user of the
machine could read them in the process list. Changes are audited with the OS user as
the actor.
"""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer
from rich.table import Table

from respaldo.cli.app import app, err_console, out_console, print_json, state
from respaldo.domain import Role
from respaldo.errors import InvalidInput
from respaldo.operations import users
from respaldo.operations.context import Context
from respaldo.operations.models import to_json_list
from respaldo.operations.principal import local_principal

user_app = typer.Typer(help="Local users of the HTTP API (roles viewer, operator, admin).")
app.add_typer(user_app, name="user")

RoleOption = Annotated[
    Role, typer.Option("--role", help="viewer (read), operator (read, create), admin (all).")
]


def read_password(what: str = "password") -> str:
    """A new password from the terminal (twice) or the first line of stdin."""
    if sys.stdin.isatty():
        first = getpass.getpass(f"New {what}: ")
        if getpass.getpass(f"Repeat the {what}: ") != first:
            raise InvalidInput("password", "the two passwords differ", hint="type it again")
        return first
    return sys.stdin.readline().rstrip("\r\n")


@user_app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The user's name (their login).")],
    role: RoleOption,
) -> None:
    """Add a user; the password is asked for (or read from stdin), never an argument."""
    password = read_password()
    with Context.open(state(ctx).settings) as context:
        user = users.add_user(context, name, role, password, actor=local_principal())
    err_console.print(f"user {user.name} added ({user.role.value})", highlight=False)


@user_app.command("list")
def list_users(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """List the users and their roles."""
    with Context.open(state(ctx).settings) as context:
        found = users.list_users(context)
    if as_json:
        print_json(to_json_list(found))
        return
    table = Table("name", "role", "permissions", "disabled", "created (UTC)", "password set")
    for user in found:
        table.add_row(
            user.name,
            user.role.value,
            " ".join(user.permissions),
            "yes" if user.disabled else "no",
            user.created_at.strftime("%Y-%m-%d %H:%M"),
            user.password_changed_at.strftime("%Y-%m-%d %H:%M"),
        )
    out_console.print(table)


@user_app.command("remove")
def remove(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="The user to remove.")]
) -> None:
    """Remove a user; their sessions end at once."""
    with Context.open(state(ctx).settings) as context:
        users.remove_user(context, name, actor=local_principal())
    err_console.print(f"user {name} removed", highlight=False)


@user_app.command("passwd")
def passwd(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="Whose password.")]
) -> None:
    """Set a user's password (asked for, or read from stdin); their sessions end."""
    password = read_password()
    with Context.open(state(ctx).settings) as context:
        users.set_password(context, name, password, actor=local_principal())
    err_console.print(f"password of {name} changed; their sessions ended", highlight=False)


@user_app.command("disable")
def disable(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="The user to disable.")]
) -> None:
    """Disable a user: their sessions end and they cannot log in until enabled."""
    with Context.open(state(ctx).settings) as context:
        users.set_disabled(context, name, True, actor=local_principal())
    err_console.print(f"user {name} disabled; their sessions ended", highlight=False)


@user_app.command("enable")
def enable(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="The user to enable.")]
) -> None:
    """Enable a disabled user again."""
    with Context.open(state(ctx).settings) as context:
        users.set_disabled(context, name, False, actor=local_principal())
    err_console.print(f"user {name} enabled", highlight=False)

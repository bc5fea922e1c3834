"""``respaldo token create|list|revoke``: API tokens for automation.

``create`` prints the token once, on stdout (a script can capture it); only a hash of it
is kept. Changes are audited with the OS user as the actor.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from respaldo.cli.app import app, err_console, out_console, print_json, state
from respaldo.cli.user_cmd import RoleOption
from respaldo.operations import api_tokens
from respaldo.operations.context import Context
from respaldo.operations.models import to_json_list
from respaldo.operations.principal import local_principal

token_app = typer.Typer(help="API tokens for automation: create (shown once), list, revoke.")
app.add_typer(token_app, name="token")


@token_app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A name for the token (who or what uses it).")],
    role: RoleOption,
) -> None:
    """Create an API token and print it once; keep it secret."""
    with Context.open(state(ctx).settings) as context:
        created = api_tokens.create_token(context, name, role, actor=local_principal())
    sys.stdout.write(created.token + "\n")
    err_console.print(
        f"API token {created.name} created ({created.role.value}); it is shown only now",
        highlight=False,
    )


@token_app.command("list")
def list_tokens(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """List API tokens (never the tokens themselves)."""
    with Context.open(state(ctx).settings) as context:
        found = api_tokens.list_tokens(context)
    if as_json:
        print_json(to_json_list(found))
        return
    table = Table("name", "id", "role", "created (UTC)", "by", "revoked (UTC)")
    for token in found:
        table.add_row(
            token.name,
            token.id,
            token.role.value,
            token.created_at.strftime("%Y-%m-%d %H:%M"),
            token.created_by or "-",
            token.revoked_at.strftime("%Y-%m-%d %H:%M") if token.revoked_at else "-",
        )
    out_console.print(table)


@token_app.command("revoke")
def revoke(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="The token's name.")]
) -> None:
    """Revoke an API token: it stops working at the next request."""
    with Context.open(state(ctx).settings) as context:
        api_tokens.revoke_token(context, name, actor=local_principal())
    err_console.print(f"API token {name} revoked", highlight=False)

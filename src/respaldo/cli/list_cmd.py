"""``respaldo list`` and ``respaldo show ID``: what the catalog knows; ``respaldo ls ID``:
what a logical backup holds."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from respaldo.cli.app import app, err_console, human_bytes, out_console, print_json, state
from respaldo.cli.text import escape
from respaldo.domain import BackupKind, BackupStatus
from respaldo.operations.contents import BackupContents, backup_contents
from respaldo.operations.context import Context
from respaldo.operations.listing import BackupView, list_backups, show_backup
from respaldo.operations.models import to_json_list
from respaldo.operations.views import kind_word
from respaldo.phrases import counted


@app.command("list")
def list_command(
    ctx: typer.Context,
    database: Annotated[str | None, typer.Option("--database", "-d")] = None,
    kind: Annotated[BackupKind | None, typer.Option("--type")] = None,
    status: Annotated[BackupStatus | None, typer.Option("--status")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1)] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List backups, newest first."""
    with Context.open(state(ctx).settings) as context:
        listing = list_backups(context, database=database, kind=kind, status=status, limit=limit)
        catalog_url = context.catalog.url
    records = listing.backups
    if listing.unrecorded_in is not None:
        err_console.print(
            f"[yellow]warning:[/] the catalog {escape(catalog_url)} is empty, but repository "
            f"{listing.unrecorded_in} holds backups",
            highlight=False,
        )
        err_console.print(
            "hint: check [catalog] url; 'respaldo catalog rebuild' records them in this catalog",
            highlight=False,
            markup=False,
        )
    if as_json:
        print_json(to_json_list(records))
        return
    table = Table(
        "id", "database", "type", "status", "size", "stored new", "verified", "expires (UTC)"
    )
    for r in records:
        table.add_row(
            r.id,
            r.database_name or "-",
            kind_word(r.backup_type),
            r.status.value,
            human_bytes(r.size_bytes),
            human_bytes(r.stored_new_bytes),
            _verified(r),
            r.expires_at.strftime("%Y-%m-%d %H:%M") if r.expires_at else "-",
        )
    out_console.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    backup_id: Annotated[str, typer.Argument(help="Backup id.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show one backup's record."""
    with Context.open(state(ctx).settings) as context:
        record = show_backup(context, backup_id)
        data = record.to_json()
        if as_json:
            print_json(data)
            return
        # Not at import: the detail's module is the page's, and the CLI starts small.
        from respaldo.operations.backup_detail import source_note

        note = source_note(context, record)
    width = max(len(k) for k in data)
    for key, value in data.items():
        # No markup: values such as errorMessage may hold "[backup …]", which is no style.
        out_console.print(
            f"{key:<{width}}  {value if value is not None else '-'}", highlight=False, markup=False
        )
    if note is not None:
        out_console.print(f"{'source':<{width}}  {note}", highlight=False, markup=False)


@app.command("ls")
def ls_command(
    ctx: typer.Context,
    backup_id: Annotated[str, typer.Argument(help="Backup id (a logical backup).")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List the schemas and tables (with row counts and sizes) a logical backup holds,
    without restoring it."""
    with Context.open(state(ctx).settings) as context:
        contents = backup_contents(context, backup_id)
    if as_json:
        print_json(contents.to_json())
        return
    _print_contents(contents)


_PLURALS = {"index": "indexes"}
"""The kinds of objects ``ls`` counts (operations.contents) whose plural is not the kind
and an s: "3 functions", "2 indexes", "1 view" (it said "3 function")."""


def _print_contents(contents: BackupContents) -> None:
    table = Table("table", "rows", "size", "partition of")
    for t in contents.tables:
        table.add_row(
            # A quoted identifier may hold "[...]": names are no markup.
            escape(t.qualified),  # as restore --table takes it
            "-" if t.rows is None else str(t.rows),
            human_bytes(t.size_bytes),
            escape(t.partition_of or ""),
        )
    out_console.print(table)
    schemas = ", ".join(
        f"{s.name} ({counted(s.tables, '{count} table', '{count} tables')})" if s.tables else s.name
        for s in contents.schemas
    )
    objects = ", ".join(
        counted(count, f"{{count}} {kind}", f"{{count}} {_PLURALS.get(kind, kind + 's')}")
        for kind, count in contents.objects.items()
    )
    out_console.print(f"schemas: {schemas}", highlight=False, markup=False)
    if objects:
        out_console.print(f"other objects: {objects}", highlight=False, markup=False)


def _verified(record: BackupView) -> str:
    """yes, no (never checked), or failed: a verification, drill or repair found it
    damaged ('respaldo show' says what)."""
    if record.is_verified:
        return "yes"
    return "failed" if record.verified_at is not None else "no"

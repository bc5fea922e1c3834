"""The root command group, which imports a command's module only when that command runs.

Typer builds every command from its function when the application is turned into a
click group, so every command module had to be imported first: ``respaldo --help`` or
``respaldo status`` paid for all of them (SQLAlchemy, Alembic, pydantic-settings,
psycopg, apprise: about 1.5 CPU-seconds and 80 MB). Here the group knows the commands
from :mod:`respaldo.cli.commands`; the help lists them from that table, and the module of
the one command that runs is imported when click resolves its name.
"""

from __future__ import annotations

import importlib
import inspect
from difflib import get_close_matches
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from respaldo.cli.commands import BY_NAME, COMMANDS
from respaldo.cli.entry import release_collection


class LazyGroup(TyperGroup):
    """A TyperGroup whose commands are imported on first use (see the module docstring)."""

    # ``ctx`` is click's Context (Typer's bundled copy, a private module): typed Any.

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return [entry.name for entry in COMMANDS]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in BY_NAME:
            if self._listing:
                # Only the name and the line of help are read: no import for that.
                return TyperCommand(cmd_name, short_help=BY_NAME[cmd_name].help)
            self.commands[cmd_name] = load_command(cmd_name)
            release_collection()  # the command runs with the collector on (entry.py)
        return self.commands.get(cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except typer.TyperException as exc:
            # Typer suggests close names among the commands built so far: offer them all.
            if args and "Did you mean" not in exc.message:
                matches = get_close_matches(args[0], list(BY_NAME))
                if matches:
                    shown = ", ".join(repr(m) for m in matches)
                    exc.message = f"{exc.message.rstrip('.')}. Did you mean {shown}?"
            raise


def load_command(name: str) -> Any:
    """Import the module of top-level command ``name`` and build its click command."""
    from respaldo.cli.app import app

    importlib.import_module(f"respaldo.cli.{BY_NAME[name].module}")
    short_helps(app)
    for info in app.registered_commands:
        assert info.callback is not None
        if (info.name or typer.main.get_command_name(info.callback.__name__)) == name:
            return typer.main.get_command_from_info(
                info,
                pretty_exceptions_short=app.pretty_exceptions_short,
                rich_markup_mode=app.rich_markup_mode,
            )
    for group in app.registered_groups:
        if group.name == name:
            return typer.main.get_group_from_info(
                group,
                pretty_exceptions_short=app.pretty_exceptions_short,
                rich_markup_mode=app.rich_markup_mode,
                suggest_commands=app.suggest_commands,
            )
    raise LookupError(f"respaldo.cli.{BY_NAME[name].module} registers no command {name!r}")


def load_all() -> None:
    """Import every command module (tests compare the table with the commands)."""
    from respaldo.cli.app import app

    for entry in COMMANDS:
        importlib.import_module(f"respaldo.cli.{entry.module}")
    short_helps(app)


def short_helps(group: typer.Typer) -> None:
    """Give every command of ``group`` (and of its sub-groups) a one-line short help: the
    first paragraph of its docstring, its lines joined. Typer keeps a docstring's line
    breaks in the list of commands, which cuts sentences in the middle."""
    for info in group.registered_commands:
        doc = info.callback.__doc__ if info.callback is not None else None
        if info.short_help is None and doc:
            first = inspect.cleandoc(doc).split("\n\n")[0]
            info.short_help = " ".join(first.split())
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            short_helps(sub.typer_instance)

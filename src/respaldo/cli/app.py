"""The Typer application, shared state and output helpers used by every command."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from respaldo.cli.lazy import LazyGroup

if TYPE_CHECKING:  # imported when first used: pydantic-settings costs 0.2 CPU-s to import
    from respaldo.config import Settings

app = typer.Typer(
    name="respaldo",
    cls=LazyGroup,
    help="Backup and disaster recovery for PostgreSQL: deduplicated, encrypted, verified.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Progress and tables go to stderr: stdout carries only what scripts consume (ids, JSON).
# Piped output is not cut to 80 columns: tables in logs and CI output stay readable.
_WIDTH = None if sys.stdout.isatty() else 160
# No emoji codes: rich would print the database "dash"'s "restore_test:dash: ..." as
# "restore_test💨 ...", and a table or database named ":x:" as ❌; escaping markup does
# not stop that, and respaldo writes none on purpose.
err_console = Console(stderr=True, soft_wrap=True, width=_WIDTH, emoji=False)
out_console = Console(soft_wrap=True, width=_WIDTH, emoji=False)


@dataclass
class State:
    config_path: Path | None = None
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from respaldo.config import load_settings

            self._settings = load_settings(self.config_path)
        return self._settings


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    assert isinstance(obj, State)
    return obj


def _print_version(value: bool) -> None:
    """``--version``: which respaldo runs (after an upgrade, say), then exit. Eager, so no
    command, configuration or catalog is needed or touched; ``respaldo.__version__`` is
    already imported, so ``--help`` stays as fast as it was."""
    if value:
        from respaldo import __version__

        sys.stdout.write(f"respaldo {__version__}\n")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print respaldo's version and exit.",
            is_eager=True,
            callback=_print_version,
        ),
    ] = False,
    config: Annotated[
        Path | None,
        # readable=False: click's own check would answer "is not readable" before the
        # config loader can say which user needs access and how to give it.
        typer.Option(
            "--config",
            "-c",
            help="TOML config file (or RESPALDO_CONFIG).",
            envvar=None,
            readable=False,
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log details.")] = False,
) -> None:
    """respaldo: backups of PostgreSQL you can prove restore."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    ctx.obj = State(config_path=config)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def human_bytes(count: int | float | None) -> str:
    if count is None:
        return "-"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover

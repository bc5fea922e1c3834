"""The ``respaldo`` console script: the WAL commands take a short cut, the rest the full CLI.

``archive_command`` and ``restore_command`` start respaldo once per WAL file; importing
the whole Typer application for each (every command module, SQLAlchemy, Alembic) would
cost more than the work itself. So the arguments are looked at first: ``wal-push`` and
``wal-fetch`` (after the global ``--config``/``--verbose`` options) go to
:mod:`respaldo.cli.wal_fast`, everything else to :func:`respaldo.cli.main.run`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import NoReturn

WAL_COMMANDS = frozenset({"wal-push", "wal-fetch"})
_WITH_VALUE = frozenset({"--config", "-c"})
_FLAGS = frozenset({"--verbose", "-v"})


def command_of(argv: Sequence[str]) -> str | None:
    """The command word of ``argv`` (without the program name), skipping global options."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _WITH_VALUE:
            skip = True
        elif arg.startswith("--config=") or arg in _FLAGS:
            continue
        else:
            return arg
    return None


def run() -> NoReturn:
    argv = sys.argv[1:]
    if command_of(argv) in WAL_COMMANDS and "--help" not in argv:
        from respaldo.cli.wal_fast import main

        sys.exit(main(argv))
    from respaldo.cli.main import run as full

    full()

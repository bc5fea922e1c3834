"""The ``respaldo`` console script: the WAL commands take a short cut, the rest the full CLI.

``archive_command`` and ``restore_command`` start respaldo once per WAL file; importing
the whole Typer application for each (every command module, SQLAlchemy, Alembic) would
cost more than the work itself. So the arguments are looked at first: ``wal-push`` and
``wal-fetch`` (after the global ``--config``/``--verbose`` options) go to
:mod:`respaldo.cli.wal_fast`, everything else to :func:`respaldo.cli.main.run`.

The full CLI imports with the cyclic garbage collector off (:func:`hold_collection`) and
turns it back on, with what the imports built frozen, once the command's module is
imported (:func:`release_collection`).

A Ctrl-C during those imports (the first half second or so) ends the command as one
later does, with a line and a status instead of a traceback (:func:`interrupted_starting`).
"""

from __future__ import annotations

import gc
import os
import sys

# Not imported when running (the annotations are strings): typing and collections.abc
# took 10-20 ms of a start-up during which a Ctrl-C still meets Python's own handler.
TYPE_CHECKING = False
if TYPE_CHECKING:
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


_HELD = False
"""Whether :func:`hold_collection` turned the collector off (and nothing released it yet)."""


def hold_collection() -> None:
    """Turn the cyclic garbage collector off for the imports of a one-shot command.

    Importing a command's modules (SQLAlchemy, pydantic, psycopg, Typer, Rich, the
    catalog's models) allocates hundreds of thousands of objects that live until the
    process ends, and every few thousand allocations the collector walked all of them
    again: about a tenth of the imports' CPU time, and more in the command afterwards
    (see :func:`release_collection`). A ``respaldo restore`` of a small database took
    0.84-0.94 CPU-s instead of 1.18-1.29 (GNU time, same code with and without). What
    imports make lives as long as the process: there is nothing to collect.
    """
    global _HELD
    if gc.isenabled():
        gc.disable()
        _HELD = True


def release_collection() -> None:
    """After the command's module is imported: freeze what the imports built (the
    collector never walks it again; a later import, numpy's for the chunk index, cost
    0.10 CPU-s instead of 0.055 while it did) and turn the collector back on, so that
    the command itself runs with it as always. A no-op unless :func:`hold_collection`
    turned it off (in-process callers, the tests, keep their collector as it is)."""
    global _HELD
    if _HELD:
        _HELD = False
        gc.freeze()
        gc.enable()


def one_blas_thread() -> None:
    """Start numpy's OpenBLAS with one thread unless told otherwise.

    numpy (the chunk index, where a process builds its arrays) loads OpenBLAS, which
    starts a thread per core when it is loaded: half of numpy's import, 0.03 of 0.06 CPU-s
    (time.process_time, 2 cores). respaldo sorts and searches arrays; it never multiplies
    matrices, the only work those threads do. An OPENBLAS_NUM_THREADS already set is kept.
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


INTERRUPTED_STATUS = {"wal-push": 1, "wal-fetch": 255}
"""What an interrupted WAL command exits with, as :mod:`respaldo.cli.wal_fast` says it
(not imported for it: the interrupt may have come while it was being imported). 1 for
``wal-push``: the server keeps the segment and archives it later. 255 for ``wal-fetch``:
any status above 125 stops recovery, where 1 ("no such segment") would end it early."""


def interrupted_starting(command: str | None) -> int:
    """Say that a Ctrl-C came before the command's own handling was in place; its status.

    Until :func:`respaldo.cli.main.take_interrupts` (or the WAL commands' own ``except``)
    runs, SIGINT has Python's default handler, and a Ctrl-C while the modules were being
    imported printed a traceback of importlib frames and killed the process by SIGINT.
    Nothing has been done yet at that point, so there is nothing to clean up: the same
    line and the same status (130, a shell's "killed by SIGINT") as a command interrupted
    later. Only SIGINT gets here: SIGTERM and SIGHUP still have the default action then,
    which ends the process without a word, as a shell expects.
    """
    # Not contextlib.suppress: contextlib is not imported yet (see TYPE_CHECKING above).
    try:  # noqa: SIM105
        sys.stderr.write("respaldo: interrupted\n")
    except OSError:  # the terminal may be gone; the status still says it
        pass
    return INTERRUPTED_STATUS.get(command or "", 130)


def run() -> NoReturn:
    argv = sys.argv[1:]
    command = command_of(argv)
    one_blas_thread()
    try:
        if command in WAL_COMMANDS and "--help" not in argv:
            from respaldo.cli.wal_fast import main

            sys.exit(main(argv))
        hold_collection()
        from respaldo.cli.main import run as full

        full()
    except KeyboardInterrupt:
        sys.exit(interrupted_starting(command))

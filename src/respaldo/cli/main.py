"""Entry point: runs the CLI and turns errors into one line and an exit status.

Exit status: 0 success, 1 a respaldo error (message and hint on stderr), 2 usage error,
3 verification found problems (or, for ``status``, something is red), 130 interrupted.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import NoReturn

import typer

from respaldo.cli.app import app
from respaldo.cli.lazy import short_helps
from respaldo.errors import RespaldoError

# The command modules are imported by the root group when their command runs
# (respaldo.cli.lazy): start-up pays only for the command it runs.

_INTERRUPTED = threading.Event()
"""Set by SIGINT (see :func:`take_interrupts`)."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    _INTERRUPTED.set()
    raise KeyboardInterrupt


def invoke(argv: list[str] | None = None) -> int:
    """Run the CLI in this process and return its exit status (tests call this)."""
    short_helps(app)  # of the commands whose modules were imported already (by tests)
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="respaldo", standalone_mode=False)
    # Typer's own exceptions, not click's: Typer carries its own copy of click (and click
    # itself is not installed with respaldo), so click's classes never match them.
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # usage errors: unknown option, bad value, ...
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            sys.stderr.write(f"respaldo: error: {exc.format_message()}\n")
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        sys.stderr.write("respaldo: interrupted\n")
        return 130
    except RespaldoError as exc:
        message, hint = exc.rendered(option_name)
        sys.stderr.write(f"respaldo: error: {message}\n")
        if hint:
            sys.stderr.write(f"respaldo: hint: {hint}\n")
        return 1
    if _INTERRUPTED.is_set():
        # Typer turns the KeyboardInterrupt into a plain 130 before it reaches us.
        sys.stderr.write("respaldo: interrupted\n")
        return 130
    return result if isinstance(result, int) else 0


def option_name(field: str) -> str:
    """The command-line option of an application function's argument: errors name
    arguments (``target_time``), the CLI shows its options (``--target-time``)."""
    return OPTION_NAMES.get(field, "--" + field.replace("_", "-"))


OPTION_NAMES = {
    "with_globals": "--globals",
    "kind": "--type",
    "tables": "--table",
    "schemas": "--schema",
}
"""Arguments whose option is not simply ``--`` and the argument's name."""


def take_interrupts() -> None:
    """Make SIGINT raise KeyboardInterrupt even if this process was started ignoring it.

    Ignored signals are inherited, and a non-interactive shell starts its background jobs
    (``cmd &``) with SIGINT ignored; so do some supervisors and CI runners. Python keeps
    an inherited SIG_IGN, and every interrupt, Ctrl-C or ``kill -INT``, was silently
    dropped: a backup waiting on a database lock went on waiting for as long as the lock
    was held. Every command cleans up on KeyboardInterrupt (the backup's record failed at
    once, children killed, leases released), so respaldo always takes it.
    """
    signal.signal(signal.SIGINT, _interrupt)


def run() -> NoReturn:
    """Console-script entry point."""
    take_interrupts()
    sys.exit(invoke())


if __name__ == "__main__":
    run()

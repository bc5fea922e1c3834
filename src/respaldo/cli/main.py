"""Entry point: runs the CLI and turns errors into one line and an exit status.

Exit status: 0 success, 1 a respaldo error (message and hint on stderr), 2 usage error,
3 verification found problems (or, for ``status``, something is red), 130 interrupted
(143 SIGTERM, 129 SIGHUP). A backup signalled once its manifest was being written
completed before the signal took effect, says so and exits 0 (cancellation.committing).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from types import FrameType
from typing import NoReturn

import typer

from respaldo import cancellation
from respaldo.cli.app import app
from respaldo.cli.lazy import short_helps
from respaldo.errors import RespaldoError

# The command modules are imported by the root group when their command runs
# (respaldo.cli.lazy): start-up pays only for the command it runs.

_INTERRUPTED = threading.Event()
"""Set by SIGINT, SIGTERM or SIGHUP (see :func:`take_interrupts`)."""

_RECEIVED: list[int] = []
"""The signals :func:`_interrupt` took, first first: the exit status and message follow
the first (a SIGTERM after a Ctrl-C does not turn an interrupt into a termination)."""

DAEMONS = frozenset({"serve", "worker"})
"""Commands that stop gracefully on SIGTERM by their own handlers (finishing or handing
back their jobs): :func:`take_interrupts` leaves SIGTERM and SIGHUP to them."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    _INTERRUPTED.set()
    _RECEIVED.append(signum)
    # The first signal names the interruption: a Ctrl-C pressed while SIGTERM's cleanup
    # waits raises again (stopping the wait), but the job's reason stays "terminated by
    # SIGTERM", as the exit status and message do; it said "interrupted" before.
    first = _RECEIVED[0]
    # A KeyboardInterrupt all the same: every command's cleanup (children killed, the
    # record failed, leases released, staging databases dropped) is written for it.
    # Its text is the job's recorded reason (operations/jobs.py, operations/recorded.py).
    if first == signal.SIGINT:
        exc = KeyboardInterrupt()
    else:
        exc = KeyboardInterrupt(f"terminated by {signal.Signals(first).name}")
    # Inside steps that must not be cut apart, raised at their end (cancellation.shielded).
    if cancellation.hold_interrupt(exc):
        return
    raise exc


def _interrupted() -> int:
    """Say why the command ended early; the exit status, 128 + the signal's number (130
    for Ctrl-C, 143 SIGTERM, 129 SIGHUP) as a shell reports a command a signal killed."""
    signum = _RECEIVED[0] if _RECEIVED else signal.SIGINT
    name = signal.Signals(signum).name
    said = "interrupted" if signum == signal.SIGINT else f"terminated ({name})"
    # After SIGHUP the terminal may be gone (EIO): the exit status still says it.
    with contextlib.suppress(OSError):
        sys.stderr.write(f"respaldo: {said}\n")
    return 128 + signum


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
        return _interrupted()
    except RespaldoError as exc:
        message, hint = exc.rendered(option_name)
        sys.stderr.write(f"respaldo: error: {message}\n")
        if hint:
            sys.stderr.write(f"respaldo: hint: {hint}\n")
        return 1
    if _INTERRUPTED.is_set() and len(_RECEIVED) > cancellation.signals_taken():
        # Typer turns the KeyboardInterrupt into a plain 130 before it reaches us. (A
        # signal that came once a backup's manifest was being written is not one: the
        # backup completed, and the command said so; cancellation.committing.)
        return _interrupted()
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


def take_interrupts(*, terminate: bool = True) -> None:
    """Make SIGINT raise KeyboardInterrupt even if this process was started ignoring it;
    with ``terminate``, SIGTERM and SIGHUP too.

    Ignored signals are inherited, and a non-interactive shell starts its background jobs
    (``cmd &``) with SIGINT ignored; so do some supervisors and CI runners. Python keeps
    an inherited SIG_IGN, and every interrupt, Ctrl-C or ``kill -INT``, was silently
    dropped: a backup waiting on a database lock went on waiting for as long as the lock
    was held. Every command cleans up on KeyboardInterrupt (the backup's record failed at
    once, children killed, leases released), so respaldo always takes it.

    SIGTERM (``kill``, ``timeout``, systemd stopping a unit, container runtimes) and
    SIGHUP (the ssh session of the administrator running a restore dropped) killed the
    process outright: its pg_restore, in a session of its own, went on loading a staging
    database nobody would swap in, which stayed, and the job stayed "running" until the
    next start found its process gone. They now take the same path. An inherited SIG_IGN
    for SIGHUP is kept: ``nohup respaldo restore ...`` asks for the command to survive
    the logout. ``serve`` and ``worker`` install their own SIGTERM handling (a graceful
    stop) and are left with the default for both (``terminate=False``).
    """
    signal.signal(signal.SIGINT, _interrupt)
    if not terminate:
        return
    signal.signal(signal.SIGTERM, _interrupt)
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        signal.signal(signal.SIGHUP, _interrupt)


def run() -> NoReturn:
    """Console-script entry point."""
    from respaldo.cli.entry import command_of

    take_interrupts(terminate=command_of(sys.argv[1:]) not in DAEMONS)
    try:
        status = invoke()
    except KeyboardInterrupt:
        # A signal before or after the command's own ``try`` (while the click command is
        # built, or as it returns) still gets the line and the status, not a traceback.
        status = _interrupted()
    sys.exit(status)


if __name__ == "__main__":
    run()

"""The child processes integration tests start: never left running, killed with -9 where a
test wants to see what a killed one leaves; a long-running one's output goes to a file
(:func:`start_logged`), never to a pipe nobody reads."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def kill_if_running(process: subprocess.Popen[str]) -> None:
    """SIGKILL ``process`` if it still runs, and reap it: a test that failed half-way must
    not leave a respaldo behind that holds locks, sessions or a staging database."""
    if process.poll() is None:
        process.kill()
        process.communicate()


@contextmanager
def killed_at_end(process: subprocess.Popen[str]) -> Iterator[None]:
    """The ``with`` body brings ``process`` where the test kills it; then it is sent SIGKILL,
    reaped and checked to have died of it. If the body fails, the process is killed all
    the same (:func:`kill_if_running`)."""
    try:
        yield
        process.send_signal(signal.SIGKILL)
        # A hang detector, not a time limit: a killed process is reaped at once.
        process.communicate(timeout=30)
    finally:
        kill_if_running(process)
    assert process.returncode == -signal.SIGKILL


def start_logged(argv: list[str], log: Path) -> subprocess.Popen[str]:
    """Start ``argv`` with its stdout and stderr going to the new file ``log``, as a
    terminal would show them. Not to pipes the test reads only at the end: a child that
    runs a while (a worker, ``serve``) and writes more than a pipe holds (64 KiB of
    tracebacks or ``--verbose`` lines) blocks on its next write, and the test waits on it
    until its own timeout, with nothing to say why. :func:`output` reads the file, for a
    failed assertion's message."""
    with log.open("x") as sink:
        return subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, text=True)


def output(log: Path) -> str:
    """What the process :func:`start_logged` started wrote to ``log`` so far."""
    return log.read_text(errors="replace")

"""The child processes integration tests start: never left running, killed with -9 where a
test wants to see what a killed one leaves."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager


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

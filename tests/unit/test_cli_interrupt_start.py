"""A Ctrl-C while a command is still importing its modules (its first half second).

Until the command's own interrupt handling is in place, SIGINT has Python's default
handler: the process printed a traceback of importlib frames and died by SIGINT (status
-2 to its parent) instead of saying "interrupted" and exiting 130 as it does a moment
later. The process here stops inside an import (a finder on ``sys.meta_path`` that says
so on stdout and then waits on stdin) and the test signals it then: no sleeping, no
guessing how long the imports take.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

# The console script's own code (pyproject's [project.scripts]) behind a finder that
# stops the process in the import of ``gate``.
STARTING = """\
import sys

class Gate:
    def find_spec(self, name, path=None, target=None):
        if name == {gate!r}:
            sys.meta_path.remove(self)
            print("importing", flush=True)
            sys.stdin.read()  # until the signal
        return None

sys.meta_path.insert(0, Gate())
sys.argv = ["respaldo", *{argv!r}]
from respaldo.cli.entry import run
sys.exit(run())
"""


@pytest.mark.parametrize(
    ("argv", "gate", "status"),
    [
        # The full CLI, in the import of the Typer application.
        (["--config", "/nonexistent/respaldo.toml", "list"], "respaldo.cli.app", 130),
        # The WAL short cut: a fetch interrupted must stop recovery (above 125), not
        # end it; a push, 1, is retried later by the server.
        (
            ["wal-fetch", "000000010000000000000001", "/nonexistent/x"],
            "respaldo.operations.wal_async_client",
            255,
        ),
        (["wal-push", "/nonexistent/x"], "respaldo.operations.wal_async_client", 1),
    ],
    ids=["list", "wal-fetch", "wal-push"],
)
def test_a_ctrl_c_while_importing_ends_with_a_line_and_a_status(
    argv: list[str], gate: str, status: int
) -> None:
    code = STARTING.format(gate=gate, argv=argv)
    with subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal: a run in the background of a shell without job control (a
        # CI's `make test &`) has SIGINT ignored, which the child would inherit, and a
        # Python started so keeps ignoring it (no KeyboardInterrupt at all).
        preexec_fn=_sigint_as_from_a_terminal,
    ) as process:
        assert process.stdout is not None
        assert process.stdout.readline() == "importing\n"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate()
    assert (process.returncode, stderr) == (status, "respaldo: interrupted\n")


def _sigint_as_from_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)

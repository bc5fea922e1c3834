"""A real ``respaldo`` command that stops once at a call the test names, then goes on.

Run as ``python paused_call.py MODULE NAME ARGS…``: runs ``respaldo ARGS…`` in this
process, but the first call of ``MODULE.NAME`` (a function or class the command looks up
in that module when it runs) prints ``paused`` and waits until the test closes this
process's stdin; then it is made as usual and the command goes on. The test does what
it wants done in that window (step the process's clock, break something) without sleeping.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
from typing import Any, SupportsIndex

from respaldo.cli.main import invoke


def _sleep(seconds: float | SupportsIndex) -> None:
    threading.Event().wait(float(seconds))


def main() -> int:
    if "faketime" in os.environ.get("LD_PRELOAD", ""):
        # libfaketime 0.9.10 with its monotonic clock left alone (tests/faketime.py,
        # stepped_clock) fails every clock_nanosleep with EINVAL: time.sleep, and so a
        # subprocess wait(timeout) that polls (psql's, in a backup), raised "Invalid
        # argument". A condition variable's wait, which it lets through, sleeps the same.
        time.sleep = _sleep
        # This process's clock is the one stepped; its children (pg_dump, pg_restore,
        # psql) need no fake clock, and each of their time calls read the clock file.
        del os.environ["LD_PRELOAD"]
    module = importlib.import_module(sys.argv[1])
    name = sys.argv[2]
    original = getattr(module, name)

    def paused(*args: Any, **kwargs: Any) -> Any:
        setattr(module, name, original)
        print("paused", flush=True)
        sys.stdin.read()  # until the test closes it
        return original(*args, **kwargs)

    setattr(module, name, paused)
    return invoke(sys.argv[3:])


if __name__ == "__main__":
    sys.exit(main())

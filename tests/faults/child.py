"""The respaldo CLI with a fault planted at a scripted point: child process of the fault tests.

Run as ``python child.py RESPALDO-ARGS…``. The point is named in the environment:

- ``FAULT_EVENT``: a Python audit event (``open``, ``os.rename`` — which ``os.replace``
  raises too —, ``os.remove``, ``subprocess.Popen``, … see the ``sys`` docs' table), and
  ``FAULT_MATCH``, a regular expression searched in the text of each of the event's first
  two arguments (the path opened, or the source of a rename; for ``subprocess.Popen`` the
  program and its argv);
- ``FAULT_COUNT``: act at the Nth matching event (default 1);
- ``FAULT_ACTION``: ``kill`` sends SIGKILL to this process (kill -9: no handler, no
  ``finally``, no atexit runs — children such as ``pg_dump`` are orphaned exactly as when an
  operator or the OOM killer does it); ``stop`` sends SIGSTOP, so the test can act on the
  world (restart PostgreSQL) while the operation is frozen mid-way, then SIGCONT it;
  ``term`` sends SIGTERM (``systemctl stop``, ``timeout``): respaldo's handler runs before
  the announced operation, which happens only if respaldo holds the interrupt
  (:func:`respaldo.cancellation.shielded`);
- ``FAULT_MARK``: a file the child writes the matched event into just before it acts, so
  the test knows the fault struck where it was meant to (and not some other crash).

The hook runs in the event's own thread, before the operation it announces: a kill at
``os.replace`` of a ``.tmp-`` file leaves that file fully written but not yet renamed; a
kill at ``open`` of a pack leaves everything read before it. Another thread's matching
event waits until the action is taken: a restore frozen at its first worker's pg_restore
has not started the second one's either. Only this test helper has the hook: respaldo
itself has no test-only code path.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
from typing import Any

_SIGNALS = {"kill": signal.SIGKILL, "stop": signal.SIGSTOP, "term": signal.SIGTERM}


def _install(event: str, pattern: re.Pattern[str], count: int, action: str, mark: str) -> None:
    seen = 0
    actor: int | None = None
    lock = threading.Lock()

    def hook(name: str, args: tuple[Any, ...]) -> None:
        nonlocal seen, actor
        # os.open/os.kill raise audit events of their own: the acting thread's are let by.
        if name != event or actor == threading.get_ident():
            return
        texts = [str(a) for a in args[:2]]
        if not any(pattern.search(text) for text in texts):
            return
        text = " ".join(texts)
        # Held until the action is taken (for ``stop``, until the test continues this
        # process): another thread's matching event waits here, before its operation. Let
        # by, a restore's second worker started its pg_restore while the first wrote the
        # mark: its COPY, fed by this frozen process, held its table's lock, and the test's
        # LOCK TABLE of the staging tables waited on it for ever (or deadlocked with it).
        with lock:
            seen += 1
            if seen != count:
                return
            actor = threading.get_ident()
            try:
                fd = os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.write(fd, f"{name} {text}\n".encode())
                os.fsync(fd)
                os.close(fd)
                os.kill(os.getpid(), _SIGNALS[action])
            finally:
                actor = None

    sys.addaudithook(hook)


def main() -> None:
    event = os.environ.pop("FAULT_EVENT", "")
    if event:
        _install(
            event,
            re.compile(os.environ.pop("FAULT_MATCH", "")),
            int(os.environ.pop("FAULT_COUNT", "1")),
            os.environ.pop("FAULT_ACTION", "kill"),
            os.environ.pop("FAULT_MARK"),
        )
    from respaldo.cli.entry import run

    sys.argv[0] = "respaldo"
    run()


if __name__ == "__main__":
    main()

"""A failure that recurs every period, logged once per cause.

The service's background loops (the lost-job sweep, a worker's heartbeat and sweep) run
every few seconds and go on when a pass fails: the next pass is the retry. A catalog that
stays unreachable would put the same traceback in the log every few seconds and bury
everything else, so each loop says a failure once per distinct cause (with its
traceback) and once when a pass works again.
"""

from __future__ import annotations

import logging
import threading


class RecurringFailure:
    """What one periodic task last said about its failures. Thread-safe."""

    def __init__(self, log: logging.Logger, failing: str, working: str) -> None:
        """``failing``: the warning's text, to which the cause is appended; ``working``:
        what is said when a pass works after failures."""
        self._log = log
        self._failing = failing
        self._working = working
        self._cause: str | None = None
        self._lock = threading.Lock()

    @property
    def cause(self) -> str | None:
        """Why the last pass failed, None when it worked."""
        return self._cause

    def failed(self, exc: BaseException) -> None:
        """A pass failed with ``exc``: warned (with the traceback) unless it is the cause
        said last."""
        cause = f"{type(exc).__name__}: {exc}"
        with self._lock:
            if cause == self._cause:
                return
            self._cause = cause
        self._log.warning("%s (%s)", self._failing, cause, exc_info=exc)

    def worked(self) -> None:
        """A pass worked: said once if the one before failed."""
        with self._lock:
            if self._cause is None:
                return
            self._cause = None
        self._log.warning("%s", self._working)

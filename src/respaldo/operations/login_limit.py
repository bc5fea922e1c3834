"""Failed logins, counted per user name and per client address, in a sliding window.

In memory, in the serving process: a restart forgets the counts, which costs an
attacker at most one more window. ``max_failures`` failures within ``window`` seconds
for a name (or from an address) refuse the next attempt for that name (or address)
until the oldest of them leaves the window, without checking its password. A success
clears the name's failures, not the address's: an attacker cannot clear an address by
logging into an account of their own.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from respaldo.errors import TooManyAttempts

_MAX_KEYS = 10_000  # past this many names and addresses, forget the stale ones


class LoginLimiter:
    """Thread-safe; ``clock`` is a monotonic clock in seconds."""

    def __init__(
        self, max_failures: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _keys(user: str, address: str | None) -> list[str]:
        keys = [f"user:{user}"]
        if address:
            keys.append(f"address:{address}")
        return keys

    def check(self, user: str, address: str | None) -> None:
        """Raise TooManyAttempts (with the seconds to wait) if this attempt is refused."""
        now = self.clock()
        with self._lock:
            waits = []
            for key in self._keys(user, address):
                failures = self._recent(key, now)
                if len(failures) >= self.max_failures:
                    waits.append(failures[-self.max_failures] + self.window - now)
        if waits:
            retry = max(1, math.ceil(max(waits)))
            raise TooManyAttempts(
                "too many failed logins for this user or from this address", retry_after=retry
            )

    def failed(self, user: str, address: str | None) -> None:
        now = self.clock()
        with self._lock:
            if len(self._failures) >= _MAX_KEYS:
                self._forget_stale(now)
            for key in self._keys(user, address):
                self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, user: str) -> None:
        with self._lock:
            self._failures.pop(f"user:{user}", None)

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.get(key, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def _forget_stale(self, now: float) -> None:
        for key in [k for k, v in self._failures.items() if not v or v[-1] <= now - self.window]:
            del self._failures[key]

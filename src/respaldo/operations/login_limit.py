"""Failed logins, counted per user name and per client address, in a sliding window,
in the catalog: every API server on it shares the counts.

``max_failures`` failures within ``window`` seconds for a name (or from an address; an
IPv6 address counts with its /64, which one host holds whole)
refuse the next attempt for that name (or address) until the oldest of them leaves the
window, without checking its password. The counts are rows of the catalog's
``login_failures`` (:mod:`respaldo.catalog.logins`), so N ``respaldo serve`` processes
(or machines) together allow ``max_failures``, not N times as many, and a restart
forgets nothing.

An attempt counts as a failure from the moment it is let through (:meth:`attempt`, one
serialised transaction: check, then add) until it succeeds (:meth:`succeeded` removes it):
guesses sent to several servers at once cannot pass the limit while their passwords are
being checked. A success also clears the name's failures, not the address's: an attacker
cannot clear an address by logging into an account of their own.

The clock is wall-clock seconds (``time.time``), the one clock every server shares.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from respaldo.catalog import LoginFailures
from respaldo.errors import TooManyAttempts
from respaldo.operations.context import Context

KEY_VALUE_MAX = 256
"""Characters of a name or address kept as written in a key; a longer one (no account's
name is) is keyed by its SHA-256, so that every key fits the catalog's column (320) and
distinct values keep distinct counts."""


def _key(kind: str, value: str) -> str:
    if len(value) > KEY_VALUE_MAX:
        value = "sha256:" + hashlib.sha256(value.encode()).hexdigest()
    return f"{kind}:{value}"


def _client(address: str) -> str:
    """What counts as one client: an IPv4 address, or an IPv6 address's /64 (one host
    holds a whole /64: counted per address, each guess could come from a new one)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:192.0.2.1 is the IPv4 client
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


@dataclass(frozen=True)
class Attempt:
    """A login let through: the failures recorded for it until it succeeds."""

    user: str
    failure_ids: tuple[int, ...]


class LoginLimiter:
    """Thread- and process-safe (the catalog holds the counts); ``clock`` is in seconds,
    the same for every server on the catalog."""

    def __init__(
        self, max_failures: int, window: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.clock = clock

    @staticmethod
    def _keys(user: str, address: str | None) -> list[str]:
        keys = [_key("user", user)]
        if address:
            keys.append(_key("address", _client(address)))
        return keys

    def attempt(self, ctx: Context, user: str, address: str | None) -> Attempt:
        """Let one login through, counted as failed until :meth:`succeeded`; or raise
        TooManyAttempts (with the seconds to wait), recording nothing."""
        now = self.clock()
        waits: list[float] = []
        with ctx.catalog.begin() as session:
            failures = LoginFailures(session)
            failures.lock()
            failures.expire(before=now - self.window)
            for key in self._keys(user, address):
                oldest = failures.nth_newest(key, self.max_failures, after=now - self.window)
                if oldest is not None:
                    waits.append(oldest + self.window - now)
            ids = [] if waits else failures.add(self._keys(user, address), now)
        if waits:
            retry = max(1, math.ceil(max(waits)))
            raise TooManyAttempts(
                "too many failed logins for this user or from this address", retry_after=retry
            )
        return Attempt(user, tuple(ids))

    def succeeded(self, ctx: Context, attempt: Attempt) -> None:
        """The attempt succeeded: it is no failure, and the name's failures are cleared."""
        with ctx.catalog.begin() as session:
            LoginFailures(session).forget(attempt.failure_ids, key=_key("user", attempt.user))

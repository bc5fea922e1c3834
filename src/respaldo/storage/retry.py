"""Retries with exponential backoff and jitter, wrapped around any backend.

Only :class:`~respaldo.errors.TransientStorageError` is retried: not-found and permanent
errors pass through at once. A spool's commit is retried as a ``put`` is (the spool keeps
its bytes after a transient failure). Every operation of the interface is idempotent (``put``
replaces atomically, ``delete`` of a vanished object surfaces as not-found), so retrying
is safe. A ``delete`` that succeeded on the server but whose answer was lost shows up as
not-found on the retry; that is reported as success, since the object is gone.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from respaldo.errors import ObjectNotFound, TransientStorageError
from respaldo.storage.base import ObjectInfo, Spool, Storage

log = logging.getLogger(__name__)
T = TypeVar("T")


def call_with_retries(
    what: str,
    where: str,
    func: Callable[[], T],
    *,
    attempts: int = 4,
    base_delay: float = 0.2,
    max_delay: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``func()``, retried on TransientStorageError with backoff and full jitter."""
    for attempt in range(1, attempts + 1):
        try:
            return func()
        except TransientStorageError as exc:
            if attempt >= attempts:
                raise
            # Full jitter: spreads retries of many parallel uploads apart.
            delay = random.uniform(0, min(max_delay, base_delay * 2 ** (attempt - 1)))
            log.warning(
                "%s on %s failed (%s); retry %d/%d in %.2fs",
                what,
                where,
                exc,
                attempt,
                attempts - 1,
                delay,
            )
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


class RetryingStorage:
    """Delegates to ``inner``, retrying transient failures ``attempts`` times in all."""

    def __init__(
        self,
        inner: Storage,
        *,
        attempts: int = 4,
        base_delay: float = 0.2,
        max_delay: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.inner = inner
        self._attempts = max(1, attempts)
        self._base = base_delay
        self._max = max_delay
        self._sleep = sleep

    @property
    def location(self) -> str:
        return self.inner.location

    def _call(self, what: str, func: Callable[[], T]) -> T:
        return call_with_retries(
            what,
            self.location,
            func,
            attempts=self._attempts,
            base_delay=self._base,
            max_delay=self._max,
            sleep=self._sleep,
        )

    def put(self, name: str, data: bytes) -> None:
        self._call(f"put {name}", lambda: self.inner.put(name, data))

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        return self._call(f"get {name}", lambda: self.inner.get(name, offset, length))

    def sync(self, name: str) -> None:
        self._call(f"sync {name}", lambda: self.inner.sync(name))

    def stat(self, name: str) -> ObjectInfo:
        return self._call(f"stat {name}", lambda: self.inner.stat(name))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # A listing is materialised before it is returned so that a retry restarts it
        # whole rather than yielding some names twice.
        return iter(self._call(f"list {prefix}", lambda: list(self.inner.list(prefix))))

    def delete(self, name: str) -> None:
        first = True

        def attempt() -> None:
            nonlocal first
            try:
                self.inner.delete(name)
            except ObjectNotFound:
                if first:
                    raise
            finally:
                first = False

        self._call(f"delete {name}", attempt)

    def open_spool(self, directory: str) -> Spool:
        return _RetryingSpool(self.inner.open_spool(directory), self._call)

    def close(self) -> None:
        self.inner.close()


class _RetryingSpool:
    """A spool whose commit is retried like a ``put``: a commit that failed with a
    transient error keeps its bytes (the :class:`~respaldo.storage.base.Spool` contract),
    so trying it again sends the same object. Writes are not retried (a local store's
    are appends to its temporary file; another store's, to a private file)."""

    def __init__(self, inner: Spool, call: Callable[[str, Callable[[], None]], None]) -> None:
        self._inner = inner
        self._call = call

    @property
    def size(self) -> int:
        return self._inner.size

    def write(self, pieces: Sequence[bytes]) -> None:
        self._inner.write(pieces)

    def commit(self, name: str) -> None:
        self._call(f"put {name}", lambda: self._inner.commit(name))

    def discard(self) -> None:
        self._inner.discard()

"""Cancelling work that runs in this thread, including the child programs it started.

A :class:`CancelToken` belongs to one job. The job runner makes it *current* for the
thread that runs the job (:func:`cancellable`); whatever that thread starts and can stop
from outside (a ``pg_dump`` child process) registers a callback with
:func:`on_cancel`, and long loops call :func:`check`. Cancelling the token (from the
job's lease thread, or a signal handler) runs the callbacks at once, so a child blocked
on a lock dies even though the thread that waits for it never reaches a check.

This module sits beside ``errors`` and ``domain`` and imports nothing but them: every
layer may use it, and none needs to know who cancels.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn

from respaldo.errors import JobCancelled

log = logging.getLogger(__name__)

Callback = Callable[[], None]


class CancelToken:
    """A one-way flag plus the callbacks to run when it is set. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._callbacks: dict[int, Callback] = {}
        self._next = 0
        self.reason = ""

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self, reason: str) -> None:
        """Set the flag (the first reason is kept) and run every registered callback.

        Idempotent. Callbacks run in the caller's thread; one that raises is logged and
        does not stop the others.
        """
        with self._lock:
            if self._event.is_set():
                return
            self.reason = reason
            self._event.set()
            callbacks = list(self._callbacks.values())
        for callback in callbacks:
            try:
                callback()
            except Exception:  # a failing kill must not keep the others from running
                log.exception("cancel callback failed")

    def check(self) -> None:
        """Raise JobCancelled if the token is cancelled."""
        if self._event.is_set():
            raise JobCancelled(f"cancelled: {self.reason}" if self.reason else "cancelled")

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for cancellation; True if cancelled."""
        return self._event.wait(timeout)

    def on_cancel(self, callback: Callback) -> Callback:
        """Run ``callback`` when the token is cancelled (at once if it already is).

        Returns a function that unregisters it (idempotent).
        """
        with self._lock:
            if not self._event.is_set():
                key = self._next
                self._next += 1
                self._callbacks[key] = callback

                def forget() -> None:
                    with self._lock:
                        self._callbacks.pop(key, None)

                return forget
        callback()
        return _nothing


def _nothing() -> None:
    pass


_current: contextvars.ContextVar[CancelToken | None] = contextvars.ContextVar(
    "respaldo_cancel_token", default=None
)


@contextmanager
def cancellable(token: CancelToken) -> Iterator[CancelToken]:
    """Make ``token`` the current one for this thread (context) inside the block."""
    reset = _current.set(token)
    try:
        yield token
    finally:
        _current.reset(reset)


@contextmanager
def linked() -> Iterator[CancelToken]:
    """A token of its own, current inside the block and cancelled with the one that was
    current (the job's, if any): what the block starts can then be cancelled alone (a
    backup's pg_dump, when the row count beside it fails) without cancelling the job,
    and is still cancelled with the job."""
    outer = _current.get()
    token = CancelToken()
    forget = outer.on_cancel(lambda: token.cancel(outer.reason)) if outer is not None else _nothing
    try:
        with cancellable(token):
            yield token
    finally:
        forget()


def current() -> CancelToken | None:
    return _current.get()


def on_cancel(callback: Callback) -> Callback:
    """Register ``callback`` with the current token; a no-op outside any job."""
    token = _current.get()
    return token.on_cancel(callback) if token is not None else _nothing


def check() -> None:
    """Raise JobCancelled if the current token (if any) is cancelled."""
    token = _current.get()
    if token is not None:
        token.check()


# --- sections a signal must not cut ------------------------------------------------------

_held: list[BaseException] = []
_shields = 0


@contextmanager
def shielded() -> Iterator[None]:
    """A few steps that must happen together or not at all, in the main thread: the
    KeyboardInterrupt of the first SIGINT, SIGTERM or SIGHUP that arrives inside is raised
    when the block ends instead (:func:`hold_interrupt`); a second signal meanwhile is
    raised at once, as its user insists.

    prune deletes a backup's manifests, then its catalog record: SIGTERM between the two
    (``systemctl stop``, ``timeout``) left a record ``completed`` whose manifest was gone,
    which ``verify --all`` reported as a lost backup (exit 3) and ``list`` as a good one
    until the next prune. kill -9 can still cut there; the next prune finishes it."""
    global _shields
    if threading.current_thread() is not threading.main_thread():
        # A signal's KeyboardInterrupt is raised in the main thread only, never here:
        # counted, a shield here would hold the main thread's and raise it in this one.
        yield
        return
    _shields += 1
    try:
        yield
    finally:
        _shields -= 1
        if _shields == 0 and _held:
            exc = _held.pop()
            _held.clear()
            raise exc


def hold_interrupt(exc: BaseException) -> bool:
    """Called by the CLI's signal handler with the KeyboardInterrupt it would raise: True
    if a :func:`shielded` block runs in the main thread and holds it for its end (the
    first signal only), False if the handler must raise it now."""
    if _shields and not _held and threading.current_thread() is threading.main_thread():
        _held.append(exc)
        return True
    return False


# --- past the point of no return ---------------------------------------------------------


class Committed:
    """What a :func:`committing` block came to: whether it passed its point of no return
    (:func:`no_return`), and the reason of a first signal held after that point."""

    def __init__(self) -> None:
        self.passed = False
        self.signal: str | None = None
        """``interrupted`` (Ctrl-C) or ``terminated by SIGTERM`` (SIGHUP), if one came."""

    def take(self, exc: BaseException) -> None:
        """Note the KeyboardInterrupt of a signal that came once the work was done."""
        self.signal = str(exc) or "interrupted"
        _taken.append(self.signal)


_taken: list[str] = []


def raise_taken(reason: str) -> NoReturn:
    """Raise again the KeyboardInterrupt of a signal that :class:`Committed` took
    (``reason``, its ``signal``), for a caller that stops for it all the same (a snapshot
    after such a backup): the CLI then exits 128 + the signal, with its message."""
    if reason in _taken:
        _taken.remove(reason)
    raise KeyboardInterrupt("" if reason == "interrupted" else reason)


def taken_signal() -> str | None:
    """The reason of the last signal :class:`Committed` took, if any."""
    return _taken[-1] if _taken else None


def signals_taken() -> int:
    """How many signals :class:`Committed` took as coming after the work was done: the
    CLI does not exit 128 + the signal for them (cli/main.py)."""
    return len(_taken)


_committing: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "respaldo_committing", default=None
)


@contextmanager
def committing() -> Iterator[Committed]:
    """A block whose work is done from a point deeper down (a backup's manifest about to
    be written), which that code marks with :func:`no_return`. From there to the block's
    end the first signal's KeyboardInterrupt is held, as in :func:`shielded`, and at the
    end not raised but noted in the yielded :class:`Committed` (``signal``): the work
    stands, and the caller says it completed before the signal took effect. A second
    signal is raised at once, as its user insists; ``passed`` then tells the caller the
    work may be done all the same.

    A backup signalled just after its manifest was written exited 143 "terminated", its
    job cancelled, while its record said completed and it restored (or the record said
    failed while its manifest stood)."""
    global _shields
    state = Committed()

    def mark() -> None:
        global _shields
        # Signals are the main thread's (the CLI's handler): a backup that a daemon's
        # worker thread runs holds none of them.
        if not state.passed and threading.current_thread() is threading.main_thread():
            state.passed = True
            _shields += 1

    reset = _committing.set(mark)
    try:
        yield state
    finally:
        _committing.reset(reset)
        if state.passed:
            _shields -= 1
            if _shields == 0 and _held:
                # Not raised: the work is done. (An exception the block raised, such as
                # a second signal's, goes on its way.)
                state.take(_held.pop())
                _held.clear()


def no_return() -> None:
    """The point of no return of the :func:`committing` block this runs in (if any)."""
    mark = _committing.get()
    if mark is not None:
        mark()

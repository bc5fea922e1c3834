"""The service's own checks that have run too long: a hung watchdog, sweep or resend is
told.

``respaldo serve`` runs its watchdog, its sweep for lost jobs and its resend of the
alerts that wait for a notification target one run at a time in threads of their own.
A run that blocks for ever (a repository on a hung NFS hard mount, a catalog query
waiting on a lock, an S3 endpoint that takes the connection and never answers) cannot
be interrupted from outside (a local read on a hung mount cannot be interrupted at all),
and every later run was skipped with only APScheduler's "maximum number of running
instances reached" in the log: no alert went out again while the status page and
``/health`` looked fine.

So each run says what it is doing (:func:`running`, then :func:`at` before each part
that reads a repository, a server or the catalog), in this process's memory, and the
service's stall monitor (:class:`respaldo.scheduling.service.Service`), a thread that
depends on no check, looks every so often: a run older than ``[rpo]
watchdog_stuck_minutes`` fires the critical condition ``stuck:<check>`` ("watchdog check
stuck for N min in <what>"), ``/health`` answers 503 and the status has a red ``stuck``
item; the condition is resolved once that run ends, and a stop of the service does not
wait for a stuck run. This process's memory only: another
process (``respaldo status`` from a shell) sees the alert, not the item.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from respaldo.phrases import N_, Phrase


def _(message: str) -> str:
    """Marks a message for extraction; :func:`alerts.set_condition` translates it."""
    return message


MESSAGES = {
    "watchdog": _("watchdog check stuck for {minutes} min in {doing}"),
    "lost-jobs-sweep": _("sweep for lost jobs stuck for {minutes} min in {doing}"),
    "alert-resend": _("resend of waiting alerts stuck for {minutes} min in {doing}"),
}
"""The alert's text (and the status item's reason), per check: :func:`message_of`."""
HINT = N_(
    "no other alert goes out while the watchdog is stuck; release what it waits on "
    "(a hung mount, a lock held in the catalog, an endpoint that does not answer) or "
    "restart respaldo serve"
)
RESEND_HINT = N_(
    "the alerts that wait for a notification target (those refused, and lost jobs' "
    "alerts) are not sent while the resend is stuck; release what it waits on (a "
    "notification target that does not answer, a secret file nobody writes, a lock held "
    "in the catalog) or restart respaldo serve"
)
HINTS = {"alert-resend": RESEND_HINT}
"""The alert's hint per check where it is not :data:`HINT`: :func:`hint_of`."""
STARTING = N_("starting")
CATALOG = N_("reading the catalog")
SERVERS = N_("reading the servers of the databases")
SWEEPING = N_("looking for lost jobs in the catalog")
REPOSITORY = N_("reading repository {repository}")
SENDING = N_("sending alert {key}")
RESENDING = N_("sending what waits for notification target {target}")
PREFIX = "stuck:"
"""The conditions' keys: ``stuck:watchdog``, ``stuck:lost-jobs-sweep``,
``stuck:alert-resend``."""


@dataclass(frozen=True)
class Stuck:
    """One check that has run longer than the limit."""

    check: str
    """``watchdog``, ``lost-jobs-sweep`` or ``alert-resend``."""
    since: datetime
    """When its run started."""
    doing: str
    """What it was doing last (a :class:`Phrase`: ``reading repository offsite``)."""
    thread: int
    """The thread it runs in (``threading.get_ident()``)."""
    stepped: timedelta = timedelta(0)
    """How far the machine's wall clock was stepped while it ran (ahead: positive), which
    is no time it ran (:func:`_stepped`)."""
    repository: str | None = None
    """The repository it was reading (:data:`REPOSITORY`), if that is what it was doing
    last: ``/health`` tells a check stuck on a mirror from one stuck on what the service
    cannot do without."""

    @property
    def key(self) -> str:
        return PREFIX + self.check

    def minutes(self, now: datetime) -> int:
        return int((now - self.since - self.stepped).total_seconds() // 60)

    def message(self) -> str:
        return message_of(self.check)


def hint_of(check: str) -> str:
    """The alert's hint for ``check``: what waits while it is stuck, and what to do."""
    return HINTS.get(check, HINT)


def message_of(check: str) -> str:
    """The alert's text for ``check`` (the watchdog's for a check this version does not
    know): one text for the alert that fires and the one that resolves it."""
    return MESSAGES.get(check, MESSAGES["watchdog"])


@dataclass
class _Run:
    since: datetime
    doing: str
    thread: int
    # The wall and monotonic clocks as it started (:func:`_start`): what tells a step of
    # the first.
    wall: datetime
    steady: float
    repository: str | None = None


def _stepped(run: _Run) -> timedelta:
    """How far the wall clock was stepped (NTP, a VM resumed, a person) since ``run``
    started: what it moved beyond the monotonic clock, which no step moves. A step an
    hour ahead made a check that had run for a second "stuck for 60 min": a critical
    alert, /health 503 and a red status item until it ended."""
    stepped = (datetime.now(UTC) - run.wall) - timedelta(seconds=time.monotonic() - run.steady)
    # Within a second: the two clocks read one after the other, or NTP slewing.
    return stepped if abs(stepped) >= _STEP else timedelta(0)


_STEP = timedelta(seconds=1)
_LOCK = threading.Lock()
_RUNS: dict[str, _Run] = {}
_THREAD = threading.local()


def _start(clock: Callable[[], datetime]) -> tuple[datetime, datetime, float]:
    """A run's start by ``clock``, by the wall clock and by the monotonic one, as if read
    at once. ``clock`` (the service's: the wall clock, or a test's) is read on either side
    of the wall clock, and the reading on the wall clock's side of a step that came in
    between is kept. Read one after the other (the caller's clock, then the wall clock),
    a step between the two readings, which a loaded machine can put far apart (the thread
    put off between them), was no step to :func:`_stepped`: a sweep that had just
    started was "stuck for 60 min" after a step an hour ahead."""
    before = clock()
    wall = datetime.now(UTC)
    steady = time.monotonic()
    after = clock()
    since = before if abs(before - wall) < abs(after - wall) else after
    return since, wall, steady


@contextmanager
def running(check: str, clock: Callable[[], datetime]) -> Iterator[None]:
    """One run of ``check`` in this thread, started now by ``clock``; :func:`at` in the
    same thread names its parts."""
    since, wall, steady = _start(clock)
    run = _Run(
        since=since, doing=Phrase(STARTING), thread=threading.get_ident(), wall=wall, steady=steady
    )
    with _LOCK:
        _RUNS[check] = run
    _THREAD.run = run
    try:
        yield
    finally:
        _THREAD.run = None
        with _LOCK:
            if _RUNS.get(check) is run:
                del _RUNS[check]


def at(message: str, /, **values: object) -> None:
    """Say that the check run by this thread (if any) is now at ``message`` (one of this
    module's, with ``values``): the last said is what a stuck run is said to be stuck
    in. Nothing outside a check's thread (a CLI ``respaldo status``, the page)."""
    run: _Run | None = getattr(_THREAD, "run", None)
    if run is not None:
        what = Phrase(message, **values)
        repository = values.get("repository") if message == REPOSITORY else None
        with _LOCK:
            run.doing = what
            run.repository = None if repository is None else str(repository)


def stuck(now: datetime, limit: timedelta) -> list[Stuck]:
    """The checks of this process whose run started more than ``limit`` before ``now``,
    less any step of the wall clock meanwhile."""
    found = []
    with _LOCK:
        for check, run in sorted(_RUNS.items()):
            stepped = _stepped(run)
            if now - run.since - stepped > limit:
                found.append(
                    Stuck(check, run.since, run.doing, run.thread, stepped, run.repository)
                )
    return found

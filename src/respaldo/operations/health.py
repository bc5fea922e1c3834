"""Is the service healthy? Catalog reachable, repositories there, how old the backups are.

What ``GET /health`` answers: 200 while the service can do its job (:attr:`Health.status`
``ok``, or ``degraded`` with a mirror down), 503 when it cannot (``failing``: the catalog
or the primary repository does not answer, or a check of the service is stuck). Cheap
enough to be polled: one catalog query and one read of each repository's ``config``, no
index loaded. Each repository is looked at once, without retries and with a short bound
(:func:`~respaldo.operations.repositories.open_probe`), all at once, each in a thread of
its own that is waited for at most :data:`~respaldo.operations.repositories.PROBE_SECONDS`:
a mirror that is down is answered down within seconds, not after minutes of retries, and
a directory on a hung mount (which no timeout of the file system call bounds) is answered
"does not answer" instead of holding the answer for ever. Opening the store, before that
read, is bounded too (:data:`OPEN_SECONDS`): it is local work that can hang as well (a
``secret_access_key_file`` nobody writes, boto3's credential chain running a profile's
``credential_process`` or asking a metadata endpoint, a directory on a hung mount).

``/health`` needs no login, so a part that fails is answered with a fixed sentence
(:data:`CATALOG_FAILS`, :data:`REPOSITORY_FAILS`): the error's own text can name the
catalog server's host, port and role, a store's directory or bucket, or the file holding
a secret key. That text goes to the server's log instead, scrubbed of secrets and secret
files' paths (:class:`~respaldo.operations.scrub.Scrubber`); ``respaldo status`` and the
log are where an operator reads why.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy.exc import OperationalError, SQLAlchemyError

from respaldo.catalog import BackupRecord, newest_completed
from respaldo.domain import BackupKind
from respaldo.errors import RespaldoError, first_line
from respaldo.operations import stall
from respaldo.operations.context import Context
from respaldo.operations.models import ResultModel, UtcTime
from respaldo.operations.repositories import PROBE_SECONDS, open_probe
from respaldo.operations.scrub import Scrubber
from respaldo.operations.status import CLOCK_SKEW
from respaldo.phrases import N_
from respaldo.repository.config_file import CONFIG_NAME

log = logging.getLogger(__name__)

CATALOG_FAILS = N_("the catalog does not answer; the server's log says why")
"""What ``/health`` says of a catalog that fails, whatever the error."""
CATALOG_OUTAGES: tuple[type[Exception], ...] = (OperationalError,)
"""Errors that mean the catalog's server does not answer or refuses the service (down,
restarting, shutting down, a password rotated): no request can be served until it does.
The API answers them 503 with :data:`CATALOG_FAILS` instead of a 500 "unexpected error"
(its own error text names the server's host, port and role)."""
CATALOG_HINT = N_("try again once the catalog's database server answers ('respaldo status' says)")
"""What to do about :data:`CATALOG_FAILS` in an API answer (and the page's, translated)."""
REPOSITORY_FAILS = "the repository cannot be read; the server's log says why"
"""What ``/health`` says of a repository that fails, whatever the error."""
REPOSITORY_HANGS = (
    f"the repository does not answer within {PROBE_SECONDS:g} s; the server's log says why"
)
"""What ``/health`` says of a repository whose look has not ended within
:data:`~respaldo.operations.repositories.PROBE_SECONDS` (a hung mount, a store that
never answers)."""
OPEN_SECONDS = 10.0
"""The most ``/health`` waits for a repository's store to be opened, before the read that
:data:`~respaldo.operations.repositories.PROBE_SECONDS` bounds. Opening is local work:
milliseconds once boto3 is loaded, but the first time (boto3 imported, its models parsed)
it took 3-7 s under a load of 20, which a bound of 2 s took for a store that does not
answer. It waited for ever on what hangs (a secret file that is a named pipe, a profile's
``credential_process``, a hung mount), and ``/health`` with it."""
REPOSITORY_OPEN_HANGS = (
    f"the repository's store is not opened within {OPEN_SECONDS:g} s; the server's log says why"
)
"""What ``/health`` says of a repository whose store has not been opened within
:data:`OPEN_SECONDS`."""
CHECK_STUCK = "a check of the service is stuck and nothing is alerted on; the status says where"
"""What ``/health`` says while the watchdog or the sweep for lost jobs of this process has
run longer than ``[rpo] watchdog_stuck_minutes`` (:mod:`respaldo.operations.stall`)."""


CHECK_STUCK_ON_MIRROR = (
    "a check of the service is stuck reading mirror {repository}, which does not answer; "
    "the status says where"
)
"""What ``/health`` says (``degraded``, 200) while every stuck check is stuck reading a
mirror: what a mirror down alone is said to be."""


class ComponentHealth(ResultModel):
    name: str
    """catalog, or the repository's configured name."""
    ok: bool
    """Whether it answered."""
    error: str | None = None
    """That it failed, in a fixed sentence (the reason is in the server's log)."""


class NewestBackup(ResultModel):
    """The newest good backup of one source and kind: completed, and not known to fail
    verification (a backup that did is no recovery point; docs/monitoring.md)."""

    database: str | None
    """The configured database or file set."""
    kind: BackupKind
    """The backup type."""
    backup_id: str
    """The newest good backup of this database and type."""
    completed_at: UtcTime | None
    """When it completed."""
    age_seconds: float | None
    """Seconds since then: the data a loss now would cost."""


HealthStatus = Literal["ok", "degraded", "failing"]


class Health(ResultModel):
    ok: bool
    """Catalog and every repository answer, and no check of the service is stuck."""
    status: HealthStatus
    """``ok``: all of it. ``degraded`` (HTTP 200): a secondary repository (a mirror) does
    not answer, or a check of the service is stuck reading one (and nowhere else);
    backups, restores and the API work, copies to it wait. ``failing`` (HTTP 503): the
    service cannot do its job: the catalog or the primary repository does not answer, or
    a check of the service is stuck elsewhere (nothing is alerted on)."""
    catalog: ComponentHealth
    """The catalog's state."""
    repositories: list[ComponentHealth]
    """Each configured repository's state."""
    checks: ComponentHealth = ComponentHealth(name="checks", ok=True)
    """The service's own checks (``respaldo serve``'s watchdog and sweep for lost jobs):
    not ok while one has run longer than ``[rpo] watchdog_stuck_minutes``, when no alert
    goes out (:data:`CHECK_STUCK`, or :data:`CHECK_STUCK_ON_MIRROR` naming the mirror it
    is stuck reading)."""
    newest_backups: list[NewestBackup]
    """The newest good backup of each database and type."""


def check_health(ctx: Context, *, now: datetime | None = None) -> Health:
    """Check the catalog and every configured repository; never raises for their
    failures (they are the answer), and never waits longer than :data:`OPEN_SECONDS`
    for a repository's store to open, then
    :data:`~respaldo.operations.repositories.PROBE_SECONDS` for its answer. A
    failure's reason is logged (scrubbed), not returned: the answer carries only
    :data:`CATALOG_FAILS`, :data:`REPOSITORY_FAILS`, :data:`REPOSITORY_OPEN_HANGS` or
    :data:`REPOSITORY_HANGS`."""
    when = now or datetime.now(UTC)
    scrub = Scrubber(ctx.settings)
    newest: list[NewestBackup] = []
    try:
        newest = newest_backups(ctx, now=when)
        catalog = ComponentHealth(name="catalog", ok=True)
    except (SQLAlchemyError, RespaldoError) as exc:
        log.warning("health: the catalog does not answer: %s", scrub(first_line(exc)))
        catalog = ComponentHealth(name="catalog", ok=False, error=CATALOG_FAILS)
    # From this process's memory: the catalog and the repositories answering says nothing
    # of a watchdog stuck on one of them (a lock, a hung mount) that alerts no more.
    stuck = stall.stuck(when, timedelta(minutes=ctx.settings.rpo.watchdog_stuck_minutes))
    checks = _checks(ctx, stuck)
    # Each looked at once, without retries, all at the same time: a probe waits for the
    # slowest store's bound, not for the sum of them.
    looks = [_look(ctx, repo.name, scrub) for repo in ctx.settings.repositories]
    repositories = [_answer(look) for look in looks]
    # A mirror that is down takes nothing from the service: a 503 would take the API out
    # of a load balancer's rotation (and let an orchestrator restart it, which mends
    # nothing) while backups and restores work. It is said in the body (``degraded``),
    # in /metrics and in the status, and its copies and verifies alert on their own.
    # A stuck check does take it: it stops the alerting, and this answer is what is left;
    # unless it is stuck only on a mirror (a hung mount under it), which is a mirror down.
    primary = repositories[0].ok if repositories else True
    failing = not (catalog.ok and primary and (checks.ok or _on_mirrors(ctx, stuck)))
    ok = not failing and checks.ok and all(r.ok for r in repositories)
    return Health(
        ok=ok,
        status="failing" if failing else "ok" if ok else "degraded",
        catalog=catalog,
        repositories=repositories,
        checks=checks,
        newest_backups=newest,
    )


def _on_mirrors(ctx: Context, stuck: list[stall.Stuck]) -> list[str]:
    """The mirrors the ``stuck`` checks are stuck reading, if every one of them is stuck
    reading a mirror (not the primary repository); else none."""
    mirrors = {repo.name for repo in ctx.settings.repositories[1:]}
    if not stuck or any(each.repository not in mirrors for each in stuck):
        return []
    return sorted({str(each.repository) for each in stuck})


def _checks(ctx: Context, stuck: list[stall.Stuck]) -> ComponentHealth:
    if not stuck:
        return ComponentHealth(name="checks", ok=True)
    mirrors = _on_mirrors(ctx, stuck)
    if mirrors:
        said = CHECK_STUCK_ON_MIRROR.format(repository=", ".join(mirrors))
        return ComponentHealth(name="checks", ok=False, error=said)
    return ComponentHealth(name="checks", ok=False, error=CHECK_STUCK)


def newest_backups(ctx: Context, *, now: datetime | None = None) -> list[NewestBackup]:
    """The newest good backup of every source and kind, with its age. One dated more
    than :data:`~respaldo.operations.status.CLOCK_SKEW` ahead (a clock was ahead when it
    was taken) is not the newest, as in the status and the metrics: its negative age
    passed for a backup taken just now until that date came."""
    when = now or datetime.now(UTC)
    with ctx.catalog.read() as session:
        found = newest_completed(session, before=when + CLOCK_SKEW)
        return [_newest(record, when) for record in found]


def _newest(record: BackupRecord, now: datetime) -> NewestBackup:
    done = record.completed_at
    return NewestBackup(
        database=record.database_name,
        kind=record.backup_type,
        backup_id=record.id,
        completed_at=done,
        age_seconds=(now - done).total_seconds() if done is not None else None,
    )


@dataclass
class _Look:
    """One look at a repository, run in a daemon thread of its own: a read on a hung mount
    cannot be interrupted nor bounded by a timeout, and a thread of a pool would also hold
    the process at its exit."""

    name: str
    began: float = field(default_factory=time.monotonic)
    """When it started (``time.monotonic``): what the bound of the opening counts from."""
    opened: threading.Event = field(default_factory=threading.Event)
    """Set once its store is opened (or failed to open): local work (the S3 client made,
    boto3 imported the first time: seconds on a loaded machine), not waited on a store."""
    started: float = 0.0
    """When its read started (``time.monotonic``): what the bound counts from."""
    done: threading.Event = field(default_factory=threading.Event)
    answer: ComponentHealth | None = None
    said_hung: bool = False


_looking: dict[tuple[str, str, str | None], _Look] = {}
"""The look in flight at each repository (name, location, endpoint), in this process."""
_looking_lock = threading.Lock()


def _look(ctx: Context, name: str, scrub: Scrubber) -> _Look:
    """The look at repository ``name``: the one still in flight, else a new one started.
    One at a time per repository: a probe every few seconds at a hung mount would
    otherwise leave a thread more behind it each time, stuck for good."""
    repo = ctx.settings.repository(name)
    key = (repo.name, repo.url, repo.endpoint_url)
    with _looking_lock:
        look = _looking.get(key)
        if look is not None:
            return look
        look = _looking[key] = _Look(name)

    def run() -> None:
        try:
            look.answer = _repository(ctx, look, scrub)
        except Exception as exc:  # a bug: the answer says down, the log says why
            log.error("health: looking at repository %s failed: %s", name, scrub(repr(exc)))
        finally:
            with _looking_lock:
                if _looking.get(key) is look:
                    del _looking[key]
            look.opened.set()
            look.done.set()

    try:
        threading.Thread(target=run, name=f"health-{name}", daemon=True).start()
    except BaseException:  # no thread to be had: no look left in flight for ever
        with _looking_lock:
            del _looking[key]
        raise
    return look


def _answer(look: _Look) -> ComponentHealth:
    """``look``'s answer once it ends, waiting no longer than :data:`OPEN_SECONDS` from
    its start for its store to be opened, then :data:`PROBE_SECONDS` from the start of
    its read: a look already in flight for longer (a mount hung since an earlier probe)
    is answered at once."""
    if not look.opened.wait(max(0.0, look.began + OPEN_SECONDS - time.monotonic())):
        if _first_said(look):
            log.warning(
                "health: the store of repository %s is not opened within %g s (a secret "
                "file or a credential process that does not answer, a hung mount); no "
                "other look at it starts until this one ends",
                look.name,
                OPEN_SECONDS,
            )
        return ComponentHealth(name=look.name, ok=False, error=REPOSITORY_OPEN_HANGS)
    if look.done.wait(max(0.0, look.started + PROBE_SECONDS - time.monotonic())):
        if look.answer is not None:
            return look.answer
        return ComponentHealth(name=look.name, ok=False, error=REPOSITORY_FAILS)
    if _first_said(look):
        log.warning(
            "health: repository %s does not answer within %g s (a hung mount or a store "
            "that never answers); no other look at it starts until this one ends",
            look.name,
            PROBE_SECONDS,
        )
    return ComponentHealth(name=look.name, ok=False, error=REPOSITORY_HANGS)


def _first_said(look: _Look) -> bool:
    """Whether this is the first answer that ``look`` hangs: said once per look in the
    log, not at every probe while it hangs."""
    with _looking_lock:
        first, look.said_hung = not look.said_hung, True
    return first


def _repository(ctx: Context, look: _Look, scrub: Scrubber) -> ComponentHealth:
    name = look.name
    try:
        try:
            store = open_probe(ctx.settings.repository(name))
        finally:
            look.started = time.monotonic()
            look.opened.set()
        try:
            # Read, not only looked up: a mount can answer a stat from its attribute
            # cache while its reads hang.
            store.get(CONFIG_NAME)
        finally:
            store.close()
    except RespaldoError as exc:
        log.warning("health: repository %s cannot be read: %s", name, scrub(first_line(exc)))
        return ComponentHealth(name=name, ok=False, error=REPOSITORY_FAILS)
    return ComponentHealth(name=name, ok=True)

"""Alerts: the application's one way to tell people that something failed or stays bad.

Two kinds:

- :func:`notify_failure`: a critical alert for an operation that failed (what failed,
  on which database and repository, the error, the hint, the job, the host). Jobs call it
  from one place (:func:`respaldo.operations.jobs.run` when a job fails, and for jobs
  whose lease lapsed); the WAL push, offsite copies, lock renewal and restore tests that
  end without an exception call it themselves. ``throttle_key`` keeps a failure that
  repeats every minute (the server retrying a WAL push) to one alert per repeat interval.
- :func:`set_condition`: a watched condition (no backup within the RPO, WAL archiving
  behind) with its state in the catalog (``alert_states``): an alert when it starts
  firing, repeats at most every ``[notifications] repeat_interval_minutes`` while it
  fires, and one "resolved" message when it stops. It takes ``now`` so that tests drive
  the clock.

Each alert's delivery to each target is kept in the catalog until that target takes it
(:mod:`respaldo.operations.alert_delivery`): one a target refused is sent to it again by
the service's resend (:func:`retry_deliveries`), in order, or given up after
``[notifications] retry_hours``. Only when the catalog cannot record it is a message that
no target took counted as not told: the condition's next check, or the throttled
failure's next occurrence, sends it again. When the catalog cannot be read, a
condition's state is kept in this process's memory (so ``catalog`` itself is told once,
and resolved once).

Neither ever raises nor holds up the operation for long: a target that cannot be reached
is logged (never with its URL or secret) and recorded in the catalog (``notifications``),
and each target gets ``[notifications] timeout_seconds``. Messages are in
``[notifications] language``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError

from respaldo.catalog import AlertStates, Catalog, Deliveries, Notifications
from respaldo.config import Settings
from respaldo.errors import RespaldoError, render_options
from respaldo.i18n import quantities, translations
from respaldo.notify import Alert, Delivery, Event, Level, deliver, render, targets_for, unusable
from respaldo.operations import alert_delivery
from respaldo.operations.alert_delivery import shown
from respaldo.operations.context import Context
from respaldo.operations.models import ResultModel, UtcTime
from respaldo.operations.scrub import Scrubber
from respaldo.phrases import Phrase
from respaldo.processes import this_host
from respaldo.reasons import reason

log = logging.getLogger(__name__)

_ALERTED = "_respaldo_alerted"

Action = Literal["raised", "repeated", "throttled", "resolved", "quiet"]


class DeliveryResult(ResultModel):
    """How sending to one target went (``error`` never shows its URL or secret)."""

    target: str
    ok: bool
    error: str | None = None

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryResult:
        return cls(target=delivery.target, ok=delivery.ok, error=delivery.error)


class ConditionResult(ResultModel):
    """What :func:`set_condition` did: ``raised`` (first alert), ``repeated`` (told again
    after the repeat interval), ``throttled`` (still firing, told recently), ``resolved``
    (stopped firing: one message), ``quiet`` (not firing, was not)."""

    key: str
    action: Action
    deliveries: list[DeliveryResult] = []


class NotifyTestResult(ResultModel):
    """``respaldo notify test``: one result per configured target."""

    results: list[DeliveryResult]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)


def unannounced(settings: Settings) -> str | None:
    """What the service should say at start-up when no configured target takes critical
    alerts (every failure and stale backup would be told to nobody); None when one does."""
    if settings.notifications.takes("critical"):
        return None
    what = (
        "no [notifications] target takes critical alerts (their levels)"
        if settings.notifications.targets
        else "no [notifications] target is configured"
    )
    return (
        f"{what}: failures and stale backups are told to nobody ('respaldo status' and "
        "/metrics still show them; docs/notifications.md)"
    )


def unusable_targets(settings: Settings) -> list[str]:
    """What the service should say at start-up of each target that cannot send at all
    (its secret file missing, its environment variable unset, a URL apprise refuses):
    secrets are read only when a message goes, so the first alert, maybe days later and
    at night, would be the first to fail, and only in the log."""
    said = []
    for target in settings.notifications.targets:
        reason = unusable(target)
        if reason is not None:
            # The reason names the target ("notification target X: ...").
            said.append(
                f"{reason}: its alerts will fail until that is fixed "
                "('respaldo notify test' tries it)"
            )
    return said


def mark_alerted(exc: BaseException) -> BaseException:
    """Note on ``exc`` that its alert was sent already (the job that it fails then sends
    none); returns it, for ``raise mark_alerted(...)``."""
    setattr(exc, _ALERTED, True)
    return exc


def was_alerted(exc: BaseException) -> bool:
    """Whether :func:`mark_alerted` was called on ``exc`` or on an exception it wraps."""
    seen: BaseException | None = exc
    while seen is not None:
        if getattr(seen, _ALERTED, False):
            return True
        seen = seen.__cause__
    return False


def notify_failure(
    ctx: Context,
    kind: str,
    error: BaseException | str,
    *,
    database: str | None = None,
    repository: str | None = None,
    job_id: int | None = None,
    hint: str | None = None,
    throttle_key: str | None = None,
    now: datetime | None = None,
    later: bool = False,
) -> list[DeliveryResult]:
    """Send a critical alert: the operation ``kind`` (``backup``, ``copy``, ``restore``,
    ``drill``, ``prune``, ``lock-renewal``, ``wal-push``...) failed with ``error``.

    The hint is ``hint``, else the error's own (:attr:`RespaldoError.hint`). With
    ``throttle_key``, nothing is sent when an alert with that key went out less than
    the repeat interval ago. With ``later``, the alert is only recorded as pending for
    each target (:func:`alert_delivery.keep`: the service's resend sends it), so that
    the caller never waits on a target; sent at once only when the catalog cannot record
    it. Never raises; returns one result per target sent to.
    """
    return _failure(
        ctx.settings,
        ctx._catalog,
        kind,
        error,
        database,
        repository,
        job_id,
        hint,
        throttle_key,
        now,
        later=later,
    )


def notify_deferred(
    ctx: Context,
    kind: str,
    error: str,
    *,
    repository: str,
    hint: str,
    throttle_key: str,
    now: datetime | None = None,
) -> list[DeliveryResult]:
    """Send a warning: the operation ``kind`` completed, but what it had to do in
    ``repository`` waits until it can be reached (``error`` says why and what waits):
    a prune that could not reach a mirror. Titled so ("prune of repository offsite
    deferred"), not as a failure; throttled by ``throttle_key`` as
    :func:`notify_failure` is. Never raises."""
    return _failure(
        ctx.settings,
        ctx._catalog,
        kind,
        error,
        None,
        repository,
        None,
        hint,
        throttle_key,
        now,
        level=Level.WARNING,
        event=Event.DEFERRED,
    )


def notify_failure_settings(
    settings: Settings,
    kind: str,
    error: BaseException | str,
    *,
    database: str | None = None,
    throttle_key: str | None = None,
    now: datetime | None = None,
) -> list[DeliveryResult]:
    """:func:`notify_failure` where no context is open (``wal-push``, which runs without
    the catalog): the catalog is opened only when there is a target to send to, for the
    throttle and the record; if it cannot be opened, the throttle is a file of
    ``cache_dir`` (see :class:`_LocalThrottle`) and nothing is recorded."""
    if not settings.notifications.targets:
        return []
    try:
        ctx = Context.open(settings)
    except Exception as exc:
        log.warning("alerting without the catalog (no record): %s", _why(exc))
        return _failure(settings, None, kind, error, database, None, None, None, throttle_key, now)
    with ctx:
        return _failure(
            settings, ctx.catalog, kind, error, database, None, None, None, throttle_key, now
        )


def _failure(
    settings: Settings,
    catalog: Catalog | None,
    kind: str,
    error: BaseException | str,
    database: str | None,
    repository: str | None,
    job_id: int | None,
    hint: str | None,
    throttle_key: str | None,
    now: datetime | None,
    *,
    level: Level = Level.CRITICAL,
    event: Event = Event.FAILED,
    later: bool = False,
) -> list[DeliveryResult]:
    try:
        if not settings.notifications.targets:
            return []
        when = now or datetime.now(UTC)
        claimed: _Claim | None = None
        local: _LocalThrottle | None = None
        if throttle_key is not None:
            if catalog is not None:
                try:
                    claimed = _claim(settings, catalog, throttle_key, when, level)
                except Exception as exc:
                    log.warning(
                        "alert %s throttled without the catalog (%s)", throttle_key, _why(exc)
                    )
            if claimed is None:
                # The catalog is down too (an outage): a failure retried three times a
                # minute must not become three alerts a minute.
                local = _LocalThrottle.claim(settings, throttle_key, when)
            if not (claimed.granted if claimed is not None else local is None or local.granted):
                log.info("alert %s sent less than the repeat interval ago: not again", throttle_key)
                return []
        if hint is None and isinstance(error, RespaldoError):
            # An argument a hint names (errors.option) as str(error) names it: the alert
            # showed "(<<immediate>>)" where the CLI says --immediate.
            hint = render_options(error.hint) if error.hint else None
        # An alert leaves the server: no password or key it loaded, no secret file's path.
        scrub = Scrubber(settings)
        text = scrub(str(error) or type(error).__name__)
        hint = scrub(hint) if hint else hint
        alert = Alert(
            level=level,
            event=event,
            kind=kind,
            host=this_host(),
            at=when,
            database=database,
            repository=repository,
            error=text,
            hint=hint,
            job_id=job_id,
            key=throttle_key,
        )
        results, queued = _send(settings, catalog, alert, later=later)
        if _untold(results) and not queued:
            # Nobody was told, and the catalog does not keep it to send again: the next
            # failure tries again, not a repeat interval later. (Kept, it is sent when a
            # target answers: taking the claim back too would queue a failure that
            # repeats every minute once a minute.)
            if claimed is not None and catalog is not None:
                _unclaim(catalog, claimed, when)
            elif local is not None:
                local.take_back()
        return results
    except Exception:  # an alert must never fail what it reports on
        log.exception("could not send the alert for a failed %s", kind)
        return []


def notify_success(
    ctx: Context,
    kind: str,
    *,
    database: str | None = None,
    repository: str | None = None,
    job_id: int | None = None,
    details: tuple[tuple[str, str], ...] = (),
) -> list[DeliveryResult]:
    """A success notice (``success`` level): the operation ``kind`` completed. Sent only
    to the targets that ask for success notices; never raises."""
    try:
        if not ctx.settings.notifications.takes("success"):
            return []
        alert = Alert(
            level=Level.SUCCESS,
            event=Event.COMPLETED,
            kind=kind,
            host=this_host(),
            at=datetime.now(UTC),
            database=database,
            repository=repository,
            job_id=job_id,
            details=details,
        )
        return _send(ctx.settings, ctx._catalog, alert)[0]
    except Exception:
        log.exception("could not send the success notice of a %s", kind)
        return []


@dataclass(frozen=True)
class _Claim:
    key: str
    granted: bool
    previous: datetime | None  # when it was sent before this claim


def _claim(
    settings: Settings, catalog: Catalog, key: str, now: datetime, level: Level = Level.CRITICAL
) -> _Claim:
    """Whether an alert with ``key`` may go out at ``now``; if so, note it as sent."""
    interval = timedelta(minutes=settings.notifications.repeat_interval_minutes)
    with catalog.begin() as session:
        state = AlertStates(session).get_or_new(key, level=level.value, now=now)
        previous = state.last_sent_at
        if previous is not None and not _due(previous, now, interval):
            return _Claim(key, False, previous)
        state.last_sent_at = now
        state.updated_at = now
        return _Claim(key, True, previous)


@dataclass(frozen=True)
class _LocalThrottle:
    """The throttle of one key where the catalog cannot be used: when it was last sent,
    in a file of ``cache_dir/alerts`` (``wal-push`` runs as the server's user, whose
    cache directory it is). A file that cannot be read or written throttles nothing:
    better told twice than not at all."""

    path: Path | None
    previous: str | None
    granted: bool

    @classmethod
    def claim(cls, settings: Settings, key: str, now: datetime) -> _LocalThrottle:
        interval = timedelta(minutes=settings.notifications.repeat_interval_minutes)
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        path = Path(settings.cache_dir) / "alerts" / digest
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                previous: str | None = path.read_text().strip()
            except FileNotFoundError:
                previous = None
            told = _parse_time(previous)
            if told is not None and not _due(told, now, interval):
                return cls(path, previous, granted=False)
            _write_stamp(path, now.isoformat())
        except OSError as exc:
            log.warning("alert %s sent unthrottled: %s", key, exc)
            return cls(None, None, granted=True)
        return cls(path, previous, granted=True)

    def take_back(self) -> None:
        """Undo the claim (no target took the alert)."""
        if self.path is None:
            return
        try:
            if self.previous is None:
                self.path.unlink(missing_ok=True)
            else:
                _write_stamp(self.path, self.previous)
        except OSError:
            log.warning("could not note that alert reached nobody", exc_info=True)


def _parse_time(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def _write_stamp(path: Path, text: str) -> None:
    # Whole or not at all: a reader never sees half a time.
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text + "\n")
    temporary.replace(path)


def _unclaim(catalog: Catalog, claim: _Claim, now: datetime) -> None:
    """Take back :func:`_claim` ``claim`` made at ``now`` (no target took the alert)."""
    try:
        with catalog.begin() as session:
            state = AlertStates(session).get(claim.key)
            if state is not None and state.last_sent_at == now:
                state.last_sent_at = claim.previous
    except Exception:
        log.warning("could not note that alert %s reached nobody", claim.key, exc_info=True)


def _due(told: datetime, now: datetime, interval: timedelta) -> bool:
    """Whether what was told at ``told`` may be told again at ``now``: after the repeat
    interval, or at once if ``told`` is in the future (the clock was ahead then and was
    set right: waiting for it would keep a condition quiet as long as it was ahead)."""
    return now < told or now - told >= interval


def _why(exc: BaseException) -> str:
    """The first line of ``exc`` (a database error goes on with its SQL), for a log line."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _untold(deliveries: list[DeliveryResult]) -> bool:
    """Whether a message was meant for some target and none took it."""
    return bool(deliveries) and not any(d.ok for d in deliveries)


def set_condition(
    ctx: Context,
    key: str,
    firing: bool,
    *,
    message: str,
    args: Mapping[str, Any] | None = None,
    level: Literal["critical", "warning"] = "critical",
    kind: str = "check",
    database: str | None = None,
    repository: str | None = None,
    hint: str | None = None,
    now: datetime,
    not_to: str | None = None,
) -> ConditionResult:
    """Record whether the condition ``key`` (``rpo:erp:full``) fires at ``now``, and tell.

    ``message`` says what is wrong (``"no full backup of {database} for {hours} h"``):
    translated when the catalogs know it, then formatted with ``args``. The first time
    ``firing`` is true an alert of ``level`` goes out; while it stays true, again only
    after ``[notifications] repeat_interval_minutes``; the first time it is false after
    that, one ``resolved`` message. Never raises (a catalog that cannot be written is
    logged and the result says ``quiet``). ``not_to``: a target that is not told (the one
    the condition is about: "messages to it fail").
    """
    interval = timedelta(minutes=ctx.settings.notifications.repeat_interval_minutes)
    text = translate(ctx.settings, message, args)
    memory = _Memory.of(ctx, key)
    recorded = True
    try:
        action, text, before = _decide(ctx, key, firing, text, level, now, interval)
    except IntegrityError:
        # Another process (a second service on the catalog) recorded the same new
        # condition at the same moment: it tells, this one does not.
        return ConditionResult(key=key, action="quiet")
    except Exception as exc:
        # The state lives in the catalog; when it cannot be read (the ``catalog``
        # condition itself) this process keeps it, so that it is still told once.
        log.warning("could not record the state of alert %s (%s): kept in memory", key, _why(exc))
        recorded = False
        try:
            action, text, before = memory.decide(firing, text, now, interval)
        except Exception:
            log.exception("could not decide on alert %s", key)
            return ConditionResult(key=key, action="quiet")
    else:
        if memory.told is not None:
            # The catalog answers again: what was told from memory ends here.
            kept = memory.forget()
            if action == "quiet" and kept is not None:
                action, text, before = "resolved", kept.message, kept.last_sent_at
                recorded = False  # its state is the memory's: taken back there if untold
    if action in ("throttled", "quiet"):
        return ConditionResult(key=key, action=action)
    event = {"raised": Event.RAISED, "repeated": Event.REPEATED, "resolved": Event.RESOLVED}[action]
    alert = Alert(
        level=Level.RESOLVED if action == "resolved" else Level(level),
        event=event,
        kind=kind,
        host=this_host(),
        at=now,
        summary=text,
        database=database,
        repository=repository,
        hint=None if action == "resolved" else hint,
        key=key,
    )
    try:
        deliveries, queued = _send(ctx.settings, ctx._catalog, alert, not_to=not_to)
    except Exception:
        log.exception("could not send alert %s", key)
        deliveries, queued = [], False
    if _untold(deliveries) and not queued:
        # No target took it, and the catalog does not keep it to send again: the next
        # check tells it again, not a repeat interval later.
        if recorded:
            _take_back(ctx, key, action, text, now, before)
        else:
            memory.take_back(action, text, now, before)
    return ConditionResult(key=key, action=action, deliveries=deliveries)


def firing_keys(ctx: Context, prefix: str) -> list[str]:
    """The keys of the conditions firing now that start with ``prefix``: those the
    catalog holds and those this process keeps in memory (told while the catalog could
    not be written). Raises what reading the catalog raises."""
    with ctx.catalog.read() as session:
        keys = [state.key for state in AlertStates(session).firing_under(prefix)]
    url = ctx.settings.catalog.url
    with _MEMORY_LOCK:
        kept = [key for (catalog, key) in _MEMORY if catalog == url and key.startswith(prefix)]
    return keys + [key for key in kept if key not in keys]


def close_unwatched(ctx: Context, keys: Collection[str], now: datetime) -> list[str]:
    """Stop the conditions ``keys`` from firing, without a message: what they watched
    (a database, a file set or a repository) is no longer in the configuration, so they
    can neither be met nor told again, and a "resolved" would say it was mended. Returns
    the keys that were firing. Raises what writing the catalog raises."""
    closed = []
    with ctx.catalog.begin() as session:
        states = AlertStates(session)
        for key in keys:
            state = states.get(key)
            if state is not None and state.firing:
                state.firing = False
                state.resolved_at = now
                state.updated_at = now
                closed.append(key)
    closed += [k for k in keys if _Memory.of(ctx, k).forget() is not None and k not in closed]
    return closed


def _decide(
    ctx: Context,
    key: str,
    firing: bool,
    text: str,
    level: str,
    now: datetime,
    interval: timedelta,
) -> tuple[Action, str, datetime | None]:
    """The action for ``key`` at ``now``, noted in the catalog; with the text to send
    and when the condition was last told before."""
    with ctx.catalog.begin() as session:
        states = AlertStates(session)
        state = states.get_or_new(key, level=level, now=now) if firing else states.get(key)
        if state is None or (not firing and not state.firing):
            return "quiet", text, None
        before = state.last_sent_at
        if not firing:
            state.firing = False
            state.resolved_at = now
            state.updated_at = now
            # The resolved message names what had fired, as it was said then.
            return "resolved", state.message or text, before
        state.message = text
        state.level = level
        state.updated_at = now
        if not state.firing or before is None:
            # Starts firing, or fired and was never told (no target took the alert).
            if not state.firing:
                state.firing = True
                state.fired_at = now
                state.resolved_at = None
            state.last_sent_at = now
            return "raised", text, None
        if _due(before, now, interval):
            state.last_sent_at = now
            return "repeated", text, before
        return "throttled", text, before


def _take_back(
    ctx: Context, key: str, action: Action, text: str, now: datetime, before: datetime | None
) -> None:
    """Undo what :func:`_decide` noted at ``now`` for a message no target took: a raise
    or a repeat counts as not told, a resolved condition fires again (its "resolved"
    goes out at the next check that finds it met)."""
    try:
        with ctx.catalog.begin() as session:
            state = AlertStates(session).get(key)
            if state is None:
                return
            if action == "resolved":
                if not state.firing and state.resolved_at == now:
                    state.firing = True
                    state.resolved_at = None
                    state.message = text
            elif state.firing and state.last_sent_at == now:
                state.last_sent_at = before
    except Exception:
        log.warning("could not note that alert %s reached nobody", key, exc_info=True)


@dataclass
class _Told:
    message: str
    last_sent_at: datetime | None


# Conditions whose state the catalog could not hold (it could not be read), per catalog
# and key: told once, repeated at the interval and resolved once by this process.
_MEMORY: dict[tuple[str, str], _Told] = {}
_MEMORY_LOCK = threading.Lock()


@dataclass(frozen=True)
class _Memory:
    """The state of one condition kept in this process's memory (see ``_MEMORY``)."""

    slot: tuple[str, str]

    @classmethod
    def of(cls, ctx: Context, key: str) -> _Memory:
        return cls((ctx.settings.catalog.url, key))

    @property
    def told(self) -> _Told | None:
        with _MEMORY_LOCK:
            return _MEMORY.get(self.slot)

    def forget(self) -> _Told | None:
        with _MEMORY_LOCK:
            return _MEMORY.pop(self.slot, None)

    def decide(
        self, firing: bool, text: str, now: datetime, interval: timedelta
    ) -> tuple[Action, str, datetime | None]:
        """As :func:`_decide`, in memory."""
        with _MEMORY_LOCK:
            told = _MEMORY.get(self.slot)
            if not firing:
                if told is None:
                    return "quiet", text, None
                del _MEMORY[self.slot]
                return "resolved", told.message, told.last_sent_at
            if told is None or told.last_sent_at is None:
                _MEMORY[self.slot] = _Told(text, now)
                return "raised", text, None
            told.message = text
            before = told.last_sent_at
            if _due(before, now, interval):
                told.last_sent_at = now
                return "repeated", text, before
            return "throttled", text, before

    def take_back(self, action: Action, text: str, now: datetime, before: datetime | None) -> None:
        """As :func:`_take_back`, in memory."""
        with _MEMORY_LOCK:
            if action == "resolved":
                _MEMORY.setdefault(self.slot, _Told(text, before))
            elif (told := _MEMORY.get(self.slot)) is not None and told.last_sent_at == now:
                told.last_sent_at = before


def translate(settings: Settings, message: str, args: Mapping[str, Any] | None = None) -> str:
    """``message`` in ``[notifications] language`` (as given when the catalogs do not
    know it), formatted with ``args``. An argument that is a
    :class:`~respaldo.phrases.Phrase` (a health check's reason, a recorded error marked
    with :func:`~respaldo.phrases.recorded`) is said in that language too, as the page
    says it, its sizes and shares written as that language writes them ("1,1 MB", "10 %";
    in English as the CLI writes them); other text (a database's name) is put in as
    given."""
    language = settings.notifications.language
    gettext = translations(language).gettext
    translated = gettext(message)
    if not args:
        return translated
    show = quantities(language)
    said = {
        name: reason(value, gettext, show) if isinstance(value, Phrase) else value
        for name, value in args.items()
    }
    return translated.format(**said)


def _send(
    settings: Settings,
    catalog: Catalog | None,
    alert: Alert,
    *,
    not_to: str | None = None,
    later: bool = False,
) -> tuple[list[DeliveryResult], bool]:
    """Send ``alert`` to every target of its level but ``not_to``, each delivery kept in
    the catalog until its target takes it (:mod:`~respaldo.operations.alert_delivery`);
    with ``later``, only kept (none sent now: no result). Returns one result per target
    sent to, and whether the catalog keeps what failed (False: it could not record the
    alert, which was sent without a record of it)."""
    targets = [t for t in targets_for(settings.notifications, alert.level) if t.name != not_to]
    if not targets:
        return [], True
    if catalog is not None and later and alert_delivery.keep(catalog, alert, targets):
        return [], True
    if catalog is not None:
        kept = alert_delivery.send_kept(settings, catalog, alert, targets)
        if kept is not None:
            return [DeliveryResult.of(d) for d in kept], True
    notifications = settings.notifications
    message = render(shown(settings, alert), notifications.language)
    deliveries = [deliver(t, message, alert.level, notifications.timeout_seconds) for t in targets]
    _record(catalog, alert, deliveries, alert.at)
    return [DeliveryResult.of(d) for d in deliveries], False


# Failure alerts that no target took waited in ``alert_states`` under this prefix (firing,
# the alert as JSON in ``message``) before each delivery had its row (migration 0017);
# :func:`adopt_undelivered` moves those an upgrade finds into ``alert_deliveries``.
_UNDELIVERED = "undelivered:"


def retry_deliveries(ctx: Context, now: datetime) -> list[DeliveryResult]:
    """Send again what targets refused (the service's resend calls it): each target's
    pending alerts in order, from the oldest whose next try is due at ``now``; give up
    those older than ``[notifications] retry_hours``. Never raises: a catalog that cannot
    be read is logged, and the next call tries again."""
    settings = ctx.settings
    try:
        return [DeliveryResult.of(d) for d in alert_delivery.retry(settings, ctx.catalog, now)]
    except Exception:
        log.warning("could not send again the alerts that wait to be sent", exc_info=True)
        return []


def adopt_undelivered(ctx: Context) -> bool:
    """Turn the alerts an older respaldo kept as undelivered into pending deliveries
    (:func:`retry_deliveries` sends them); whether that is done (False: the catalog
    could not be read or written, logged; call again). Never raises."""
    try:
        _adopt_undelivered(ctx.settings, ctx.catalog)
    except Exception:
        log.warning("could not take in the alerts kept as undelivered", exc_info=True)
        return False
    return True


def _adopt_undelivered(settings: Settings, catalog: Catalog) -> None:
    """Turn the alerts an older respaldo kept as undelivered into pending deliveries,
    one per target of their level (in one transaction: each once)."""
    with catalog.read() as session:
        if not AlertStates(session).firing_under(_UNDELIVERED):
            return
    with catalog.begin() as session:
        states = AlertStates(session)
        rows = Deliveries(session)
        for state in states.firing_under(_UNDELIVERED):
            try:
                alert = alert_delivery.decode(state.message or "")
            except (ValueError, KeyError, TypeError):
                log.warning("the alert kept as %s is damaged: not sent", state.key)
            else:
                for target in targets_for(settings.notifications, alert.level):
                    rows.add(
                        created_at=alert.at,
                        target=target.name,
                        level=alert.level.value,
                        kind=alert.kind,
                        key=alert.key,
                        alert=alert_delivery.encode(alert),
                    )
            session.delete(state)


def _record(
    catalog: Catalog | None, alert: Alert, deliveries: list[Delivery], at: datetime
) -> None:
    if catalog is None or not deliveries:
        return
    try:
        with catalog.begin() as session:
            log_ = Notifications(session)
            for d in deliveries:
                alert_delivery.log_sent(log_, alert, d, at)
    except Exception:
        log.warning("could not record the notifications sent", exc_info=True)


def send_test(settings: Settings, *, now: datetime | None = None) -> NotifyTestResult:
    """Send a test message to every configured target, whatever levels it takes, and
    record how each went in the catalog when it can be opened."""
    alert = Alert(
        level=Level.SUCCESS,
        event=Event.TEST,
        kind="test",
        host=this_host(),
        at=now or datetime.now(UTC),
        summary=None,
    )
    notifications = settings.notifications
    message = render(shown(settings, alert), notifications.language)
    deliveries = [
        deliver(t, message, alert.level, notifications.timeout_seconds)
        for t in notifications.targets
    ]
    # Recorded like any message: a target that failed and has had nothing to tell since
    # shows as working again (in the metrics) once a test went through.
    try:
        with Context.open(settings) as ctx:
            _record(ctx.catalog, alert, deliveries, alert.at)
    except Exception as exc:
        log.info("the test messages are not recorded: %s", _why(exc))
    return NotifyTestResult(results=[DeliveryResult.of(d) for d in deliveries])


class SentNotification(ResultModel):
    """One message sent (or tried) to one target: what the page's "alerts sent" lists.
    ``error`` never holds the target's URL or secret."""

    sent_at: UtcTime
    level: str
    kind: str
    key: str | None
    target: str
    ok: bool
    error: str | None


def sent_notifications(ctx: Context, *, limit: int = 100) -> list[SentNotification]:
    """The newest messages sent (or tried), newest first."""
    with ctx.catalog.read() as session:
        return [
            SentNotification(
                sent_at=r.sent_at,
                level=r.level,
                kind=r.kind,
                key=r.key,
                target=r.target,
                ok=r.ok,
                error=r.error,
            )
            for r in Notifications(session).list(limit=limit)
        ]


class UndeliveredAlert(ResultModel):
    """An alert a target has not taken: ``pending`` (tried ``attempts`` times, next at
    ``next_try_at``) or ``given_up`` (at ``ended_at``; ``error`` says why). What the
    status's ``notify:<target>`` items and the page's alerts list show."""

    created_at: UtcTime
    target: str
    level: str
    kind: str
    key: str | None
    state: str
    attempts: int
    next_try_at: UtcTime | None
    ended_at: UtcTime | None
    error: str | None


def undelivered(ctx: Context, now: datetime) -> list[UndeliveredAlert]:
    """The alerts still pending, and those given up in the ``GIVEN_UP_SHOWN`` before
    ``now``, oldest first. Raises what reading the catalog raises."""
    with ctx.catalog.read() as session:
        return [
            UndeliveredAlert(
                created_at=r.created_at,
                target=r.target,
                level=r.level,
                kind=r.kind,
                key=r.key,
                state=r.state,
                attempts=r.attempts,
                next_try_at=r.next_try_at,
                ended_at=r.ended_at,
                error=r.error,
            )
            for r in Deliveries(session).unsettled(since=now - alert_delivery.GIVEN_UP_SHOWN)
        ]

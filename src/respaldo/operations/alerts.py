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

Neither ever raises nor holds up the operation for long: a target that cannot be reached
is logged (never with its URL or secret) and recorded in the catalog (``notifications``),
and each target gets ``[notifications] timeout_seconds``. Messages are in
``[notifications] language``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from respaldo.catalog import AlertStates, Catalog, Notifications
from respaldo.config import Settings
from respaldo.errors import RespaldoError
from respaldo.i18n import translations
from respaldo.notify import Alert, Delivery, Event, Level, deliver, render, send
from respaldo.operations.context import Context
from respaldo.operations.models import ResultModel, UtcTime
from respaldo.operations.scrub import Scrubber
from respaldo.processes import this_host

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
) -> list[DeliveryResult]:
    """Send a critical alert: the operation ``kind`` (``backup``, ``copy``, ``restore``,
    ``drill``, ``prune``, ``lock-renewal``, ``wal-push``...) failed with ``error``.

    The hint is ``hint``, else the error's own (:attr:`RespaldoError.hint`). With
    ``throttle_key``, nothing is sent when an alert with that key went out less than
    the repeat interval ago. Never raises; returns one result per target sent to.
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
    throttle and the record; if it cannot be opened, the alert is sent unthrottled."""
    if not settings.notifications.targets:
        return []
    try:
        ctx = Context.open(settings)
    except Exception as exc:
        log.warning("alerting without the catalog (no throttle, no record): %s", exc)
        return _failure(settings, None, kind, error, database, None, None, None, None, now)
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
) -> list[DeliveryResult]:
    try:
        if not settings.notifications.targets:
            return []
        when = now or datetime.now(UTC)
        key, store = throttle_key, catalog
        if key is not None and store is not None and not _claim(settings, store, key, when):
            log.info("alert %s sent less than the repeat interval ago: not again", throttle_key)
            return []
        if hint is None and isinstance(error, RespaldoError):
            hint = error.hint or None
        # An alert leaves the server: no password or key it loaded, no secret file's path.
        scrub = Scrubber(settings)
        text = scrub(str(error) or type(error).__name__)
        hint = scrub(hint) if hint else hint
        alert = Alert(
            level=Level.CRITICAL,
            event=Event.FAILED,
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
        return _send(settings, catalog, alert)
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
        return _send(ctx.settings, ctx._catalog, alert)
    except Exception:
        log.exception("could not send the success notice of a %s", kind)
        return []


def _claim(settings: Settings, catalog: Catalog, key: str, now: datetime) -> bool:
    """Whether an alert with ``key`` may go out at ``now``; if so, note it as sent."""
    interval = timedelta(minutes=settings.notifications.repeat_interval_minutes)
    with catalog.begin() as session:
        state = AlertStates(session).get_or_new(key, level=Level.CRITICAL.value, now=now)
        if state.last_sent_at is not None and now - state.last_sent_at < interval:
            return False
        state.last_sent_at = now
        state.updated_at = now
        return True


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
) -> ConditionResult:
    """Record whether the condition ``key`` (``rpo:erp:full``) fires at ``now``, and tell.

    ``message`` says what is wrong (``"no full backup of {database} for {hours} h"``):
    translated when the catalogs know it, then formatted with ``args``. The first time
    ``firing`` is true an alert of ``level`` goes out; while it stays true, again only
    after ``[notifications] repeat_interval_minutes``; the first time it is false after
    that, one ``resolved`` message. Never raises (a catalog that cannot be written is
    logged and the result says ``quiet``).
    """
    try:
        action, text = _decide(ctx, key, firing, message, args, level, now)
    except Exception:
        log.exception("could not record the state of alert %s", key)
        return ConditionResult(key=key, action="quiet")
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
        deliveries = _send(ctx.settings, ctx._catalog, alert)
    except Exception:
        log.exception("could not send alert %s", key)
        deliveries = []
    return ConditionResult(key=key, action=action, deliveries=deliveries)


def _decide(
    ctx: Context,
    key: str,
    firing: bool,
    message: str,
    args: Mapping[str, Any] | None,
    level: str,
    now: datetime,
) -> tuple[Action, str]:
    interval = timedelta(minutes=ctx.settings.notifications.repeat_interval_minutes)
    text = translate(ctx.settings, message, args)
    with ctx.catalog.begin() as session:
        states = AlertStates(session)
        state = states.get_or_new(key, level=level, now=now) if firing else states.get(key)
        if state is None or (not firing and not state.firing):
            return "quiet", text
        if not firing:
            state.firing = False
            state.resolved_at = now
            state.updated_at = now
            # The resolved message names what had fired, as it was said then.
            return "resolved", state.message or text
        state.message = text
        state.level = level
        state.updated_at = now
        if not state.firing:
            state.firing = True
            state.fired_at = now
            state.resolved_at = None
            state.last_sent_at = now
            return "raised", text
        if state.last_sent_at is None or now - state.last_sent_at >= interval:
            state.last_sent_at = now
            return "repeated", text
        return "throttled", text


def translate(settings: Settings, message: str, args: Mapping[str, Any] | None = None) -> str:
    """``message`` in ``[notifications] language`` (as given when the catalogs do not
    know it), formatted with ``args``."""
    translated = translations(settings.notifications.language).gettext(message)
    return translated.format(**args) if args else translated


def _send(settings: Settings, catalog: Catalog | None, alert: Alert) -> list[DeliveryResult]:
    deliveries = send(settings.notifications, alert)
    _record(catalog, alert, deliveries)
    return [DeliveryResult.of(d) for d in deliveries]


def _record(catalog: Catalog | None, alert: Alert, deliveries: list[Delivery]) -> None:
    if catalog is None or not deliveries:
        return
    try:
        with catalog.begin() as session:
            log_ = Notifications(session)
            for d in deliveries:
                log_.add(
                    sent_at=alert.at,
                    level=alert.level.value,
                    kind=alert.kind,
                    key=alert.key,
                    target=d.target,
                    ok=d.ok,
                    error=d.error,
                )
    except Exception:
        log.warning("could not record the notifications sent", exc_info=True)


def send_test(settings: Settings, *, now: datetime | None = None) -> NotifyTestResult:
    """Send a test message to every configured target, whatever levels it takes."""
    alert = Alert(
        level=Level.SUCCESS,
        event=Event.TEST,
        kind="test",
        host=this_host(),
        at=now or datetime.now(UTC),
        summary=None,
    )
    notifications = settings.notifications
    message = render(alert, notifications.language)
    results = [
        DeliveryResult.of(deliver(t, message, alert.level, notifications.timeout_seconds))
        for t in notifications.targets
    ]
    return NotifyTestResult(results=results)


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

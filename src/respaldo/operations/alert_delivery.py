"""Each alert's delivery to each notification target, kept until the target takes it.

Every alert (but ``respaldo notify test``'s) is first recorded per target in the catalog
(``alert_deliveries``, ``pending``), then sent; the alerts of the lost jobs the service's
sweep finds are only recorded (:func:`keep`), and its resend sends them. A target that
refuses it (its mail server down, its webhook answering 500) keeps it pending: it is
tried again, with backoff (1, 2, 4... minutes, at most 30), by ``respaldo serve``'s
resend (:func:`retry`), and by any process that has a new alert for that target, until
the target takes it (``sent``) or ``[notifications] retry_hours`` have passed since the
alert (``given_up``, with the last reason; logged as an error, and shown by the status
and the page). Another target that took it is never sent it again: each delivery is its
own row.

Order: a target gets its alerts in the order they were made. A new alert for a target
that still has older ones pending is sent only after them; when the oldest still fails,
the new one waits behind it.

At least once, not at most once: an attempt is recorded (claimed) before the message
goes, and its outcome after. A process killed between the two (the message gone, its
outcome not recorded) leaves the delivery pending, so it is sent again at its next try:
the target may get it twice. The other order (record ``sent``, then send) would lose
the alert for good if the process died before sending, and a lost "backup failed" is
what an alert must never be. Two processes never send the same delivery at once: the
claim is a compare-and-set on the attempts, and a delivery claimed less than an
attempt's bound ago (:func:`_in_flight`) is left to the process that claimed it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from respaldo.catalog import Catalog, Deliveries, Notifications
from respaldo.catalog.alerts import GIVEN_UP, SENT
from respaldo.config import NotificationTarget, Settings
from respaldo.errors import ConfigError
from respaldo.notify import Alert, Delivery, Event, Level, deliver, render
from respaldo.operations import stall
from respaldo.operations.zone import time_zone
from respaldo.phrases import Phrase

log = logging.getLogger(__name__)

# The backoff between attempts: doubled after each failure, from the first to the longest.
FIRST_WAIT = timedelta(minutes=1)
LONGEST_WAIT = timedelta(minutes=30)
GIVEN_UP_SHOWN = timedelta(days=7)
"""How long the status (amber) and the page show an alert that was given up."""


def shown(settings: Settings, alert: Alert) -> Alert:
    """``alert`` with its time in the installation's zone (``[schedules] time_zone``, else
    the machine's), as the page and the schedule say times: a message read in Mexico City
    said a 03:00 backup failed at 09:00:02 UTC. UTC where the zone is unknown (an alert
    must go out all the same)."""
    try:
        zone = time_zone(settings)
    except ConfigError:
        zone = UTC
    return replace(alert, at=alert.at.astimezone(zone))


def encode(alert: Alert) -> str:
    """``alert`` as the JSON kept in the catalog (its time in UTC). A text that is a
    :class:`~respaldo.phrases.Phrase` (a hint, a health check's reason) is kept as its
    message and values, so that a retry says it in the alert's language too."""
    fields = {name: _kept(getattr(alert, name)) for name in Alert.__dataclass_fields__}
    fields["at"] = alert.at.astimezone(UTC).isoformat()
    fields["details"] = [[_kept(name), _kept(value)] for name, value in alert.details]
    return json.dumps(fields)


def _kept(value: object) -> object:
    if isinstance(value, Phrase):
        return {"phrase": value.message, "values": {k: _kept(v) for k, v in value.values.items()}}
    return value.value if isinstance(value, Enum) else value


def _back(value: object) -> object:
    if isinstance(value, dict) and "phrase" in value:
        return Phrase(value["phrase"], **{k: _back(v) for k, v in value["values"].items()})
    return value


def decode(text: str) -> Alert:
    """The alert :func:`encode` wrote. Raises ValueError/KeyError/TypeError if damaged."""
    kept: dict[str, Any] = json.loads(text)
    fields: dict[str, Any] = {name: _back(value) for name, value in kept.items()}
    fields.update(
        level=Level(kept["level"]),
        event=Event(kept["event"]),
        at=datetime.fromisoformat(kept["at"]),
        details=tuple((_back(name), _back(value)) for name, value in kept.get("details") or ()),
    )
    return Alert(**fields)


def _attempt_bound(settings: Settings) -> timedelta:
    """How long one attempt may take: apprise waits ``timeout_seconds`` to connect and
    again for each answer of the conversation (an SMTP one has several)."""
    return max(timedelta(seconds=4 * settings.notifications.timeout_seconds), FIRST_WAIT)


def wait_after(settings: Settings, attempts: int) -> timedelta:
    """How long after its attempt number ``attempts`` a delivery is tried again; never
    less than an attempt's bound, so that a claimed delivery is not taken as abandoned."""
    doubled = FIRST_WAIT.total_seconds() * 2.0 ** min(max(attempts - 1, 0), 16)
    backoff = min(timedelta(seconds=doubled), LONGEST_WAIT)
    return max(backoff, _attempt_bound(settings))


def _in_flight(settings: Settings, tried_at: datetime | None, now: datetime) -> bool:
    """Whether an attempt begun at ``tried_at`` may still be going on at ``now`` (in
    this process or another). One dated after ``now`` (a clock set back since) is not."""
    return tried_at is not None and tried_at <= now < tried_at + _attempt_bound(settings)


def _due(next_try_at: datetime | None, now: datetime, /) -> bool:
    """Whether a delivery to try next at ``next_try_at`` is due at ``now``. One planned
    further ahead than the longest wait was planned while the clock was ahead, since set
    back: waiting for that time would hold the target's alerts as long as it was ahead."""
    return next_try_at is None or next_try_at <= now or next_try_at - now > LONGEST_WAIT


@dataclass(frozen=True)
class _Pending:
    """What a pending delivery's row says, read before it is tried."""

    id: int
    attempts: int
    created_at: datetime
    tried_at: datetime | None
    next_try_at: datetime | None
    alert: str
    error: str | None


def send_kept(
    settings: Settings, catalog: Catalog, alert: Alert, targets: list[NotificationTarget]
) -> list[Delivery] | None:
    """Record ``alert`` as pending for each of ``targets``, then send each target what it
    has pending, oldest first (older alerts it refused before, then this one). Returns
    how this alert went, one Delivery per target; None when the catalog could not record
    it (nothing was sent: the caller sends it without a record). Never raises for a
    target that fails."""
    ids = _record(catalog, alert, targets)
    if ids is None:
        return None
    results = []
    for target in targets:
        try:
            told, stopped = drain(settings, catalog, target.name, alert.at, force=True)
        except Exception as exc:  # the catalog failed: still pending, the sweep retries
            log.warning("could not send what waits for %s: %s", target.name, exc)
            told, stopped = {}, "the catalog could not be written"
        own = told.get(ids[target.name])
        if own is None:
            # Not tried: an older alert to this target is still refused (or being sent by
            # another process); this one waits behind it.
            why = stopped or "an earlier alert to it is being sent"
            own = Delivery(
                target.name,
                False,
                f"notification target {target.name}: waits behind an earlier alert ({why})",
            )
        results.append(own)
    return results


def keep(catalog: Catalog, alert: Alert, targets: list[NotificationTarget]) -> bool:
    """Record ``alert`` as pending for each of ``targets`` and send nothing: :func:`retry`
    (the service's resend) sends it, or the next alert to each target, behind what that
    target has pending. For a caller that must not wait on a target (the service's sweep
    for lost jobs: a target that hangs would hold it ``timeout_seconds`` per target).
    False when the catalog could not record it (the caller sends it without a record)."""
    return _record(catalog, alert, targets) is not None


def _record(
    catalog: Catalog, alert: Alert, targets: list[NotificationTarget]
) -> dict[str, int] | None:
    """The pending delivery's row id of ``alert`` per target name; None (logged) when the
    catalog could not record it."""
    text = encode(alert)
    try:
        with catalog.begin() as session:
            rows = Deliveries(session)
            return {
                t.name: rows.add(
                    created_at=alert.at,
                    target=t.name,
                    level=alert.level.value,
                    kind=alert.kind,
                    key=alert.key,
                    alert=text,
                ).id
                for t in targets
            }
    except Exception as exc:
        log.warning("could not record the alert to send (sent without a record): %s", exc)
        return None


def retry(settings: Settings, catalog: Catalog, now: datetime) -> list[Delivery]:
    """Send again what targets refused, each target's pending alerts in order, from the
    oldest whose next try is due at ``now``; stop at a target's first refusal (the rest
    wait behind it). Raises what reading the catalog raises; a target that fails is
    recorded, not raised."""
    with catalog.read() as session:
        names = Deliveries(session).pending_targets()
    told: list[Delivery] = []
    for name in names:
        # What the service's stall monitor names if this hangs (stuck:alert-resend).
        stall.at(stall.RESENDING, target=name)
        done, _ = drain(settings, catalog, name, now, force=False)
        told += done.values()
    return told


def drain(
    settings: Settings, catalog: Catalog, name: str, now: datetime, *, force: bool
) -> tuple[dict[int, Delivery], str | None]:
    """Send target ``name`` its pending alerts, oldest first, until one fails: the first
    only if due at ``now`` (any time when ``force``: a new alert goes to it now anyway),
    the others after it at once (the target answers). Returns the deliveries tried (by
    row id) and why the last one failed (None if none did)."""
    target = next((t for t in settings.notifications.targets if t.name == name), None)
    with catalog.read() as session:
        waiting = [
            _Pending(r.id, r.attempts, r.created_at, r.tried_at, r.next_try_at, r.alert, r.error)
            for r in Deliveries(session).pending(name)
        ]
    bound = timedelta(hours=settings.notifications.retry_hours)
    told: dict[int, Delivery] = {}
    first = True
    for row in waiting:
        if _in_flight(settings, row.tried_at, now):
            return told, None  # another attempt at it may be going on: the rest wait
        if first and not force and not _due(row.next_try_at, now):
            return told, None
        first = False
        if target is None or now - row.created_at >= bound:
            _give_up(settings, catalog, name, row, now, configured=target is not None)
            continue
        delivery = _attempt(settings, catalog, target, row, now)
        if delivery is None:
            return told, None  # another process claimed it first: it goes on from there
        told[row.id] = delivery
        if not delivery.ok:
            return told, delivery.error
    return told, None


def _attempt(
    settings: Settings, catalog: Catalog, target: NotificationTarget, row: _Pending, now: datetime
) -> Delivery | None:
    """Claim ``row``, send it, record the outcome; None when another process claimed it."""
    attempts = row.attempts + 1
    with catalog.begin() as session:
        if not Deliveries(session).claim(
            row.id, attempts=row.attempts, now=now, next_try_at=now + wait_after(settings, attempts)
        ):
            return None
    try:
        alert = decode(row.alert)
    except (ValueError, KeyError, TypeError) as exc:  # a damaged row: nothing to send
        _end(catalog, row.id, GIVEN_UP, now, f"the alert kept in the catalog is damaged: {exc}")
        return Delivery(target.name, False, "the alert kept in the catalog is damaged")
    notifications = settings.notifications
    message = render(shown(settings, alert), notifications.language)
    delivery = deliver(target, message, alert.level, notifications.timeout_seconds)
    try:
        with catalog.begin() as session:
            rows = Deliveries(session)
            if delivery.ok:
                rows.end(row.id, state=SENT, now=now, error=None)
            else:
                rows.failed(row.id, error=delivery.error or "refused")
            log_sent(Notifications(session), alert, delivery, now)
    except Exception:
        # Still pending: sent again at its next try (told twice rather than lost).
        log.warning("could not record how the alert to %s went", target.name, exc_info=True)
    return delivery


def _give_up(
    settings: Settings,
    catalog: Catalog,
    name: str,
    row: _Pending,
    now: datetime,
    *,
    configured: bool,
) -> None:
    if configured:
        reason = (
            f"not delivered in {settings.notifications.retry_hours:g} h "
            f"({row.attempts} attempts): {row.error or 'no reason recorded'}"
        )
    else:
        reason = f"notification target {name} is no longer configured"
    _end(catalog, row.id, GIVEN_UP, now, reason)
    try:
        what = decode(row.alert)
        said = f"{what.kind} {what.event.value}" + (f" of {what.database}" if what.database else "")
    except (ValueError, KeyError, TypeError):
        said = "an alert"
    log.error(
        "alert (%s, made %s) to notification target %s given up: %s",
        said,
        row.created_at.isoformat(timespec="seconds"),
        name,
        reason,
    )


def _end(catalog: Catalog, delivery_id: int, state: str, now: datetime, error: str | None) -> None:
    with catalog.begin() as session:
        Deliveries(session).end(delivery_id, state=state, now=now, error=error)


def log_sent(log_: Notifications, alert: Alert, delivery: Delivery, at: datetime) -> None:
    """The notifications log's row for one try of ``alert`` to one target (the first
    send's and every retry's)."""
    log_.add(
        sent_at=at,
        level=alert.level.value,
        kind=alert.kind,
        key=alert.key,
        target=delivery.target,
        ok=delivery.ok,
        error=delivery.error,
    )

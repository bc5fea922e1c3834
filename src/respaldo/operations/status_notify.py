"""Whether each notification target takes respaldo's messages, for the status's
``notify:<target>`` items.

A message that a target refused (its mail server rejects the login, its webhook answers
500) is logged and recorded in the catalog (``notifications``), and retried only when no
other target took it. With two targets, one of them broken (the e-mail that pages at
night, its password expired), every alert still "went out", and nothing but the
metrics and the page's list of messages sent said that the night's pager was silent. The
item is red while the newest message to the target failed: the watchdog tells the other
targets (not that one: told through it once it answers, the news would be stale). The
next message that gets through to it (a failure alert or a condition told again, a
success notice, ``respaldo notify test``) turns the item green, and a "resolved" follows.

Each alert a target refused is kept and sent to it again (:mod:`respaldo.operations.
alert_delivery`): the item says how many wait. One given up (not delivered within
``[notifications] retry_hours``) keeps the item amber for a week, whatever came through
since: that alert never arrived, and the page's list of alerts says which it was.
"""

from __future__ import annotations

from datetime import datetime

from respaldo.catalog import Deliveries, Notifications
from respaldo.catalog.alerts import GIVEN_UP, PENDING
from respaldo.config import Settings
from respaldo.operations.alert_delivery import GIVEN_UP_SHOWN
from respaldo.operations.context import Context
from respaldo.operations.status import StatusItem
from respaldo.operations.status_server import human_age
from respaldo.phrases import N_, Phrase, counted, recorded


def notify_items(ctx: Context, settings: Settings, now: datetime) -> list[StatusItem]:
    """One item per configured notification target, as of ``now``: red while the newest
    message sent to it failed. Raises what reading the catalog raises."""
    items = []
    with ctx.catalog.read() as session:
        log = Notifications(session)
        newest = {t.name: log.last_to(t.name) for t in settings.notifications.targets}
        unsettled = Deliveries(session).unsettled(since=now - GIVEN_UP_SHOWN)
    for target, record in newest.items():
        key = f"notify:{target}"
        waiting = sum(1 for d in unsettled if d.target == target and d.state == PENDING)
        lost = [d for d in unsettled if d.target == target and d.state == GIVEN_UP]
        if record is None:
            said = Phrase(N_("nothing was sent to notification target {target} yet"), target=target)
            items.append(StatusItem(key=key, check="notify", level="green", reason=said))
            continue
        age = now - record.sent_at
        if record.ok:
            said = Phrase(
                N_("notification target {target} took the last message, {age} ago"),
                target=target,
                age=human_age(age),
            )
            level = "green"
        else:
            said = Phrase(
                N_(
                    "the last message to notification target {target} failed {age} ago: "
                    "{error}; 'respaldo notify test' tries it"
                ),
                target=target,
                age=human_age(age),
                error=record.error or Phrase(N_("no reason recorded")),
            )
            level = "red"
        if level == "green" and lost:
            newest_lost = lost[-1]
            said = counted(
                len(lost),
                N_(
                    "{count} alert to notification target {target} was given up in the last "
                    "7 days, {age} ago: {error}; the page's list of alerts says which"
                ),
                N_(
                    "{count} alerts to notification target {target} were given up in the "
                    "last 7 days, the newest {age} ago: {error}; the page's list of alerts "
                    "says which"
                ),
                target=target,
                age=human_age(now - (newest_lost.ended_at or now)),
                error=recorded(newest_lost.error or "no reason recorded"),
            )
            level = "amber"
        if waiting:
            said = counted(
                waiting,
                N_("{said} ({count} alert waits to be sent to it again)"),
                N_("{said} ({count} alerts wait to be sent to it again)"),
                said=said,
            )
        items.append(
            StatusItem(
                key=key,
                check="notify",
                level=level,
                reason=said,
                at=record.sent_at,
                age_seconds=age.total_seconds(),
            )
        )
    return items

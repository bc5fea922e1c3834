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
"""

from __future__ import annotations

from datetime import datetime

from respaldo.catalog import Notifications
from respaldo.config import Settings
from respaldo.operations.context import Context
from respaldo.operations.status import StatusItem
from respaldo.operations.status_server import human_age
from respaldo.phrases import N_, Phrase


def notify_items(ctx: Context, settings: Settings, now: datetime) -> list[StatusItem]:
    """One item per configured notification target, as of ``now``: red while the newest
    message sent to it failed. Raises what reading the catalog raises."""
    items = []
    with ctx.catalog.read() as session:
        log = Notifications(session)
        newest = {t.name: log.last_to(t.name) for t in settings.notifications.targets}
    for target, record in newest.items():
        key = f"notify:{target}"
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

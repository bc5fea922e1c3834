"""Notifications: alerts sent through apprise to email, SMS gateways, Slack, Teams,
Telegram or a JSON webhook, configured by URL in ``[notifications]``.

- :mod:`respaldo.apprise_urls` (shared, since the settings check URLs at load): filling
  in secrets, and keeping URLs and secrets out of messages and logs;
- :mod:`respaldo.notify.messages`: what an alert says (full message and SMS line), in
  English or Spanish;
- :mod:`respaldo.notify.send`: delivery, one target at a time, never raising.

Infrastructure, like :mod:`respaldo.storage`: it knows nothing of the catalog or of
operations. When to alert, and the state that throttles repeats, are the application
layer's (:mod:`respaldo.operations.alerts`).
"""

from respaldo.notify.messages import SMS_LIMIT, Alert, Event, Level, Message, render, sms
from respaldo.notify.send import Delivery, deliver, resolve_url, send, targets_for, unusable

__all__ = [
    "SMS_LIMIT",
    "Alert",
    "Delivery",
    "Event",
    "Level",
    "Message",
    "deliver",
    "render",
    "resolve_url",
    "send",
    "sms",
    "targets_for",
    "unusable",
]

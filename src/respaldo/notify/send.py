"""Sending a message to the configured targets through apprise, one target at a time.

:func:`send` never raises: each target's outcome is a :class:`Delivery` (ok, or the
reason it failed, cleaned of URLs and secrets). Each target gets ``timeout_seconds`` to
connect and to answer, so an unreachable server costs an operation seconds, not a hang.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from respaldo.apprise_urls import captured_apprise_log, fill, redact, remember_secret
from respaldo.config import (
    SECRET_PLACEHOLDER,
    NotificationSettings,
    NotificationTarget,
    read_secret_file,
)
from respaldo.errors import NotificationError, RespaldoError
from respaldo.notify.messages import Alert, Level, Message, render

if TYPE_CHECKING:
    import apprise

log = logging.getLogger(__name__)

# apprise's message types by level (its values: imported only when sending, since
# loading apprise costs every command about 0.2 s, and most never send anything).
_TYPES = {
    Level.CRITICAL: "failure",
    Level.WARNING: "warning",
    Level.SUCCESS: "success",
    Level.RESOLVED: "success",
    Level.REPORT: "info",
}


@dataclass(frozen=True)
class Delivery:
    """How sending to one target went; ``error`` never holds its URL or secret."""

    target: str
    ok: bool
    error: str | None = None


def resolve_url(target: NotificationTarget) -> tuple[str, list[str]]:
    """The target's URL with its secret filled in, and the secrets to keep out of every
    message. Raises NotificationError (naming the target and the key, never the value)."""
    if target.url_file is not None:
        url = read_secret_file(target.url_file, f"url_file of notification target {target.name}")
        return url.strip(), [url.strip()]
    if target.url_env is not None:
        url = os.environ.get(target.url_env, "").strip()
        if not url:
            raise NotificationError(
                f"notification target {target.name}: environment variable "
                f"{target.url_env} (url_env) is not set",
                hint=f"export {target.url_env} in the environment of respaldo",
            )
        return url, [url]
    assert target.url is not None  # the settings hold exactly one of the three
    if target.secret_file is not None:
        secret = read_secret_file(
            target.secret_file, f"secret_file of notification target {target.name}"
        )
    elif target.secret_env is not None:
        secret = os.environ.get(target.secret_env, "")
        if not secret:
            raise NotificationError(
                f"notification target {target.name}: environment variable "
                f"{target.secret_env} (secret_env) is not set",
                hint=f"export {target.secret_env} in the environment of respaldo",
            )
    else:
        return target.url, []
    return fill(target.url, SECRET_PLACEHOLDER, secret), [secret]


def short_style(target: NotificationTarget, plugin: apprise.NotifyBase) -> bool:
    """Whether the target gets the one-line SMS text: as configured, else when the
    service's messages are SMS-sized (apprise's SMS gateways allow 160 characters)."""
    if target.style is not None:
        return target.style == "short"
    return 0 < int(plugin.body_maxlen) <= 160


def _plugin(target: NotificationTarget, url: str, lines: list[str]) -> apprise.NotifyBase:
    """apprise's plugin for ``url`` (``lines``: apprise's log, captured by the caller).
    Raises NotificationError when apprise cannot use the URL."""
    import apprise

    plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        raise NotificationError(
            f"notification target {target.name}: apprise cannot use its URL "
            f"({'; '.join(lines) or 'refused'})",
            hint="check the url and its secret; docs/notifications.md shows each service",
        )
    return plugin


def _resolved(target: NotificationTarget) -> tuple[str, list[str]]:
    """``target``'s URL with its secrets in, and those secrets, each remembered so that
    no log line or error shows it. Raises what resolve_url raises."""
    url, secrets = resolve_url(target)
    for secret in secrets:
        remember_secret(secret)
    return url, secrets


def unusable(target: NotificationTarget) -> str | None:
    """Why ``target`` cannot send at all now (its secret cannot be read, apprise refuses
    its URL), found without sending anything; None when it can try. Never raises, and
    the reason never holds the URL or the secret."""
    secrets: list[str] = []
    try:
        url, secrets = _resolved(target)
        with captured_apprise_log() as lines:
            _plugin(target, url, lines)
    except RespaldoError as exc:
        return redact(str(exc), secrets)
    except Exception as exc:  # a bug in a plugin: the target would fail as well
        return redact(f"{type(exc).__name__}: {exc}", secrets)
    return None


def deliver(target: NotificationTarget, message: Message, level: Level, timeout: float) -> Delivery:
    """Send ``message`` to ``target``; never raises."""
    import apprise

    secrets: list[str] = []
    try:
        url, secrets = _resolved(target)
        with captured_apprise_log() as lines:
            plugin = _plugin(target, url, lines)
            # Our bound, whatever the URL says: an alert must not hold up an operation.
            plugin.socket_connect_timeout = min(float(plugin.socket_connect_timeout), timeout)
            plugin.socket_read_timeout = min(float(plugin.socket_read_timeout), timeout)
            short = short_style(target, plugin)
            sender = apprise.Apprise()
            sender.add(plugin)
            # Plain text, said so: each service then gets it in its own format (an email
            # as text with an HTML part whose lines stay lines).
            result = sender.notify(
                body=message.short if short else message.body,
                title="" if short else message.subject,
                notify_type=apprise.NotifyType(_TYPES[level]),
                body_format=apprise.NotifyFormat.TEXT,
            )
        if not result:
            # The service ran in apprise's own thread: its account is in the result.
            told = [e.message for e in result.logs() if e.level in ("WARNING", "ERROR")]
            reason = "; ".join(told + lines) or "the service refused the message"
            raise NotificationError(f"notification target {target.name}: {reason}")
    except RespaldoError as exc:
        text = redact(str(exc), secrets)
        log.warning("notification to %s failed: %s", target.name, text)
        return Delivery(target.name, False, text)
    except Exception as exc:  # a bug in a plugin must not fail the operation either
        text = redact(f"{type(exc).__name__}: {exc}", secrets)
        log.warning("notification to %s failed: %s", target.name, text)
        return Delivery(target.name, False, text)
    return Delivery(target.name, True)


def targets_for(settings: NotificationSettings, level: Level) -> list[NotificationTarget]:
    """The targets that are sent ``level``."""
    return [t for t in settings.targets if level.value in t.levels]


def send(settings: NotificationSettings, alert: Alert) -> list[Delivery]:
    """Send ``alert`` to every target that gets its level; one Delivery each."""
    targets = targets_for(settings, alert.level)
    if not targets:
        return []
    message = render(alert, settings.language)
    return [deliver(t, message, alert.level, settings.timeout_seconds) for t in targets]

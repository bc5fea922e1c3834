"""What an alert says: the subject and body of a full message (email, chat, webhook) and
one line that fits a single SMS, in the configured language.

The frame is translated (labels, titles), and so are the error and the hint where
respaldo worded them (:mod:`respaldo.reasons`, the page's table): what they carry from
PostgreSQL, a tool or the storage stays as written.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from respaldo.i18n import quantities, translations
from respaldo.reasons import reason

SMS_LIMIT = 160


class Level(StrEnum):
    """How bad it is; each target is sent the levels it names."""

    CRITICAL = "critical"
    WARNING = "warning"
    SUCCESS = "success"
    RESOLVED = "resolved"
    REPORT = "report"  # the monthly restore-test report


class Event(StrEnum):
    """Why the message is sent."""

    FAILED = "failed"  # an operation failed (notify_failure)
    DEFERRED = "deferred"  # an operation completed, its part in a repository waits
    COMPLETED = "completed"  # an operation completed (a success notice)
    RAISED = "raised"  # a watched condition started firing
    REPEATED = "repeated"  # ... and still fires, told again after the repeat interval
    RESOLVED = "resolved"  # ... and no longer fires
    NOTICE = "notice"  # a success notice or a report
    TEST = "test"  # respaldo notify test


@dataclass(frozen=True)
class Alert:
    """Everything a message may say. ``kind`` names what failed (``backup``, ``copy``,
    ``drill``...; see :func:`kind_label`); ``summary`` is the condition's own text."""

    level: Level
    event: Event
    kind: str
    host: str
    at: datetime
    summary: str | None = None
    database: str | None = None
    repository: str | None = None
    error: str | None = None
    hint: str | None = None
    job_id: int | None = None
    key: str | None = None
    details: tuple[tuple[str, str], ...] = field(default=())


@dataclass(frozen=True)
class Message:
    subject: str
    body: str
    short: str


def _(message: str) -> str:
    """Marks a message for extraction (``make messages``); translated in :func:`render`."""
    return message


_KINDS: dict[str, str] = {
    "backup": _("backup"),
    "copy": _("offsite copy"),
    "restore": _("restore"),
    "drill": _("restore test"),
    "prune": _("prune"),
    "verify": _("verify"),
    "lock-renewal": _("lock renewal"),
    "wal-push": _("WAL push"),
    "report": _("restore-test report"),
    "test": _("test"),
    "check": _("check"),
    "serve": _("service start"),
}

# Labels of the details operations add (Alert.details), translated in render.
DETAIL_LABELS = (_("Backup"),)

_LEVELS: dict[Level, str] = {
    Level.CRITICAL: _("CRITICAL"),
    Level.WARNING: _("WARNING"),
    Level.SUCCESS: _("SUCCESS"),
    Level.RESOLVED: _("RESOLVED"),
    Level.REPORT: _("REPORT"),
}


def kind_label(kind: str, gettext: Callable[[str], str]) -> str:
    """What ``kind`` is called in the language of ``gettext`` (unknown kinds as given)."""
    return gettext(_KINDS[kind]) if kind in _KINDS else kind


def render(alert: Alert, language: str) -> Message:
    """The message of ``alert`` in ``language`` (``en`` or ``es``)."""
    _ = translations(language).gettext
    show = quantities(language)
    level = _(_LEVELS[alert.level])
    title = _title(alert, _)
    lines = [f"{level}: {title}", ""]
    rows: list[tuple[str, str | None]] = [
        (_("What"), kind_label(alert.kind, _)),
        (_("Database"), alert.database),
        (_("Repository"), alert.repository),
        # A deferred operation completed: its text says why a part of it waits, and
        # "Error:" over it said a failure the title does not.
        (
            _("Reason") if alert.event is Event.DEFERRED else _("Error"),
            reason(alert.error, _, show),
        ),
        (_("What to do"), reason(alert.hint, _, show)),
        (_("Job"), str(alert.job_id) if alert.job_id is not None else None),
        (_("Host"), alert.host),
        (_("Time"), alert.at.strftime("%Y-%m-%d %H:%M:%S %Z")),
    ]
    rows += [(_(name), value) for name, value in alert.details]
    lines += [f"{name}: {value}" for name, value in rows if value]
    subject = f"[respaldo] {level}: {title}"
    short_parts = [f"respaldo {level} {alert.host}: {title}"]
    if alert.error and alert.event is not Event.RESOLVED:
        short_parts.append(reason(alert.error, _, show))
    return Message(subject=subject, body="\n".join(lines) + "\n", short=sms(": ".join(short_parts)))


def _title(alert: Alert, _: Callable[[str], str]) -> str:
    kind = kind_label(alert.kind, _)
    if alert.event is Event.FAILED:
        if alert.database:
            return _("{kind} of {database} failed").format(kind=kind, database=alert.database)
        return _("{kind} failed").format(kind=kind)
    if alert.event is Event.DEFERRED:
        # The prune completed: "prune failed" under CRITICAL said the opposite.
        return _("{kind} of repository {repository} deferred").format(
            kind=kind, repository=alert.repository or ""
        )
    if alert.event is Event.COMPLETED:
        if alert.database:
            return _("{kind} of {database} completed").format(kind=kind, database=alert.database)
        return _("{kind} completed").format(kind=kind)
    if alert.event is Event.TEST:
        return _("test message from respaldo on {host}").format(host=alert.host)
    summary = alert.summary or kind
    if alert.event is Event.REPEATED:
        return _("still: {summary}").format(summary=summary)
    if alert.event is Event.RESOLVED:
        return _("resolved: {summary}").format(summary=summary)
    return summary


# GSM 03.38's basic character set: a text only of these fits 160 characters in one SMS;
# one character outside it makes the whole message UCS-2, 70 characters a part.
_GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)


def sms(text: str, limit: int = SMS_LIMIT) -> str:
    """``text`` as one SMS: on one line, only GSM 03.38 characters (others lose their
    accent, or become ``?``), at most ``limit`` characters (cut with ``...``)."""
    out = []
    for char in " ".join(text.split()):
        if char not in _GSM7:
            base = unicodedata.normalize("NFKD", char)[0]
            char = base if base in _GSM7 else "?"
        out.append(char)
    flat = "".join(out)
    return flat if len(flat) <= limit else flat[: limit - 3].rstrip() + "..."

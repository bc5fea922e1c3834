"""Apprise URLs: checking them at config load, filling in secrets, and keeping secrets
out of every message and log line. Shared (beside :mod:`respaldo.config`, which checks
the URLs when it loads them) rather than part of :mod:`respaldo.notify`, so that every
layer that reads settings may import it.

Apprise's own log lines show URLs in a "privacy" form that still keeps the first and
last character of a password (``s...t``), so respaldo removes every URL from them, and
every secret it filled in, before they reach a log or an error message.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from urllib.parse import quote, urlsplit

from respaldo.redaction import replace_secret

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
_DUMMY = "respaldo-placeholder-secret"


@lru_cache(maxsize=1)
def _schemes() -> frozenset[str]:
    # apprise is imported only here and when sending: loading it (and its plugin list)
    # costs about half a second, which wal-push, run once per WAL file, must not pay.
    from apprise.manager_plugins import NotificationManager

    manager = NotificationManager()  # type: ignore[no-untyped-call]
    return frozenset(s.lower() for s in manager.schemas())  # type: ignore[no-untyped-call]


def scheme_of(url: str) -> str | None:
    """The scheme of ``url`` (``mailtos``), or None when it has none."""
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme) else None


def url_problem(url: str, *, placeholder: str | None, deep: bool = True) -> str | None:
    """Why apprise cannot use ``url``, in words that never repeat the URL; None if it can.

    With ``placeholder`` (the URL holds ``{secret}``, filled in only when sending) only
    the scheme and the absence of a literal password are checked here: the real secret
    decides the rest (a token apprise checks by its form), when sending. Without
    ``deep``, only the form (a scheme, no literal password) is checked, without apprise.
    """
    scheme = scheme_of(url)
    if scheme is None:
        return "not a URL (scheme://...); docs/notifications.md shows one per service"
    if deep and scheme not in _schemes():
        return f"scheme {scheme!r} is not a notification service apprise knows"
    try:
        password = urlsplit(url.replace(placeholder or "\0", _DUMMY)).password
    except ValueError:
        return "not a valid URL"
    if password is not None and password != _DUMMY:
        return (
            "holds a password; write {secret} in its place and name secret_file or "
            "secret_env (secrets never go in the config file)"
        )
    if placeholder is not None or not deep:
        return None
    import apprise

    with captured_apprise_log() as lines:
        plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        reasons = "; ".join(redact(line, ()) for line in lines) or "apprise refused it"
        return f"apprise cannot use it ({reasons})"
    return None


def fill(url: str, placeholder: str, secret: str) -> str:
    """``url`` with ``placeholder`` replaced by ``secret``, URL-quoted (a password with
    ``@`` or ``/`` in it stays one field)."""
    return url.replace(placeholder, quote(secret, safe=""))


def redact(text: str, secrets: tuple[str, ...] | list[str]) -> str:
    """``text`` without any URL and without any of ``secrets`` (raw or URL-quoted)."""
    text = _URL.sub("<url>", text)
    for secret in secrets:
        # A short one only where it stands alone (respaldo.redaction).
        text = replace_secret(replace_secret(text, secret, "***"), quote(secret, safe=""), "***")
    return text


# Every secret filled into a URL in this process: apprise's log lines are cleaned of
# them too, wherever apprise put them (a token quoted in a complaint about its form).
_known_secrets: set[str] = set()


def remember_secret(secret: str) -> None:
    """Have every later apprise log line cleaned of ``secret``."""
    _known_secrets.add(secret)


class _Redacting(logging.Filter):
    """Rewrites apprise's log records without URLs or secrets before any handler sees
    them (installed once on the ``apprise`` logger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage(), tuple(_known_secrets))
        record.args = ()
        return True


_capture = threading.local()


class _Capture(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        lines = getattr(_capture, "lines", None)
        if lines is not None and record.levelno >= logging.WARNING:
            lines.append(record.getMessage())


_installed = False
_install_lock = threading.Lock()


def install_log_filter() -> None:
    """Make every apprise log line free of URLs and secrets (idempotent)."""
    global _installed
    with _install_lock:
        if not _installed:
            logger = logging.getLogger("apprise")
            logger.addFilter(_Redacting())
            logger.addHandler(_Capture())
            _installed = True


@contextmanager
def captured_apprise_log() -> Iterator[list[str]]:
    """The warnings and errors apprise logs in this thread while the block runs
    (already redacted): its only account of why a URL or a delivery failed."""
    install_log_filter()
    lines: list[str] = []
    previous = getattr(_capture, "lines", None)
    _capture.lines = lines
    logger = logging.getLogger("apprise")
    level = logger.level
    if logger.getEffectiveLevel() > logging.WARNING:
        logger.setLevel(logging.WARNING)
    try:
        yield lines
    finally:
        _capture.lines = previous
        logger.setLevel(level)

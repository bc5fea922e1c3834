"""Removing the server's secrets, and the paths of the files holding them, from text
that leaves the server (an API answer, a web page, a job's failure message stored in
the catalog, an alert) or goes to its log.

One scrubber for every interface: the API's error handler (:mod:`respaldo.api.problems`),
the web pages, ``/health`` (:mod:`respaldo.operations.health`), the failure message of a
job (:mod:`respaldo.operations.jobs`) and of a backup record, the audit log's detail, the
alerts (:mod:`respaldo.operations.alerts`), and the log of ``respaldo serve`` and
``respaldo worker`` (:func:`scrub_logs`).

The secrets are the values the process holds or may load: those given in the settings
(``passphrase``, ``databases.password``, ``repositories.secret_access_key``, the catalog
URL's password) and the contents of the files and environment variables that hold the
others (``passphrase_file``, ``password_file``, ``secret_access_key_file``,
``[server] jwt_secret_file``, a notification target's ``secret_file`` / ``url_file`` /
``secret_env`` / ``url_env``; ``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN``, which
boto3 reads when a repository names no key; ``PGPASSWORD`` when a database has no
password of its own). A driver's or a server's error may echo any of them (PostgreSQL
quotes a value it could not parse, an HTTP library the URL it failed on), so a secret
is removed as written and URL-quoted.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from respaldo.config import Settings
from respaldo.redaction import secret_pattern

REDACTED_PATH = "<secret file>"
REDACTED = "<secret>"

# Secrets boto3 reads from the environment itself.
_SECRET_ENVIRONMENT = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


class Scrubber:
    """Removes the server's secrets (see the module's docstring) and the paths of the
    files holding them. A file or variable that cannot be read is skipped (then the
    process cannot have loaded it either).

    The service makes some once and keeps them (the API's error handler, the web pages,
    the log's filter), while a secret file may be rotated under it: every call looks at
    the secret files (one ``stat`` each, no read) and reads again only those that changed
    (another file renamed over it, or a new size or modification time), so that the new
    value is scrubbed from then on. A value once read stays scrubbed: a process or a
    connection may still use the old one. Thread-safe.

    Only regular files are read, and never waited on: a secret file that is a named pipe
    (a ``url_file`` nobody writes) or a device blocked the first read for ever, and with
    it ``/health``, every API error answer and every log line, which all scrub through
    here. Such a file is skipped as one that cannot be read (its sender reads it itself,
    and keeps its value out of what it says; the stall monitor tells a sender that
    hangs on it); read here, a pipe's value would also be taken from its sender."""

    def __init__(self, settings: Settings) -> None:
        paths = _secret_files(settings)
        values: list[str] = []
        secrets = [settings.passphrase] + [d.password for d in settings.databases]
        secrets += [r.secret_access_key for r in settings.repositories]
        values += [s.get_secret_value() for s in secrets if s is not None]
        names = [t.secret_env for t in settings.notifications.targets if t.secret_env]
        names += [t.url_env for t in settings.notifications.targets if t.url_env]
        # PGPASSWORD is used only by a database given no password of its own (respaldo
        # takes a stray one out of its programs' environment otherwise): scrubbed then.
        if any(d.password is None and d.password_file is None for d in settings.databases):
            names.append("PGPASSWORD")
        values += [os.environ.get(n, "") for n in [*names, *_SECRET_ENVIRONMENT]]
        values += _url_password(settings.catalog.url)
        self._values = set(_with_url_secrets(values))
        self._files: dict[Path, _Stamp | None] = dict.fromkeys(paths)
        self._unreadable: dict[Path, tuple[_Stamp, float]] = {}
        self._lock = threading.Lock()
        self._paths = _longest_first(str(p) for p in paths)
        self._secrets: list[tuple[str, re.Pattern[str] | None]] = []
        self._refresh(first=True)

    def __call__(self, text: str) -> str:
        self._refresh()
        for secret, alone in self._secrets:
            text = text.replace(secret, REDACTED) if alone is None else alone.sub(REDACTED, text)
        for path in self._paths:
            text = text.replace(path, REDACTED_PATH)
        return text

    def _refresh(self, *, first: bool = False) -> None:
        """Read the secret files that changed since they were last read (all, the first
        time)."""
        with self._lock:
            now = _clock()
            read = [
                (path, stamp)
                for path, known in self._files.items()
                if (stamp := _stamp(path)) is not None
                and stamp != known
                and not self._wait_to_retry(path, stamp, now)
            ]
            if not read and not first:
                return
            for path, stamp in read:
                text = _read(path)
                if text is None:
                    # Not counted as read: a file moved into place before its owner or
                    # mode let respaldo read it is tried again (at most once a second, so
                    # that one it can never read costs no open per log line).
                    self._unreadable[path] = (stamp, now)
                    continue
                self._unreadable.pop(path, None)
                self._files[path] = stamp
                self._values.update(_with_url_secrets([text]))
            # Replaced whole, never changed in place: a call without the lock reading
            # the old list still scrubs everything it held.
            # A short secret only where it stands alone (respaldo.redaction): "1234"
            # must not be cut out of every id and number.
            forms = _longest_first(_forms(self._values))
            self._secrets = [(form, secret_pattern(form)) for form in forms]

    def _wait_to_retry(self, path: Path, stamp: _Stamp, now: float) -> bool:
        """Whether ``path``'s last read failed, less than a second ago, with the file as
        it is now."""
        failed = self._unreadable.get(path)
        return failed is not None and failed[0] == stamp and now - failed[1] < _RETRY_UNREADABLE


_Stamp = tuple[int, int, int, int, int]
_RETRY_UNREADABLE = 1.0
_clock = time.monotonic
"""Seconds before a secret file that could not be read, and has not changed, is tried
again."""


def _stamp(path: Path) -> _Stamp | None:
    """What tells that a file changed without reading it: its inode and device (a new
    file renamed over it), size and modification time (rewritten in place), and the
    inode's change time (its owner or mode changed)."""
    try:
        st = path.stat()
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None  # a pipe, a device, a directory: never read (see Scrubber)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _with_url_secrets(values: list[str]) -> list[str]:
    # A whole notification URL is a secret (url_file, url_env); so is its password.
    return values + [p for v in values if "://" in v for p in _url_secrets(v)]


def _secret_files(settings: Settings) -> list[Path]:
    paths: list[Path | None] = [settings.passphrase_file, settings.server.jwt_secret_file]
    paths += [settings.server.tls_key]
    paths += [d.password_file for d in settings.databases]
    paths += [r.secret_access_key_file for r in settings.repositories]
    for target in settings.notifications.targets:
        paths += [target.secret_file, target.url_file]
    return [p for p in paths if p is not None]


def _read(path: Path) -> str | None:
    """The secret in ``path`` as read_secret_file reads it (the trailing newline is not
    part of the secret), if it is a regular file. Opened without waiting: a pipe put in
    its place since the ``stat`` would block the open itself."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                return None
            return file.read().decode("utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError):
        return None


def _forms(values: Iterable[str]) -> list[str]:
    """Each secret as written, stripped, and URL-quoted (as it is filled into a URL)."""
    forms: list[str] = []
    for value in values:
        for form in (value, value.strip()):
            if form:
                forms += [form, quote(form, safe="")]
    return forms


def _url_secrets(url: str) -> list[str]:
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return []
    password = parts.password
    return [password, unquote(password)] if password else []


def _url_password(url: str) -> list[str]:
    # The catalog's URL may carry its password (RESPALDO_CATALOG__URL); a driver's error
    # may echo it, raw or percent-encoded as it was written.
    try:
        password = make_url(url).password
    except ArgumentError:
        return []
    if not password:
        return []
    raw = str(password)
    encoded = url.partition("://")[2].rpartition("@")[0].partition(":")[2]
    return [raw, encoded]


def _longest_first(items: Iterable[str]) -> list[str]:
    return sorted({i for i in items if i}, key=len, reverse=True)


class _ScrubbingFilter(logging.Filter):
    """Scrubs a record's message and traceback before any handler formats it."""

    def __init__(self, scrub: Scrubber) -> None:
        super().__init__()
        self.scrub = scrub

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: its own text is what the handler shows
            message = str(record.msg)
        record.msg, record.args = self.scrub(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info)
        return True


def scrub_logs(settings: Settings, logger: logging.Logger | None = None) -> None:
    """Scrub every record that reaches the handlers of ``logger`` (default: the root
    logger, where respaldo's and the libraries' records end) of ``settings``' secrets:
    its message, its traceback. Called again, it replaces the scrubber it installed."""
    target = logger if logger is not None else logging.getLogger()
    scrubbing = _ScrubbingFilter(Scrubber(settings))
    for handler in target.handlers:
        for old in [f for f in handler.filters if isinstance(f, _ScrubbingFilter)]:
            handler.removeFilter(old)
        handler.addFilter(scrubbing)

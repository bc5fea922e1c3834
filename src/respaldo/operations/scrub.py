"""Removing the server's secrets, and the paths of the files holding them, from text
that leaves the server (an API answer, a web page) or goes to its log.

One scrubber for every interface: the API's error handler (:mod:`respaldo.api.problems`),
the web pages, and ``/health`` (:mod:`respaldo.operations.health`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from respaldo.config import Settings

REDACTED_PATH = "<secret file>"
REDACTED = "<secret>"


class Scrubber:
    """Removes the server's secrets (the repositories' passphrase, the databases' and the
    catalog's passwords, S3 secret keys) and the paths of the files holding them."""

    def __init__(self, settings: Settings) -> None:
        paths: list[Path] = [p for p in [settings.passphrase_file] if p is not None]
        paths += [d.password_file for d in settings.databases if d.password_file is not None]
        paths += [
            r.secret_access_key_file
            for r in settings.repositories
            if r.secret_access_key_file is not None
        ]
        secrets = [settings.passphrase] + [d.password for d in settings.databases]
        secrets += [r.secret_access_key for r in settings.repositories]
        values = [s.get_secret_value() for s in secrets if s is not None]
        self._paths = _longest_first(str(p) for p in paths)
        self._secrets = _longest_first([*values, *_url_password(settings.catalog.url)])

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        for path in self._paths:
            text = text.replace(path, REDACTED_PATH)
        return text


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

"""Storage locations are URLs; the scheme picks the backend.

``file:///var/backups/respaldo``, ``memory://name`` and ``s3://bucket/prefix`` (with the
S3 options of the repository's settings). Unknown schemes are a clear configuration error.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from respaldo.errors import ConfigError
from respaldo.storage.base import Storage
from respaldo.storage.local import LocalStorage
from respaldo.storage.memory import MemoryStorage
from respaldo.storage.retry import RetryingStorage

_memory_stores: dict[str, MemoryStorage] = {}


def _open_file(url: str, options: dict[str, Any]) -> Storage:
    parsed = urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise ConfigError(f"file URLs must be local paths: {url}", hint="use file:///abs/path")
    if not parsed.path.startswith("/"):
        raise ConfigError(f"file URL needs an absolute path: {url}", hint="use file:///abs/path")
    # URLs percent-encode: "/srv/my backups" arrives as "/srv/my%20backups".
    return LocalStorage(Path(unquote(parsed.path)))


def _open_memory(url: str, options: dict[str, Any]) -> Storage:
    # Same name, same store, so that tests can open a "repository" twice in one process.
    name = urlparse(url).netloc or "default"
    return _memory_stores.setdefault(name, MemoryStorage(name))


def _open_s3(url: str, options: dict[str, Any]) -> Storage:
    # Imported here: boto3 takes a noticeable part of a second to import, and most
    # commands (and every test of the other backends) never need it.
    from respaldo.storage.s3 import S3Storage

    return S3Storage.from_url(url, options)


_SCHEMES: dict[str, Callable[[str, dict[str, Any]], Storage]] = {
    "file": _open_file,
    "memory": _open_memory,
    "s3": _open_s3,
}


def local_path(url: str) -> Path | None:
    """The directory of a local store's URL (``file:///x`` or ``/x``); None for others.

    Raises ConfigError for a malformed file URL, as opening it would.
    """
    if "://" not in url and url.startswith("/"):
        return Path(url)
    if urlparse(url).scheme != "file":
        return None
    store = _open_file(url, {})
    assert isinstance(store, LocalStorage)
    return store.root


def register_scheme(scheme: str, opener: Callable[[str, dict[str, Any]], Storage]) -> None:
    """Add a backend for a URL scheme (or replace one, e.g. in tests)."""
    _SCHEMES[scheme] = opener


def open_storage(url: str, *, retries: int = 4, **options: Any) -> Storage:
    """Open the store a URL names, wrapped in retries for transient errors.

    Raises ConfigError for an unknown scheme or a malformed URL.
    """
    if "://" not in url and url.startswith("/"):
        url = Path(url).as_uri()
    scheme = urlparse(url).scheme
    if not scheme:
        raise ConfigError(
            f"storage location {url!r} is neither a URL nor an absolute path",
            hint="use file:///abs/path, /abs/path or another URL such as memory://name",
        )
    opener = _SCHEMES.get(scheme)
    if opener is None:
        known = ", ".join(sorted(_SCHEMES))
        raise ConfigError(f"unknown storage scheme {scheme!r} in {url}", hint=f"use one of {known}")
    store = opener(url, options)
    return RetryingStorage(store, attempts=retries) if retries > 0 else store

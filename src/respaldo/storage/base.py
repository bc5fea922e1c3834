"""The storage interface that every backend implements, and name validation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from respaldo.errors import InvalidObjectName

# Deliberately narrow: these names end up as file paths and S3 keys, and nothing the
# repository writes needs more. Rejecting early beats escaping late.
# Matched with fullmatch: a "$" anchor would also accept a trailing newline ("abc\n").
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,199}")


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What ``stat`` and ``list`` return: an object's name and size in bytes."""

    name: str
    size: int


def validate_name(name: str) -> str:
    """Return ``name`` unchanged if it is a valid object name, else raise InvalidObjectName.

    A valid name is relative, uses ``/`` between segments, and every segment starts with a
    letter, digit or ``_`` and holds only letters, digits, ``.``, ``_`` and ``-`` (so no
    ``..``, no hidden files, no empty segments, no absolute paths, no backslashes).
    """
    if not isinstance(name, str) or not name:
        raise InvalidObjectName("empty object name", name=str(name))
    if len(name) > 1024:
        raise InvalidObjectName("object name longer than 1024 characters", name=name[:64])
    for segment in name.split("/"):
        if not _SEGMENT.fullmatch(segment):
            raise InvalidObjectName(
                f"invalid object name {name!r}",
                name=name,
                hint="names are relative paths of letters, digits, '.', '_' and '-'",
            )
    return name


def validate_prefix(prefix: str) -> str:
    """Validate a ``list`` prefix: empty, or a valid name optionally ending in ``/``."""
    if prefix == "":
        return prefix
    validate_name(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


@runtime_checkable
class Storage(Protocol):
    """A flat object store.

    Every method validates names and may raise ``InvalidObjectName``; otherwise
    ``ObjectNotFound``, ``TransientStorageError`` or ``PermanentStorageError``.
    All methods are safe to call from several threads at once.
    """

    @property
    def location(self) -> str:
        """A human-readable location (a URL without credentials), for messages."""
        ...

    def put(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name``, atomically; replaces an existing object.

        Idempotent: putting the same bytes twice leaves one object with those bytes. Once
        ``put`` returns, the object is durable (fsynced, or acknowledged by the server).
        """
        ...

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        """Return the object's bytes, or ``length`` bytes from ``offset``.

        A range that runs past the end returns the bytes that exist (possibly none); a
        negative offset or length is a ``ValueError``. Raises ``ObjectNotFound``.
        """
        ...

    def stat(self, name: str) -> ObjectInfo:
        """Return name and size of an object. Raises ``ObjectNotFound``."""
        ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Return every object whose name starts with ``prefix``, in lexicographic order.

        A bad prefix raises ``InvalidObjectName`` at the call, not at the first ``next()``.
        """
        ...

    def delete(self, name: str) -> None:
        """Delete an object. Raises ``ObjectNotFound`` if there is none."""
        ...

    def close(self) -> None:
        """Release connections and files. Calling it twice is harmless."""
        ...


def check_range(offset: int, length: int | None) -> None:
    """Reject negative offsets and lengths, shared by every backend's ``get``."""
    if offset < 0:
        raise ValueError(f"negative offset {offset}")
    if length is not None and length < 0:
        raise ValueError(f"negative length {length}")

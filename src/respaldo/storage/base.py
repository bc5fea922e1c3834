"""The storage interface that every backend implements, and name validation."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from respaldo.errors import InvalidObjectName, StorageError

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


class Spool(Protocol):
    """An object written piece by piece and named when it is complete (a pack is named
    after the hash of its bytes): what ``put`` does, without the whole object in memory.

    Used by one thread at a time. Nothing is visible under any name before :meth:`commit`
    returns; then the object is there whole, with every guarantee of ``put`` (atomic,
    durable, replacing an object of that name, the store's settings such as S3 Object
    Lock applied). A spool that is never committed leaves nothing behind once discarded,
    and nothing visible if its process is killed (a local store's temporary file is
    removed by garbage collection, ``remove_stale_temporaries``).
    """

    @property
    def size(self) -> int:
        """Bytes written so far."""
        ...

    def write(self, pieces: Sequence[bytes]) -> None:
        """Append ``pieces``, in order."""
        ...

    def commit(self, name: str) -> None:
        """Store what was written as object ``name``. If this raises
        ``TransientStorageError`` the spool still holds its bytes and ``commit`` may be
        called again (how :class:`~respaldo.storage.retry.RetryingStorage` retries it);
        after any other error its bytes may be gone, and only :meth:`discard` is left."""
        ...

    def discard(self) -> None:
        """Drop what was written (nothing is named); never raises; harmless twice."""
        ...


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

    def sync(self, name: str) -> None:
        """Make an object found there as durable as ``put`` makes one: an earlier ``put``
        killed after naming it but before its last sync leaves it readable and not yet
        safe from a power cut, and an idempotent writer that finds it (a WAL file archived
        again) must not call it stored until it is. Raises ``ObjectNotFound``."""
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

    def open_spool(self, directory: str) -> Spool:
        """A new :class:`Spool`, for an object to be named below ``directory`` (a prefix
        such as ``packs/``, which a local store writes its temporary file in)."""
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


class BufferedSpool:
    """A :class:`Spool` that keeps the pieces in memory and commits them with one
    ``storage.put``: for stores that hold objects in memory anyway (the memory store) and
    for wrappers that must see every ``put`` (tests' fault injectors)."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._pieces: list[bytes] | None = []
        self.size = 0

    def write(self, pieces: Sequence[bytes]) -> None:
        held = self._held()
        for piece in pieces:
            held.append(bytes(piece))
            self.size += len(piece)

    def commit(self, name: str) -> None:
        # A failed put leaves the pieces for another try (the contract's retry).
        self._storage.put(name, b"".join(self._held()))
        self._pieces = None

    def discard(self) -> None:
        self._pieces = None

    def _held(self) -> list[bytes]:
        if self._pieces is None:
            raise StorageError("a spool was committed or discarded already")
        return self._pieces


_IOV_MAX = os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 16


def write_all(fd: int, pieces: Sequence[bytes]) -> int:
    """Write ``pieces`` to ``fd`` in order (one ``writev`` per ``IOV_MAX`` of them, short
    writes resumed); return the bytes written. Raises the ``OSError`` of a failed write."""
    views = [memoryview(p) for p in pieces if p]
    total = start = 0
    while start < len(views):
        written = os.writev(fd, views[start : start + _IOV_MAX])
        total += written
        while start < len(views) and written >= len(views[start]):
            written -= len(views[start])
            start += 1
        if written:
            views[start] = views[start][written:]
    return total

"""An in-process store, for unit tests and for staging small things in memory."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from respaldo.errors import ObjectNotFound
from respaldo.storage.base import (
    BufferedSpool,
    ObjectInfo,
    Spool,
    check_range,
    validate_name,
    validate_prefix,
)


class MemoryStorage:
    """Objects in a dict guarded by a lock. Contents vanish with the process."""

    def __init__(self, name: str = "memory") -> None:
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._name = name

    @property
    def location(self) -> str:
        return f"memory://{self._name}"

    def put(self, name: str, data: bytes) -> None:
        validate_name(name)
        with self._lock:
            self._objects[name] = bytes(data)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        validate_name(name)
        check_range(offset, length)
        with self._lock:
            data = self._objects.get(name)
        if data is None:
            raise ObjectNotFound(f"no object {name} in {self.location}", name=name)
        end = len(data) if length is None else offset + length
        return data[offset:end]

    def sync(self, name: str) -> None:
        self.stat(name)  # nothing to make durable: only whether it is there

    def stat(self, name: str) -> ObjectInfo:
        validate_name(name)
        with self._lock:
            data = self._objects.get(name)
        if data is None:
            raise ObjectNotFound(f"no object {name} in {self.location}", name=name)
        return ObjectInfo(name, len(data))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # Eager, like the other backends: a bad prefix raises here, and the listing is a
        # snapshot taken at the call, not at the first next().
        validate_prefix(prefix)
        with self._lock:
            items = sorted((k, len(v)) for k, v in self._objects.items() if k.startswith(prefix))
        return iter([ObjectInfo(name, size) for name, size in items])

    def delete(self, name: str) -> None:
        validate_name(name)
        with self._lock:
            if self._objects.pop(name, None) is None:
                raise ObjectNotFound(f"no object {name} in {self.location}", name=name)

    def open_spool(self, directory: str) -> Spool:
        # The pieces in memory, one put at the end: the objects live in memory anyway.
        validate_prefix(directory)
        return BufferedSpool(self)

    def close(self) -> None:
        pass

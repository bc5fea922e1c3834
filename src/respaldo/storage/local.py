"""A directory on a local (or mounted) file system as an object store.

Durability matters more than speed here: a backup that the machine's crash turns into a
zero-length file is worse than none. So ``put`` writes to a temporary name in the target
directory, fsyncs the file, renames it over the final name (atomic on POSIX), then fsyncs
the directory so that the rename itself survives a power cut.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from respaldo.errors import ObjectNotFound, PermanentStorageError, TransientStorageError
from respaldo.storage.base import ObjectInfo, check_range, validate_name, validate_prefix

# Temporary files start with a dot: validate_name never accepts such a segment, so they can
# never be mistaken for (or listed as) objects, and a crash leaves only ignorable litter.
_TMP_PREFIX = ".tmp-"

# Disk full and read-only file systems will not heal by retrying; anything else (EIO on a
# flaky NFS mount, EAGAIN) might.
_PERMANENT_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}


def _translate(exc: OSError, name: str, action: str) -> Exception:
    if isinstance(exc, FileNotFoundError):
        return ObjectNotFound(f"no object {name}", name=name)
    message = f"cannot {action} {name}: {exc.strerror or exc}"
    if exc.errno in _PERMANENT_ERRNOS:
        return PermanentStorageError(message, name=name)
    return TransientStorageError(message, name=name)


class LocalStorage:
    """Objects as files below ``root``; the name's ``/`` become directories."""

    def __init__(self, root: str | Path) -> None:
        self._root = Path(root).absolute()

    @property
    def location(self) -> str:
        return self._root.as_uri()

    @property
    def root(self) -> Path:
        return self._root

    def _path(self, name: str) -> Path:
        return self._root.joinpath(*validate_name(name).split("/"))

    def put(self, name: str, data: bytes) -> None:
        path = self._path(name)
        tmp = path.with_name(f"{_TMP_PREFIX}{path.name}.{secrets.token_hex(6)}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise _translate(exc, name, "write") from exc

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        check_range(offset, length)
        path = self._path(name)
        try:
            with path.open("rb") as handle:
                if offset:
                    handle.seek(offset)
                return handle.read() if length is None else handle.read(length)
        except IsADirectoryError as exc:
            raise ObjectNotFound(f"no object {name}", name=name) from exc
        except OSError as exc:
            raise _translate(exc, name, "read") from exc

    def stat(self, name: str) -> ObjectInfo:
        path = self._path(name)
        try:
            st = path.stat()
        except OSError as exc:
            raise _translate(exc, name, "stat") from exc
        if not path.is_file():
            raise ObjectNotFound(f"no object {name}", name=name)
        return ObjectInfo(name, st.st_size)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        # Walk only the directory the prefix pins down, not the whole store: listing
        # "packs/ab/" must not read every other pack directory.
        directory, _, _ = prefix.rpartition("/")
        start = self._root.joinpath(*directory.split("/")) if directory else self._root
        found: list[ObjectInfo] = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel_dir = os.path.relpath(dirpath, self._root)
            for filename in filenames:
                if filename.startswith("."):
                    continue
                name = filename if rel_dir == "." else f"{rel_dir}/{filename}".replace(os.sep, "/")
                if name.startswith(prefix):
                    try:
                        size = os.stat(os.path.join(dirpath, filename)).st_size
                    except FileNotFoundError:
                        continue  # deleted while we walked
                    found.append(ObjectInfo(name, size))
        found.sort(key=lambda info: info.name)
        yield from found

    def delete(self, name: str) -> None:
        path = self._path(name)
        try:
            path.unlink()
        except OSError as exc:
            raise _translate(exc, name, "delete") from exc
        _fsync_dir(path.parent)

    def close(self) -> None:
        pass


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

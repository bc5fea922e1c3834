"""A directory on a local (or mounted) file system as an object store.

Durability matters more than speed here: a backup that the machine's crash turns into a
zero-length file is worse than none. So ``put`` writes to a temporary name in the target
directory, fsyncs the file, renames it over the final name (atomic on POSIX), then fsyncs
the directory so that the rename itself survives a power cut. Directories that ``put``
creates are fsynced into their parents for the same reason.

Ownership: a local repository belongs to the OS user that owns its root directory. The
server's ``archive_command`` writes to it as ``postgres``, an administrator may run a
backup as root, the service as its own user: when respaldo runs as root, every file and
directory it creates is handed to the root directory's owner (``fchown`` before the
rename, so no other process ever sees it owned by root). Otherwise a directory that root
made first (``clusters/``, ``wal/<system id>/``) would lock the server out of it, and
only the server's log would say so.

Unlike S3 or the memory store, a file system cannot hold both an object ``a`` and an object
``a/b``: a ``put`` that would need one where the other stands is a permanent error, and a
read through a file as if it were a directory finds no object.

A store that holds a structure made once (a repository, its ``config`` at the root) is
told so (:func:`keep_structure`): from then on it makes no directory, and writes no other
object at its root, unless that object is there. A disk unmounted under a long-lived process
leaves its mount point, an empty directory, at the root's path: a lock taken there made
``locks/`` in it, on the disk that holds the mount point, and the repository was found
there, half made, instead of missing.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import hashlib
import logging
import os
import re
import secrets
import socket
import stat
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from respaldo.errors import (
    ObjectNotFound,
    PermanentStorageError,
    StorageError,
    TransientStorageError,
    WriteRefused,
)
from respaldo.privatedir import owner_alive, this_process
from respaldo.storage.base import (
    ObjectInfo,
    check_range,
    validate_name,
    validate_prefix,
    write_all,
)

log = logging.getLogger(__name__)

# Temporary files start with a dot: validate_name never accepts such a segment, so they can
# never be mistaken for (or listed as) objects. They are named after the writing process,
# ``.tmp-<pid>-<start time>-<host id>-<random>``, so that the litter of a killed one can be
# told from the file of a live writer (remove_stale_temporaries).
_TMP_PREFIX = ".tmp-"
_TMP_NAME = re.compile(r"^\.tmp-(\d+)-(\d+)-([0-9a-f]{8})-[0-9a-f]+$")


def _host_id() -> str:
    return hashlib.blake2b(socket.gethostname().encode(), digest_size=4).hexdigest()


def _tmp_name() -> str:
    pid, start = this_process()
    return f"{_TMP_PREFIX}{pid}-{start}-{_host_id()}-{secrets.token_hex(6)}"


def _abandoned(filename: str, mtime: float, deadline: float) -> bool:
    """Whether a temporary file is no live writer's: its process (on this machine) is
    gone, or it has not been written to since ``deadline``."""
    if mtime < deadline:
        return True
    match = _TMP_NAME.match(filename)
    if match is None or match.group(3) != _host_id():
        return False
    return not owner_alive(int(match.group(1)), int(match.group(2)))


# Disk full, read-only file systems, permissions and a file standing where a directory must
# be (or the reverse) will not heal by retrying; anything else (EIO on a flaky NFS mount,
# EAGAIN) might.
_PERMANENT_ERRNOS = {
    errno.ENOSPC,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.EDQUOT,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EEXIST,
    errno.ENAMETOOLONG,
}

# A store that refuses every write (read-only mount or medium, no permission): readers
# may go on without writing anything (see respaldo.repository.locks.reading_lease).
_REFUSED_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM}

# When reading, a missing file, a file where a directory was expected ("a/b" when "a" is an
# object) and a directory where the file was expected ("a" when only "a/b" exists) all mean
# the same thing: there is no such object.
_NOT_FOUND_ERRNOS = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR}

# Every object is written to a temporary file and renamed: a full disk leaves no object
# half-written, and the temporary file is removed on the way out.
_FULL_HINT = (
    "the file system holding the repository is full: free space (respaldo prune, or a "
    "bigger disk), then run the command again; nothing stored before was damaged"
)

_LAYOUT_HINT = (
    "a local store cannot hold both an object 'x' and objects below 'x/'; "
    "move the file or directory that is in the way"
)


def _translate(exc: OSError, name: str, action: str, *, reading: bool) -> StorageError:
    if reading and exc.errno in _NOT_FOUND_ERRNOS:
        return ObjectNotFound(f"no object {name}", name=name)
    where = f" ({exc.filename})" if exc.filename else ""
    message = f"cannot {action} {name}: {exc.strerror or exc}{where}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return PermanentStorageError(message, name=name, hint=_FULL_HINT)
    if exc.errno in _PERMANENT_ERRNOS:
        return PermanentStorageError(message, name=name)
    return TransientStorageError(message, name=name)


def _write_error(exc: OSError, name: str, path: Path) -> StorageError:
    """Translate a failed ``put``, naming the file or directory in the way if there is one.

    The kernel only says "File exists" or "Is a directory", about a path the user never
    chose (the temporary file); say which existing path blocks the object instead.
    """
    if exc.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        if path.is_dir():
            return PermanentStorageError(
                f"cannot write {name}: {path} is a directory", name=name, hint=_LAYOUT_HINT
            )
        for ancestor in reversed(path.parents):
            if ancestor.exists() and not ancestor.is_dir():
                return PermanentStorageError(
                    f"cannot write {name}: {ancestor} is a file, not a directory",
                    name=name,
                    hint=_LAYOUT_HINT,
                )
    if isinstance(exc, FileNotFoundError):
        # Not "no such object": a directory vanished under us (a concurrent cleanup).
        return TransientStorageError(f"cannot write {name}: {exc}", name=name)
    if exc.errno in _REFUSED_ERRNOS:
        where = f" ({exc.filename})" if exc.filename else ""
        return WriteRefused(f"cannot write {name}: {exc.strerror or exc}{where}", name=name)
    return _translate(exc, name, "write", reading=False)


class LocalStorage:
    """Objects as files below ``root``; the name's ``/`` become directories."""

    def __init__(self, root: str | Path) -> None:
        self._root = Path(root).absolute()
        self._owner: tuple[int, int] | None = None
        self._owner_known = False
        self._marker: str | None = None

    def keep_structure(self, marker: str) -> None:
        """From now on, make no directory (nor the root) and write no other object at the
        root unless object ``marker`` is there: the structure below the root was made
        once (``respaldo init``), and where the marker is gone so is the store (an
        unmounted disk's empty mount point, a directory replaced), not to be made again.
        The marker itself may still be written (``respaldo repository restore-config``
        puts a lost ``config`` back beside the keys and data)."""
        self._marker = validate_name(marker)

    def _make_dirs(self, directory: Path, name: str | None = None) -> None:
        """:func:`_make_dirs` for object ``name`` (None: a spool's file), refused
        (:class:`PermanentStorageError`) where the kept structure is gone. One ``stat``
        of the marker when a directory is missing or another object goes to the root,
        none otherwise."""
        marker = self._marker
        making = marker is not None and name != marker
        making = making and (directory == self._root or not directory.is_dir())
        if making and marker is not None and not (self._root / marker).is_file():
            raise PermanentStorageError(
                f"the store at {self.location} is not there any more: no {marker} at its "
                "root (a disk or share that is not mounted, a directory replaced); nothing "
                "was written",
                name=marker,
                hint="mount it (or bring the repository back there), then run the command "
                "again; only 'respaldo init' creates a repository",
            )
        _make_dirs(directory, self._new_owner())

    def _new_owner(self) -> tuple[int, int] | None:
        """Whom new files go to: the root directory's owner when we are root and it is not.

        Asked once the root exists (``init`` may create it); ``None`` means "leave as made".
        """
        if self._owner_known:
            return self._owner
        if os.geteuid() != 0:
            self._owner_known = True
            return None
        try:
            st = self._root.stat()
        except OSError:
            return None  # not made yet: ask again at the next write
        self._owner = (st.st_uid, st.st_gid) if st.st_uid != 0 else None
        self._owner_known = True
        return self._owner

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
        tmp = path.with_name(_tmp_name())
        try:
            self._make_dirs(path.parent, name)
            owner = self._new_owner()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                if owner is not None:
                    os.fchown(fd, *owner)
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            tmp.replace(path)
            _fsync_dir(path.parent)
        except OSError as exc:
            # The cleanup must not mask the real error: when the directory could not be
            # made, unlinking a file inside it fails too (ENOTDIR, not ENOENT).
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise _write_error(exc, name, path) from exc

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        check_range(offset, length)
        path = self._path(name)
        try:
            with path.open("rb") as handle:
                if offset:
                    handle.seek(offset)
                return handle.read() if length is None else handle.read(length)
        except OSError as exc:
            raise _translate(exc, name, "read", reading=True) from exc

    def sync(self, name: str) -> None:
        path = self._path(name)
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise ObjectNotFound(f"no object {name}", name=name)
                os.fsync(fd)
            finally:
                os.close(fd)
            # Its name, and those of the directories above it up to the root: a put
            # killed before its last fsync may have made any of them.
            directory = path.parent
            while True:
                _fsync_dir(directory)
                if directory == self._root or directory == directory.parent:
                    break
                directory = directory.parent
        except OSError as exc:
            raise _translate(exc, name, "sync", reading=True) from exc

    def stat(self, name: str) -> ObjectInfo:
        path = self._path(name)
        try:
            st = path.stat()
        except OSError as exc:
            raise _translate(exc, name, "stat", reading=True) from exc
        if not path.is_file():
            raise ObjectNotFound(f"no object {name}", name=name)
        return ObjectInfo(name, st.st_size)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # Validates and reads eagerly, so that a bad prefix or an unreadable directory
        # raises here rather than at some later next().
        validate_prefix(prefix)
        # Walk only the directory the prefix pins down, not the whole store: listing
        # "packs/ab/" must not read every other pack directory.
        directory, _, _ = prefix.rpartition("/")
        start = self._root.joinpath(*directory.split("/")) if directory else self._root

        def on_error(exc: OSError) -> None:
            # A prefix that names no directory (or a file) simply has no objects below it;
            # anything else (EACCES, EIO) would silently shorten the listing if ignored.
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                raise _translate(exc, prefix, "list", reading=False) from exc

        found: list[ObjectInfo] = []
        for dirpath, dirnames, filenames in os.walk(start, onerror=on_error):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel_dir = os.path.relpath(dirpath, self._root)
            for filename in filenames:
                if filename.startswith("."):
                    continue
                name = filename if rel_dir == "." else f"{rel_dir}/{filename}".replace(os.sep, "/")
                if name.startswith(prefix):
                    try:
                        size = (Path(dirpath) / filename).stat().st_size
                    except FileNotFoundError:
                        continue  # deleted while we walked
                    found.append(ObjectInfo(name, size))
        found.sort(key=lambda info: info.name)
        return iter(found)

    def delete(self, name: str) -> None:
        path = self._path(name)
        try:
            path.unlink()
        except OSError as exc:
            if path.is_dir():  # Linux says EISDIR, POSIX allows EPERM
                raise ObjectNotFound(f"no object {name}", name=name) from exc
            raise _translate(exc, name, "delete", reading=True) from exc
        try:
            _fsync_dir(path.parent)
        except OSError as exc:
            raise _translate(exc, name, "delete", reading=False) from exc

    def close(self) -> None:
        pass

    def open_spool(self, directory: str) -> Spool:
        """A new object to be written piece by piece into a temporary file of ``directory``
        (a prefix such as ``packs/``) and named when it is complete (:class:`Spool`)."""
        validate_prefix(directory)
        where = self._root.joinpath(*directory.rstrip("/").split("/")) if directory else self._root
        tmp = where / _tmp_name()
        try:
            self._make_dirs(where)
            owner = self._new_owner()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise _write_error(exc, directory or ".", where) from exc
        try:
            if owner is not None:
                os.fchown(fd, *owner)
        except OSError as exc:
            os.close(fd)
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise _write_error(exc, directory or ".", where) from exc
        return Spool(self, fd, tmp)

    def remove_stale_temporaries(self, prefix: str, older_than: float) -> builtins.list[str]:
        """Remove the temporary files of puts below directory ``prefix`` (``packs/``) that
        no live writer owns; return their paths, relative to the root.

        A put that was killed between creating its temporary file and renaming it leaves
        the file behind; nothing else ever removes it. A file is removed when the process
        named in it is gone from this machine, or when it was not written to for
        ``older_than`` seconds (a file of another machine's, or of an older respaldo,
        whose writer the caller knows must have lost its lease by then). Never raises.
        """
        validate_prefix(prefix)
        start = self._root.joinpath(*prefix.rstrip("/").split("/")) if prefix else self._root
        deadline = time.time() - older_than
        removed: builtins.list[str] = []
        for dirpath, _dirnames, filenames in os.walk(start):
            for filename in filenames:
                if not filename.startswith(_TMP_PREFIX):
                    continue
                path = Path(dirpath, filename)
                try:
                    if not _abandoned(filename, path.lstat().st_mtime, deadline):
                        continue
                    path.unlink()
                except OSError:
                    continue
                removed.append(path.relative_to(self._root).as_posix())
        return removed


class Spool:
    """An object written in pieces, as :meth:`LocalStorage.put` writes it whole (the
    local store's :class:`~respaldo.storage.base.Spool`).

    The pieces go to a temporary file (named like a ``put``'s, so a killed writer's file is
    removed by :meth:`LocalStorage.remove_stale_temporaries`); :meth:`commit` fsyncs it and
    renames it to its name, chosen then (a pack is named after the hash of its bytes), with
    ``put``'s guarantees: once it returns the object is durable, and no object is ever seen
    half-written. :meth:`discard` removes the file instead. Used by one thread at a time.
    """

    def __init__(self, storage: LocalStorage, fd: int, tmp: Path) -> None:
        self._storage = storage
        self._fd: int | None = fd
        self._tmp: Path | None = tmp
        # Messages name the file by its path: a bare ".tmp-…" says nothing of where.
        self._label = str(tmp)
        self.size = 0

    def write(self, pieces: Sequence[bytes]) -> None:
        """Append ``pieces`` (one ``writev`` per ``IOV_MAX`` of them)."""
        fd = self._open_fd()
        assert self._tmp is not None
        try:
            self.size += write_all(fd, pieces)
        except OSError as exc:
            raise _write_error(exc, self._label, self._tmp) from exc

    def commit(self, name: str) -> None:
        """Make the pieces written so far durable object ``name`` (replacing one that is
        there, like ``put``). A transient failure of the rename keeps the synced file for
        another try; any other failure removes it."""
        path = self._storage._path(name)
        tmp = self._tmp
        if tmp is None:
            raise StorageError(f"{self._label} was committed or discarded already")
        if self._fd is not None:
            # Forgotten before it is closed: a close that fails (EIO) has released the
            # number all the same, and discard() closing it again could close another
            # thread's file that was given the same number meanwhile.
            fd, self._fd = self._fd, None
            try:
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                self.discard()
                # Never retried: after a failed fsync the kernel may have dropped the
                # dirty pages, and a second one would report success for lost bytes.
                error = _write_error(exc, name, path)
                if isinstance(error, TransientStorageError):
                    error = PermanentStorageError(str(error), name=name)
                raise error from exc
        try:
            self._storage._make_dirs(path.parent, name)
            tmp.replace(path)
        except PermanentStorageError:  # the store is gone: the file is of no use
            self.discard()
            raise
        except OSError as exc:
            error = _write_error(exc, name, path)
            if not isinstance(error, TransientStorageError):
                self.discard()
            raise error from exc
        self._tmp = None
        try:
            _fsync_dir(path.parent)
            if tmp.parent != path.parent:
                # The rename removed an entry there too: made durable, a power cut
                # cannot bring the temporary file back beside the named object.
                _fsync_dir(tmp.parent)
        except OSError as exc:
            # Never retried either: the object is named, and a second commit of a spool
            # already renamed has nothing to redo (it would only hide this I/O error).
            error = _write_error(exc, name, path)
            if isinstance(error, TransientStorageError):
                error = PermanentStorageError(str(error), name=name)
            raise error from exc

    def discard(self) -> None:
        """Close and remove the temporary file (nothing is named); never raises."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.unlink(missing_ok=True)
            self._tmp = None

    def _open_fd(self) -> int:
        if self._fd is None:
            raise StorageError(f"{self._label} was committed or discarded already")
        return self._fd


def keep_structure(storage: object, marker: str) -> None:
    """:meth:`LocalStorage.keep_structure` on ``storage`` if it is (or wraps) a local store;
    other stores have no directories to make, and nothing is done there."""
    seen: object | None = storage
    while seen is not None and not isinstance(seen, LocalStorage):
        seen = getattr(seen, "inner", None)
    if isinstance(seen, LocalStorage):
        seen.keep_structure(marker)


def remove_stale_temporaries(storage: object, prefix: str, older_than: float) -> list[str]:
    """:meth:`LocalStorage.remove_stale_temporaries` on ``storage`` if it is (or wraps) a
    local store; other stores have no temporary objects, and nothing is done there."""
    seen: object | None = storage
    while seen is not None and not isinstance(seen, LocalStorage):
        seen = getattr(seen, "inner", None)
    if isinstance(seen, LocalStorage):
        return seen.remove_stale_temporaries(prefix, older_than)
    return []


def _make_dirs(directory: Path, owner: tuple[int, int] | None = None) -> None:
    """Create ``directory`` and missing parents, fsyncing each parent that gained an entry;
    directories this call creates are handed to ``owner`` (uid, gid) when given.

    Without the parent fsync a power cut can lose a new directory, and every object in it,
    even though the objects themselves were fsynced.
    """
    if directory.is_dir():
        return
    _make_dirs(directory.parent, owner)
    try:
        directory.mkdir()
    except FileExistsError:
        if not directory.is_dir():
            raise  # a file stands where the directory must be
    else:
        if owner is not None:
            os.chown(directory, *owner)
    # Also when another thread made it: its fsync may not have happened yet.
    _fsync_dir(directory.parent)


# What a file system that cannot sync a directory at all answers: SMB/CIFS mounts (Linux
# before 4.17, and kernels without its backport), some FUSE file systems. A rename there
# is as durable as the file system makes it; refusing every write instead would make a
# repository on a NAS share unusable (restic, borg and PostgreSQL pass it over too). The
# objects' own fsync still counts, and any other error (EIO) still fails the write.
_NO_DIRECTORY_SYNC = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP})
_warned_no_sync: set[int] = set()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _NO_DIRECTORY_SYNC:
            raise
        device = os.fstat(fd).st_dev
        if device not in _warned_no_sync:  # once per file system and process
            _warned_no_sync.add(device)
            log.warning(
                "the file system holding %s cannot sync directories (%s): new objects are "
                "written and synced, but a power cut may lose the names of the last ones",
                directory,
                exc.strerror or exc,
            )
    finally:
        os.close(fd)

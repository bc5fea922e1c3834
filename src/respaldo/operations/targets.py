"""Target directories of restores: new or empty, marked while incomplete, emptied on failure.

A restore into a directory (a physical backup's data directory, a files backup's tree)
first writes a marker file, ``respaldo-restore-incomplete``, naming its process, and
removes it as its very last step. A restore that fails removes what it wrote; one that
is killed (SIGKILL, a power cut) cannot, and the marker is what stays to say that the
directory holds a partial restore. A later restore into that directory removes the
partial one and starts afresh (saying so), unless the process named in the marker still
runs on this machine.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import logging
import os
import socket
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from respaldo.errors import RestoreError
from respaldo.files.tree import allow_open_files
from respaldo.privatedir import owner_alive, this_process

log = logging.getLogger(__name__)

MARKER = "respaldo-restore-incomplete"


@dataclass
class RestoreTarget:
    """A directory a restore writes into: whether the restore made it, and what it found."""

    path: Path
    created: bool
    warnings: list[str] = field(default_factory=list)

    @property
    def marker(self) -> Path:
        return self.path / MARKER


def begin_restore(target: Path, backup_id: str) -> RestoreTarget:
    """Make ``target`` an empty directory marked as holding an incomplete restore.

    Creates it (0700) if it does not exist. A directory holding only an earlier
    incomplete restore (its marker) is emptied first, with a warning. Raises
    RestoreError for a file, for a directory that is not empty, for one that a
    restore still running on this machine is writing into, and for one this user
    cannot create, read or write into (nothing was written then).
    """
    try:
        return _begin(target, backup_id)
    except OSError as exc:
        raise RestoreError(
            f"cannot write into {target}: {exc.strerror}"
            if _exists(target)
            else f"cannot create {target}: {exc.strerror}",
            hint="restore where the user respaldo runs as may create and write files, "
            "or run the restore as a user that may",
        ) from None


def _exists(path: Path) -> bool:
    try:
        path.lstat()
    except OSError:
        return False
    return True


def _begin(target: Path, backup_id: str) -> RestoreTarget:
    if target.exists() or target.is_symlink():
        if target.is_symlink():
            # Not followed: what a restore empties and marks is the directory named.
            raise RestoreError(
                f"{target} is a symbolic link (to {target.resolve()})",
                hint=f"give the directory itself ({target.resolve()}) as the target",
            )
        if not target.is_dir():
            raise RestoreError(f"{target} exists and is not a directory")
        if (target / MARKER).is_file():
            found = _earlier_restore(target)
            # The marker goes last: killed in between, the next restore still knows.
            _empty(target, keep=MARKER)
            (target / MARKER).unlink()
            result = RestoreTarget(target, created=False, warnings=[found])
        elif any(target.iterdir()):
            raise RestoreError(
                f"{target} is not empty",
                hint="restore into a new or empty directory; nothing was changed",
            )
        else:
            result = RestoreTarget(target, created=False)
    else:
        target.mkdir(mode=0o700, parents=True)
        result = RestoreTarget(target, created=True)
    _write_marker(result.marker, backup_id)
    return result


def sync_tree(root: Path) -> None:
    """Make what a restore wrote below ``root`` durable before the restore calls itself
    done, as ``pg_basebackup`` and ``initdb -S`` do.

    Without it a restore's files were in the page cache only when it said "restored":
    the kernel writes them back within seconds to minutes, and a power cut or a crash of
    the host in that time left files empty or short under their real names, while the
    marker's removal (fsynced) or a data directory's PG_VERSION had reached the disk:
    a tree or a data directory that looks complete, and is not. Errors the disk reports
    (EIO, a full thin volume) fail the restore.

    On Linux, one ``syncfs(2)`` of the target's file system (PostgreSQL's
    ``--sync-method=syncfs``): a restore makes every directory below its target, so the
    tree is on that one file system, and it costs what writing back the dirty data costs
    (20,000 small files: 0.6 s, where an fsync of each took 53 s on a virtual disk that
    flushes its cache at each). It writes back the rest of that file system's dirty data
    too. Elsewhere, or where the kernel has no ``syncfs`` or a seccomp filter refuses it,
    every regular file and every directory is fsynced (:func:`_fsync_tree`).
    """
    try:
        fd = os.open(root, _DIR)
    except OSError as exc:
        raise _not_durable(root, exc) from exc
    try:
        if _syncfs(fd, root):
            return
    finally:
        os.close(fd)
    _fsync_tree(root)


def _syncfs(fd: int, path: Path) -> bool:
    """``syncfs(2)`` of the file system of ``fd``; False where there is none (not Linux,
    a kernel without it) or it is refused (a container's or a service's seccomp filter
    answers EPERM: ``syncfs`` itself never does, so it is no disk error, and taking it
    for one failed the restore and removed the whole tree it had written). Raises
    RestoreError for a write-back error it reports (Linux 5.8 and later report those)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        syncfs = libc.syncfs
    except (OSError, AttributeError):
        return False
    syncfs.argtypes = [ctypes.c_int]
    syncfs.restype = ctypes.c_int
    if syncfs(fd) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EPERM, errno.EACCES):
        return False
    raise _not_durable(path, OSError(code, os.strerror(code)))


def _fsync_tree(root: Path) -> None:
    """fsync every regular file and every directory (its entries: names, links) below
    ``root``. Links are not followed (the walk goes by descriptors, as
    :func:`remove_tree` does), and only regular files are opened. What this user cannot
    open (a file restored without its owner's read bit, a directory restored 0000, by a
    restore that is not root's) is flushed by ``sync()`` instead, once, at the end."""
    allow_open_files()  # one descriptor per level of the tree
    try:
        top = os.open(root, _DIR)
    except OSError as exc:
        raise _not_durable(root, exc) from exc
    stack: list[tuple[int, Path, list[str]]] = []
    unsynced = False

    def enter(fd: int, path: Path) -> None:
        nonlocal unsynced
        subdirs: list[str] = []
        try:
            with os.scandir(fd) as entries:
                listed = list(entries)
        except OSError:
            unsynced, listed = True, []
        for entry in listed:
            try:
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.name)
                    continue
                if not entry.is_file(follow_symlinks=False):
                    continue  # a link: its directory's fsync holds it
            except OSError:
                unsynced = True
                continue
            unsynced |= not _sync_file(fd, entry.name, path / entry.name)
        stack.append((fd, path, subdirs))

    try:
        enter(top, root)
        while stack:
            fd, path, subdirs = stack[-1]
            if subdirs:
                name = subdirs.pop()
                try:
                    child = os.open(name, _DIR, dir_fd=fd)
                except OSError:
                    unsynced = True  # not enterable (0000), or swapped for a link
                    continue
                enter(child, path / name)
                continue
            stack.pop()
            try:
                os.fsync(fd)  # after its files: the names of what it holds
            except OSError as exc:
                if exc.errno != errno.EINVAL:  # a file system without directory fsync
                    raise _not_durable(path, exc) from exc
            finally:
                os.close(fd)
    finally:
        for fd, _, _ in stack:
            os.close(fd)
    if unsynced:
        os.sync()  # waits on Linux; what could not be opened is on disk too


def _sync_file(dir_fd: int, name: str, path: Path) -> bool:
    """fsync the regular file ``name`` of ``dir_fd``; False if it could not be opened
    (no permission). Raises RestoreError for what the disk reports."""
    try:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(name, flags, dir_fd=dir_fd)
    except PermissionError:
        return False
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOENT):
            return True  # not the file listed any more: nothing of the restore's to sync
        raise _not_durable(path, exc) from exc
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fsync(fd)
    except OSError as exc:
        raise _not_durable(path, exc) from exc
    finally:
        os.close(fd)
    return True


def _not_durable(path: Path, exc: OSError) -> RestoreError:
    return RestoreError(
        f"cannot write {path} to disk: {exc.strerror or exc}",
        hint="the restore stopped and nothing of it was kept; check the disk of the "
        "target (the kernel's log), or restore elsewhere",
    )


def finish_restore(target: RestoreTarget) -> None:
    """Remove the marker: the restore is complete. Its removal is made durable; what
    the restore wrote must be already (:func:`sync_tree`)."""
    target.marker.unlink()
    _fsync_dir(target.path)


def abort_restore(target: RestoreTarget) -> None:
    """Undo a failed restore: remove what it wrote (and the directory, if it made it)."""
    if target.created:
        remove_tree(target.path)
        return
    _empty(target.path)


def _write_marker(path: Path, backup_id: str) -> None:
    pid, start = this_process()
    record = {
        "backup": backup_id,
        "pid": pid,
        "start": start,
        "host": socket.gethostname(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    # The marker must be on disk before anything it vouches for is.
    _fsync_dir(path.parent)


def _earlier_restore(target: Path) -> str:
    """What the marker in ``target`` says; raises RestoreError if its restore still runs."""
    try:
        record = json.loads((target / MARKER).read_text(encoding="utf-8"))
        pid, start = int(record["pid"]), int(record["start"])
        host, backup = str(record["host"]), str(record.get("backup", "?"))
    except (OSError, ValueError, KeyError, TypeError):
        # A marker we cannot read still says "incomplete"; only a live owner could object.
        return f"removed an incomplete restore found in {target}"
    if host != socket.gethostname():
        raise RestoreError(
            f"{target} holds an incomplete restore by process {pid} on {host}",
            hint=f"if no restore runs there any more, empty {target} and retry",
        )
    if owner_alive(pid, start):
        raise RestoreError(
            f"a restore (process {pid}) is writing into {target}",
            hint="wait for it to finish, or restore somewhere else",
        )
    return (
        f"removed the incomplete restore of {backup} found in {target} "
        f"(process {pid} stopped before it finished)"
    )


def _empty(target: Path, keep: str | None = None) -> None:
    for child in target.iterdir():
        if child.name == keep:
            continue
        if child.is_dir() and not child.is_symlink():
            remove_tree(child)
        else:
            child.unlink(missing_ok=True)


def remove_tree(path: Path) -> None:
    """Remove the directory ``path`` and all it holds, as far as this user can; what
    stays is logged as a warning naming ``path``.

    Links are never followed, not even one that replaces a directory while it is
    removed: a restore gives directories their backed-up owners, and such an owner
    (www-data, postgres) could otherwise make root list, open up and empty a directory
    outside the tree. So the walk goes by descriptors: each directory is opened
    relative to its parent's descriptor with ``O_NOFOLLOW``, and its entries are
    unlinked relative to its own. A restore also gives directories their backed-up
    modes, and one killed at that point leaves directories its own user can no longer
    list (0000) or empty (0555): each is made ``u+rwx`` (through its descriptor) before
    it is listed. The walk keeps its own stack, not Python's (a backed-up tree can be
    deeper than the recursion limit), and holds one descriptor per level at most, at
    most :data:`_HELD` in all: deeper, a parent is opened again through ``..`` and
    used only if it is the directory it was. What cannot be removed stays.
    """
    try:
        base = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        _remove(base, path.name)
    finally:
        os.close(base)
    if os.path.lexists(path):
        log.warning("could not remove all of %s: what is left there can be deleted", path)


_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_HELD = 64
"""Directory descriptors :func:`remove_tree` holds at most (a soft limit of 1024 open
files is common, and a tree can be deeper than that)."""


@dataclass
class _Level:
    """A directory being removed: its name in its parent, its identity, its descriptor
    (None while released, see :data:`_HELD`) and its subdirectories not yet removed."""

    name: str
    ident: tuple[int, int]
    fd: int | None
    subdirs: list[str]


def _remove(base: int, name: str) -> None:
    top = _enter(base, name)
    if top is None:
        return
    stack = [top]
    try:
        while stack:
            level = stack[-1]
            assert level.fd is not None  # the deepest level is always held
            if level.subdirs:
                child = _enter(level.fd, level.subdirs.pop())
                if child is not None:
                    stack.append(child)
                    if len(stack) > _HELD:
                        _release(stack[-_HELD - 1])
                continue
            # Its entries are gone (as far as they could be): now the directory itself.
            stack.pop()
            parent = stack[-1] if stack else None
            found = parent is None or parent.fd is not None or _reopen(parent, level.fd)
            _release(level)
            if not found:
                return  # its parent was moved away since: what is left stays
            with contextlib.suppress(OSError):
                os.rmdir(level.name, dir_fd=base if parent is None else parent.fd)
    finally:
        for level in stack:
            _release(level)


def _enter(parent: int, name: str) -> _Level | None:
    """Open the directory ``name`` in ``parent`` (never through a link), open it up to
    its user, unlink its other entries and list its subdirectories. None if it is not
    a directory (a link to one is unlinked) or cannot be opened: it stays then."""
    try:
        fd = _open_dir(parent, name)
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.ELOOP):
            # A link (O_NOFOLLOW) or a file now, since it was listed: unlinked as such.
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=parent)
        return None
    try:
        st = os.fstat(fd)
        if stat.S_IMODE(st.st_mode) & stat.S_IRWXU != stat.S_IRWXU:
            with contextlib.suppress(OSError):
                os.fchmod(fd, stat.S_IMODE(st.st_mode) | stat.S_IRWXU)
        subdirs = []
        listed = []
        # Listed whole before anything is unlinked: whether readdir still returns every
        # entry while entries are unlinked is unspecified (NFS can skip some).
        with contextlib.suppress(OSError), os.scandir(fd) as entries:
            listed = list(entries)
        for entry in listed:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if not is_dir:
                try:
                    os.unlink(entry.name, dir_fd=fd)
                    continue
                except IsADirectoryError:  # one since it was listed
                    pass
                except OSError:
                    continue
            subdirs.append(entry.name)
    except BaseException:
        os.close(fd)
        raise
    return _Level(name, (st.st_dev, st.st_ino), fd, subdirs)


def _open_dir(parent: int, name: str) -> int:
    """A descriptor of the directory ``name`` in ``parent``, never through a link. One
    its user may not read (0000) is opened by path only, made ``u+rwx`` and reopened,
    all through that descriptor: no name is looked up twice."""
    try:
        return os.open(name, _DIR, dir_fd=parent)
    except PermissionError:
        handle = os.open(name, _DIR | os.O_PATH, dir_fd=parent)
    try:
        # A descriptor opened by path takes no fchmod, its /proc name takes chmod.
        own = f"/proc/self/fd/{handle}"
        Path(own).chmod(stat.S_IMODE(os.fstat(handle).st_mode) | stat.S_IRWXU)
        return os.open(own, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    finally:
        os.close(handle)


def _release(level: _Level) -> None:
    if level.fd is not None:
        os.close(level.fd)
        level.fd = None


def _reopen(level: _Level, child: int) -> bool:
    """Open ``level`` again as the parent of ``child``; False if that is no longer it."""
    try:
        fd = os.open("..", _DIR, dir_fd=child)
    except OSError:
        return False
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != level.ident:  # the child was moved elsewhere
        os.close(fd)
        return False
    level.fd = fd
    return True


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

"""A tar stream of directory trees, produced on the fly as it is read.

The stream is made by a generator of byte pieces (headers, file contents, padding) that
:meth:`TreeTarStream.readinto` serves to the chunker: no thread, no temporary file, and
memory bounded by one read buffer. Files are read as they are reached. A file that only
grew while it was read (an append-only log: larger, and its first bytes, up to its
listed size, read again the same as those streamed) is cut at its listed size, with a
warning, as GNU tar does. One that changed otherwise (its size, modification or change
time differ after the read, and it did not only grow) is read again, as a second member
of the same name that replaces the first when extracted: a file rewritten mid-read is
never the last word on it. One that is still changing after :data:`ATTEMPTS` reads, and
one that cannot be read or listed, is in :attr:`TreeStats.errors`, which fails the
backup (a backup that lacks files it was told to keep, or holds a torn copy, is not a
good backup). Below a configured path no link is followed, even one swapped in
during the walk: names are looked up in their directory's open descriptor, and what is
opened must be the inode listed, else it is left out with a warning (see
:meth:`TreeTarStream._walk`); a file that a regular file was renamed over since it was
listed (an editor's save) is looked up and opened again once, under the same guard.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import fnmatch
import grp
import io
import logging
import os
import pwd
import resource
import stat
import tarfile
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import blake3

from respaldo.errors import SourceError

log = logging.getLogger(__name__)

BLOCK = tarfile.BLOCKSIZE
READ_SIZE = 1024 * 1024
_ZEROS = bytes(READ_SIZE)
ATTEMPTS = 3
"""Reads of a file that changes while read before it counts as an error."""
SPARSE = "RESPALDO.sparse"
"""pax record of a file that takes less disk than its size (it has holes): its zeros are
stored as they read, and a restore leaves holes where whole blocks of them were."""


@dataclass
class TreeStats:
    """What went into the stream, and what did not."""

    files: int = 0
    directories: int = 0
    symlinks: int = 0
    file_bytes: int = 0
    excluded: int = 0
    skipped: list[str] = field(default_factory=list)
    """Special files (sockets, devices, FIFOs): never backed up."""
    warnings: list[str] = field(default_factory=list)
    """Files that vanished before they were read (deleted: nothing of them is lost), and
    files that grew while read (kept at their listed size)."""
    errors: list[str] = field(default_factory=list)
    """Paths that could not be read or listed, and files that changed on every read:
    the stream lacks them or holds a torn copy, so the backup must not count as good."""
    reread: int = 0
    """Files read again because they changed while read (their last read was whole)."""
    own: list[tuple[str, str]] = field(default_factory=list)
    """Paths left out because they are respaldo's own, and what each is (see
    ``TreeTarStream(own=)``)."""
    mounts: list[str] = field(default_factory=list)
    """Directories on another file system than the directory that holds them (a share or
    a disk mounted there), configured paths included: recorded with the backup, so that
    the next one can tell such a directory found empty and no longer mounted
    (:func:`unmounted`) from one emptied on purpose."""


def _excluded(patterns: Sequence[str], name: str, relative: str) -> bool:
    for pattern in patterns:
        target = relative if "/" in pattern else name
        if fnmatch.fnmatchcase(target, pattern.strip("/")):
            return True
    return False


class _Names:
    """uid/gid -> user/group name, looked up once each."""

    def __init__(self) -> None:
        self.users: dict[int, str] = {}
        self.groups: dict[int, str] = {}

    def user(self, uid: int) -> str:
        if uid not in self.users:
            try:
                self.users[uid] = pwd.getpwuid(uid).pw_name
            except KeyError:
                self.users[uid] = ""
        return self.users[uid]

    def group(self, gid: int) -> str:
        if gid not in self.groups:
            try:
                self.groups[gid] = grp.getgrgid(gid).gr_name
            except KeyError:
                self.groups[gid] = ""
        return self.groups[gid]


class TreeTarStream:
    """A pax tar of ``paths`` (absolute), minus what ``exclude`` matches, read like a file.

    ``own`` are paths never stored, each with what it is (in :attr:`TreeStats.own`
    when met). A configured
    path that is a symbolic link is followed (its target's contents are
    stored under the configured name); links below it are stored as links. Raises
    SourceError at construction if a path is not absolute or does not exist (a
    configured tree that vanished, or a link to nothing, is worth a failed backup, not
    an empty one). Problems with single files found while reading are in :attr:`stats`
    (``errors`` for those the caller must fail on), not raised.
    """

    def __init__(
        self,
        paths: Sequence[Path | str],
        exclude: Sequence[str] = (),
        own: Mapping[Path, str] | None = None,
    ) -> None:
        self.roots = [Path(p) for p in paths]
        # Files and directories never stored, known by device and inode (whatever path
        # leads to them): respaldo's own repository, cache and catalog, which a tree
        # that holds them would otherwise back up into themselves.
        self._own: dict[tuple[int, int], str] = {}
        for path, what in (own or {}).items():
            with contextlib.suppress(OSError):
                st = path.stat()
                self._own[(st.st_dev, st.st_ino)] = what
        for root in self.roots:
            if not root.is_absolute():
                raise SourceError(f"file set path {root} is not absolute")
            try:
                root.stat()
            except (FileNotFoundError, NotADirectoryError):
                target = f" (a link to {_link_target(root)})" if root.is_symlink() else ""
                raise SourceError(
                    f"file set path {root} does not exist{target}",
                    hint="fix the paths of the file set in the config",
                ) from None
            except OSError as exc:
                raise SourceError(
                    f"file set path {root} cannot be read: {exc.strerror}",
                    hint=f"give the user respaldo runs as ({_user()}) access to it and to "
                    "the directories above it, or run the backup as another user",
                ) from None
        self.exclude = list(exclude)
        # Where the configured paths are (links resolved), to tell a link below them that
        # leads to a directory outside them all.
        self._real_roots = [os.path.realpath(root) for root in self.roots]
        self.stats = TreeStats()
        self._names = _Names()
        self._pieces = self._generate()
        self._buffer: collections.deque[memoryview] = collections.deque()
        self._done = False

    # --- reading -----------------------------------------------------------------------

    def readinto(self, dest: memoryview | bytearray) -> int:
        view = memoryview(dest).cast("B")
        done = 0
        while done < len(view):
            if not self._buffer:
                piece = next(self._pieces, None)
                if piece is None:
                    break
                self._buffer.append(memoryview(piece))
                continue
            head = self._buffer[0]
            n = min(len(head), len(view) - done)
            view[done : done + n] = head[:n]
            done += n
            if n == len(head):
                self._buffer.popleft()
            else:
                self._buffer[0] = head[n:]
        return done

    def read(self, size: int = -1, /) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(READ_SIZE), b""))
        buf = bytearray(size)
        n = self.readinto(buf)
        return bytes(buf[:n])

    # --- producing -----------------------------------------------------------------------

    def _generate(self) -> Iterator[bytes]:
        for root in self.roots:
            yield from self._walk(root)
        # End of archive: two zero blocks (padding to a 10 KiB record is a tape-era
        # convention that no reader needs).
        yield bytes(2 * BLOCK)

    def _walk(self, root: Path) -> Iterator[bytes]:
        """Depth first, names sorted. The directories being walked are a stack of their
        remaining children, not a recursion: a tree deeper than Python's recursion
        limit (Linux allows some 2000 levels) is walked like any other.

        Below the configured path, every name is looked up in its directory's open
        descriptor (``dir_fd``), never through a path, and none is followed if it is a
        link: a directory or file swapped for a link after it was listed (by anyone who
        may write in the tree) cannot lead the walk out of it, to /etc/shadow say. A
        directory's descriptor stays open until its children are done, one per level
        (so the soft limit of open files is raised to the hard one first:
        :func:`allow_open_files`)."""
        allow_open_files()
        pending: _Pending = []
        try:
            # A configured path is followed if it is a link (an upload directory moved
            # to a bigger disk and linked back): the link alone holds no upload.
            yield from self._entry(_Child(None, str(root), root, ""), pending, follow=True)
            while pending:
                fd, children = pending[-1]
                child = next(children, None)
                if child is None:
                    pending.pop()
                    os.close(fd)
                    continue
                yield from self._entry(child, pending)
        finally:  # a stream abandoned half way (a failed upload) leaks no descriptor
            for fd, _ in pending:
                os.close(fd)

    def _children(self, fd: int, path: Path, relative: str, names: list[str]) -> Iterator[_Child]:
        for name in names:
            child_relative = f"{relative}/{name}" if relative else name
            if _excluded(self.exclude, name, child_relative):
                self.stats.excluded += 1
                continue
            yield _Child(fd, name, path / name, child_relative)

    def _entry(self, child: _Child, pending: _Pending, *, follow: bool = False) -> Iterator[bytes]:
        """One path: its member (and, for a directory, its children pushed on
        ``pending``)."""
        path = child.path
        try:
            st = os.stat(child.name, dir_fd=child.dir_fd, follow_symlinks=follow)
        except FileNotFoundError:
            if follow:  # a configured path (an unmounted share): none of it is in
                self.stats.errors.append(f"{path}: configured path vanished before it was read")
            else:
                self.stats.warnings.append(f"{path} vanished before it was read")
            return
        except OSError as exc:
            self.stats.errors.append(f"{path}: {exc.strerror}")
            return
        what = self._own.get((st.st_dev, st.st_ino))
        if what is not None:
            self.stats.own.append((str(path), what))
            return
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            yield from self._directory(child, st, pending, follow=follow)
        elif stat.S_ISREG(mode):
            yield from self._file(child, st, follow=follow)
        elif stat.S_ISLNK(mode):
            try:
                target = os.readlink(child.name, dir_fd=child.dir_fd)
            except FileNotFoundError:
                self.stats.warnings.append(f"{path} vanished before it was read")
                return
            except OSError as exc:
                if exc.errno == errno.EINVAL:  # no longer a link
                    self.stats.warnings.append(f"{path} was replaced before it was read")
                else:
                    self.stats.errors.append(f"{path}: {exc.strerror}")
                return
            yield self._header(path, st, tarfile.SYMTYPE, linkname=target)
            self.stats.symlinks += 1
            outside = self._directory_outside(child)
            if outside is not None:
                self.stats.warnings.append(
                    f"{path} is a link to the directory {outside}, outside the file set: "
                    "its files are not backed up"
                )
        elif follow:
            self.stats.errors.append(
                f"{path}: a configured path that is a FIFO, socket or device: never backed up"
            )
        else:
            self.stats.skipped.append(str(path))

    def _directory_outside(self, child: _Child) -> str | None:
        """Where the link ``child`` leads, if that is a directory outside every configured
        path (resolved): a link is stored as a link, never followed, so none of that
        directory's files are in the backup. An upload directory moved to a bigger disk
        and linked back below a configured path (``/srv/erp/uploads -> /data/uploads``)
        was left out silently: every backup, and its restore test, passed without them.
        Only looked at (``stat``), never read."""
        try:
            if not stat.S_ISDIR(os.stat(child.name, dir_fd=child.dir_fd).st_mode):
                return None
        except OSError:
            return None  # dangling, or not ours to look at: stored as it is
        real = os.path.realpath(child.path)
        for root in self._real_roots:
            if real == root or real.startswith(root.rstrip("/") + "/"):
                return None
        return real

    def _directory(
        self,
        child: _Child,
        listed: os.stat_result,
        pending: _Pending,
        *,
        follow: bool,
    ) -> Iterator[bytes]:
        path = child.path
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
        try:
            fd = _open_at(child.name, flags, child.dir_fd)
        except FileNotFoundError:
            if follow:
                self.stats.errors.append(f"{path}: configured path vanished before it was read")
            else:
                self.stats.warnings.append(f"{path} vanished before it was listed")
            return
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR) and not follow:
                # Replaced by a link or a file since its directory was listed: what is
                # there now is not what was listed, and a link is never followed.
                self.stats.warnings.append(f"{path} was replaced before it was read")
            else:
                self.stats.errors.append(f"{path}: cannot list: {exc.strerror}")
            return
        try:
            if not _is(os.fstat(fd), listed):
                self.stats.warnings.append(f"{path} was replaced before it was read")
                os.close(fd)
                return
            names = sorted(os.listdir(fd))  # noqa: PTH208 (a descriptor: pathlib lists paths)
        except OSError as exc:
            os.close(fd)
            self.stats.errors.append(f"{path}: cannot list: {exc.strerror}")
            return
        if _mount_point(child, listed):
            self.stats.mounts.append(str(path))
        # From here on the descriptor is the directory: a header, then its children, all
        # of what was opened and listed (it is closed once they are done, by _walk).
        pending.append((fd, self._children(fd, path, child.relative, names)))
        yield self._header(path, listed, tarfile.DIRTYPE)
        self.stats.directories += 1

    def _header(
        self, path: Path, st: os.stat_result, kind: bytes, *, size: int = 0, linkname: str = ""
    ) -> bytes:
        info = tarfile.TarInfo(str(path).lstrip("/") or ".")
        info.type = kind
        info.size = size
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname, info.gname = self._names.user(st.st_uid), self._names.group(st.st_gid)
        info.mtime = st.st_mtime_ns // 1_000_000_000
        info.linkname = linkname
        # The exact time in a pax record: a restored file gets its time to the microsecond,
        # and an unchanged file yields the same header bytes every time.
        # A decimal number: before 1970 it is "-" and the distance to 0, not floor
        # division's seconds and a positive fraction (which read back a second off).
        seconds, nanos = divmod(abs(st.st_mtime_ns), 1_000_000_000)
        sign = "-" if st.st_mtime_ns < 0 else ""
        info.pax_headers = {"mtime": f"{sign}{seconds}.{nanos:09d}"}
        if kind == tarfile.REGTYPE and st.st_blocks * 512 < size:
            info.pax_headers[SPARSE] = "1"
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")

    def _file(self, child: _Child, listed: os.stat_result, *, follow: bool) -> Iterator[bytes]:
        path = child.path
        fd = self._open(child, follow=follow)
        if fd is None:
            return
        if not _is(os.fstat(fd), listed):
            # Another file, or a directory or FIFO, put in its place since it was
            # listed: what was listed is gone, and what is there was not listed. A
            # regular file renamed over it (an editor saving a config file, a deploy)
            # is looked up and opened again, once, under the same guard: what is read
            # is what that second look found, as if it had been there when listed.
            # Left out, such a file was missing from the backup with only a warning.
            os.close(fd)
            again = self._listed_again(child, follow=follow)
            if again is None:
                return
            fd = self._open(child, follow=follow)
            if fd is None:
                return
            if not _is(os.fstat(fd), again):  # replaced once more: left out
                os.close(fd)
                self.stats.warnings.append(f"{path} was replaced before it was read")
                return
            log.info("%s was replaced before it was read: read the file now there", path)
            listed = again
        with os.fdopen(fd, "rb", buffering=0) as fh:
            for attempt in range(ATTEMPTS):
                before = os.fstat(fd)
                if attempt:
                    # The same open file: a file replaced by a rename keeps the copy we
                    # hold (whole), one written in place is read as it is now.
                    fh.seek(0)
                    self.stats.reread += 1
                    log.info("%s changed while read: reading it again", path)
                read = yield from self._contents(path, fh, before)
                after = os.fstat(fd)
                if read.whole and _same(before, after):
                    self._counted(before)
                    return
                if _appended(fd, before, after, read):
                    # An append-only file (a live log): its first bytes, as listed, are
                    # a consistent copy. Reading it again would race its writer every
                    # time (and put another whole copy in the stream each time).
                    self.stats.warnings.append(
                        f"{path} grew while read: cut at {before.st_size} bytes"
                    )
                    self._counted(before)
                    return
        self.stats.errors.append(
            f"{path}: changed while read, {ATTEMPTS} times (the backup holds a torn copy)"
        )

    def _open(self, child: _Child, *, follow: bool) -> int | None:
        """``child`` opened to be read, never through a link below a configured path;
        None, with a warning or an error, when it cannot be."""
        path = child.path
        # O_NONBLOCK: a file replaced by a FIFO since it was listed must not hang the
        # backup in open(); it is found out by fstat afterwards.
        flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | (0 if follow else os.O_NOFOLLOW)
        try:
            try:
                return _open_at(child.name, flags | getattr(os, "O_NOATIME", 0), child.dir_fd)
            except PermissionError:  # O_NOATIME needs the file's owner (or CAP_FOWNER)
                return _open_at(child.name, flags, child.dir_fd)
        except FileNotFoundError:
            self.stats.warnings.append(f"{path} vanished before it was read")
        except OSError as exc:
            if exc.errno == errno.ELOOP and not follow:
                # Replaced by a link since it was listed (O_NOFOLLOW): a change, not a
                # file that cannot be read.
                self.stats.warnings.append(f"{path} was replaced before it was read")
            else:
                self.stats.errors.append(f"{path}: cannot read: {exc.strerror}")
        return None

    def _listed_again(self, child: _Child, *, follow: bool) -> os.stat_result | None:
        """What ``child``, found replaced when opened, is now, if it is a regular file
        to read (not respaldo's own); None, with a warning or an error, otherwise."""
        path = child.path
        try:
            st = os.stat(child.name, dir_fd=child.dir_fd, follow_symlinks=follow)
        except FileNotFoundError:
            self.stats.warnings.append(f"{path} vanished before it was read")
            return None
        except OSError as exc:
            self.stats.errors.append(f"{path}: {exc.strerror}")
            return None
        if not stat.S_ISREG(st.st_mode):
            self.stats.warnings.append(f"{path} was replaced before it was read")
            return None
        what = self._own.get((st.st_dev, st.st_ino))
        if what is not None:
            self.stats.own.append((str(path), what))
            return None
        return st

    def _counted(self, st: os.stat_result) -> None:
        self.stats.files += 1
        self.stats.file_bytes += st.st_size

    def _contents(
        self, path: Path, fh: io.FileIO, st: os.stat_result
    ) -> Generator[bytes, None, _Read]:
        """One member: header and ``st.st_size`` bytes of ``fh`` (cut, or padded with
        zeros, to that size), and what the read saw of the file's size and bytes."""
        size = st.st_size
        yield self._header(path, st, tarfile.REGTYPE, size=size)
        read = _Read()
        left = size
        while left:
            data = fh.read(min(READ_SIZE, left))
            if not data:
                read.short = True
                while left:
                    n = min(left, len(_ZEROS))
                    yield _ZEROS[:n]
                    left -= n
                break
            left -= len(data)
            read.digest.update(data)
            yield data
        else:
            read.longer = bool(fh.read(1))
        if size % BLOCK:
            yield bytes(BLOCK - size % BLOCK)
        return read


@dataclass(frozen=True, slots=True)
class _Child:
    """A name to back up: looked up in the open directory ``dir_fd`` (``None``: ``name``
    is a configured path, looked up as a path), shown and stored as ``path``."""

    dir_fd: int | None
    name: str
    path: Path
    relative: str


_Pending = list[tuple[int, Iterator[_Child]]]
"""The directories being walked: each one's open descriptor and its remaining children."""


def allow_open_files() -> None:
    """Raise this process's soft limit of open files to its hard limit.

    The walk holds a descriptor per level of the tree, and Linux allows some 2000
    levels; the soft limit is 1024 for a service of systemd and most shells, so a tree
    deeper than about 1000 levels failed "cannot list: Too many open files". The hard
    limit is what the administrator allows (systemd's default: 524288); raising the soft
    one to it is what a program that needs more descriptors is expected to do."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or (hard != resource.RLIM_INFINITY and soft >= hard):
        return
    # An unlimited hard limit cannot be the soft one (the kernel caps it at nr_open).
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _mount_point(child: _Child, st: os.stat_result) -> bool:
    """Whether the directory ``child`` (``st``) is on another file system than the
    directory that holds it (for a configured path that is a link, the directory that
    holds where it leads: a link on /srv to a plain directory of the disk on /data is no
    mount point, and one to where that disk is mounted is)."""
    try:
        if child.dir_fd is not None:
            return os.fstat(child.dir_fd).st_dev != st.st_dev
        return Path(os.path.realpath(child.path)).parent.stat().st_dev != st.st_dev
    except OSError:
        return False


def reached(path: str, paths: Sequence[Path | str], exclude: Sequence[str]) -> bool:
    """Whether a walk of ``paths`` minus ``exclude`` (as :class:`TreeTarStream` walks
    them) reaches ``path``, by name: a mount point recorded by an earlier backup whose
    share was since excluded, or whose configured path was removed, is no longer the file
    set's to judge (:func:`unmounted`)."""
    for root in paths:
        top = str(Path(root))
        if path == top:
            return True
        prefix = top.rstrip("/") + "/"
        if not path.startswith(prefix):
            continue
        relative = ""
        for name in path[len(prefix) :].split("/"):
            relative = f"{relative}/{name}" if relative else name
            if _excluded(exclude, name, relative):
                break
        else:
            return True
    return False


def unmounted(mounts: Iterable[str], paths: Sequence[Path | str] = ()) -> list[str]:
    """Those of ``mounts`` (directories a backup found a file system mounted on,
    :attr:`TreeStats.mounts`) that are now an empty directory on the file system of the
    directory holding them: a share or disk that is not mounted (its mount point left
    behind, empty). A backup of that would hold none of its files, and once retention
    counted it good, the backups that hold them would expire. One that was emptied for
    good is removed, or holds files: then it is not in the list. One of the configured
    ``paths`` that is a link is followed, as the walk follows it (an upload directory
    linked to where its disk is mounted): it was never judged, and the disk that did not
    mount gave an empty backup."""
    roots = {str(Path(p)) for p in paths}
    found = []
    for text in mounts:
        path = Path(text)
        try:
            if text in roots:
                st, parent = path.stat(), Path(os.path.realpath(path)).parent
            else:
                st, parent = path.lstat(), path.parent
            if not stat.S_ISDIR(st.st_mode) or parent.stat().st_dev != st.st_dev:
                continue
            with os.scandir(path) as entries:
                if next(entries, None) is None:
                    found.append(text)
        except OSError:
            continue  # gone, or unreadable: the walk says so
    return found


def _open_at(name: str, flags: int, dir_fd: int | None) -> int:
    """``name`` opened in the directory ``dir_fd`` (a function of its own: where the
    walk opens what it listed)."""
    return os.open(name, flags, dir_fd=dir_fd)


def _is(opened: os.stat_result, listed: os.stat_result) -> bool:
    """Whether what was opened is what was listed: the same inode, of the same type."""
    return (opened.st_dev, opened.st_ino, stat.S_IFMT(opened.st_mode)) == (
        listed.st_dev,
        listed.st_ino,
        stat.S_IFMT(listed.st_mode),
    )


@dataclass
class _Read:
    """What one read of a file saw: whether it ended before the listed size (``short``)
    or went on past it (``longer``), and a hash of the bytes it streamed, to tell an
    append from a rewrite afterwards (blake3: hashing costs a fraction of reading)."""

    short: bool = False
    longer: bool = False
    digest: blake3.blake3 = field(default_factory=blake3.blake3)

    @property
    def whole(self) -> bool:
        return not self.short and not self.longer


def _appended(fd: int, before: os.stat_result, after: os.stat_result, read: _Read) -> bool:
    """Whether the only change to the file read through ``fd`` is that bytes were added
    at its end: it is larger, the same file, was never shorter than listed during the
    read, and its first ``before.st_size`` bytes, read again now, hash the same as those
    streamed. Its times change with an append, so they say nothing here. A page that
    changed anywhere, even one already streamed, fails this: what was streamed mixes
    two states of the file. The second read goes nowhere but into the hash (the stream
    holds one copy), and it cannot race an appender: it stops at the listed size."""
    if read.short or after.st_size <= before.st_size:
        return False
    if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
        return False
    again = blake3.blake3()
    offset, size = 0, before.st_size
    while offset < size:
        data = os.pread(fd, min(READ_SIZE, size - offset), offset)
        if not data:
            return False  # shorter again: not only appended to
        again.update(data)
        offset += len(data)
    return again.digest() == read.digest.digest()


def _same(before: os.stat_result, after: os.stat_result) -> bool:
    """Whether a file's size and times say that it did not change in between."""
    return (before.st_size, before.st_mtime_ns, before.st_ctime_ns) == (
        after.st_size,
        after.st_mtime_ns,
        after.st_ctime_ns,
    )


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def _link_target(path: Path) -> str:
    try:
        return str(path.readlink())
    except OSError:
        return "?"

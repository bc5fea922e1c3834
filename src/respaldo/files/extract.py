"""Extracting a files backup into a directory, refusing anything that would escape it.

The tar is read as a stream (``tarfile`` mode ``r|``) straight from the repository's
verified chunks. Every member passes :func:`_safe` first: absolute names and ``..``
components are refused outright, then ``tarfile.tar_filter`` refuses any member whose
path, after the links extracted so far are followed, would end outside the target. Hard
links and device files are refused too: respaldo never writes them, so a backup that
holds them was not made by respaldo. A regular file that follows a member of the same
name replaces it (respaldo reads a file again when it changed while read): it is
counted once, with its own time. Unlike ``tar_filter``, modes are restored exactly
(group-writable upload directories stay group-writable), and, when running as root,
owners too (by name, falling back to the numeric id).
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from respaldo.errors import SourceError, UnsafePath
from respaldo.files.tree import SPARSE

if TYPE_CHECKING:
    from _typeshed import StrOrBytesPath


@dataclass
class ExtractStats:
    files: int = 0
    directories: int = 0
    symlinks: int = 0
    file_bytes: int = 0


class _IterReader(io.RawIOBase):
    """A read-only file over an iterator of byte pieces."""

    def __init__(self, pieces: Iterable[bytes]) -> None:
        self._pieces: Iterator[bytes] = iter(pieces)
        self._head = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        while not self._head:
            piece = next(self._pieces, None)
            if piece is None:
                return 0
            self._head = memoryview(piece)
        view = memoryview(buffer).cast("B")
        n = min(len(view), len(self._head))
        view[:n] = self._head[:n]
        self._head = self._head[n:]
        return n


HOLE = 64 * 1024
"""A whole block of zeros this long, at a multiple of it, is a hole in a sparse file."""
_ZEROS = bytes(HOLE)

PART_PREFIX = ".respaldo-part-"
"""Files are written under ``.respaldo-part-<random>`` in their directory, then renamed."""


class _WholeFilesTarFile(tarfile.TarFile):
    """A TarFile whose regular files appear under their names only once complete.

    ``makefile`` is the one place tarfile writes a file's contents (its caller then sets
    owner, mode and times on the final name): a restore killed half-way through a file
    leaves a temporary ``.respaldo-part-*`` file, never a truncated one under the real
    name.
    """

    def makefile(self, tarinfo: tarfile.TarInfo, targetpath: StrOrBytesPath) -> None:
        final = Path(os.fsdecode(targetpath))
        part = final.parent / (PART_PREFIX + secrets.token_hex(8))
        try:
            if tarinfo.pax_headers.get(SPARSE) == "1" and tarinfo.sparse is None:
                self._make_sparse(tarinfo, part)
            else:
                super().makefile(tarinfo, str(part))
            size = part.lstat().st_size
            if size != tarinfo.size:
                raise tarfile.ReadError(f"{tarinfo.name}: {size} bytes of {tarinfo.size}")
            part.replace(final)
        except BaseException:
            with contextlib.suppress(OSError):
                part.unlink()
            raise

    def _make_sparse(self, tarinfo: tarfile.TarInfo, path: Path) -> None:
        """Write a file that had holes: its whole blocks of zeros are skipped, not
        written, so it takes about the disk it took (and a restore fits where the
        original did). Its contents read the same."""
        source = self.fileobj
        source.seek(tarinfo.offset_data)
        left = tarinfo.size
        with path.open("wb") as target:
            while left:
                n = min(HOLE, left)
                block = source.read(n)
                if len(block) != n:
                    raise tarfile.ReadError("unexpected end of data")
                if block == _ZEROS[:n]:
                    target.seek(n, os.SEEK_CUR)
                else:
                    target.write(block)
                left -= n
            target.truncate(tarinfo.size)

    # tarfile only logs a file it could not give its owner, mode or time (errorlevel
    # 1) and the restore went on to call itself done: a restore must not say so when
    # what it wrote differs from what was backed up.

    def chown(
        self, tarinfo: tarfile.TarInfo, targetpath: StrOrBytesPath, numeric_owner: bool
    ) -> None:
        try:
            super().chown(tarinfo, targetpath, numeric_owner)
        except tarfile.ExtractError as exc:
            owner = f"{tarinfo.uname or tarinfo.uid}:{tarinfo.gname or tarinfo.gid}"
            raise SourceError(
                f"cannot give {tarinfo.name!r} its owner {owner}: {_cause(exc)}",
                hint="restore as root with the right to change owners (not in a container "
                "without CAP_CHOWN, not onto a share that maps root to nobody), or as "
                "another user: its files are then its own",
            ) from exc

    def chmod(self, tarinfo: tarfile.TarInfo, targetpath: StrOrBytesPath) -> None:
        try:
            super().chmod(tarinfo, targetpath)
        except tarfile.ExtractError as exc:
            raise SourceError(
                f"cannot give {tarinfo.name!r} its mode {tarinfo.mode:04o}: {_cause(exc)}",
                hint="restore onto a filesystem that keeps POSIX modes",
            ) from exc

    def utime(self, tarinfo: tarfile.TarInfo, targetpath: StrOrBytesPath) -> None:
        """The member's time to the nanosecond (its pax ``mtime``), where tarfile sets a
        float (which loses them, and sometimes a microsecond). tarfile calls this for a
        file as it is extracted, and for a directory at the end, deepest first, each
        just before giving it its mode: so a directory restored as 0000 never stands
        in the way of setting the times below it."""
        exact = tarinfo.pax_headers.get("mtime")
        mtime_ns = _mtime_ns(exact) if exact is not None else int(tarinfo.mtime) * 1_000_000_000
        try:
            os.utime(targetpath, ns=(mtime_ns, mtime_ns))
        except OSError as exc:
            raise SourceError(
                f"cannot give {tarinfo.name!r} its modification time: {exc.strerror}",
                hint="restore onto a filesystem that keeps modification times",
            ) from exc


def _safe(stats: ExtractStats) -> Callable[[tarfile.TarInfo, str], tarfile.TarInfo]:
    previous: list[tarfile.TarInfo] = []  # the member before this one

    def check(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
        parts = member.name.split("/")
        if member.name.startswith("/") or ".." in parts:
            raise UnsafePath(f"refusing to extract {member.name!r}: it leaves the target")
        if member.islnk() or member.isdev() or member.isfifo():
            raise UnsafePath(
                f"refusing to extract {member.name!r}: a {_kind(member)} "
                "(respaldo never backs those up)"
            )
        checked = _contained(member, dest)
        last = previous.pop() if previous else None
        previous.append(member)
        if member.isreg() and last is not None and last.isreg() and last.name == member.name:
            # A second read of a file that changed while read: it replaces the first.
            stats.files -= 1
            stats.file_bytes -= last.size
        if member.isdir():
            stats.directories += 1
        elif member.issym():
            stats.symlinks += 1
        else:
            stats.files += 1
            stats.file_bytes += member.size
        return checked if checked is member else checked.replace(mode=member.mode, deep=False)

    return check


# PEP 706's extraction filters came with Python 3.11.4; Debian 12's python3 is 3.11.2, and
# respaldo must restore files there too (it is what `make install` uses).
_HAS_FILTERS = hasattr(tarfile, "tar_filter")


def _contained(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """``tarfile.tar_filter``'s refusal of a member that would land outside ``dest``,
    following the links extracted so far; where tarfile has no filters, the same check
    by the same rule (real paths). Returns the member to extract (modes aside)."""
    if _HAS_FILTERS:
        try:
            return tarfile.tar_filter(member, dest)
        except tarfile.FilterError as exc:
            raise UnsafePath(f"refusing to extract {member.name!r}: {exc}") from None
    root = os.path.realpath(dest)
    landing = os.path.realpath(Path(root, member.name))
    if os.path.commonpath([root, landing]) != root:
        raise UnsafePath(
            f"refusing to extract {member.name!r}: it would be extracted to {landing!r}, "
            "which is outside the destination"
        )
    return member


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return str(cause or exc)


def _kind(member: tarfile.TarInfo) -> str:
    if member.islnk():
        return "hard link"
    if member.isfifo():
        return "FIFO"
    return "device file"


def extract_tar(pieces: Iterable[bytes], target: Path) -> ExtractStats:
    """Extract the tar whose bytes are ``pieces`` into the directory ``target``.

    Raises UnsafePath at the first member that would escape or is of a refused kind
    (what was extracted before it stays: the caller, which made sure ``target`` was
    empty, removes it), SourceError for a member it cannot give its owner (as root),
    mode or time, tarfile.TarError for an archive that is not one, and whatever
    ``pieces`` raises, up to its very end (it is always read to its end).
    """
    stats = ExtractStats()
    reader = io.BufferedReader(_IterReader(pieces), buffer_size=1024 * 1024)
    with _WholeFilesTarFile.open(fileobj=reader, mode="r|") as tar:
        # Every member passes _safe, which refuses whatever would leave the target.
        safe = _safe(stats)
        if _HAS_FILTERS:
            tar.extractall(target, filter=safe)  # noqa: S202
        else:
            # Each member is checked as it is read, before it is extracted, as the filter
            # would be: the stream is read once, in order.
            tar.extractall(target, members=(safe(m, str(target)) for m in tar))  # noqa: S202
    # tarfile stops at the end-of-archive blocks, which may be before the last piece
    # was asked for: read to the end, so that whatever checks the pieces at their end
    # (the stream's size and SHA-256) has run before the restore counts as done.
    while reader.read(1024 * 1024):
        pass
    return stats


def _mtime_ns(text: str) -> int:
    """A pax ``mtime`` ("seconds.fraction") as integer nanoseconds, without a float."""
    seconds, _, fraction = text.partition(".")
    sign = -1 if seconds.startswith("-") else 1
    return int(seconds) * 1_000_000_000 + sign * int((fraction + "000000000")[:9])

"""Writing node_exporter's textfile: all of the new file or none of it, never half.

node_exporter's textfile collector reads every ``*.prom`` file of its directory at each
scrape, whenever that is. The new text goes to a hidden temporary file in the same
directory (so that the rename stays within one file system and its name does not end in
``.prom``), is flushed to disk, and is renamed over the target: a reader sees the old
file or the new one. A writer killed half-way leaves only its temporary file, which the
next write removes.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from respaldo.errors import InvalidInput, TextfileNotWritten
from respaldo.processes import pid_alive

_SUFFIX = ".tmp"


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` (mode 0644: node_exporter runs as another user).

    Raises InvalidInput for a name node_exporter would not read (not ``*.prom``), and
    TextfileNotWritten when the directory is missing or not writable, or the write
    fails (disk full); ``path`` is then as it was.
    """
    if path.suffix != ".prom":
        raise InvalidInput(
            "textfile",
            f"{path.name} does not end in .prom: node_exporter's textfile collector reads "
            "only *.prom files",
        )
    directory = path.parent
    if not directory.is_dir():
        raise TextfileNotWritten(
            f"cannot write {path}: the directory {directory} does not exist",
            hint="create it, or give a file in node_exporter's --collector.textfile.directory",
        )
    _sweep(directory, path.name)
    temporary = directory / f".{path.name}.{os.getpid()}{_SUFFIX}"
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.fchmod(fd, 0o644)  # whatever the umask: the exporter must read it
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        temporary.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise _not_written(path, exc) from None
    _sync_directory(directory)


def _not_written(path: Path, exc: OSError) -> TextfileNotWritten:
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return TextfileNotWritten(
            f"cannot write {path}: {exc.strerror.lower() if exc.strerror else exc} "
            f"in {path.parent}",
            hint="run 'respaldo metrics' as a user that may write there (the file itself "
            "needs only to be readable by node_exporter)",
        )
    reason = exc.strerror or str(exc)
    return TextfileNotWritten(
        f"cannot write {path}: {reason}", hint="the previous file, if any, is unchanged"
    )


def _sweep(directory: Path, name: str) -> None:
    """Remove the temporary files that writers of ``name`` killed half-way left."""
    prefix = f".{name}."
    for leftover in directory.glob(f"{_glob_escape(prefix)}*{_SUFFIX}"):
        pid = leftover.name[len(prefix) : -len(_SUFFIX)]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            with contextlib.suppress(OSError):
                leftover.unlink()


def _glob_escape(text: str) -> str:
    """``text`` with the characters glob treats specially matched literally."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _sync_directory(directory: Path) -> None:
    # The rename is durable once the directory is flushed; a file system that cannot
    # fsync a directory (some network ones) still has the rename, so it is not an error.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

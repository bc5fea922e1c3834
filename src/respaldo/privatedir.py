"""Private per-process working directories, and the sweep that removes those of dead ones.

Passfiles (the database password, for a PostgreSQL program) and the spool of
``restore --jobs`` (a plaintext dump) live in a directory that respaldo creates for
them and removes when they are no longer needed. A process killed with SIGKILL cannot
remove anything, so the directory names its owner: ``respaldo-<purpose>-<pid>-<start>-
<random>``, where ``<start>`` is the process's start time (in clock ticks since boot,
from ``/proc``; ``0`` where there is no ``/proc``), which tells a dead owner from a new
process that got the same pid. The first time a process creates such a directory in a
parent directory, it removes the ones there whose owner is gone: same user, same
machine (the start time is only meaningful on the machine it was read on; a directory
shared between machines would be swept by each of them, which is why only pid and start
time together count as alive). A process that runs for months (``respaldo serve``) sweeps
each parent again when it creates a directory there more than :data:`SWEEP_AGAIN_SECONDS`
after its last sweep: a command killed while it ran (say ``respaldo backup`` by hand,
killed with SIGKILL) left its passfile directory, the database password in it, until
some other respaldo process started, which on a machine where only the service runs
was never.

Directories are 0700 (``mkdtemp``), so only their owner and root can read what is in
them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from respaldo.processes import pid_alive

log = logging.getLogger(__name__)

PREFIX = "respaldo-"
_NAME = re.compile(r"^respaldo-([a-z]+)-(\d+)-(\d+)-[^/]+$")
SWEEP_AGAIN_SECONDS = 3600.0
"""How long a process goes on creating private directories in a parent before it sweeps
that parent again (measured on the monotonic clock)."""
_swept: dict[Path, float] = {}
_swept_lock = threading.Lock()


def process_start(pid: int) -> int | None:
    """The start time of process ``pid`` (clock ticks since boot), or None if it is gone.

    Returns 0 where ``/proc`` cannot tell (the pid is then only checked for existence).
    """
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return 0 if pid_alive(pid) else None
    # The command name (field 2) is in parentheses and may hold spaces or parentheses.
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[19])  # field 22 of proc(5), the 20th after the command name


def owner_alive(pid: int, start: int) -> bool:
    """Whether the process that was ``pid`` started at ``start`` still runs."""
    now = process_start(pid)
    if now is None:
        return False
    return start == 0 or now == 0 or now == start


_this: tuple[int, int] | None = None


def this_process() -> tuple[int, int]:
    """(pid, start time) of this process, as written into directory names and markers."""
    global _this
    pid = os.getpid()
    if _this is None or _this[0] != pid:  # read once, again after a fork
        _this = (pid, process_start(pid) or 0)
    return _this


def sweep(parent: Path) -> list[Path]:
    """Remove the private directories in ``parent`` whose owner process is gone.

    Only directories of this user, named as :func:`private_dir` names them, are
    considered. Returns the ones removed; never raises.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    uid = os.geteuid()
    for entry in entries:
        match = _NAME.match(entry.name)
        if match is None:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not entry.is_dir(follow_symlinks=False) or st.st_uid != uid:
            continue
        if owner_alive(int(match.group(2)), int(match.group(3))):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        if not os.path.lexists(entry.path):
            log.info("removed %s, left by a respaldo process that is gone", entry.path)
            removed.append(Path(entry.path))
    return removed


def private_dir(purpose: str, parent: Path | None = None) -> Path:
    """Create a fresh 0700 directory for this process in ``parent`` (default: the
    system's temporary directory) and return it; the caller removes it.

    The first call for a parent directory sweeps it first (:func:`sweep`), and so does
    the first call after :data:`SWEEP_AGAIN_SECONDS`. ``purpose`` is a lowercase word
    (``pgpass``, ``spool``) that names the directory.
    """
    if not re.fullmatch(r"[a-z]+", purpose):
        raise ValueError(f"purpose must be a lowercase word, not {purpose!r}")
    base = Path(tempfile.gettempdir() if parent is None else parent).absolute()
    now = time.monotonic()
    with _swept_lock:
        last = _swept.get(base)
        due = last is None or now - last >= SWEEP_AGAIN_SECONDS
        if due:
            _swept[base] = now
    if due:
        sweep(base)
    pid, start = this_process()
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{purpose}-{pid}-{start}-", dir=base))


@contextlib.contextmanager
def private_directory(purpose: str, parent: Path | None = None) -> Iterator[Path]:
    """:func:`private_dir` as a context: the directory is removed when the block ends."""
    path = private_dir(purpose, parent)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)

"""The archive command's side of asynchronous WAL archiving (``wal-push --async``).

It waits for the verdict of the background pusher (:mod:`respaldo.operations.wal_async`)
on one file, in the server's directory of the spool (:func:`server_spool`):
``<file>.ok`` (archived) or ``<file>.error`` (why not), and starts the pusher when none
runs for that server (a detached process: double fork, its own session, output to that
directory's ``pusher.log``). The server runs this once per WAL file, so it imports
nothing beyond the standard library unless it must find the default spool in the
settings; the pusher itself imports the rest.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ASYNC_TIMEOUT = 60.0
"""Seconds ``wal-push --async`` waits for its file before failing (the server retries)."""
ALERT_BACKLOG = 64
"""Files waiting in the server's archive queue above which archiving counts as behind."""


@dataclass(frozen=True)
class AsyncPushResult:
    """The pusher's verdict on one file. ``error`` is None when it is archived; ``backlog``
    is the number of files waiting in the server's queue, ``behind`` whether that is more
    than the alert threshold."""

    error: str | None
    backlog: int
    behind: bool

    @property
    def ok(self) -> bool:
        return self.error is None


def file_identity(path: Path) -> str:
    """Which file ``path`` is now: its device, inode, size and modification time. An
    ``.ok`` verdict carries the identity of the file its pusher pushed: a server
    re-created at the same data directory (a new ``initdb``: the same ``pg_wal``, so the
    same spool directory) names its segments as the old one did, and a verdict its
    archiver never took (the pusher works ahead of it; the old server died first) was
    taken for the new server's file of that name, which was then recycled unstored.
    Raises OSError."""
    st = path.stat()
    return f"file={st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def _verdict_of(ok: Path, path: Path) -> bool:
    """Whether the ``.ok`` verdict ``ok`` is of the file at ``path`` (one without an
    identity, from an older pusher, is taken as before). A verdict of another file is
    removed, so that the pusher pushes this one."""
    words = ok.read_text().split()
    said = next((w for w in words if w.startswith("file=")), None)
    if said is None or said == file_identity(path):
        return True
    ok.unlink()
    return False


def default_spool(config: Path | None) -> Path:
    """The spool of the settings' cache directory (loads the settings)."""
    from respaldo.config import load_settings

    return load_settings(config, check_urls=False).cache_dir / "wal-spool"


def server_spool(spool: Path, pg_wal: Path) -> Path:
    """The directory of ``spool`` that holds the verdicts, lock and log of the server whose
    WAL directory is ``pg_wal`` (``server-`` and 16 hex digits of a hash of its real path).

    A spool is often shared: several servers archive with one config (its default spool)
    or the same ``--spool``. Verdicts are named after the WAL file, and two clusters at
    similar WAL positions name their segments alike: in one directory, a server's archive
    command took the other's ``<file>.ok`` for its own file, and the server recycled a
    segment that was never stored."""
    real = os.fsencode(os.path.realpath(pg_wal))
    return spool / f"server-{hashlib.sha256(real).hexdigest()[:16]}"


def push_async(
    config: Path | None,
    path: Path,
    *,
    database: str | None = None,
    spool: Path | None = None,
    timeout: float = ASYNC_TIMEOUT,
    workers: int = 4,
    alert_backlog: int = ALERT_BACKLOG,
) -> AsyncPushResult:
    """Wait up to ``timeout`` seconds for the pusher's verdict on WAL file ``path``,
    starting the pusher (with ``config``, ``database``, ``workers``) when none runs.

    Each verdict is consumed (its status file removed): the server asks once per
    attempt. A file not archived in time is an error the server retries. Raises
    OSError when the spool cannot be made, and what loading the settings raises when
    ``spool`` is None.
    """
    if spool is None:
        spool = default_spool(config)
    pg_wal = path.absolute().parent
    spool.mkdir(mode=0o700, parents=True, exist_ok=True)
    spool = server_spool(spool, pg_wal)
    spool.mkdir(mode=0o700, exist_ok=True)
    ok, error = spool / f"{path.name}.ok", spool / f"{path.name}.error"
    backlog = _backlog(pg_wal)
    behind = backlog > alert_backlog
    deadline = time.monotonic() + timeout
    next_check = 0.0
    while True:
        if ok.exists() and _verdict_of(ok, path):
            ok.unlink()
            return AsyncPushResult(None, backlog, behind)
        if error.exists():
            message = error.read_text().strip()
            error.unlink()
            return AsyncPushResult(message, backlog, behind)
        now = time.monotonic()
        if now > deadline:
            return AsyncPushResult(f"{path.name} is not archived yet; retry", backlog, behind)
        if now >= next_check:
            next_check = now + 1.0
            if not _pusher_running(spool):
                _start_pusher(
                    {
                        "config": config.absolute() if config is not None else None,
                        "pg_wal": pg_wal,
                        "spool": spool,
                        "database": database,
                        "workers": workers,
                        "alert_backlog": alert_backlog,
                    }
                )
        # Polling: the verdict is a file another process writes; 10 ms keeps the
        # archive command's latency low at no measurable cost.
        time.sleep(0.01)


def _backlog(pg_wal: Path) -> int:
    try:
        with os.scandir(pg_wal / "archive_status") as queue:
            return sum(entry.name.endswith(".ready") for entry in queue)
    except OSError:
        return 0


def _pusher_running(spool: Path) -> bool:
    fd = os.open(spool / "pusher.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases the lock if we got it
    return False


def _start_pusher(options: dict[str, Any]) -> None:
    """Fork a detached pusher (double fork, own session, output to the spool's log)."""
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    code = 1
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        spool: Path = options["spool"]
        log_fd = os.open(spool / "pusher.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        null_fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null_fd, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        logging.basicConfig(
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
            force=True,
        )
        from respaldo.operations.wal_async import PusherOptions, run_pusher

        code = run_pusher(PusherOptions(**options))
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)

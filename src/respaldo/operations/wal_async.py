"""Asynchronous WAL archiving: one long-lived pusher ahead of the server's archiver.

The server archives one file at a time, starting ``archive_command`` for each and
waiting for it. A respaldo process costs most of a second before it pushes anything
(interpreter, imports, the passphrase's key derivation), so a busy server can produce
WAL faster than one process per file archives it. ``wal-push --async`` (as pgBackRest's
asynchronous archive-push) therefore only looks in a *spool* directory for the outcome
of its file, and makes sure a *pusher* runs: a process started on demand that opens the
repository once, reads the server's queue (``pg_wal/archive_status/*.ready``), pushes
the files in it several at a time, in order, and records each outcome in the spool
(``<file>.ok`` or ``<file>.error``). The archive command returns success only once its
file's ``.ok`` exists, i.e. once the file is in the repository: a file is never
reported archived while it exists only on the server's disk.

Bounds and alerts. The pusher works at most ``lookahead`` files ahead (memory: one
segment per worker), the spool holds only small status files, and it exits after
``idle_exit`` seconds without work. When more than ``alert_backlog`` files wait in the
server's queue, an error is logged (to the pusher's log and, by each archive command,
to the server's log): archiving is falling behind and ``pg_wal`` is growing.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from respaldo.config import load_settings
from respaldo.operations.wal import open_wal_repository, push_wal
from respaldo.operations.wal_async_client import file_identity

log = logging.getLogger(__name__)

LOCK_NAME = "pusher.lock"
LOG_NAME = "pusher.log"
STATUS_MAX_AGE = 600.0


@dataclass(frozen=True)
class PusherOptions:
    config: Path | None
    pg_wal: Path
    spool: Path
    database: str | None = None
    workers: int = 4
    lookahead: int = 32
    idle_exit: float = 10.0
    alert_backlog: int = 64


def status_paths(spool: Path, name: str) -> tuple[Path, Path]:
    """(``.ok``, ``.error``) status files of WAL file ``name``."""
    return spool / f"{name}.ok", spool / f"{name}.error"


def ready_files(pg_wal: Path) -> list[str]:
    """The server's archive queue: files it has marked ready, oldest first."""
    try:
        with os.scandir(pg_wal / "archive_status") as entries:
            names = [entry.name for entry in entries]
    except FileNotFoundError:
        return []
    return sorted(n[: -len(".ready")] for n in names if n.endswith(".ready"))


def _write_status(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)


@contextlib.contextmanager
def pusher_lock(spool: Path) -> Iterator[bool]:
    """Yield whether this process holds the pusher lock of ``spool`` (one pusher each)."""
    spool.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(spool / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def run_pusher(options: PusherOptions) -> int:
    """Push the server's ready WAL files until idle; returns an exit status.

    Returns at once (0) if another pusher holds the spool's lock. Every failure of one
    file is written to its ``.error`` for the archive command to report; the pusher
    tries it again once the archive command has consumed that report.
    """
    with pusher_lock(options.spool) as mine:
        if not mine:
            return 0
        settings = load_settings(options.config, check_urls=False)
        repo = open_wal_repository(settings)
        idle_since = time.monotonic()
        last_alert = 0.0
        with ThreadPoolExecutor(options.workers, thread_name_prefix="wal-push") as pool:

            def push_one(name: str) -> None:
                ok, error = status_paths(options.spool, name)
                path = options.pg_wal / name
                try:
                    # Which file was pushed, read before it is: see file_identity.
                    identity = file_identity(path)
                    result = push_wal(settings, path, database=options.database, repo=repo)
                except Exception as exc:
                    log.error("pushing %s failed: %s", name, exc)
                    _write_status(error, f"{exc}\n")
                    return
                _write_status(ok, f"{result.outcome.value} {result.object} {identity}\n")

            inflight: dict[str, Future[None]] = {}
            while True:
                inflight = {n: f for n, f in inflight.items() if not f.done()}
                ready = ready_files(options.pg_wal)
                if len(ready) > options.alert_backlog and time.monotonic() - last_alert > 60:
                    last_alert = time.monotonic()
                    log.error(
                        "WAL archiving is behind: %d files wait in %s", len(ready), options.pg_wal
                    )
                # Oldest first: the server's archiver waits for the oldest.
                todo = [
                    name
                    for name in ready[: options.lookahead]
                    if name not in inflight
                    and not any(p.exists() for p in status_paths(options.spool, name))
                ]
                for name in todo[: max(0, 2 * options.workers - len(inflight))]:
                    if any(n.endswith(".history") for n in inflight):
                        # A timeline's history file is queued before its segments (it
                        # sorts first) and must be archived before them: wal-push checks
                        # the timeline's first segment against it.
                        break
                    inflight[name] = pool.submit(push_one, name)
                if inflight or todo:
                    idle_since = time.monotonic()
                else:
                    _forget_old(options.spool, set(ready))
                    if time.monotonic() - idle_since > options.idle_exit:
                        return 0
                if inflight:
                    wait(inflight.values(), timeout=0.1, return_when=FIRST_COMPLETED)
                else:
                    time.sleep(0.1)


def _forget_old(spool: Path, ready: set[str]) -> None:
    """Remove status files nobody will read: their file left the queue long ago."""
    now = time.time()
    with os.scandir(spool) as entries:
        found = list(entries)
    for entry in found:
        name, _, suffix = entry.name.rpartition(".")
        if suffix in ("ok", "error") and name not in ready:
            with contextlib.suppress(OSError):
                if now - entry.stat().st_mtime > STATUS_MAX_AGE:
                    Path(entry.path).unlink()

"""``wal-push`` and ``wal-fetch`` without the rest of the CLI: what the server runs per file.

The server starts one process per WAL file, so start-up is most of the cost: the full
Typer application imports every command (SQLAlchemy and Alembic among them) for about
1.5 s. :mod:`respaldo.cli.entry` sends these two commands here instead, where argparse
parses them and only settings, the repository and the WAL module are imported. The
Typer commands of the same names (:mod:`respaldo.cli.wal_cmd`, for ``--help`` and for
tests calling the CLI in-process) call the same functions.

Exit status, as the server reads it:

- ``wal-push``: 0 archived (or archived already with the same content); 1 anything
  else (the server keeps the file and retries later).
- ``wal-push --async``: the same, decided by the background pusher
  (:mod:`respaldo.operations.wal_async`); this process only waits for its verdict, so it
  imports nothing beyond the standard library when ``--spool`` is given.
- ``wal-fetch``: 0 fetched; 1 not in the archive (the normal end of recovery); 255
  for every other failure (repository unreachable, damaged object, wrong passphrase,
  bad arguments). A status above 125 makes the server stop recovery instead of taking
  the failure for "no more WAL" and ending recovery early, which would lose the WAL
  that the failed fetches did not bring back.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_FETCH_FATAL = 255
ASYNC_TIMEOUT = 60.0
"""Seconds ``wal-push --async`` waits for its file before failing (the server retries)."""
ALERT_BACKLOG = 64
"""Files waiting in the server's archive queue above which archiving counts as behind."""


def _report(exc: BaseException) -> None:
    from respaldo.errors import RespaldoError

    if isinstance(exc, RespaldoError):
        sys.stderr.write(f"respaldo: error: {exc}\n")
        if exc.hint:
            sys.stderr.write(f"respaldo: hint: {exc.hint}\n")
    else:
        sys.stderr.write(f"respaldo: error: {type(exc).__name__}: {exc}\n")


def push_command(
    config: Path | None, path: Path, *, database: str | None, verbose: bool = False
) -> int:
    """Run ``wal-push``; returns the exit status (messages go to stderr)."""
    try:
        from respaldo.config import load_settings
        from respaldo.operations.wal import push_wal

        result = push_wal(load_settings(config), path, database=database)
    except KeyboardInterrupt:
        sys.stderr.write("respaldo: interrupted\n")
        return 1
    except Exception as exc:
        _report(exc)
        return 1
    if verbose:
        sys.stderr.write(
            f"respaldo: {result.file} {result.outcome.value} as {result.object} "
            f"({result.size} bytes, {result.seconds:.3f} s)\n"
        )
    return 0


def fetch_command(
    config: Path | None,
    file: str,
    destination: Path,
    *,
    system_id: str | None,
    database: str | None,
    verbose: bool = False,
) -> int:
    """Run ``wal-fetch``; returns the exit status (see the module docstring)."""
    try:
        from respaldo.config import load_settings
        from respaldo.errors import WalNotFound
        from respaldo.operations.wal import fetch_wal

        try:
            result = fetch_wal(
                load_settings(config),
                file,
                destination,
                system_id=system_id,
                database=database,
            )
        except WalNotFound as exc:
            sys.stderr.write(f"respaldo: {exc}\n")
            return 1
    except BaseException as exc:  # every failure must stop recovery, not end it
        _report(exc)
        return EXIT_FETCH_FATAL
    if verbose:
        sys.stderr.write(
            f"respaldo: fetched {result.object} ({result.size} bytes, {result.seconds:.3f} s)\n"
        )
    return 0


def _pusher_running(spool: Path) -> bool:
    import fcntl

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


def push_async_command(
    config: Path | None,
    path: Path,
    *,
    database: str | None,
    spool: Path | None,
    timeout: float,
    workers: int,
    alert_backlog: int,
) -> int:
    """``wal-push --async``: wait for the pusher to have archived ``path`` (see
    :mod:`respaldo.operations.wal_async`); start it if it is not running."""
    try:
        if spool is None:
            from respaldo.config import load_settings

            spool = load_settings(config).cache_dir / "wal-spool"
        spool.mkdir(mode=0o700, parents=True, exist_ok=True)
        pg_wal = path.absolute().parent
        ok, error = spool / f"{path.name}.ok", spool / f"{path.name}.error"
        try:
            with os.scandir(pg_wal / "archive_status") as queue:
                waiting = sum(entry.name.endswith(".ready") for entry in queue)
        except OSError:
            waiting = 0
        if waiting > alert_backlog:
            sys.stderr.write(
                f"respaldo: error: WAL archiving is behind: {waiting} files wait in {pg_wal}\n"
            )
        deadline = time.monotonic() + timeout
        next_check = 0.0
        while True:
            if ok.exists():
                ok.unlink()
                return 0
            if error.exists():
                message = error.read_text().strip()
                error.unlink()
                sys.stderr.write(f"respaldo: error: {message}\n")
                return 1
            now = time.monotonic()
            if now > deadline:
                sys.stderr.write(f"respaldo: error: {path.name} is not archived yet; retry\n")
                return 1
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
            time.sleep(0.01)
    except Exception as exc:
        _report(exc)
        return 1


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so wal-fetch can pick its status."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ValueError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="respaldo", add_help=False)
    parser.add_argument("--config", "-c", type=Path)
    parser.add_argument("--verbose", "-v", action="store_true")
    commands = parser.add_subparsers(dest="command", required=True)
    push = commands.add_parser("wal-push", add_help=False)
    push.add_argument("path", type=Path)
    push.add_argument("--database", "-d")
    push.add_argument("--async", dest="async_", action="store_true")
    push.add_argument("--spool", type=Path)
    push.add_argument("--timeout", type=float, default=ASYNC_TIMEOUT)
    push.add_argument("--workers", type=int, default=4)
    push.add_argument("--alert-backlog", type=int, default=ALERT_BACKLOG)
    fetch = commands.add_parser("wal-fetch", add_help=False)
    fetch.add_argument("file")
    fetch.add_argument("destination", type=Path)
    fetch.add_argument("--system-id")
    fetch.add_argument("--database", "-d")
    return parser


def main(argv: Sequence[str]) -> int:
    """Parse ``argv`` (without the program name) and run the WAL command it names."""
    fetching = "wal-fetch" in argv
    try:
        args = _parser().parse_args(list(argv))
    except ValueError as exc:
        sys.stderr.write(f"respaldo: usage error: {exc}\n")
        return EXIT_FETCH_FATAL if fetching else 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "wal-push" and args.async_:
        return push_async_command(
            args.config,
            args.path,
            database=args.database,
            spool=args.spool,
            timeout=args.timeout,
            workers=args.workers,
            alert_backlog=args.alert_backlog,
        )
    if args.command == "wal-push":
        return push_command(args.config, args.path, database=args.database, verbose=args.verbose)
    return fetch_command(
        args.config,
        args.file,
        args.destination,
        system_id=args.system_id,
        database=args.database,
        verbose=args.verbose,
    )

"""``wal-push`` and ``wal-fetch`` without the rest of the CLI: what the server runs per file.

The server starts one process per WAL file, so start-up is most of the cost: the full
Typer application imports every command (SQLAlchemy and Alembic among them) for about
1.5 s. :mod:`respaldo.cli.entry` sends these two commands here instead, where argparse
parses them and only the few settings they use (read without pydantic:
:mod:`respaldo.config_core`), the repository and the WAL module are imported. The
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
  bad arguments, a segment missing before archived ones: a hole, not the end). A
  status above 125 makes the server stop recovery instead of taking the failure for "no
  more WAL" and ending recovery early, which would lose the WAL that the failed fetches
  did not bring back.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from respaldo.operations.wal_async_client import ALERT_BACKLOG, ASYNC_TIMEOUT

EXIT_FETCH_FATAL = 255


def _report(exc: BaseException) -> None:
    from respaldo.errors import RespaldoError

    if isinstance(exc, RespaldoError):
        message, hint = exc.rendered(lambda field: "--" + field.replace("_", "-"))
        sys.stderr.write(f"respaldo: error: {message}\n")
        if hint:
            sys.stderr.write(f"respaldo: hint: {hint}\n")
    else:
        sys.stderr.write(f"respaldo: error: {type(exc).__name__}: {exc}\n")


def push_command(
    config: Path | None, path: Path, *, database: str | None, verbose: bool = False
) -> int:
    """Run ``wal-push``; returns the exit status (messages go to stderr)."""
    try:
        from respaldo.config_core import load_wal_settings
        from respaldo.operations.wal import push_wal

        result = push_wal(load_wal_settings(config), path, database=database)
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
    repository: str | None = None,
    primary_first: bool = False,
    verbose: bool = False,
) -> int:
    """Run ``wal-fetch``; returns the exit status (see the module docstring)."""
    try:
        from respaldo.config_core import load_wal_settings
        from respaldo.errors import WalNotFound
        from respaldo.operations.wal import fetch_wal

        try:
            result = fetch_wal(
                load_wal_settings(config),
                file,
                destination,
                system_id=system_id,
                database=database,
                repository=repository,
                primary_first=primary_first,
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
    """``wal-push --async``: wait for the background pusher's verdict on ``path`` (see
    :mod:`respaldo.operations.wal_async_client`); returns the exit status."""
    try:
        from respaldo.operations.wal_async_client import push_async

        result = push_async(
            config,
            path,
            database=database,
            spool=spool,
            timeout=timeout,
            workers=workers,
            alert_backlog=alert_backlog,
        )
    except Exception as exc:
        _report(exc)
        return 1
    if result.behind:
        # Imported here, not above: the archive_command's path imports as little as it can.
        from respaldo.phrases import counted

        waiting = counted(result.backlog, "{count} file waits", "{count} files wait")
        sys.stderr.write(
            f"respaldo: error: WAL archiving is behind: {waiting} in {path.absolute().parent}\n"
        )
    if result.error is not None:
        sys.stderr.write(f"respaldo: error: {result.error}\n")
        return 1
    return 0


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
    fetch.add_argument("--repository")
    fetch.add_argument("--primary-first", action="store_true")
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
        repository=args.repository,
        primary_first=args.primary_first,
        verbose=args.verbose,
    )

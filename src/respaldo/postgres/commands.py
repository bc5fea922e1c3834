"""Typed wrappers for the PostgreSQL client programs: argument lists only, never a shell.

Each wrapper builds an argument list, hands the connection to the child through
:func:`~respaldo.postgres.connection.child_connection` (the password never in argv) and
returns either a :class:`RunningCommand` (for streams: the caller reads pg_dump's stdout or
writes pg_restore's stdin) or a :class:`CompletedCommand` (psql).

Every child gets ``--no-password``: a missing password is an error at once, never a prompt
that hangs an unattended backup. The last 64 KiB of the child's stderr are kept, scrubbed
of the password, and become the text of :class:`~respaldo.errors.PostgresError` when it
exits with a non-zero status.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Literal, Protocol

from psycopg.conninfo import make_conninfo

from respaldo import cancellation
from respaldo.childenv import base_environment
from respaldo.errors import PostgresError, ToolNotFound
from respaldo.postgres.connection import ChildConnection, ConnInfo, child_connection, scrub

log = logging.getLogger(__name__)

PIPE_SIZE = 1024 * 1024
"""What :func:`widen_pipe` asks for: Linux's default pipe is 64 KiB, and 1 MiB is the
most an unprivileged process may ask for by default (/proc/sys/fs/pipe-max-size)."""


def widen_pipe(fd: int, size: int = PIPE_SIZE) -> int:
    """Ask for a pipe buffer of ``size`` bytes on the pipe ``fd``; returns the size it
    has. Best effort: where the system refuses (a lower pipe-max-size, a user over its
    pipe quota, not Linux), the pipe keeps its size and only the speed differs."""
    setter = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setter is None:
        return 0
    try:
        return int(fcntl.fcntl(fd, setter, size))
    except OSError:
        return int(fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ))


STDERR_LIMIT = 64 * 1024
"""How much of a child's stderr is kept: its end, where the error is."""

_DEBIAN_ROOT = Path("/usr/lib/postgresql")
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
_ANY_VERSION = re.compile(r"(\d+)(?:\.(\d+))?")

PasswordMethod = Literal["passfile", "env"]


# --- finding the programs ----------------------------------------------------------------


def _newest_debian_bindir() -> Path | None:
    candidates: list[tuple[int, Path]] = []
    for bindir in _DEBIAN_ROOT.glob("*/bin"):
        if bindir.parent.name.isdigit() and (bindir / "pg_dump").is_file():
            candidates.append((int(bindir.parent.name), bindir))
    return max(candidates)[1] if candidates else None


def find_bindir(configured: Path | str | None = None) -> Path:
    """The directory of the PostgreSQL client programs.

    ``configured`` if given (it must hold ``pg_dump``), else the newest
    ``/usr/lib/postgresql/<major>/bin`` (newest, because pg_dump must be at least as new
    as the server), else the directory of ``pg_dump`` on ``PATH``. Raises ToolNotFound.
    """
    if configured is not None:
        bindir = Path(configured)
        if not (bindir / "pg_dump").is_file():
            raise ToolNotFound("pg_dump", searched=str(bindir))
        return bindir
    newest = _newest_debian_bindir()
    if newest is not None:
        return newest
    on_path = shutil.which("pg_dump")
    if on_path is not None:
        return Path(on_path).resolve().parent
    raise ToolNotFound("pg_dump", searched=f"{_DEBIAN_ROOT}/*/bin and PATH")


def tool_path(program: str, bindir: Path | str | None = None) -> Path:
    """The full path of ``program`` in :func:`find_bindir`; raises ToolNotFound."""
    directory = find_bindir(bindir)
    path = directory / program
    if not path.is_file():
        raise ToolNotFound(program, searched=str(directory))
    return path


@dataclass(frozen=True)
class ToolVersion:
    """The version a client program reports: ``pg_dump (PostgreSQL) 15.4`` -> 15, 4."""

    program: str
    major: int
    minor: int | None
    text: str


def parse_tool_version(program: str, text: str) -> ToolVersion:
    """Parse ``--version`` output; raises PostgresError if no version number is in it."""
    match = _VERSION.search(text) or _ANY_VERSION.search(text)
    if match is None:
        raise PostgresError(program, 0, f"cannot read a version number from {text.strip()!r}")
    minor = int(match.group(2)) if match.group(2) is not None else None
    return ToolVersion(program, int(match.group(1)), minor, text.strip())


def tool_version(program: str = "pg_dump", *, bindir: Path | str | None = None) -> ToolVersion:
    """Run ``program --version``. Raises ToolNotFound or PostgresError."""
    path = tool_path(program, bindir)
    try:
        # A version needs no secret (see respaldo.childenv).
        done = subprocess.run(
            [str(path), "--version"],
            capture_output=True,
            timeout=30,
            check=False,
            env=base_environment(),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PostgresError(program, -1, f"cannot run {path} --version: {exc}") from exc
    stderr = done.stderr.decode("utf-8", "replace")
    if done.returncode != 0:
        raise PostgresError(program, done.returncode, stderr)
    return parse_tool_version(program, done.stdout.decode("utf-8", "replace"))


# --- running them ----------------------------------------------------------------------


class StderrLines(Protocol):
    """Watches a child's stderr line by line (pg_dump --verbose's progress, for one)."""

    def line(self, line: bytes) -> bool:
        """Called with each complete line (without its newline) in the drain's thread;
        returns whether the line is kept for the error message."""

    def end(self) -> None:
        """Called once when stderr has ended (the child has exited or closed it)."""


class _Drain(threading.Thread):
    """Reads a pipe to its end in the background, keeping at most ``limit`` trailing bytes.

    A thread per pipe, because a child blocks when a pipe it writes to is full: stderr
    must be emptied while the caller is busy with stdout or stdin. With ``lines``, each
    line goes to it first, and only the lines it keeps are kept.
    """

    def __init__(
        self, pipe: IO[bytes], limit: int | None, lines: StderrLines | None = None
    ) -> None:
        super().__init__(daemon=True, name="respaldo-pipe-drain")
        self._pipe = pipe
        self._limit = limit
        self._lines = lines
        self._partial = b""
        self._buf = bytearray()

    def run(self) -> None:
        try:
            with contextlib.suppress(OSError, ValueError):
                fd = self._pipe.fileno()
                while chunk := os.read(fd, 65536):
                    self._keep(chunk)
            if self._partial:
                self._keep(b"\n")
            with contextlib.suppress(OSError):
                self._pipe.close()
        finally:
            if self._lines is not None:
                self._lines.end()

    def _keep(self, chunk: bytes) -> None:
        if self._lines is not None:
            *complete, self._partial = (self._partial + chunk).split(b"\n")
            chunk = b"".join(line + b"\n" for line in complete if self._lines.line(line))
        self._buf += chunk
        if self._limit is not None and len(self._buf) > 2 * self._limit:
            del self._buf[: len(self._buf) - self._limit]

    def data(self) -> bytes:
        if self._limit is not None and len(self._buf) > self._limit:
            return bytes(self._buf[-self._limit :])
        return bytes(self._buf)


class RunningCommand:
    """A PostgreSQL program running as a child process.

    Use it as a context manager. Inside, read :attr:`stdout` to its end (pg_dump) or write
    :attr:`stdin` (pg_restore). Leaving the block normally closes stdin, waits for the
    child and raises PostgresError if it failed. Leaving it by an exception kills a child
    that is still running; if the exception was a broken pipe because the child had
    already failed, PostgresError (with the child's stderr) is raised instead, chained to
    it. The child's password file exists until the child has exited.
    """

    def __init__(
        self,
        program: str,
        argv: Sequence[str],
        *,
        child: ChildConnection,
        stdin: bool,
        stdout: Literal["pipe", "capture", "discard"],
        secrets: Sequence[str],
        cleanup: contextlib.ExitStack,
        stderr_lines: StderrLines | None = None,
    ) -> None:
        self.program = program
        self.argv = list(argv)
        self._secrets = tuple(secrets)
        self._cleanup = cleanup
        self._killed = False
        self._finished = False
        log.debug("running %s", shlex.join(self.argv))
        failure: PostgresError | None = None
        try:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.DEVNULL if stdout == "discard" else subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=child.env,
                # Its own process group: kill() then also reaches the workers that
                # pg_restore --jobs forks, which would otherwise keep our pipes open.
                start_new_session=True,
            )
        except OSError as exc:
            cleanup.close()
            failure = PostgresError(program, -1, f"cannot start {argv[0]}: {exc.strerror}")
        if failure is not None:
            # Outside the except block: the OSError's traceback holds Popen's frames, whose
            # local variables include the child's environment (and maybe PGPASSWORD).
            raise failure
        assert self._proc.stderr is not None
        self._stderr = _Drain(self._proc.stderr, STDERR_LIMIT, stderr_lines)
        self._stderr.start()
        self._stdout: _Drain | None = None
        if stdout == "capture":
            assert self._proc.stdout is not None
            self._stdout = _Drain(self._proc.stdout, None)
            self._stdout.start()
        self._stdout_mode = stdout
        # A cancelled job kills its children from the thread that cancels it.
        self._forget_cancel = cancellation.on_cancel(self.cancel)

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def stdout(self) -> IO[bytes]:
        """The child's standard output, for the caller to read to its end."""
        if self._stdout_mode != "pipe" or self._proc.stdout is None:
            raise ValueError(f"{self.program}: stdout is not a pipe for the caller")
        return self._proc.stdout

    @property
    def stdin(self) -> IO[bytes]:
        """The child's standard input, for the caller to write; closed by :meth:`wait`."""
        if self._proc.stdin is None:
            raise ValueError(f"{self.program}: stdin is not a pipe")
        return self._proc.stdin

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    def stderr_text(self) -> str:
        """The kept end of the child's stderr, password scrubbed (complete once exited)."""
        return scrub(self._stderr.data().decode("utf-8", "replace"), self._secrets)

    def captured_stdout(self) -> bytes:
        """Everything the child wrote to stdout, when started with ``stdout="capture"``."""
        return self._stdout.data() if self._stdout is not None else b""

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        self._forget_cancel()
        self._stderr.join()
        if self._stdout is not None:
            self._stdout.join()
        self._cleanup.close()

    def wait(self, timeout: float | None = None) -> None:
        """Close stdin, wait for the child, raise PostgresError if it failed.

        Idempotent. Call it after reading stdout to its end: the read end is closed first,
        so a child with unread output fails (broken pipe) instead of blocking forever.
        ``timeout`` in seconds: a child still running then is killed and PostgresError
        raised.
        """
        if not self._finished:
            for pipe in (self._proc.stdin, self._proc.stdout if self._stdout is None else None):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                self._finish()
                raise PostgresError(
                    self.program, -9, self.stderr_text(), hint=f"timed out after {timeout} s"
                ) from None
            self._finish()
        code = self._proc.returncode
        if code != 0:
            raise PostgresError(self.program, code, self.stderr_text())

    def kill(self) -> None:
        """Kill the child if it still runs and reap it. Idempotent; never raises."""
        if self._proc.poll() is None:
            self._killed = True
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except OSError:
                with contextlib.suppress(OSError):
                    self._proc.kill()
        for pipe in (self._proc.stdin, self._proc.stdout if self._stdout is None else None):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        self._proc.wait()

    def cancel(self) -> None:
        """Kill the child (and its process group) from another thread; never raises.

        Only a signal: the thread that runs the command then sees end of file or a
        broken pipe, and its ``with`` block reaps the child and fails as usual.
        """
        if self._proc.returncode is None:
            self._killed = True
            with contextlib.suppress(OSError):
                os.killpg(self._proc.pid, signal.SIGKILL)

    def __enter__(self) -> RunningCommand:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.wait()
            return
        if isinstance(exc, BrokenPipeError):
            # The child closed its end: it is almost surely exiting on an error. Let it
            # finish, so that its exit status and stderr (not our kill) tell what happened.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(5)
        self.kill()
        self._finish()
        code = self._proc.returncode
        # A write into a child that had already died: its stderr says why, our error not.
        if isinstance(exc, OSError) and not self._killed and code not in (0, None):
            raise PostgresError(self.program, code, self.stderr_text()) from exc

    def __repr__(self) -> str:
        return f"RunningCommand({self.program!r}, pid={self._proc.pid}, rc={self.returncode})"


@dataclass(frozen=True)
class CompletedCommand:
    """A program that ran to a successful end: its stdout and the scrubbed end of stderr."""

    program: str
    argv: list[str]
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")


def _start(
    program: str,
    conninfo: ConnInfo,
    build: Sequence[str],
    *,
    bindir: Path | str | None,
    method: PasswordMethod,
    stdin: bool,
    stdout: Literal["pipe", "capture", "discard"],
    after_conn: Sequence[str] = (),
    stderr_lines: StderrLines | None = None,
    application_name: str | None = None,
) -> RunningCommand:
    path = tool_path(program, bindir)
    cleanup = contextlib.ExitStack()
    try:
        child = cleanup.enter_context(child_connection(conninfo, method=method))
    except BaseException:
        cleanup.close()
        raise
    args = list(child.args)
    if application_name is not None:
        # Ours, whatever the DSN says: respaldo looks for the program's sessions by it.
        args[-1] = make_conninfo(args[-1], application_name=application_name)
    argv = [str(path), *build, *args, *after_conn]
    return RunningCommand(
        program,
        argv,
        child=child,
        stdin=stdin,
        stdout=stdout,
        secrets=conninfo.secrets(),
        cleanup=cleanup,
        stderr_lines=stderr_lines,
    )


def _encoding_option(encoding: str | None) -> list[str]:
    # Every pg_dump respaldo supports has --encoding; a name the server reported is
    # letters, digits and underscores, checked so that it can only be that option's value.
    if encoding is None:
        return []
    if not encoding.replace("_", "").isalnum():
        raise ValueError(f"not an encoding's name: {encoding!r}")
    return [f"--encoding={encoding}"]


def pg_dump(
    conninfo: ConnInfo,
    *,
    snapshot: str | None = None,
    lock_wait_timeout_ms: int | None = None,
    encoding: str | None = None,
    bindir: Path | str | None = None,
    method: PasswordMethod = "passfile",
    application_name: str | None = None,
    load_via_partition_root: bool = False,
) -> RunningCommand:
    """Start ``pg_dump --format=custom --compress=0`` of ``conninfo.dbname`` to stdout.

    Uncompressed on purpose: respaldo compresses per chunk, and an uncompressed dump of a
    database that changed a little deduplicates against yesterday's. ``snapshot`` is an
    id from :func:`~respaldo.postgres.server.exported_snapshot` (whose transaction must
    stay open until pg_dump has started). ``lock_wait_timeout_ms`` makes pg_dump fail
    instead of waiting behind a long-held exclusive lock (its ``LOCK TABLE`` statements
    are ended by a statement timeout; a backup through a standby gives it,
    respaldo.postgres.standby_blocked). ``encoding`` (``--encoding``)
    is the one the dump is written in, names in its table of contents included; without
    it, ``PGCLIENTENCODING`` in the environment (which pg_dump gets) would choose. The
    caller reads
    ``.stdout`` to its end, then leaves the context (or calls ``.wait()``), which raises
    PostgresError on failure. Raises ToolNotFound before starting. ``application_name``
    names pg_dump's session (default: pg_dump's own, or the DSN's).
    ``load_via_partition_root`` loads every partition's rows through its partitioned
    table (for the tables of :func:`~respaldo.postgres.server.hash_keys_to_load_via_root`).
    """
    build = ["--format=custom", "--compress=0", "--no-password"]
    if snapshot is not None:
        build.append(f"--snapshot={snapshot}")
    if lock_wait_timeout_ms is not None:
        build.append(f"--lock-wait-timeout={int(lock_wait_timeout_ms)}")
    if load_via_partition_root:
        build.append("--load-via-partition-root")
    build += _encoding_option(encoding)
    return _start(
        "pg_dump",
        conninfo,
        build,
        bindir=bindir,
        method=method,
        stdin=False,
        stdout="pipe",
        application_name=application_name,
    )


def pg_dump_directory(
    conninfo: ConnInfo,
    directory: Path,
    *,
    jobs: int,
    snapshot: str | None = None,
    progress: StderrLines,
    encoding: str | None = None,
    bindir: Path | str | None = None,
    method: PasswordMethod = "passfile",
    application_name: str | None = None,
    load_via_partition_root: bool = False,
    lock_wait_timeout_ms: int | None = None,
) -> RunningCommand:
    """Start ``pg_dump --format=directory --jobs=JOBS --compress=0 --verbose`` into
    ``directory`` (which must not exist yet; its parent should be private).

    Uncompressed for the reasons of :func:`pg_dump`. ``--verbose`` is what tells, while
    pg_dump runs, which table files are complete: its leader reports ``finished item
    <dump id> …`` once a worker has closed ``<dump id>.dat``, in English whatever the
    caller's locale (its messages are not translated). ``progress`` sees every line
    of stderr; the lines it does not keep are left out of the error message. Leaving the
    context waits for pg_dump and raises PostgresError on failure. Raises ValueError for
    ``jobs`` < 1, ToolNotFound before starting. ``encoding``, ``application_name``,
    ``load_via_partition_root``, ``lock_wait_timeout_ms``: see :func:`pg_dump`. (Its
    leader takes every table's lock first, with that limit; a worker's own lock is
    taken with NOWAIT, pg_dump's choice, and fails at once behind a waiting request.)
    """
    if jobs < 1:
        raise ValueError("jobs must be at least 1")
    build = [
        "--format=directory",
        f"--jobs={jobs}",
        "--compress=0",
        "--verbose",
        "--no-password",
        f"--file={directory}",
    ]
    if snapshot is not None:
        build.append(f"--snapshot={snapshot}")
    if lock_wait_timeout_ms is not None:
        build.append(f"--lock-wait-timeout={int(lock_wait_timeout_ms)}")
    if load_via_partition_root:
        build.append("--load-via-partition-root")
    build += _encoding_option(encoding)
    return _start(
        "pg_dump",
        conninfo,
        build,
        bindir=bindir,
        method=method,
        stdin=False,
        stdout="discard",
        stderr_lines=progress,
        application_name=application_name,
    )


def pg_dumpall_globals(
    conninfo: ConnInfo,
    *,
    no_role_passwords: bool = False,
    bindir: Path | str | None = None,
    method: PasswordMethod = "passfile",
) -> RunningCommand:
    """Start ``pg_dumpall --globals-only`` (roles, memberships, tablespaces) to stdout.

    The output is a plain SQL script for psql. Reading role passwords needs a superuser;
    ``no_role_passwords`` lets an ordinary role dump the rest. Same reading contract as
    :func:`pg_dump`.
    """
    build = ["--globals-only", "--no-password"]
    if no_role_passwords:
        build.append("--no-role-passwords")
    # pg_dumpall ignores the database of --dbname; --database names the one it starts in.
    # pg_dumpall reads --database as a connection string when it holds "=" or starts
    # with "postgresql://": a database named "contabilidad=2024" failed the backup, one
    # named "x host=other" would have dumped another server's roles. So it gets one,
    # holding only the quoted name (the rest of --dbname still applies).
    after = [f"--database={make_conninfo('', dbname=conninfo.dbname)}"] if conninfo.dbname else []
    return _start(
        "pg_dumpall",
        conninfo,
        build,
        bindir=bindir,
        method=method,
        stdin=False,
        stdout="pipe",
        after_conn=after,
    )


def pg_restore(
    conninfo: ConnInfo,
    *,
    source: Path | None = None,
    jobs: int = 1,
    no_owner: bool = False,
    sections: Sequence[str] = (),
    use_list: Path | None = None,
    bindir: Path | str | None = None,
    method: PasswordMethod = "passfile",
) -> RunningCommand:
    """Start ``pg_restore --exit-on-error`` into the existing database ``conninfo.dbname``.

    With ``source=None`` the archive is read from stdin: write it to ``.stdin`` and leave
    the context. With a file, ``jobs`` > 1 restores in parallel (pg_restore cannot do that
    from a pipe, so it is a ValueError there). ``no_owner`` skips ``ALTER … OWNER`` (for a
    cluster without the original roles). A failure of any statement stops the restore and
    raises PostgresError when the command is waited for. Not idempotent: restoring twice
    into one database fails on the objects that already exist. ``use_list`` restores only
    the entries that file lists (``--use-list``; see :mod:`respaldo.postgres.toc`): from a
    pipe, pg_restore then exits as soon as it has read the last one, and a write after
    that is a broken pipe.
    """
    if jobs < 1:
        raise ValueError("jobs must be at least 1")
    if source is None and jobs > 1:
        raise ValueError("a parallel restore (jobs > 1) needs a file, not a pipe")
    if not conninfo.dbname:
        raise ValueError("pg_restore needs the name of the database to restore into")
    build = ["--exit-on-error", "--no-password"]
    if no_owner:
        build.append("--no-owner")
    for section in sections:
        if section not in ("pre-data", "data", "post-data"):
            raise ValueError(f"unknown pg_restore section {section!r}")
        build.append(f"--section={section}")
    if jobs > 1:
        build.append(f"--jobs={jobs}")
    if use_list is not None:
        build.append(f"--use-list={use_list}")
    after = [str(source)] if source is not None else []
    return _start(
        "pg_restore",
        conninfo,
        build,
        bindir=bindir,
        method=method,
        stdin=source is None,
        stdout="discard",
        after_conn=after,
    )


def pg_restore_offline(
    options: Sequence[str], *, bindir: Path | str | None = None
) -> RunningCommand:
    """Start ``pg_restore OPTIONS`` on an archive written to its stdin, connected to no
    server: for ``--list``, or ``--file=-`` to print SQL. Its stdout is captured
    (:meth:`RunningCommand.captured_stdout`); it gets only the base environment (it
    connects nowhere, so no libpq variable and no password). Raises ToolNotFound."""
    if any(o.startswith(("-d", "--dbname")) for o in options):
        raise ValueError("pg_restore_offline connects to no database")
    path = tool_path("pg_restore", bindir)
    return RunningCommand(
        "pg_restore",
        [str(path), *options],
        child=ChildConnection([], base_environment()),
        stdin=True,
        stdout="capture",
        secrets=(),
        cleanup=contextlib.ExitStack(),
    )


def psql(
    conninfo: ConnInfo,
    *,
    sql: str | None = None,
    file: Path | None = None,
    variables: Mapping[str, str] | None = None,
    single_transaction: bool = False,
    tuples_only: bool = False,
    timeout: float | None = None,
    bindir: Path | str | None = None,
    method: PasswordMethod = "passfile",
) -> CompletedCommand:
    """Run SQL through psql with ``ON_ERROR_STOP=1`` and return its output.

    Exactly one of ``sql`` (sent on stdin, so it never shows in the process list) or
    ``file``. ``variables`` become ``--set name=value`` (visible in argv: no secrets).
    ``tuples_only`` gives bare unaligned rows. No ``~/.psqlrc`` is read. Raises
    PostgresError (with psql's stderr) when any statement fails, ToolNotFound when psql is
    missing. Idempotent only if the SQL is.
    """
    if (sql is None) == (file is None):
        raise ValueError("give exactly one of sql or file")
    build = ["--no-psqlrc", "--no-password", "--quiet", "--set=ON_ERROR_STOP=1"]
    if single_transaction:
        build.append("--single-transaction")
    if tuples_only:
        build += ["--tuples-only", "--no-align"]
    for name, value in (variables or {}).items():
        build.append(f"--set={name}={value}")
    after = [f"--file={file if file is not None else '-'}"]
    command = _start(
        "psql",
        conninfo,
        build,
        bindir=bindir,
        method=method,
        stdin=sql is not None,
        stdout="capture",
        after_conn=after,
    )
    with command:
        if sql is not None:
            command.stdin.write(sql.encode("utf-8"))
        command.wait(timeout)
    return CompletedCommand("psql", command.argv, command.captured_stdout(), command.stderr_text())


# A statement's failure as psql reports it with ``VERBOSITY=verbose``:
# ``psql:<stdin>:7: FEHLER:  22012: Division durch Null``. The severity word is in the
# server's language (lc_messages: FEHLER, ERREUR, ERRO, ...); the SQLSTATE is not.
_STATEMENT_REPORT = re.compile(
    r"^(?P<where>psql:.*?:\d+: )?(?P<severity>[^\s:]+):  (?P<code>[0-9A-Z]{5}): (?P<text>.*)$"
)
# SQLSTATE classes that are not failures: success (a NOTICE), warning, no data.
_NOT_FAILURES = ("00", "01", "02")


def statement_errors(stderr: str) -> list[str]:
    """The failures psql reported in ``stderr``, run with ``VERBOSITY=verbose`` (and
    ``ON_ERROR_STOP=0``, so that it went on): one line each, the SQLSTATE left out
    (``psql:<stdin>:7: FEHLER:  Division durch Null``). Notices and warnings are not
    failures. psql's own errors (``error: invalid command``) are in English: respaldo runs
    its tools so. Pure."""
    found = []
    for line in stderr.splitlines():
        report = _STATEMENT_REPORT.match(line)
        if report is not None:
            if report["code"][:2] not in _NOT_FAILURES:
                found.append(f"{report['where'] or ''}{report['severity']}:  {report['text']}")
        elif line.startswith("error: ") or re.match(r"psql:.*?:\d+: error: ", line):
            found.append(line)
    return found

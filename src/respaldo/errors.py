"""One root error, a base per layer, leaf errors that carry context and a hint.

Every error respaldo raises on purpose derives from :class:`RespaldoError`. The CLI and the
API turn them into a one-line message (``str(error)``) plus the hint; anything else that
escapes is a bug. Messages never contain secrets: callers pass names and object keys,
never passphrases, passwords or DSNs with passwords in them.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from respaldo.phrases import N_, Phrase

_OPTION = re.compile(r"<<([a-z_]+)>>")


def option(field: str) -> str:
    """A reference to the argument ``field`` of an application function, for a message or
    a hint: each interface shows it as its own name for that argument (the CLI as the
    option ``--field``, the API as the field ``field``); ``str(error)`` shows ``field``."""
    return f"<<{field}>>"


def render_options(text: str, name: Callable[[str], str] = lambda field: field) -> str:
    """``text`` with each :func:`option` reference replaced by ``name(field)``."""
    return _OPTION.sub(lambda match: name(match.group(1)), text)


def first_line(error: BaseException | str) -> str:
    """The first line of an error's text, or of ``error`` itself if it is a text: what a
    message, a status reason or a log line quotes of it. For a SQLAlchemy error, the
    first line of the driver's error beneath it (SQLAlchemy appends the statement and a
    link). An error without text gives its type's name; leading blank lines are skipped."""
    text = error if isinstance(error, str) else str(getattr(error, "orig", None) or error)
    lines = text.strip().splitlines()
    if lines:
        return lines[0]
    return "" if isinstance(error, str) else type(error).__name__


class RespaldoError(Exception):
    """Root of every error respaldo raises on purpose.

    ``hint`` tells the user what to do next; it is printed after the message. Either may
    name an argument with :func:`option`; :meth:`rendered` shows it an interface's way.
    """

    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    @property
    def message(self) -> str:
        raw = self.args[0] if self.args else ""
        if isinstance(raw, Phrase) and not _OPTION.search(raw):
            return raw  # passed on (InvalidInput(field, exc.message)) as a Phrase still
        return render_options(str(raw))

    def __str__(self) -> str:
        # Not self.message: a subclass may define message as less than str() shows.
        return render_options(str(self.args[0])) if self.args else ""

    def rendered(
        self, name: Callable[[str], str], say: Callable[[str], str] = str
    ) -> tuple[str, str]:
        """(message, hint) with the arguments they name shown as ``name(field)``, each
        first given to ``say``: the page says them in its language (a message or hint
        made as a :class:`~respaldo.phrases.Phrase` reaches it as one)."""
        raw = self.args[0] if self.args else ""
        raw = raw if isinstance(raw, str) else str(raw)  # a Phrase stays one
        hint = say(self.hint) if self.hint else ""
        return render_options(say(raw), name), render_options(hint, name)


class ConfigError(RespaldoError):
    """The configuration is missing, malformed or refers to something that is not there."""


class InvalidInput(ConfigError):
    """An argument given to an application function is malformed or does not fit the
    others. ``field`` is the argument's name (``target_time``); each interface shows it
    its own way (the CLI as the option ``--target-time``, the API as the field), so the
    message never names a command-line option."""

    def __init__(self, field: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.field = field

    def rendered(
        self, name: Callable[[str], str], say: Callable[[str], str] = str
    ) -> tuple[str, str]:
        message, hint = super().rendered(name, say)
        return f"{name(self.field)}: {message}", hint


# --- storage layer -------------------------------------------------------------------


class NotificationError(RespaldoError):
    """A notification target could not be reached or its URL could not be made (a missing
    secret file, a URL the notification library refuses). Never fails an operation: it
    is logged and recorded, and ``respaldo notify test`` shows it."""


class StorageError(RespaldoError):
    """Base of the storage layer: an object store could not do what was asked."""

    def __init__(self, message: str, *, name: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.name = name


class ObjectNotFound(StorageError):
    """The named object does not exist."""


class InvalidObjectName(StorageError):
    """A name was rejected before it reached the store (``..``, absolute, odd characters)."""


class TransientStorageError(StorageError):
    """A failure that may go away if retried (timeouts, throttling, 5xx).

    When one reaches the user, respaldo's own retries are exhausted: the default hint
    says so (raisers that know more pass their own).
    """

    hint = (
        "the store kept failing after several retries (network, timeouts, throttling or "
        "server errors): check that it is reachable and healthy, then run the command again"
    )


class PermanentStorageError(StorageError):
    """A failure that retrying will not fix (permissions, no such bucket, disk full)."""

    hint = (
        "check the repository's location: credentials, permissions, free space, bucket or "
        "directory; then run the command again"
    )


class WriteRefused(PermanentStorageError):
    """The store refuses to write: a read-only file system or medium, no write permission
    on the directory, S3 credentials allowed to read only. Readers can carry on."""


# --- repository layer ----------------------------------------------------------------


class RepositoryError(RespaldoError):
    """Base of the repository layer."""


class RepositoryNotFound(RepositoryError):
    """There is no repository at the given location."""


class RepositoryExists(RepositoryError):
    """``init`` was asked to create a repository where one already exists."""


class RepositoryMismatch(RepositoryError):
    """The repository a configured name reaches here is not the one the catalog records
    for that name (another repository id): machines sharing a catalog reach different
    storage under one name."""


class ConfigMissing(RepositoryError):
    """A location holds a repository's keys or data but no ``config``: the repository is
    there and its config must be restored (never a new repository made over it)."""


class ConfigDamaged(RepositoryError):
    """The repository's ``config`` is unreadable, fails authentication, or names another
    repository id than its key files."""


class KeyFileDamaged(RepositoryError):
    """A key file's checksum does not match its contents: it was damaged in storage (its
    passphrase may well be right)."""


class WrongPassphrase(RepositoryError):
    """No key file of the repository opens with the given passphrase."""


class WeakPassphrase(RepositoryError):
    """A new key's passphrase is shorter than the minimum (existing keys still open)."""


class IntegrityError(RepositoryError):
    """Stored data failed authentication, did not match its id or checksum, or is missing.

    ``obj`` names the object in the store (pack, index, manifest) and ``backup`` the backup
    being read, when known, so that the user knows what is damaged.
    """

    def __init__(
        self, message: str, *, obj: str = "", backup: str = "", hint: str | None = None
    ) -> None:
        parts = [message]
        if backup:
            parts.append(f"backup {backup}")
        if obj:
            parts.append(f"object {obj}")
        super().__init__(": ".join(parts[:1]) + "".join(f" [{p}]" for p in parts[1:]), hint=hint)
        self.obj = obj
        self.backup = backup
        self._bare = message

    @property
    def message(self) -> str:
        """The message *without* the ``[backup …] [object …]`` that ``str()`` appends.

        Whoever passes the damage on (a Problem, another IntegrityError) carries ``obj``
        and ``backup`` separately and appends them itself: with ``str()`` they would
        appear twice.
        """
        return self._bare


class BackupNotFound(RepositoryError):
    """No manifest exists for the given backup id."""


class ChunkerUnavailable(RepositoryError):
    """The compiled FastCDC chunker could not be loaded (the pure-Python one is 200x slower)."""


class RepositoryLocked(RepositoryError):
    """A lock of another process conflicts with the one asked for: a prune (exclusive)
    while backups run (shared leases), or a backup while a prune runs.

    ``holders`` describes each conflicting lock (kind, purpose, host, pid, last refresh).
    """

    def __init__(
        self, message: str, *, holders: list[str] | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.holders = list(holders or [])


class LeaseLost(RepositoryError):
    """A lease this process held was removed by another process or not refreshed in time.

    Garbage collection may since have deleted data the work relied on, so that work
    (a backup's manifest) must not be committed.
    """


# --- catalog layer -------------------------------------------------------------------


class CatalogError(RespaldoError):
    """Base of the catalog layer: the record of backups could not be read or changed."""


class CatalogUnavailable(CatalogError):
    """The catalog database could not be opened, created or migrated to this version."""


class CatalogNotFound(CatalogUnavailable):
    """No catalog where the URL points, and the command may not create one (only
    ``respaldo init`` and ``respaldo catalog rebuild`` do)."""


class InvalidBackupId(CatalogError):
    """A backup id given by a user or found in a name is not of the form respaldo makes."""


class RecordNotFound(CatalogError):
    """The catalog holds no record with the given id."""


class RecordExists(CatalogError):
    """A record with the given id is already in the catalog."""


class InvalidTransition(CatalogError):
    """A change that the record's status does not allow (e.g. ``completed`` -> ``in_progress``).

    ``current`` and ``requested`` name the statuses involved, for callers that react to them.
    """

    def __init__(
        self, message: str, *, current: str = "", requested: str = "", hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.current = current
        self.requested = requested


# --- sources layer (respaldo.postgres, respaldo.files) -------------------------------


class SourceError(RespaldoError):
    """Base of the sources layer: a database or file tree could not be read or written."""


class ToolNotFound(SourceError):
    """A PostgreSQL client program (pg_dump, psql, …) is not installed where we looked."""

    def __init__(self, program: str, *, searched: str = "", hint: str | None = None) -> None:
        super().__init__(
            Phrase(
                N_("{program} not found (looked in {searched})"), program=program, searched=searched
            )
            if searched
            else Phrase(N_("{program} not found"), program=program),
            hint=hint
            or Phrase(
                N_(
                    "install the PostgreSQL client programs (Debian: postgresql-client) "
                    "or set pg_bin_dir of the database to their directory"
                )
            ),
        )
        self.program = program


# What libpq and the server print when the server goes away under a running program.
_SERVER_GONE = (
    "server closed the connection unexpectedly",
    "terminating connection due to administrator command",
    "the database system is shutting down",
    "server terminated abnormally",
)


# strerror(ENOSPC) as the C library says it (the programs run with LC_MESSAGES=C).
_NO_SPACE = "No space left on device"

# The line in which the server says why a statement failed (libpq prints it so).
_SERVER_REASON = re.compile(r"\b(ERROR|FATAL|PANIC):  ")
# A name not found inside a function's body (the CONTEXT: line names the function).
_BODY_NAME = re.compile(
    r"ERROR:  (relation|function|type|operator) .* does not exist.*"
    r"(\n.*){0,6}?\nCONTEXT:  (SQL|PL/pgSQL) function",
)


class PostgresError(SourceError):
    """A PostgreSQL program ran and failed.

    ``program`` is its name (``pg_dump``), ``returncode`` its exit status (negative: killed
    by that signal) and ``stderr`` the end of what it wrote to stderr, with any password
    already removed. The message carries the last lines of ``stderr``, and before them
    the server's last ``ERROR:`` line if they do not hold it.
    """

    def __init__(
        self, program: str, returncode: int, stderr: str, *, hint: str | None = None
    ) -> None:
        if returncode < 0:
            status = Phrase(
                N_("{program} was killed by signal {signal}"), program=program, signal=-returncode
            )
        else:
            status = Phrase(
                N_("{program} exited with status {code}"), program=program, code=returncode
            )
        lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
        tail = lines[-3:]
        # The server's own message opens its report, and the QUERY:, CONTEXT: and
        # "Command was:" lines that follow it pushed it out of the last three (a restore
        # that failed on a function's body read "QUERY: ...; CONTEXT: ..." without why).
        reason = next((line for line in reversed(lines) if _SERVER_REASON.search(line)), None)
        if reason is not None and reason not in tail:
            tail.insert(0, reason)
        detail = "; ".join(tail)
        if hint is None and reason is not None and _BODY_NAME.search(stderr):
            hint = Phrase(
                N_(
                    "a dump's statements run with an empty search_path, so a function whose "
                    "body names a table, type or function without its schema finds nothing "
                    "where an index, a CHECK, a generated column or a materialized view calls "
                    "it: qualify the names in the function, or give it SET search_path, then "
                    "back up again (a table the dump creates later is not found either: such "
                    "a function must not read tables)"
                )
            )
        if hint is None and _NO_SPACE in stderr:
            # The server says it in an ERROR line (its data directory, its WAL); pg_dump
            # and pg_restore in their own (the files they write: dump_spool_dir).
            server = reason is not None and _NO_SPACE in reason
            hint = Phrase(
                N_(
                    "the PostgreSQL server's disk is full: free space on it, then run the "
                    "command again"
                )
                if server
                else N_(
                    "the disk {program} writes its files to is full (a parallel backup's "
                    "dump_spool_dir): free space there or set dump_spool_dir to a disk with "
                    "room, then run the command again"
                ),
                program=program,
            )
        if hint is None and any(sign in stderr for sign in _SERVER_GONE):
            hint = Phrase(
                N_(
                    "the PostgreSQL server closed the connection (it stopped, restarted or "
                    "crashed): run the command again once it accepts connections"
                )
            )
        # The server's and the program's lines stay as written (in the server's language).
        message = Phrase("{failed}: {detail}", failed=status, detail=detail) if detail else status
        super().__init__(message, hint=hint)
        self.program = program
        self.returncode = returncode
        self.stderr = stderr


class ToolVersionError(SourceError):
    """A client program is older than the server it would talk to.

    pg_dump refuses (or silently mis-dumps) servers of a newer major version, so this is
    checked before a backup starts rather than discovered half-way.
    """

    def __init__(
        self, program: str, tool_major: int, server_major: int, *, hint: str | None = None
    ) -> None:
        super().__init__(
            f"{program} {tool_major} is older than the PostgreSQL {server_major} server",
            hint=hint
            or f"install the PostgreSQL {server_major} client programs "
            f"(Debian: postgresql-client-{server_major}), or set pg_bin_dir of the database "
            "to their bin directory",
        )
        self.program = program
        self.tool_major = tool_major
        self.server_major = server_major


class ConnectionFailed(SourceError):
    """A connection to the server could not be made (unreachable, refused, bad password).

    ``target`` names host, port, database and user; the message never holds a password.
    """

    def __init__(self, message: str, *, target: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.target = target


class QueryFailed(SourceError):
    """A statement sent to the server failed; ``sqlstate`` is its SQLSTATE code if known."""

    def __init__(
        self, message: str, *, sqlstate: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.sqlstate = sqlstate


class DatabaseExists(SourceError):
    """A database was to be created or renamed to a name that is already taken."""


class DatabaseNotFound(SourceError):
    """The named database does not exist."""


class InvalidWalFile(SourceError):
    """A file given as a WAL file is not one: its name, size or segment header is wrong."""


class BaseBackupInvalid(SourceError):
    """A base backup does not match the backup_manifest PostgreSQL wrote for it."""


class UnsafePath(SourceError):
    """An archive member would land outside the target directory, or is of a kind that is
    never restored (devices, hard links); nothing of the archive is kept then."""


class RecoveryFailed(SourceError):
    """A restored server stopped during recovery or did not finish it in time; the message
    ends with the last lines of its log."""


class PortTaken(RecoveryFailed):
    """A restored server stopped at once: another process held its TCP port on the
    address it was to listen on (its log says so)."""


# --- operations layer --------------------------------------------------------------------


class OperationError(RespaldoError):
    """Base of the operations layer: a backup, restore or check could not be carried out."""


class RestoreError(OperationError):
    """A restore was refused or failed; the target database is left as it was."""


class WalRefused(OperationError):
    """A WAL file was refused: it comes from another cluster than the one the repository
    records for the database, or the archive holds other content under its name."""


class WalNotFound(OperationError):
    """The archive holds no such WAL file (normal: recovery asks until one is missing)."""


class WalHole(OperationError):
    """A segment recovery asks for is missing from the archive, which holds later segments
    of its timeline: a hole, not the end of the WAL. Taken for the end, recovery would
    promote without everything after it."""


class JobCancelled(OperationError):
    """A job stopped because someone cancelled it (``respaldo jobs cancel``, SIGTERM to
    ``respaldo serve``, Ctrl-C); what it had written is cleaned up, its record says so."""


class JobConflict(OperationError):
    """A job was refused because another job holds what it needs (two backups of one
    database never run at once)."""


# --- access (the API's authentication and permissions) --------------------------------


class AccessError(OperationError):
    """Base of the API's access errors. ``status`` is the HTTP status an interface answers
    with and ``headers`` the headers that go with it; messages never hold a password or a
    token, only user names and what was wrong."""

    status: int = 401
    headers: dict[str, str] = {}


class AuthenticationFailed(AccessError):
    """No valid credentials: a wrong password, a missing, malformed, expired, revoked or
    badly signed token (HTTP 401)."""

    status = 401
    headers = {"WWW-Authenticate": "Bearer"}
    hint = "log in again at POST /auth/token, or use a valid API token"


class PermissionDenied(AccessError):
    """The caller is known but lacks the permission the action needs (HTTP 403)."""

    status = 403
    hint = "ask an administrator for a role with that permission"


class RefreshTokenJustUsed(AuthenticationFailed):
    """A refresh token that another request renewed the session with a moment ago (two
    requests of one page after the access token expired): the page keeps the cookies
    that request set. A token that is no live session's at all is AuthenticationFailed,
    and ends the browser's session."""


class TooManyAttempts(AccessError):
    """Too many failed logins for this user name or from this address (HTTP 429);
    ``retry_after`` is how many seconds until the next attempt is allowed."""

    status = 429

    def __init__(self, message: str, *, retry_after: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint or f"try again in {retry_after} s")
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


class TextfileNotWritten(OperationError):
    """``respaldo metrics --textfile``: the metrics file could not be written; the one
    already there (if any) is left whole and unchanged."""


class AlreadyFired(JobConflict):
    """Another ``respaldo serve`` already submitted this schedule's job for this fire
    time (two services for availability fire each schedule once)."""


class ClockAhead(OperationError):
    """Prune would expire backups by age that had not expired when the newest backup
    completed, long before the clock's now: the clock is ahead, or backups stopped."""


class BackupProtected(OperationError):
    """A backup that retention would never expire (the newest completed, verified or good
    one of its database and kind, a pinned or running one, the parent of another one)
    was to be deleted by hand."""

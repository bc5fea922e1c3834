"""Domain types shared by several layers: backup kinds, statuses, ids. No I/O here.

Words used here:

- *backup id*: ``YYYYMMDDTHHMMSSZ-xxxxxxxx``, the UTC second the backup was created and
  eight random lowercase hex digits, e.g. ``20261128T083000Z-3f9a1c2e``. Ids sort by
  creation time as plain strings, and are safe in URLs, file and object names, and shells.
- *database name*: a PostgreSQL database name, checked by :func:`validate_database_name`
  wherever one enters respaldo (the ``dbname`` of a DSN, ``restore --target-database``).
- *status*: where a backup is in its life. The allowed changes are written once, in
  :data:`BACKUP_TRANSITIONS`; everything that changes a status asks
  :meth:`BackupStatus.check_transition` first.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from respaldo.errors import ConfigError, InvalidBackupId, InvalidTransition
from respaldo.phrases import N_, Phrase


class BackupKind(StrEnum):
    """What a backup holds (the catalog's ``backup_type``); see ARCHITECTURE.md."""

    FULL = "full"
    """One database, logical (``pg_dump``)."""
    INCREMENTAL = "incremental"
    """The whole cluster, physical (``pg_basebackup``), deduplicated against earlier ones."""
    FILES = "files"
    """Application file trees."""
    SNAPSHOT = "snapshot"
    """Everything configured, pinned so that retention never expires it."""


class TriggeredBy(StrEnum):
    """Who asked for a backup."""

    CLI = "cli"
    SCHEDULE = "schedule"
    API = "api"


class CopyStatus(StrEnum):
    """State of the copy of a backup in one secondary repository (``backup_copies``)."""

    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"


class BackupStatus(StrEnum):
    """Where a backup is in its life.

    ``pending`` -> ``in_progress`` | ``failed``; ``in_progress`` -> ``completed`` | ``failed``.
    ``completed`` and ``failed`` are final: a failed backup is never resumed (a new one is
    taken), and a completed one never runs again.
    """

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        """True if no transition leaves this status."""
        return not BACKUP_TRANSITIONS[self]

    def can_become(self, target: BackupStatus) -> bool:
        """True if the state machine allows ``self`` -> ``target``. Same-status is not a change
        the machine allows: starting a started backup is a bug worth hearing about."""
        return target in BACKUP_TRANSITIONS[self]

    def check_transition(self, target: BackupStatus, *, backup_id: str = "") -> None:
        """Return if ``self`` -> ``target`` is allowed, else raise InvalidTransition.

        ``backup_id``, when given, is named in the message.
        """
        if self.can_become(target):
            return
        subject = f"backup {backup_id}" if backup_id else "a backup"
        allowed = sorted(BACKUP_TRANSITIONS[self])
        if allowed:
            detail = f"from {self.value} it can only become {' or '.join(allowed)}"
        else:
            detail = f"{self.value} is final"
        raise InvalidTransition(
            f"{subject} cannot go from {self.value} to {target.value}: {detail}",
            current=self.value,
            requested=target.value,
        )


# Written once, here. A mapping proxy so that no caller can widen it at run time.
BACKUP_TRANSITIONS: Final[Mapping[BackupStatus, frozenset[BackupStatus]]] = MappingProxyType(
    {
        BackupStatus.PENDING: frozenset({BackupStatus.IN_PROGRESS, BackupStatus.FAILED}),
        BackupStatus.IN_PROGRESS: frozenset({BackupStatus.COMPLETED, BackupStatus.FAILED}),
        BackupStatus.COMPLETED: frozenset(),
        BackupStatus.FAILED: frozenset(),
    }
)

# ASCII only ([0-9], not \d, which also matches other scripts' digits) and matched with
# fullmatch, because "$" would accept a trailing newline.
_BACKUP_ID = re.compile(r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}")
_ID_TIME_FORMAT: Final = "%Y%m%dT%H%M%SZ"
BACKUP_ID_EXAMPLE: Final = "20261128T083000Z-3f9a1c2e"


def new_backup_id(now: datetime) -> str:
    """Return a fresh backup id for a backup created at ``now`` (timezone-aware).

    Ids made in different seconds sort by time; within one second their order is random,
    and two ids collide with probability 2**-32 per pair. The result always passes
    :func:`validate_backup_id`. Raises ValueError if ``now`` is naive: a local time taken
    for UTC would misorder ids by hours.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("new_backup_id needs a timezone-aware datetime")
    stamp = now.astimezone(UTC).strftime(_ID_TIME_FORMAT)
    return f"{stamp}-{secrets.token_hex(4)}"


_ID_HINT = Phrase(
    N_("a backup id looks like {example}; 'respaldo list' shows them"), example=BACKUP_ID_EXAMPLE
)


def is_backup_id(value: object) -> bool:
    """Whether ``value`` passes :func:`validate_backup_id` (a name given where a backup id
    or a database's name may stand, a drill's target, is either)."""
    try:
        validate_backup_id(value)
    except InvalidBackupId:
        return False
    return True


def validate_backup_id(value: object) -> str:
    """Return ``value`` unchanged if it is a backup id respaldo could have made.

    Raises InvalidBackupId otherwise: wrong shape, upper-case hex, surrounding spaces, or a
    timestamp that is no real date. Ids come from command lines and URLs and end up in
    object names, so nothing else gets through (no ``..``, ``/``, empty strings).
    """
    if not isinstance(value, str) or not _BACKUP_ID.fullmatch(value):
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise InvalidBackupId(Phrase(N_("invalid backup id {id}"), id=shown), hint=_ID_HINT)
    try:
        datetime.strptime(value[:16], _ID_TIME_FORMAT)  # only checks the date
    except ValueError:
        raise InvalidBackupId(
            Phrase(
                N_("invalid backup id {id}: {time} is not a real UTC time"),
                id=repr(value),
                time=value[:16],
            ),
            hint=_ID_HINT,
        ) from None
    return value


def backup_id_time(backup_id: str) -> datetime:
    """Return the aware UTC time (to the second) encoded in a backup id.

    Raises InvalidBackupId if ``backup_id`` is not valid.
    """
    validate_backup_id(backup_id)
    return datetime.strptime(backup_id[:16], _ID_TIME_FORMAT).replace(tzinfo=UTC)


BACKUP_STATUS_WORDS: Mapping[str, str] = MappingProxyType(
    {
        BackupStatus.PENDING.value: N_("pending"),
        BackupStatus.IN_PROGRESS.value: N_("in_progress"),
        BackupStatus.COMPLETED.value: N_("completed"),
        BackupStatus.FAILED.value: N_("failed"),
    }
)
"""A backup's status in a sentence: in English as stored (what the CLI and the API have
always said), a word in another language (the page's "fallido")."""


class DrillStatus(StrEnum):
    """Outcome of a restore test (drill): running, or passed/failed once finished, or
    cancelled (stopped by someone: says nothing of the backup, never a failed test)."""

    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobKind(StrEnum):
    """What a job does: every operation that interfaces run, recorded in ``jobs``."""

    BACKUP = "backup"
    RESTORE = "restore"
    DRILL = "drill"
    PRUNE = "prune"
    VERIFY = "verify"
    REPORT = "report"  # the monthly restore-test report, by email
    WAL_COPY = "wal_copy"  # archived WAL to the secondary repositories


class JobStatus(StrEnum):
    """Where a job is in its life; the allowed changes are :data:`JOB_TRANSITIONS`.

    ``queued`` -> ``running`` | ``cancelled`` | ``skipped`` | ``failed``;
    ``running`` -> ``completed`` | ``failed`` | ``cancelled``. The rest are final.
    ``skipped``: a scheduled run that did not start because the previous one still ran.
    """

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"

    @property
    def is_final(self) -> bool:
        return not JOB_TRANSITIONS[self]

    def check_transition(self, target: JobStatus, *, job_id: int | None = None) -> None:
        """Return if ``self`` -> ``target`` is allowed, else raise InvalidTransition."""
        if target in JOB_TRANSITIONS[self]:
            return
        subject = f"job {job_id}" if job_id is not None else "a job"
        raise InvalidTransition(
            f"{subject} cannot go from {self.value} to {target.value}"
            + (f": {self.value} is final" if self.is_final else ""),
            current=self.value,
            requested=target.value,
        )


JOB_TRANSITIONS: Final[Mapping[JobStatus, frozenset[JobStatus]]] = MappingProxyType(
    {
        JobStatus.QUEUED: frozenset(
            {JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.SKIPPED, JobStatus.FAILED}
        ),
        JobStatus.RUNNING: frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}),
        JobStatus.COMPLETED: frozenset(),
        JobStatus.FAILED: frozenset(),
        JobStatus.CANCELLED: frozenset(),
        JobStatus.SKIPPED: frozenset(),
    }
)


# The bounds FastCDC (pyfastcdc, like the reference implementation) accepts, in bytes.
# Checked when the config is loaded and when a repository's config is read, so that sizes
# the chunker would refuse never reach a repository and fail every backup later.
CHUNK_SIZE_BOUNDS: Final = MappingProxyType(
    {
        "min_size": (64, 1024 * 1024),
        "avg_size": (256, 4 * 1024 * 1024),
        "max_size": (1024, 16 * 1024 * 1024),
    }
)


def chunker_sizes_problem(min_size: int, avg_size: int, max_size: int) -> str | None:
    """What is wrong with these chunk sizes, or None if the chunker accepts them.

    Each size must lie within :data:`CHUNK_SIZE_BOUNDS` and ``min <= avg <= max``.
    """
    sizes = {"min_size": min_size, "avg_size": avg_size, "max_size": max_size}
    for name, value in sizes.items():
        low, high = CHUNK_SIZE_BOUNDS[name]
        if not low <= value <= high:
            return f"{name} {value} is out of range: it must be {low} to {high} bytes"
    if not min_size <= avg_size <= max_size:
        return (
            f"chunk sizes must satisfy min_size <= avg_size <= max_size "
            f"(got {min_size}, {avg_size}, {max_size})"
        )
    return None


DATABASE_NAME_MAX_BYTES: Final = 63
"""PostgreSQL's limit (NAMEDATALEN - 1): it silently truncates longer names."""


def validate_database_name(name: str) -> str:
    """Return ``name`` unchanged if respaldo can use it as a PostgreSQL database name.

    The one rule for database names, whatever their source (a DSN's ``dbname``, a
    restore's ``--target-database``): any name PostgreSQL keeps exactly as given. Names
    go through ``psycopg.sql.Identifier`` or libpq keywords, never string formatting, so
    spaces, quotes, capitals and other scripts are all fine. Refused, with ConfigError:

    - an empty name;
    - more than 63 bytes in UTF-8: PostgreSQL would truncate it to another name;
    - NUL, which no PostgreSQL string can hold;
    - a line break, which PostgreSQL's own tools refuse in names (pg_dumpall, pg_upgrade)
      and which could forge lines in logs.
    """
    # Phrases: the page (in Spanish, say) refuses a restore's target name in its language.
    problem: Phrase | None = None
    if not name:
        problem = Phrase(N_("it is empty"))
    elif "\x00" in name:
        problem = Phrase(N_("it holds a NUL character"))
    elif "\n" in name or "\r" in name:
        problem = Phrase(N_("it holds a line break"))
    elif (size := len(name.encode("utf-8"))) > DATABASE_NAME_MAX_BYTES:
        problem = Phrase(
            N_("it is {size} bytes long in UTF-8, and PostgreSQL keeps only 63"), size=size
        )
    if problem is not None:
        shown = repr(name) if len(name) <= 70 else repr(name[:67] + "...")
        raise ConfigError(
            Phrase(N_("invalid database name {name}: {problem}"), name=shown, problem=problem),
            hint=Phrase(
                N_(
                    "a database name is 1 to 63 bytes of any characters but NUL and line "
                    "breaks; quote it on the command line if it has spaces"
                )
            ),
        )
    return name


def truncate_name(name: str, max_bytes: int) -> str:
    """The longest prefix of ``name`` of at most ``max_bytes`` UTF-8 bytes, in whole
    characters (a name cut inside a character is not valid UTF-8). Pure."""
    encoded = name.encode("utf-8")
    if len(encoded) <= max_bytes:
        return name
    return encoded[:max_bytes].decode("utf-8", "ignore")


# --- access: permissions, roles, audit ---------------------------------------------------


class Permission(StrEnum):
    """What a caller of the API may do: the specification's three permissions.

    ``admin:read`` lists and reads; ``admin:create`` starts backups; ``admin:approve``
    restores, runs restore tests, deletes and pins (and reads the audit log).
    """

    READ = "admin:read"
    CREATE = "admin:create"
    APPROVE = "admin:approve"


class Role(StrEnum):
    """A local user's or API token's role: a fixed set of permissions (:data:`ROLE_PERMISSIONS`)."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


ROLE_PERMISSIONS: Final[Mapping[Role, frozenset[Permission]]] = MappingProxyType(
    {
        Role.VIEWER: frozenset({Permission.READ}),
        Role.OPERATOR: frozenset({Permission.READ, Permission.CREATE}),
        Role.ADMIN: frozenset(Permission),
    }
)


class AuthMethod(StrEnum):
    """How a caller proved who it is."""

    PASSWORD = "password"  # noqa: S105 (a name, not a secret)
    """An access token issued by ``POST /auth/token`` to a local user."""
    API_TOKEN = "api_token"  # noqa: S105 (a name, not a secret)
    """A revocable API token (``respaldo token create``)."""
    ERP_JWT = "erp_jwt"
    """A JWT issued by the ERP and verified with its public key ([server.erp_jwt])."""
    LOCAL = "local"
    """The OS user running a CLI command on the server."""


class AuditOutcome(StrEnum):
    """How an audited action ended."""

    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"


class AuditAction(StrEnum):
    """What an audit entry records. The log is append-only: see ``operations/audit.py``."""

    LOGIN = "login"
    REFRESH = "refresh"
    LOGOUT = "logout"
    USER_ADD = "user.add"
    USER_REMOVE = "user.remove"
    USER_PASSWD = "user.passwd"  # noqa: S105 (a name, not a secret)
    USER_DISABLE = "user.disable"
    USER_ENABLE = "user.enable"
    TOKEN_CREATE = "token.create"  # noqa: S105 (a name, not a secret)
    TOKEN_REVOKE = "token.revoke"  # noqa: S105 (a name, not a secret)
    BACKUP_CREATE = "backup.create"
    BACKUP_DELETE = "backup.delete"
    BACKUP_PIN = "backup.pin"
    BACKUP_UNPIN = "backup.unpin"
    RESTORE = "restore"
    RESTORE_TEST = "restore_test"
    PRUNE = "prune"
    """Retention applied: expired backups deleted (not a dry run)."""
    SNAPSHOT = "snapshot"
    JOB_CANCEL = "job.cancel"
    KEY_ADD = "key.add"
    KEY_REMOVE = "key.remove"
    KEY_PASSWD = "key.passwd"  # noqa: S105 (a name, not a secret)
    REWIND = "rewind"
    """An S3 repository brought back to a past state (later objects hidden)."""
    REPAIR = "repair"
    """Damaged chunks or WAL files rewritten from mirrors; backups that lost data marked."""
    ACCESS = "access"
    """A request refused for a missing permission (outcome ``denied``)."""

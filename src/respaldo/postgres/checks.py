"""What a server needs for physical backups and WAL archiving, checked one item at a time.

:func:`check_server` connects to a configured database and returns one
:class:`Finding` per requirement: its status, what the server has, and how to fix it.
The replication requirements (role attribute, ``pg_hba.conf``, free WAL senders) are
checked the only reliable way: by opening a replication connection and running
``IDENTIFY_SYSTEM``, exactly what pg_basebackup does first.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path

import psycopg

from respaldo.errors import ConnectionFailed, QueryFailed, RespaldoError
from respaldo.postgres.archiver import idle_slots, judge, read_archiver
from respaldo.postgres.connection import ConnInfo
from respaldo.postgres.dbprops import quote_ident
from respaldo.postgres.server import Connection, _guarded, connect
from respaldo.postgres.standby import stale_standby
from respaldo.postgres.toolsets import find_tools

RESTART = "then restart the server"
RELOAD = "then SELECT pg_reload_conf()"


class Status(StrEnum):
    OK = "ok"
    MISSING = "missing"
    """The server lacks it: physical backups or point-in-time recovery will fail."""
    WARNING = "warning"
    """Works, but not as well as it should."""


@dataclass(frozen=True)
class Finding:
    name: str
    status: Status
    value: str
    fix: str = ""


@dataclass
class ServerCheck:
    findings: list[Finding]
    system_identifier: int | None = None
    server_major: int | None = None
    data_directory: str | None = None
    """As the server says (None where this role may not read it)."""
    archive_command: str | None = None

    @property
    def ok(self) -> bool:
        return all(f.status is not Status.MISSING for f in self.findings)


def _setting(conn: Connection, conninfo: ConnInfo, name: str) -> str | None:
    try:
        row = _guarded(
            conninfo,
            f"reading {name}",
            lambda: conn.execute("SELECT current_setting(%s, true)", (name,)).fetchone(),
        )
    except QueryFailed:
        return None
    return None if row is None or row[0] is None else str(row[0])


def _replication_attempt(conninfo: ConnInfo) -> str | None:
    """None if a replication connection works, else the server's reason."""
    replication = dataclasses.replace(conninfo, params={**conninfo.params, "replication": "true"})
    try:
        conn = connect(replication, autocommit=True, application_name="respaldo check")
    except ConnectionFailed as exc:
        return exc.message
    with conn:
        result = conn.pgconn.exec_(b"IDENTIFY_SYSTEM")
        if result.status != psycopg.pq.ExecStatus.TUPLES_OK:
            return (result.error_message or b"").decode("utf-8", "replace").strip()
    return None


def check_server(
    conninfo: ConnInfo,
    *,
    archive_command: str,
    pg_bin_dir: Path | None = None,
    slot_wal_limit: int = 0,
    standby_lag: timedelta = timedelta(minutes=5),
) -> ServerCheck:
    """Check the server of ``conninfo`` for physical backups and WAL archiving.

    ``archive_command`` is the command to suggest when none is set; ``pg_bin_dir`` the
    database's setting, for the pg_basebackup that fits the server; ``slot_wal_limit``
    the bytes of WAL an unused replication slot may hold before it is a warning (0: not
    checked; ``[rpo] slot_wal_mb``, as the status's ``slot`` items); ``standby_lag``
    ``[rpo] standby_lag_minutes``, for a standby (backups refuse one whose data is old:
    :mod:`respaldo.postgres.standby`, asked the same way here). Never raises for
    what the server lacks (that is a finding); a server that cannot be reached at all is
    one finding, ``connection``, and nothing else is checked.
    """
    findings: list[Finding] = []
    try:
        conn = connect(conninfo, autocommit=True, application_name="respaldo check")
    except ConnectionFailed as exc:
        findings.append(Finding("connection", Status.MISSING, exc.message, exc.hint))
        return ServerCheck(findings)
    result = ServerCheck(findings)
    with conn:
        _server(conn, conninfo, result, pg_bin_dir, standby_lag)
        user = conn.info.user
        _wal(conn, conninfo, findings)
        _role(conn, conninfo, user, findings)
        _archiving(conn, conninfo, archive_command, findings)
        result.data_directory = _setting(conn, conninfo, "data_directory")
        result.archive_command = _setting(conn, conninfo, "archive_command")
        _tablespaces(conn, conninfo, findings)
        if slot_wal_limit:
            _slots(conn, conninfo, slot_wal_limit, findings)
    _replication(conninfo, user, findings)
    return result


def _slots(conn: Connection, conninfo: ConnInfo, limit: int, findings: list[Finding]) -> None:
    """A warning for each replication slot nothing uses that holds more than ``limit``
    bytes of WAL: PostgreSQL keeps it until the disk is full. Never dropped here."""
    try:
        slots = idle_slots(conn, conninfo)
    except QueryFailed:
        return  # a role that cannot read them: the status says nothing either
    for slot in slots:
        if slot.retained > limit:
            findings.append(
                Finding(
                    f"replication slot {slot.name}",
                    Status.WARNING,
                    f"not in use; holds {_mb(slot.retained)} of WAL on the server (more than "
                    f"{_mb(limit)}), "
                    + (
                        "which PostgreSQL keeps until the disk is full"
                        if slot.keep_limit is None
                        else f"kept up to max_slot_wal_keep_size ({_mb(slot.keep_limit)}), "
                        "then the slot is invalidated and its consumer cannot resume from it"
                    ),
                    f"if nothing will use it again: SELECT pg_drop_replication_slot('{slot.name}')",
                )
            )


def _mb(count: int) -> str:
    return f"{count / 1_000_000:.1f} MB"


def _server(
    conn: Connection,
    conninfo: ConnInfo,
    result: ServerCheck,
    pg_bin_dir: Path | None,
    standby_lag: timedelta,
) -> None:
    row = _guarded(
        conninfo,
        "reading the server identity",
        lambda: conn.execute(
            "SELECT current_setting('server_version_num')::int, current_setting('server_version'),"
            " (SELECT system_identifier FROM pg_catalog.pg_control_system()),"
            " pg_catalog.pg_is_in_recovery()"
        ).fetchone(),
    )
    assert row is not None
    major = int(row[0]) // 10000
    result.system_identifier = int(row[2])
    result.server_major = major
    result.findings.append(Finding("connection", Status.OK, f"PostgreSQL {row[1]}"))
    if major < 13:
        result.findings.append(
            Finding(
                "server version",
                Status.MISSING,
                str(row[1]),
                "physical backups need PostgreSQL 13 or newer (backup manifests)",
            )
        )
    try:
        tools = find_tools("physical", major, pg_bin_dir=pg_bin_dir)
    except RespaldoError as exc:
        result.findings.append(Finding("pg_basebackup", Status.MISSING, str(exc), exc.hint))
    else:
        detail = f"{tools.version.text} ({tools.bindir})"
        result.findings.append(Finding("pg_basebackup", Status.OK, detail))
    if major >= FIRST_INCREMENTAL_MAJOR:
        result.findings.append(_summarize_wal(conn, conninfo))
    if row[3]:
        result.findings.append(
            Finding(
                "primary",
                Status.WARNING,
                "the server is a standby",
                "back up the primary; a standby's WAL is archived by the primary",
            )
        )
        result.findings.append(_standby(conn, conninfo, standby_lag))


def _standby(conn: Connection, conninfo: ConnInfo, lag: timedelta) -> Finding:
    """Whether backups through this standby are refused, and why: the question a backup
    asks (paused or delayed replay, cut off from its primary, replay stuck)."""
    try:
        stale = stale_standby(conninfo, conn, lag)
    except QueryFailed as exc:
        return Finding("standby replay", Status.WARNING, exc.message, exc.hint)
    if stale is None:
        return Finding("standby replay", Status.OK, "replays what it receives from its primary")
    return Finding(
        "standby replay", Status.MISSING, f"backups are refused: {stale.message}", stale.hint
    )


FIRST_INCREMENTAL_MAJOR = 17


def _summarize_wal(conn: Connection, conninfo: ConnInfo) -> Finding:
    """PostgreSQL 17+: incremental physical backups need the server's WAL summaries."""
    summarize = _setting(conn, conninfo, "summarize_wal") or "off"
    if summarize == "on":
        return Finding("incremental backups", Status.OK, "summarize_wal = on")
    return Finding(
        "incremental backups",
        Status.WARNING,
        f"summarize_wal = {summarize}: every physical backup is full",
        "ALTER SYSTEM SET summarize_wal = on; SELECT pg_reload_conf(); (no restart; the "
        "next physical backup is still full, the ones after it incremental)",
    )


def _wal(conn: Connection, conninfo: ConnInfo, findings: list[Finding]) -> None:
    level = _setting(conn, conninfo, "wal_level") or "?"
    findings.append(
        Finding(
            "wal_level",
            Status.OK if level in ("replica", "logical") else Status.MISSING,
            level,
            ""
            if level in ("replica", "logical")
            else f"ALTER SYSTEM SET wal_level = replica; {RESTART}",
        )
    )
    senders = int(_setting(conn, conninfo, "max_wal_senders") or 0)
    findings.append(
        Finding(
            "max_wal_senders",
            Status.OK if senders >= 2 else Status.MISSING if senders == 0 else Status.WARNING,
            str(senders),
            "" if senders >= 2 else f"ALTER SYSTEM SET max_wal_senders = 10; {RESTART}",
        )
    )
    slots = int(_setting(conn, conninfo, "max_replication_slots") or 0)
    findings.append(
        Finding(
            "max_replication_slots",
            Status.OK if slots >= 1 else Status.WARNING,
            str(slots),
            ""
            if slots >= 1
            else "backups cannot reserve their WAL (a busy server may recycle it before the "
            f"backup ends): ALTER SYSTEM SET max_replication_slots = 10; {RESTART}",
        )
    )


def _role(conn: Connection, conninfo: ConnInfo, user: str, findings: list[Finding]) -> None:
    row = _guarded(
        conninfo,
        "reading the role",
        lambda: conn.execute(
            "SELECT rolreplication, rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user"
        ).fetchone(),
    )
    allowed = bool(row and (row[0] or row[1]))
    value = "superuser" if row and row[1] else "REPLICATION" if allowed else "no REPLICATION"
    findings.append(
        Finding(
            "replication role",
            Status.OK if allowed else Status.MISSING,
            f"{user}: {value}",
            "" if allowed else _grant_replication(user),
        )
    )


def _archiving(
    conn: Connection, conninfo: ConnInfo, suggested: str, findings: list[Finding]
) -> None:
    mode = _setting(conn, conninfo, "archive_mode") or "?"
    findings.append(
        Finding(
            "archive_mode",
            Status.OK if mode in ("on", "always") else Status.MISSING,
            mode,
            ""
            if mode in ("on", "always")
            else "needed for point-in-time recovery: "
            f"ALTER SYSTEM SET archive_mode = on; {RESTART}",
        )
    )
    command = _setting(conn, conninfo, "archive_command")
    library = _setting(conn, conninfo, "archive_library") or ""
    # A SQL literal: shlex quotes a config path with a space ('/srv/Copias de
    # seguridad/respaldo.toml') in single quotes, which end a literal unless doubled.
    literal = "'" + suggested.replace("'", "''") + "'"
    set_command = f"ALTER SYSTEM SET archive_command = {literal}; {RELOAD}"
    if command is None:
        findings.append(
            Finding(
                "archive_command",
                Status.WARNING,
                "cannot be read by this role",
                "check it as a superuser (or grant pg_read_all_settings)",
            )
        )
    elif library:
        findings.append(
            Finding(
                "archive_command",
                Status.MISSING,
                f"archive_library = {library}",
                f"ALTER SYSTEM RESET archive_library; {set_command}",
            )
        )
    elif command in ("", "(disabled)"):
        findings.append(Finding("archive_command", Status.MISSING, "not set", set_command))
    elif "wal-push" not in command:
        findings.append(
            Finding(
                "archive_command",
                Status.WARNING,
                command,
                f"WAL goes elsewhere, where respaldo cannot restore it from: {set_command}",
            )
        )
    else:
        findings.append(Finding("archive_command", Status.OK, command))
    # Whether segments wait is only worth asking where the server archives at all.
    state = read_archiver(conn, conninfo, list_waiting=mode in ("on", "always"))
    verdict = judge(state)
    findings.append(Finding("archiver", Status(verdict.status), verdict.value, verdict.fix))


def _tablespaces(conn: Connection, conninfo: ConnInfo, findings: list[Finding]) -> None:
    row = _guarded(
        conninfo,
        "counting tablespaces",
        lambda: conn.execute(
            "SELECT count(*) FROM pg_catalog.pg_tablespace"
            " WHERE spcname NOT IN ('pg_default', 'pg_global')"
        ).fetchone(),
    )
    count = int(row[0]) if row else 0
    findings.append(
        Finding(
            "tablespaces",
            Status.OK if count == 0 else Status.MISSING,
            f"{count} besides pg_default",
            "" if count == 0 else "physical backups of clusters with tablespaces are not supported",
        )
    )


def _missing(findings: list[Finding], name: str) -> bool:
    return any(f.name == name and f.status == Status.MISSING for f in findings)


def _grant_replication(user: str) -> str:
    # A statement to paste into psql: the role's name quoted as SQL wants it, so that
    # one named 'Jefe "de" Obra' gets a statement that runs (not '"Jefe "de" Obra"').
    return f"ALTER ROLE {quote_ident(user)} WITH REPLICATION"


# Words pg_hba.conf's user field reads as keywords unless quoted.
_HBA_KEYWORDS = frozenset({"all", "sameuser", "samerole", "samegroup", "replication"})


def _hba_user(user: str) -> str:
    """``user`` as a pg_hba.conf user field. A name other than lower-case letters, digits
    and ``_`` is double-quoted: a space or a comma would split it, and capitals are fine
    either way. pg_hba.conf has no way to quote a ``"`` inside a name (such a role needs
    a ``/regex`` user field, PostgreSQL 16+, or a group role): that case stays wrong."""
    plain = all(c.isascii() and (c.islower() or c.isdigit() or c == "_") for c in user)
    if user and plain and user not in _HBA_KEYWORDS:
        return user
    return f'"{user}"'


def _replication(conninfo: ConnInfo, user: str, findings: list[Finding]) -> None:
    reason = _replication_attempt(conninfo)
    if reason is None:
        findings.append(Finding("replication connection", Status.OK, "IDENTIFY_SYSTEM works"))
        return
    host = conninfo.host or "local socket"
    if "pg_hba.conf" in reason:
        kind = "local" if conninfo.host is None or conninfo.host.startswith("/") else "host"
        address = "" if kind == "local" else " <respaldo's address>/32"
        fix = (
            f"add to pg_hba.conf: {kind} replication {_hba_user(user)}{address} "
            f"scram-sha-256; {RELOAD}"
        )
    elif "replication role" in reason or _missing(findings, "replication role"):
        # The server's refusal is in its language (lc_messages: "debe ser superusuario o
        # rol de replicación"); what the role may do was asked of the server before.
        fix = _grant_replication(user)
    elif "max_wal_senders" in reason or "too many" in reason:
        fix = f"raise max_wal_senders; {RESTART}"
    else:
        fix = f"check that {host} accepts replication connections from respaldo"
    findings.append(Finding("replication connection", Status.MISSING, reason, fix))

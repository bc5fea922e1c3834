"""Is the server's WAL archiving working? Read from the segments waiting, not only the
archiver's statistics.

``pg_stat_archiver`` alone can say "no failure" while nothing is archived: PostgreSQL
treats an ``archive_command`` exit status above 125 (the shell's "cannot execute",
"not found") or a death by signal as fatal for the archiver, which exits before it
counts the failure, is restarted, and fails again. What does show it is
``pg_wal/archive_status``: one ``.ready`` file per segment waiting, whose modification
time is when it began to wait. Segments that wait long while nothing is archived mean
archiving is failing, whatever the statistics say.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from respaldo.errors import QueryFailed
from respaldo.postgres.connection import ConnInfo
from respaldo.postgres.server import Connection, _guarded

STUCK_AFTER = timedelta(minutes=5)
"""A segment waiting this long, with no segment archived for as long, is not a backlog
being worked off but archiving that fails. A working archiver takes a finished segment at
once (the server wakes it), and retries a failing command at least once a minute."""

_INSUFFICIENT_PRIVILEGE = "42501"
_UNDEFINED_FUNCTION = "42883"


@dataclass(frozen=True)
class ArchiverState:
    """What the server says about its archiving, at the server's ``now``."""

    now: datetime
    archived: int
    last_wal: str | None
    last_time: datetime | None
    failed: int
    failed_wal: str | None
    failed_time: datetime | None
    waiting: int | None
    """Segments (and history or backup files) waiting to be archived; None: unknown."""
    oldest_waiting: datetime | None
    """When the oldest of them began to wait."""
    unknown_why: str = ""
    """Why ``waiting`` is unknown."""
    unarchived: int | None = None
    """Where ``waiting`` is unknown: finished segments after the last one archived (the
    current WAL file is further on; a segment is not removed before it is archived).
    None: unknown (nothing archived yet, another timeline, a standby)."""
    segment_size: int | None = None
    """The server's WAL segment size in bytes (``wal_segment_size``)."""


def server_version_and_archive_mode(conn: Connection, conninfo: ConnInfo) -> tuple[str, str]:
    """(``server_version``, ``archive_mode``) of the server; ``?`` for a mode this role
    may not read. Raises QueryFailed."""
    row = _guarded(
        conninfo,
        "reading archive_mode",
        lambda: conn.execute(
            "SELECT current_setting('server_version'), current_setting('archive_mode', true)"
        ).fetchone(),
    )
    assert row is not None
    return str(row[0]), str(row[1] or "?")


def server_in_recovery(conn: Connection, conninfo: ConnInfo) -> bool:
    """Whether the server is a standby (in recovery). Raises QueryFailed."""
    row = _guarded(
        conninfo,
        "asking whether the server is a standby",
        lambda: conn.execute("SELECT pg_catalog.pg_is_in_recovery()").fetchone(),
    )
    return bool(row is not None and row[0])


def server_timeline(conn: Connection, conninfo: ConnInfo) -> int:
    """The timeline a primary writes its WAL on (not a standby: PostgreSQL refuses
    ``pg_walfile_name`` in recovery). Raises QueryFailed."""
    row = _guarded(
        conninfo,
        "reading the server's timeline",
        lambda: conn.execute(
            "SELECT pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn())"
        ).fetchone(),
    )
    return int(str(row[0])[:8], 16) if row is not None else 0


@dataclass(frozen=True)
class IdleSlot:
    """A replication slot nothing is connected to, and the WAL it keeps on the server."""

    name: str
    kind: str
    """physical or logical."""
    retained: int
    """Bytes of WAL from its restart_lsn to the server's current position: what
    PostgreSQL keeps in pg_wal for it (the slot's consumer resumes from there)."""
    keep_limit: int | None = None
    """The server's ``max_slot_wal_keep_size`` in bytes, None where unlimited (-1, the
    default): beyond it PostgreSQL invalidates the slot rather than keep more WAL, so the
    slot cannot fill the disk."""
    database: str | None = None
    """The database a logical slot belongs to (its changes are decoded there); None for
    a physical slot, which is the whole server's."""


# Inactive slots that still hold WAL (an invalidated slot, max_slot_wal_keep_size passed,
# has no restart_lsn), biggest first. pg_current_wal_lsn() fails on a standby: there the
# slot holds WAL up to what was replayed.
_IDLE_SLOTS = """
SELECT slot_name, slot_type,
       pg_catalog.pg_wal_lsn_diff(
           CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_replay_lsn()
                ELSE pg_catalog.pg_current_wal_lsn() END,
           restart_lsn)::bigint,
       pg_catalog.pg_size_bytes(pg_catalog.current_setting('max_slot_wal_keep_size')),
       database
FROM pg_catalog.pg_replication_slots
WHERE NOT active AND restart_lsn IS NOT NULL
ORDER BY 3 DESC, 1
"""


def idle_slots(conn: Connection, conninfo: ConnInfo) -> list[IdleSlot]:
    """The server's replication slots that nothing uses now and that hold WAL, biggest
    first. Raises QueryFailed."""
    rows = _guarded(
        conninfo,
        "reading the replication slots",
        lambda: conn.execute(_IDLE_SLOTS).fetchall(),
    )
    return [
        IdleSlot(
            str(name),
            str(kind),
            max(int(size or 0), 0),
            int(keep) if keep is not None and int(keep) >= 0 else None,
            str(database) if database is not None else None,
        )
        for name, kind, size, keep, database in rows
    ]


def server_system_identifier(conn: Connection, conninfo: ConnInfo) -> str | None:
    """The server's system identifier (which cluster it is: a new one after ``initdb`` or
    ``pg_upgrade``); None where this role may not read it. Raises QueryFailed for other
    errors."""
    try:
        row = _guarded(
            conninfo,
            "reading the system identifier",
            lambda: conn.execute(
                "SELECT system_identifier FROM pg_catalog.pg_control_system()"
            ).fetchone(),
        )
    except QueryFailed as exc:
        if exc.sqlstate == _INSUFFICIENT_PRIVILEGE:
            return None
        raise
    return str(row[0]) if row is not None and row[0] is not None else None


def read_archiver(conn: Connection, conninfo: ConnInfo, *, list_waiting: bool) -> ArchiverState:
    """Read ``pg_stat_archiver`` and, with ``list_waiting``, the ``.ready`` files.

    Listing them needs ``pg_ls_archive_statusdir()`` (PostgreSQL 12 and newer), which only
    superusers and members of ``pg_monitor`` may call; without it ``waiting`` is None and
    ``unknown_why`` says why. Raises QueryFailed for other errors.
    """
    row = _guarded(
        conninfo,
        "reading pg_stat_archiver",
        lambda: conn.execute(
            "SELECT now(), archived_count, last_archived_wal, last_archived_time,"
            " failed_count, last_failed_wal, last_failed_time,"
            " pg_catalog.pg_size_bytes(pg_catalog.current_setting('wal_segment_size'))"
            " FROM pg_catalog.pg_stat_archiver"
        ).fetchone(),
    )
    assert row is not None
    waiting: int | None = None
    oldest: datetime | None = None
    why = ""
    if list_waiting:
        try:
            listed = _guarded(
                conninfo,
                "listing pg_wal/archive_status",
                lambda: conn.execute(
                    "SELECT count(*), min(modification)"
                    " FROM pg_catalog.pg_ls_archive_statusdir() WHERE name LIKE '%.ready'"
                ).fetchone(),
            )
        except QueryFailed as exc:
            if exc.sqlstate == _INSUFFICIENT_PRIVILEGE:
                why = f"{conn.info.user} may not call pg_ls_archive_statusdir()"
            elif exc.sqlstate == _UNDEFINED_FUNCTION:
                why = "the server is older than PostgreSQL 12"
            else:
                raise
        else:
            assert listed is not None
            waiting, oldest = int(listed[0]), listed[1]
    unarchived = None
    if waiting is None and row[2]:
        unarchived = _finished_after(conn, conninfo, str(row[2]))
    return ArchiverState(
        now=row[0],
        archived=int(row[1]),
        last_wal=row[2],
        last_time=row[3],
        failed=int(row[4]),
        failed_wal=row[5],
        failed_time=row[6],
        waiting=waiting,
        oldest_waiting=oldest,
        unknown_why=why,
        unarchived=unarchived,
        segment_size=int(row[7]) if row[7] is not None else None,
    )


def _finished_after(conn: Connection, conninfo: ConnInfo, last: str) -> int | None:
    """How many segments finished after ``last`` (the last one archived): the distance
    to the current WAL write position, which any role may read. None where it cannot be
    told."""
    try:
        row = _guarded(
            conninfo,
            "reading the current WAL file",
            lambda: conn.execute(
                "SELECT pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()),"
                " pg_catalog.pg_current_wal_lsn() - '0/0'::pg_catalog.pg_lsn,"
                " (SELECT setting::bigint FROM pg_catalog.pg_settings"
                "  WHERE name = 'wal_segment_size')"
            ).fetchone(),
        )
    except QueryFailed:
        return None  # a standby (no current WAL position), or an older server
    if row is None or row[0] is None or row[1] is None or not row[2]:
        return None
    return finished_between(last, str(row[0]), int(row[1]), int(row[2]))


def finished_between(last: str, current_file: str, position: int, size: int) -> int | None:
    """Pure: how many segments finished after segment file ``last``, the server's WAL
    write ``position`` being ``position`` bytes (``current_file`` its file name, for the
    timeline). None where they cannot be compared.

    The segment is counted from the position, not from the file name: right after a
    segment switch with nothing written since, the position sits exactly on the
    boundary, where ``pg_walfile_name()`` names the segment just finished. Counted by
    name, that segment (its ``.ready`` file already written) was invisible until more
    WAL came, so an idle server stuck on it looked as if nothing waited.
    """
    here, there = _segment(current_file, size), _segment(last, size)
    if here is None or there is None or here[0] != there[0]:
        return None  # a history or partial file, or another timeline: not comparable
    return max(0, position // size - there[1] - 1)


def _segment(name: str, size: int) -> tuple[int, int] | None:
    """(timeline, position) of a WAL segment file name; None for any other file."""
    if len(name) != 24 or any(c not in "0123456789ABCDEF" for c in name):
        return None
    per_log = 0x100000000 // size
    return int(name[:8], 16), int(name[8:16], 16) * per_log + int(name[16:], 16)


def _age(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


@dataclass(frozen=True)
class Verdict:
    """A finding's status (``ok``, ``warning`` or ``missing``), what is seen, how to fix."""

    status: Literal["ok", "warning", "missing"]
    value: str
    fix: str = ""


def judge(state: ArchiverState) -> Verdict:
    """Pure: the verdict on ``state``.

    ``missing`` (archiving is failing) when segments have waited :data:`STUCK_AFTER` and
    none was archived for as long; ``warning`` when the last attempt failed, when the
    waiting segments cannot be seen, or when segments wait and none was ever archived (not
    proven yet); else ``ok``.
    """
    value = f"{state.archived} archived" + (
        f", last {state.last_wal} at {state.last_time:%Y-%m-%d %H:%M:%S}"
        if state.last_time is not None
        else ""
    )
    counted_failure = state.failed_time is not None and (
        state.last_time is None or state.failed_time > state.last_time
    )
    if state.waiting and state.oldest_waiting is not None:
        waited = state.now - state.oldest_waiting
        quiet = state.now - state.last_time if state.last_time is not None else None
        if waited >= STUCK_AFTER and (quiet is None or quiet >= STUCK_AFTER):
            last = (
                "never archived"
                if state.last_time is None or quiet is None
                else f"last archived {_age(quiet)} ago ({state.last_wal})"
            )
            return Verdict(
                "missing",
                f"archiving is failing: {_plural(state.waiting, 'segment')} waiting, "
                f"the oldest for {_age(waited)}; {last}",
                _failing_fix(counted_failure),
            )
    if counted_failure:
        assert state.failed_time is not None
        return Verdict(
            "warning",
            f"{value}; failing: {state.failed_wal} at {state.failed_time:%Y-%m-%d %H:%M:%S}",
            "the last archive_command failed; its error is in the server log",
        )
    if state.waiting is None and state.unknown_why:
        return Verdict(
            "warning",
            f"{value}; could not check the segments waiting to be archived ({state.unknown_why})",
            "run check as a superuser or GRANT pg_monitor to this role: an archive_command "
            "that cannot run at all shows only there, not in pg_stat_archiver",
        )
    if state.waiting and state.last_time is None:
        # Right after archive_command is set, a command that cannot run has neither
        # counted a failure nor waited STUCK_AFTER yet: nothing proves it works.
        return Verdict(
            "warning",
            f"not proven yet: {_plural(state.waiting, 'segment')} waiting, none archived yet",
            "switch to a new WAL segment (SELECT pg_switch_wal()) and run check again once "
            "the server has had a moment to archive it; if it still waits, the server log "
            "says why archive_command fails",
        )
    if state.waiting:
        value += f"; {_plural(state.waiting, 'segment')} waiting"
    return Verdict("ok", value)


def _failing_fix(counted: bool) -> str:
    if counted:
        return "archive_command keeps failing: its error is in the server log"
    return (
        "the server cannot run archive_command at all (PostgreSQL does not count that as a "
        "failure): make respaldo executable by the server's OS user, and its config and "
        "passphrase files readable by it; the server log says why "
        "('archive command failed with exit code 126' or 127)"
    )

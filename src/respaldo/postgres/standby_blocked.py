"""A logical backup through a standby whose WAL replay blocks a table's lock.

On a standby only the startup process (WAL replay) takes locks that conflict with a
dump's ACCESS SHARE: it takes ACCESS EXCLUSIVE where the primary did (DDL, ``TRUNCATE``,
``LOCK TABLE``) and holds it until that transaction's end is replayed. While a standby
query holds a lock replay needs and ``max_standby_streaming_delay = -1`` (replay never
cancels it), replay's request waits in the lock's queue, and every later request queues
behind it: a backup begun within ``[rpo] standby_lag_minutes`` of that (so not refused
as stale, respaldo.postgres.standby) waited for ever, first in respaldo's own look at
the tables' sizes, else in pg_dump's ``LOCK TABLE``, all with their timeouts off.

Through a standby, respaldo's sessions get ``lock_timeout`` and pg_dump
``--lock-wait-timeout`` of ``[rpo] standby_lock_wait_minutes`` (:func:`lock_wait_ms`);
a wait that long fails the backup, and :func:`replay_blocked` says why, having asked the
standby what replay waits for. A primary's backups keep waiting as long as it takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from respaldo.errors import PostgresError, QueryFailed, SourceError
from respaldo.postgres.connection import ConnInfo
from respaldo.postgres.server import _guarded, connect

LOCK_NOT_AVAILABLE = "55P03"
"""SQLSTATE of a statement ended by ``lock_timeout``."""

# pg_dump --lock-wait-timeout ends its LOCK TABLE statements by a statement timeout and
# reports the query (in English whatever the server's lc_messages): that says it.
_DUMP_LOCK = "Query was: LOCK TABLE"

# The startup process's locks on this database's relations and, for one it waits for,
# the sessions holding a lock on that relation: all of them conflict with its ACCESS
# EXCLUSIVE. (pg_blocking_pids() does not look at the startup process: it is not among
# the backends it searches.) Neither view takes a lock on a user table.
_REPLAY_LOCKS = """
SELECT w.relation::pg_catalog.regclass::text, w.granted,
       b.pid, a.usename, a.application_name, a.state, a.xact_start,
       pg_catalog.current_setting('max_standby_streaming_delay')
  FROM pg_catalog.pg_stat_activity s
  JOIN pg_catalog.pg_locks w ON w.pid = s.pid AND w.locktype = 'relation'
  LEFT JOIN pg_catalog.pg_locks b
         ON NOT w.granted AND b.granted AND b.pid <> w.pid AND b.locktype = 'relation'
        AND b.database = w.database AND b.relation = w.relation
  LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = b.pid
 WHERE s.backend_type = 'startup'
   AND w.mode = 'AccessExclusiveLock'
   AND w.database = (SELECT oid FROM pg_catalog.pg_database
                      WHERE datname = pg_catalog.current_database())
 ORDER BY w.granted, 1, b.pid
"""


def lock_wait_ms(wait: timedelta) -> int:
    """``[rpo] standby_lock_wait_minutes`` as the milliseconds ``lock_timeout`` and
    ``--lock-wait-timeout`` take (at least 1: 0 would mean no limit). Pure."""
    return max(1, round(wait.total_seconds() * 1000))


def lock_waited(exc: BaseException) -> bool:
    """Whether ``exc`` is a lock wait that the limit of :func:`lock_wait_ms` ended: one
    of respaldo's statements (SQLSTATE 55P03) or pg_dump's ``LOCK TABLE``."""
    if isinstance(exc, QueryFailed):
        return exc.sqlstate == LOCK_NOT_AVAILABLE
    return isinstance(exc, PostgresError) and _DUMP_LOCK in exc.stderr


@dataclass(frozen=True)
class ReplayLock:
    """One ACCESS EXCLUSIVE lock of the standby's WAL replay (held, or waited for)."""

    relation: str
    granted: bool
    holder_pid: int | None = None
    """For one waited for: a standby session holding the lock."""
    holder_user: str | None = None
    holder_application: str | None = None
    holder_state: str | None = None
    holder_since: datetime | None = None
    """When the holder's transaction began (None: not shown to this role)."""
    streaming_delay: str = ""
    """``max_standby_streaming_delay`` on the standby."""


def replay_locks(conninfo: ConnInfo) -> list[ReplayLock]:
    """Ask the standby of ``conninfo`` (a session of its own) for its replay's locks.
    Raises ConnectionFailed, QueryFailed."""
    with connect(conninfo, autocommit=True) as conn:
        rows = _guarded(
            conninfo,
            "asking what the standby's WAL replay waits for",
            lambda: conn.execute(_REPLAY_LOCKS).fetchall(),
        )
    return [
        ReplayLock(
            relation=str(r[0]),
            granted=bool(r[1]),
            holder_pid=r[2],
            holder_user=r[3],
            holder_application=r[4] or None,
            holder_state=r[5],
            holder_since=r[6],
            streaming_delay=str(r[7]),
        )
        for r in rows
    ]


def replay_blocked(wait: timedelta, locks: list[ReplayLock] | None) -> SourceError:
    """The error of a backup through a standby that waited ``wait`` (``[rpo]
    standby_lock_wait_minutes``) for a lock behind WAL replay; ``locks``: what
    :func:`replay_locks` found (None: it could not be asked). Pure."""
    limit = f"[rpo] standby_lock_wait_minutes = {wait.total_seconds() / 60:g}"
    waiting = [lock for lock in locks or [] if not lock.granted]
    held = [lock for lock in locks or [] if lock.granted]
    head = (
        "the server is a standby whose WAL replay blocks a table's lock the backup needs, "
        f"and the backup waited for it longer than {limit}"
    )
    if waiting:
        lock = waiting[0]
        # One row per lock mode a session holds on the relation: each session once.
        holders = list(
            {
                w.holder_pid: w for w in waiting if w.relation == lock.relation and w.holder_pid
            }.values()
        )
        said = " and ".join(_session(w) for w in holders)
        by = f", held by the standby's {said}" if holders else ""
        ends = ", ".join(f"pg_terminate_backend({w.holder_pid})" for w in holders)
        which = "that session" if len(holders) == 1 else "those sessions"
        end = f"end {which} on the standby (SELECT {ends})" if holders else "end the session"
        return SourceError(
            f"{head}: replay is stuck, waiting for a lock on table {lock.relation}{by}, "
            "which it does not cancel (max_standby_streaming_delay = "
            f"{lock.streaming_delay or '?'}); the standby's data stays as of then",
            hint=f"{end} or let replay cancel such queries (max_standby_streaming_delay not "
            "-1), then back up again; or back up through a dsn that leads to the primary",
        )
    if held:
        tables = ", ".join(sorted({lock.relation for lock in held}))
        return SourceError(
            f"{head}: replay holds an ACCESS EXCLUSIVE lock on table {tables} for a "
            "transaction of the primary that has not ended (DDL, TRUNCATE or LOCK TABLE "
            "there)",
            hint="back up again once that transaction has ended on the primary; or back up "
            "through a dsn that leads to the primary",
        )
    return SourceError(
        f"{head} (what replay waited for could not be told: it may have moved on since)",
        hint="pg_locks and pg_stat_activity on the standby show what its startup process "
        "waits for; or back up through a dsn that leads to the primary",
    )


def _session(lock: ReplayLock) -> str:
    parts = [f"user {lock.holder_user}"] if lock.holder_user else []
    if lock.holder_application:
        parts.append(f"application {lock.holder_application}")
    if lock.holder_since is not None:
        since = lock.holder_since.isoformat(sep=" ", timespec="seconds")
        parts.append(f"{lock.holder_state or 'in a transaction'} since {since}")
    said = f" ({', '.join(parts)})" if parts else ""
    return f"session {lock.holder_pid}{said}"

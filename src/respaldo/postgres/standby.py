"""A backup's source that is a standby whose data stands still, lags on purpose, or has
lost its primary.

A dsn may lead to a standby (a replica chosen to spare the primary, or an old primary
made a standby by a failover). One that replays WAL as it receives it is backed up like
the primary, a moment behind. One whose replay is paused (``pg_wal_replay_pause()``, a
recovery target reached with ``recovery_target_action = 'pause'``), or that applies WAL
only ``recovery_min_apply_delay`` after it was written (a delayed standby, kept to undo
mistakes), holds the data of when replay stopped, or of hours ago: its backup completed
"now", the status counted it as the database now (green, its RPO met), and a restore of
it lacked everything committed since (tested: a row committed on the primary before the
backup was not in it). Such a backup is refused, saying why.

So is one of a standby cut off from its primary (tested: ``primary_conninfo`` broken, a
row committed on the primary missing from a backup that "completed 0 s ago"), and one
whose replay is stuck behind what it received (a query on the standby that replay waits
for, ``max_standby_streaming_delay = -1``). Its own answers cannot tell a broken
connection from a primary that writes nothing, so the age of its last replayed
transaction decides, against ``[rpo] standby_lag_minutes``: older, while no WAL receiver
is connected (or while replay stays behind what the receiver has), is refused. The
primary is not asked: respaldo knows only the dsn (pgBackRest and Barman, which back up
from a standby, are given the primary's connection too; docs/physical.md).

:func:`read_standby` asks once (on a session the caller has, no new connection) and
:func:`stale_reason` judges the answer (pure); :func:`stale_standby` is both, with a
moment for replay to catch up. ``backup`` refuses on it (:func:`refuse_stale_standby`),
``check`` says it, and ``status`` (which does not wait) says :func:`stale_reason`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from respaldo.errors import SourceError
from respaldo.postgres.connection import ConnInfo
from respaldo.postgres.server import Connection, _guarded, session

# pg_stat_wal_receiver has a row while a WAL receiver is connected to its upstream (none
# while it cannot connect, nor on a primary); its pid is shown to every role, the other
# columns only to pg_read_all_stats, whence pg_last_wal_receive_lsn() in their place.
_ASKED = """
SELECT pg_catalog.pg_is_in_recovery(),
       CASE WHEN pg_catalog.pg_is_in_recovery()
            THEN pg_catalog.pg_is_wal_replay_paused() ELSE false END,
       CASE WHEN pg_catalog.pg_is_in_recovery()
            THEN pg_catalog.current_setting('recovery_min_apply_delay') ELSE '0' END,
       pg_catalog.pg_last_xact_replay_timestamp(),
       pg_catalog.clock_timestamp() - pg_catalog.pg_last_xact_replay_timestamp(),
       r.pid IS NOT NULL,
       pg_catalog.pg_last_wal_replay_lsn()::text,
       coalesce(r.latest_end_lsn, pg_catalog.pg_last_wal_receive_lsn())::text,
       coalesce(pg_catalog.pg_last_wal_replay_lsn()
                < coalesce(r.latest_end_lsn, pg_catalog.pg_last_wal_receive_lsn()), false)
FROM (SELECT 1) AS one LEFT JOIN pg_catalog.pg_stat_wal_receiver AS r ON true
"""

_REPLAYED = "SELECT pg_catalog.pg_last_wal_replay_lsn() >= %s::pg_lsn"

HINT = (
    "back up through a dsn that leads to the primary, or to a standby that replays what it receives"
)

CATCH_UP_LIMIT = timedelta(seconds=60)
"""The longest a backup waits for a standby's replay to reach what it had received before
it is refused (``[rpo] standby_lag_minutes`` where shorter)."""

_POLL = 0.2


@dataclass(frozen=True)
class StandbyReading:
    """One look at whether a server is a standby and how its replay goes."""

    in_recovery: bool
    paused: bool = False
    delay: str = "0"
    """``recovery_min_apply_delay`` ('0': none)."""
    replayed_at: datetime | None = None
    """When its last replayed transaction committed (on the primary); None: none since
    it started."""
    age: timedelta | None = None
    """How long ago that was, by the server's clock."""
    connected: bool = False
    """A WAL receiver is connected to its upstream."""
    replayed: str | None = None
    """The LSN replayed up to."""
    upstream: str | None = None
    """The end of the upstream's WAL as its receiver last heard (else what it received)."""
    behind: bool = False
    """Replay is short of ``upstream``."""


@dataclass(frozen=True)
class StaleStandby:
    """Why a backup of the standby would not be the database now."""

    message: str
    hint: str
    waits: bool = False
    """Replay behind what the standby has: a moment's lag may pass (see
    :func:`refuse_stale_standby`)."""


def read_standby(conninfo: ConnInfo, conn: Connection) -> StandbyReading:
    """Ask the server on ``conn``. Raises QueryFailed."""
    row = _guarded(
        conninfo,
        "asking whether the server is a standby that replays its WAL",
        lambda: conn.execute(_ASKED).fetchone(),
    )
    assert row is not None
    if not row[0]:
        return StandbyReading(in_recovery=False)
    return StandbyReading(
        in_recovery=True,
        paused=bool(row[1]),
        delay=str(row[2]),
        replayed_at=row[3],
        age=max(row[4], timedelta(0)) if row[4] is not None else None,
        connected=bool(row[5]),
        replayed=row[6],
        upstream=row[7],
        behind=bool(row[8]),
    )


def stale_reason(reading: StandbyReading, lag: timedelta) -> StaleStandby | None:
    """Pure: why a backup of the server read would hold old data, or None (a primary, or
    a standby a moment behind). ``lag``: ``[rpo] standby_lag_minutes``."""
    if not reading.in_recovery:
        return None
    when = reading.replayed_at.isoformat(sep=" ", timespec="seconds") if reading.replayed_at else ""
    since = f" (its last transaction replayed committed at {when})" if when else ""
    if reading.paused:
        return StaleStandby(
            f"the server is a standby whose WAL replay is paused{since}: a backup of it "
            "would hold the data of when replay stopped, not the database now",
            f"{HINT}; or resume replay there (SELECT pg_wal_replay_resume())",
        )
    delay = reading.delay
    if delay not in ("0", "", "-1"):
        return StaleStandby(
            f"the server is a standby that applies WAL only {delay} after it was written "
            f"(recovery_min_apply_delay){since}: a backup of it would hold the database "
            f"as it was {delay} ago, not now",
            HINT,
        )
    age = reading.age
    if age is not None and age <= lag:
        return None
    limit = f"[rpo] standby_lag_minutes = {_minutes(lag)}"
    old = (
        f"its last transaction replayed committed at {when}, {_age(age)} ago (more than {limit})"
        if age is not None
        else f"it has replayed no transaction since it started ({limit})"
    )
    if not reading.connected:
        return StaleStandby(
            "the server is a standby that is not connected to its primary (no WAL receiver) "
            f"and {old}: whether the primary wrote nothing since or its changes do not reach "
            "the standby cannot be told from here, and a backup of it would hold the data "
            "of then, not the database now",
            f"{HINT}; the standby's server log says why it does not connect "
            "(primary_conninfo); a standby fed from a WAL archive alone, whose primary is "
            "quiet for longer, needs a larger [rpo] standby_lag_minutes",
        )
    if reading.behind:
        return StaleStandby(
            f"the server is a standby whose replay is behind what it received from its "
            f"primary (replayed up to {reading.replayed}, the primary's WAL at "
            f"{reading.upstream}) and {old}: a backup of it would hold the data of then, "
            "not the database now",
            f"{HINT}; replay may wait for a query on the standby that conflicts with it "
            "(max_standby_streaming_delay; pg_stat_activity there shows it)",
            waits=True,
        )
    return None


def stale_standby(conninfo: ConnInfo, conn: Connection, lag: timedelta) -> StaleStandby | None:
    """Why a backup of the server on ``conn`` would not be the database now
    (:func:`stale_reason`), or None. Replay behind what the standby received is first
    given ``lag`` (at most :data:`CATCH_UP_LIMIT`) to reach it: WAL that arrived a moment
    ago is replayed a moment later, and only replay that stays stuck is said. Raises
    QueryFailed."""
    return _judged(conninfo, conn, lag)[1]


def _judged(
    conninfo: ConnInfo, conn: Connection, lag: timedelta
) -> tuple[StandbyReading, StaleStandby | None]:
    """:func:`stale_standby`, with the reading it ends on (read again once replay has
    caught up)."""
    reading = read_standby(conninfo, conn)
    stale = stale_reason(reading, lag)
    waited = min(lag, CATCH_UP_LIMIT)
    if (
        stale is not None
        and stale.waits
        and reading.upstream is not None
        and _catches_up(conninfo, conn, reading.upstream, waited)
    ):
        return read_standby(conninfo, conn), None
    return reading, stale


def refuse_stale_standby(
    conninfo: ConnInfo, conn: Connection | None, lag: timedelta
) -> StandbyReading:
    """Raise SourceError if the server of ``conninfo`` (asked on ``conn``, or a session
    of its own) is a standby whose backup would not be the database now
    (:func:`stale_standby`); else return what it said (a backup records a standby's last
    replayed transaction: :func:`standby_meta`). Raises ConnectionFailed, QueryFailed (a
    question the server refused)."""
    with session(conninfo, conn) as asked:
        reading, stale = _judged(conninfo, asked, lag)
    if stale is not None:
        raise SourceError(stale.message, hint=stale.hint)
    return reading


STANDBY_META = "standby"
"""The manifest's ``meta`` key of a backup taken through a standby: ``{"replayed_at":
<ISO time or null>}``, its last replayed transaction's commit time (on the primary) when
the backup began, the time its data is of. Absent: a primary, or a backup older than it."""


def standby_meta(reading: StandbyReading) -> dict[str, str | None] | None:
    """What a backup's manifest records of a standby it was taken through
    (:data:`STANDBY_META`); None for a primary. Pure."""
    if not reading.in_recovery:
        return None
    when = reading.replayed_at
    return {"replayed_at": when.isoformat() if when is not None else None}


def _catches_up(conninfo: ConnInfo, conn: Connection, target: str, within: timedelta) -> bool:
    """Whether the standby on ``conn`` replays up to ``target`` within ``within``."""
    deadline = time.monotonic() + within.total_seconds()
    while True:
        row = _guarded(
            conninfo,
            "asking how far the standby has replayed",
            lambda: conn.execute(_REPLAYED, (target,)).fetchone(),
        )
        if row is not None and row[0]:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL)  # replay is the server's: nothing to wait on but asking again


def _age(age: timedelta | None) -> str:
    seconds = int(age.total_seconds()) if age is not None else 0
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _minutes(lag: timedelta) -> str:
    return f"{lag.total_seconds() / 60:g}"

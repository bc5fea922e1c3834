"""A backup's source that is a standby whose data stands still or lags on purpose.

A dsn may lead to a standby (a replica chosen to spare the primary, or an old primary
made a standby by a failover). One that replays WAL as it receives it is backed up like
the primary, a moment behind. One whose replay is paused (``pg_wal_replay_pause()``, a
recovery target reached with ``recovery_target_action = 'pause'``), or that applies WAL
only ``recovery_min_apply_delay`` after it was written (a delayed standby, kept to undo
mistakes), holds the data of when replay stopped, or of hours ago: its backup completed
"now", the status counted it as the database now (green, its RPO met), and a restore of
it lacked everything committed since (tested: a row committed on the primary before the
backup was not in it). Such a backup is refused, saying why.
"""

from __future__ import annotations

from respaldo.errors import SourceError
from respaldo.postgres.connection import ConnInfo
from respaldo.postgres.server import Connection, _guarded, session

_ASKED = """
SELECT CASE WHEN pg_catalog.pg_is_in_recovery()
            THEN pg_catalog.pg_is_wal_replay_paused() ELSE false END,
       CASE WHEN pg_catalog.pg_is_in_recovery()
            THEN pg_catalog.current_setting('recovery_min_apply_delay') ELSE '0' END,
       pg_catalog.pg_last_xact_replay_timestamp()
"""

HINT = (
    "back up through a dsn that leads to the primary, or to a standby that replays what it receives"
)


def refuse_stale_standby(conninfo: ConnInfo, conn: Connection | None = None) -> None:
    """Raise SourceError if the server of ``conninfo`` (asked on ``conn``, or a session
    of its own) is a standby whose replay is paused or delayed on purpose (see the
    module). Raises ConnectionFailed, QueryFailed (a question the server refused)."""
    with session(conninfo, conn) as asked:
        row = _guarded(
            conninfo,
            "asking whether the server is a standby that replays its WAL",
            lambda: asked.execute(_ASKED).fetchone(),
        )
    assert row is not None
    paused, delay, replayed = bool(row[0]), str(row[1]), row[2]
    since = f" (its last transaction replayed committed at {replayed})" if replayed else ""
    if paused:
        raise SourceError(
            f"the server is a standby whose WAL replay is paused{since}: a backup of it "
            "would hold the data of when replay stopped, not the database now",
            hint=f"{HINT}; or resume replay there (SELECT pg_wal_replay_resume())",
        )
    if delay not in ("0", "", "-1"):
        raise SourceError(
            f"the server is a standby that applies WAL only {delay} after it was written "
            f"(recovery_min_apply_delay){since}: a backup of it would hold the database "
            f"as it was {delay} ago, not now",
            hint=HINT,
        )

"""Scratch databases of restores and drills: held while in use, dropped once abandoned.

A restore builds its staging database (``respaldo_staging_<hex>``) and a drill its
throwaway one (``respaldo_drill_<hex>``) on the user's server. The process that made one
drops it when it is done, but a process killed with SIGKILL cannot, nor one whose server
restarted under it (it cannot connect to drop it). Such a database must not stay for
ever: it holds a whole copy of the data.

So each is *held*: before creating it, its process opens a session of its own whose
``application_name`` is ``respaldo-hold:<name>``, and keeps it open, idle, until the
database has been renamed away or dropped (:func:`held_database`). A session ends with
its process (the server sees the socket close) and with any server restart. A scratch
database without its holding session is therefore abandoned, whoever made it and on
whichever host; :func:`drop_abandoned`, run by every restore and drill before it starts,
drops those and only those. ``pg_stat_activity`` shows every session's
``application_name`` to every role, so no privilege beyond dropping the database is
needed.

The one way to lose a live scratch database: its holding session is terminated while
the restore goes on (``pg_terminate_backend``, a network cut). A concurrent restore may
then drop it, and the first restore fails (its target untouched) instead of finishing.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Iterator
from dataclasses import replace

import psycopg

from respaldo.errors import RespaldoError
from respaldo.postgres.connection import ConnInfo
from respaldo.postgres.server import (
    Connection,
    connect,
    drop_copied_subscriptions,
    drop_database,
    session,
)

log = logging.getLogger(__name__)

STAGING_PREFIX = "respaldo_staging_"
DRILL_PREFIX = "respaldo_drill_"
SCRATCH_PREFIXES = (STAGING_PREFIX, DRILL_PREFIX)
HOLD_PREFIX = "respaldo-hold:"

_RANDOM_BYTES = {STAGING_PREFIX: 4, DRILL_PREFIX: 6}
"""Random bytes (two hex digits each) after each prefix: only names of exactly this form
are respaldo's, so that a database someone named ``respaldo_staging_ventas`` is never
swept as abandoned."""

_UNHELD = """
SELECT d.datname
  FROM pg_catalog.pg_database d
 WHERE d.datname::text ^@ ANY (%s::text[])
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a
                    WHERE a.application_name = %s || d.datname)
 ORDER BY d.datname
"""

_HEX = frozenset("0123456789abcdef")


def is_scratch_name(name: str) -> bool:
    """Whether ``name`` has exactly the form :func:`scratch_name` gives (a prefix, then
    its number of lowercase hex digits): the names :func:`drop_abandoned` sweeps, and
    the only ones. Pure."""
    for prefix, size in _RANDOM_BYTES.items():
        rest = name.removeprefix(prefix)
        if rest != name:
            return len(rest) == 2 * size and set(rest) <= _HEX
    return False


def scratch_name(prefix: str) -> str:
    """A new scratch database name: ``prefix`` (:data:`STAGING_PREFIX` or
    :data:`DRILL_PREFIX`) and random hex digits, the only form :func:`drop_abandoned`
    sweeps."""
    return prefix + secrets.token_hex(_RANDOM_BYTES[prefix])


@contextlib.contextmanager
def held_database(conninfo: ConnInfo, name: str) -> Iterator[None]:
    """Hold scratch database ``name`` (create it inside the block) until the block ends.

    Opens the holding session on ``conninfo`` (any database of the server but ``name``)
    and closes it at the end, whatever happened: leave the block only after ``name`` has
    been renamed or dropped. Raises ConnectionFailed if the server cannot be reached.
    """
    if not is_scratch_name(name):
        raise ValueError(f"{name!r} is not the name of a scratch database")
    # The holding session must carry our name even if the DSN sets application_name.
    params = {k: v for k, v in conninfo.params.items() if k != "application_name"}
    conn = connect(
        replace(conninfo, params=params), autocommit=True, application_name=HOLD_PREFIX + name
    )
    try:
        # A server-wide idle_session_timeout would end the hold while the restore runs.
        with contextlib.suppress(psycopg.Error):
            conn.execute("SET idle_session_timeout = 0")
        yield
    finally:
        with contextlib.suppress(psycopg.Error, OSError):
            conn.close()


def describe(name: str) -> str:
    """``staging database X`` or ``drill database X``: how messages name a scratch one."""
    kind = "staging" if name.startswith(STAGING_PREFIX) else "drill"
    return f"{kind} database {name}"


def drop_scratch(conninfo: ConnInfo, name: str, conn: Connection | None = None) -> None:
    """Drop scratch database ``name`` (sessions on it ended), its logical replication
    subscriptions first: a restored backup of a subscriber holds copies of them, with
    which PostgreSQL refuses the drop, and every drill of such a database left a whole
    copy of it on the server. Copies only: their slots are the original's and are left
    alone (:func:`~respaldo.postgres.server.drop_copied_subscriptions`). Raises
    ValueError for a name that is not a scratch database's, ConnectionFailed and
    QueryFailed."""
    if not is_scratch_name(name):
        raise ValueError(f"{name!r} is not the name of a scratch database")
    # One session (``conn``, or one of its own) for the subscriptions and the drop: three
    # before, each a backend start, after every restore test (docs/benchmarks.md,
    # session 21).
    with session(conninfo, conn) as dropping:
        drop_copied_subscriptions(conninfo, name, dropping)
        drop_database(conninfo, name, force=True, conn=dropping)


def drop_abandoned(conninfo: ConnInfo, conn: Connection | None = None) -> list[str]:
    """Drop every scratch database of the server of ``conninfo`` that nobody holds,
    looked for on ``conn`` if given (:func:`~respaldo.postgres.server.session`).

    Returns one line per database: dropped, or why it could not be. Never raises for a
    single database; raises ConnectionFailed or QueryFailed when the server cannot be
    asked at all.
    """
    with session(conninfo, conn) as asked:
        try:
            rows = asked.execute(_UNHELD, (list(SCRATCH_PREFIXES), HOLD_PREFIX)).fetchall()
        except psycopg.Error as exc:
            reason = exc.diag.message_primary or type(exc).__name__
            log.warning("cannot look for abandoned scratch databases: %s", reason)
            return []
    said = []
    # Filtered here, by the predicate that restore's refusal of target names uses too.
    for name in (str(row[0]) for row in rows if is_scratch_name(str(row[0]))):
        try:
            drop_scratch(conninfo, name, conn)
        except RespaldoError as exc:
            said.append(f"cannot drop the abandoned {describe(name)}: {exc}")
            continue
        said.append(f"dropped {describe(name)}, left by an interrupted restore or drill")
    return said

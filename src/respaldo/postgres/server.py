"""Talking to a server directly (psycopg 3): checks, exported snapshots, database management.

Every function takes a :class:`~respaldo.postgres.connection.ConnInfo` and opens its own
connection, except :func:`connect`, which hands one out. The password reaches psycopg as a
keyword, never inside a DSN string. Names of databases go through
``psycopg.sql.Identifier``, never through string formatting.

Errors: a connection that cannot be made raises ConnectionFailed (naming host, port,
database and user, never the password); a statement that fails raises QueryFailed, or
DatabaseExists / DatabaseNotFound where that is what went wrong.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from respaldo import cancellation
from respaldo.errors import (
    ConnectionFailed,
    DatabaseExists,
    DatabaseNotFound,
    PostgresError,
    QueryFailed,
    SourceError,
    ToolVersionError,
)
from respaldo.phrases import N_, Phrase
from respaldo.postgres.commands import ToolVersion, tool_version
from respaldo.postgres.connection import ConnInfo, scrub
from respaldo.postgres.counts import ROW_COUNTS_FORMAT, count_key, count_query
from respaldo.postgres.largeobjects import PART_SIZE, LargeObjects, summary_query

log = logging.getLogger(__name__)

Connection = psycopg.Connection[TupleRow]
T = TypeVar("T")

_AUTH_STATES = {"28P01", "28000"}  # invalid_password, invalid_authorization_specification
_DUPLICATE_DATABASE = "42P04"
_INVALID_CATALOG_NAME = "3D000"  # the database does not exist
_TOO_MANY_CONNECTIONS = "53300"  # a role's, a database's or the server's limit

# Ordinary tables and the leaf partitions of partitioned tables (also relkind 'r'): the
# relations that hold rows. Partitioned parents hold none, so counting them would count
# their leaves twice. Extension members are left out: pg_dump does not dump their rows
# (except configuration tables, which belong to the extension rather than the user).
_USER_TABLES = """
SELECT n.nspname, c.relname, c.oid
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r'
   AND c.relpersistence <> 't'
   AND n.nspname <> 'information_schema'
   AND n.nspname !~ '^pg_'
   AND NOT EXISTS (
         SELECT 1 FROM pg_catalog.pg_depend d
          WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
            AND d.objid = c.oid
            AND d.deptype = 'e')
 ORDER BY n.nspname, c.relname
"""


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


# A failed connection carries no SQLSTATE (libpq keeps nothing of the server's reply but
# its text), and the server words its refusal in its own language (lc_messages: "la
# autentificación password falló", "no existe la base de datos"): the English words
# looked for below are found on an English server only. That the server answered at all
# is told from libpq's form for it, the same in every language: the reason after
# "failed: " opens with the server's severity and two spaces ("FATAL:  "), where a
# server not reached gets libpq's own words ("Connection refused").
_SERVER_REFUSED = re.compile(r"failed: \w+:  ")


def _connection_failed(conninfo: ConnInfo, exc: psycopg.Error) -> ConnectionFailed:
    reason = _one_line(scrub(str(exc), conninfo.secrets())) or type(exc).__name__
    target = conninfo.describe()
    # Phrases (respaldo.phrases): the page says them in its language; libpq's words
    # (the reason) stay as written.
    if exc.sqlstate in _AUTH_STATES or "authentication failed" in reason:
        hint = N_("check the user and password (password_file) and the server's pg_hba.conf")
    elif exc.sqlstate == _INVALID_CATALOG_NAME or "does not exist" in reason:
        hint = N_("check the database name in the DSN")
    elif exc.sqlstate == _TOO_MANY_CONNECTIONS or "too many connections" in reason:
        # The server runs and answers: "is it running?" would send the reader astray.
        hint = N_(
            "the role's or the database's CONNECTION LIMIT, or the server's max_connections, "
            "allows no more sessions; a backup needs two at once (pg_dump and its row "
            "counts; with --jobs N, N + 2): raise the limit or end other sessions"
        )
    elif _SERVER_REFUSED.search(str(exc)):
        hint = N_(
            "the server answered and refused the connection: check the user and password "
            "(password_file), the database name in the DSN, the server's pg_hba.conf and "
            "its connection limits"
        )
    else:
        hint = N_("check that the server is running and accepts connections on that host and port")
    return ConnectionFailed(
        Phrase(N_("cannot connect to PostgreSQL ({target}): {error}"), target=target, error=reason),
        target=target,
        hint=Phrase(hint),
    )


def _guarded(
    conninfo: ConnInfo,
    what: str,
    action: Callable[[], T],
    errors: Mapping[type[psycopg.Error], SourceError] | None = None,
) -> T:
    """Run ``action``, turning a psycopg error into one of ours.

    ``errors`` maps psycopg error classes to the error to raise instead; anything else
    becomes QueryFailed. Ours is raised outside the ``except`` block on purpose: a psycopg
    error keeps its connection, and through it the password, reachable from attributes,
    so it must not ride along as ``__context__``.
    """
    failure: SourceError
    try:
        return action()
    except psycopg.Error as exc:
        mapped = [err for kind, err in (errors or {}).items() if isinstance(exc, kind)]
        reason = _one_line(scrub(str(exc), conninfo.secrets()))
        failure = mapped[0] if mapped else _query_failed(conninfo, what, reason, exc.sqlstate)
        if not mapped and _session_lost(exc) and not failure.hint:
            failure.hint = _SESSION_LOST
    raise failure


_SESSION_LOST = (
    "the server ended the session (it restarted or shut down, or the session was "
    "terminated) or the network cut it: run this again once the server answers"
)


def _session_lost(exc: psycopg.Error) -> bool:
    """Whether ``exc`` says the session itself is gone rather than a query failed: no
    SQLSTATE (the connection broke), a connection exception (08) or a shutdown or
    terminated session (57P..; not 57014, a query cancelled)."""
    state = exc.sqlstate
    if state is None:
        return isinstance(exc, psycopg.OperationalError)
    return state.startswith(("08", "57P"))


# What the server says when a text it sends is not valid in the client encoding (UTF8,
# see _connect_params): only a SQL_ASCII database's text can be (it stores any bytes; any
# other encoding converts to UTF8, or fails with another SQLSTATE).
_NOT_UTF8 = "22021"


def _query_failed(conninfo: ConnInfo, what: str, reason: str, sqlstate: str | None) -> QueryFailed:
    if sqlstate == _NOT_UTF8 and '"UTF8"' in reason:
        return QueryFailed(
            f"{what} failed on {conninfo.describe()}: the database (SQL_ASCII) holds a name or "
            f"text that is not UTF-8, which respaldo cannot read ({reason})",
            sqlstate=sqlstate,
            hint="rename the objects whose names are not UTF-8 (ALTER TABLE … RENAME), or "
            "move the database to one created with ENCODING 'UTF8' (or the encoding its "
            "text is in)",
        )
    return QueryFailed(f"{what} failed on {conninfo.describe()}: {reason}", sqlstate=sqlstate)


def _connect_params(conninfo: ConnInfo, connect_timeout: int, application_name: str) -> Any:
    # A helper, so that no frame of connect() holds the password in a local variable
    # that a traceback printer showing locals (rich, pytest -l) could print.
    params: dict[str, Any] = {
        "connect_timeout": str(connect_timeout),
        "application_name": application_name,
    }
    params.update(conninfo.libpq_params())
    # Names and text come back as str whatever the database's encoding: with a
    # SQL_ASCII client encoding psycopg returns bytes ("b'public'" as a schema's name),
    # and the server converts any other encoding to UTF8 (SQL_ASCII's bytes pass as
    # they are).
    params["client_encoding"] = "UTF8"
    if conninfo.password is not None:
        params["password"] = conninfo.password.get_secret_value()
    return params


def connect(
    conninfo: ConnInfo,
    *,
    autocommit: bool = False,
    connect_timeout: int = 10,
    application_name: str = "respaldo",
) -> Connection:
    """Open a psycopg connection; the caller closes it (it is a context manager).

    ``connect_timeout`` and ``application_name`` apply unless ``conninfo`` sets them.
    Raises ConnectionFailed (unreachable, refused, authentication, no such database) with
    a message that names the target and never contains the password.
    """
    failure: ConnectionFailed
    try:
        conn = psycopg.connect(
            autocommit=autocommit,
            **_connect_params(conninfo, connect_timeout, application_name),
        )
    except psycopg.Error as exc:
        failure = _connection_failed(conninfo, exc)
    else:
        # A cancelled job cancels the query this connection runs (one blocked on a lock
        # would otherwise hold the job until the lock is released).
        cancellation.on_cancel(lambda: _cancel_query(conn))
        return conn
    # Raised outside the except block: see _guarded.
    raise failure


@contextmanager
def session(conninfo: ConnInfo, conn: Connection | None = None) -> Iterator[Connection]:
    """``conn``, an open autocommit session on the server of ``conninfo`` that the caller
    owns (left open), or else an autocommit session of its own for the block, closed
    after it. The functions here that take ``conn`` ask on it: a restore opens one
    session on its configured database for its many short questions (the server's
    version, the target's name, the database's properties, the sessions' settings)
    instead of a session, a backend start and its catalog caches, for each
    (docs/benchmarks.md, session 20). Raises ConnectionFailed."""
    if conn is not None:
        yield conn
        return
    with connect(conninfo, autocommit=True) as own:
        yield own


def _cancel_query(conn: Connection) -> None:
    if not conn.closed:
        with contextlib.suppress(psycopg.Error):
            conn.cancel_safe(timeout=10)


@dataclass(frozen=True)
class ServerInfo:
    """What a backup records about the server it came from."""

    version_num: int
    """``server_version_num``: 150004 for 15.4."""
    version: str
    """``server_version``: "15.4 (Debian 15.4-1.pgdg120+1)"."""
    system_identifier: int
    """The cluster's unique id from ``pg_control_system()``; it names WAL archives."""

    @property
    def major(self) -> int:
        return self.version_num // 10000


def server_info(conninfo: ConnInfo, conn: Connection | None = None) -> ServerInfo:
    """Version and system identifier of the server, asked on ``conn`` (an open autocommit
    connection to ``conninfo``, left open) or on a connection of its own. Raises
    ConnectionFailed, QueryFailed."""
    if conn is None:
        with connect(conninfo, autocommit=True) as own:
            return server_info(conninfo, own)
    row = _guarded(
        conninfo,
        "reading the server version",
        lambda: conn.execute(
            "SELECT current_setting('server_version_num')::int,"
            " current_setting('server_version'),"
            " (SELECT system_identifier FROM pg_catalog.pg_control_system())"
        ).fetchone(),
    )
    assert row is not None
    return ServerInfo(version_num=int(row[0]), version=str(row[1]), system_identifier=int(row[2]))


def server_clock(conn: Connection) -> tuple[datetime | None, str | None]:
    """The server's ``clock_timestamp()`` on ``conn`` and its ``log_timezone`` (the zone
    a backup_label's ``START TIME`` is written in); None for what the session cannot say."""
    try:
        row = conn.execute(
            "SELECT pg_catalog.clock_timestamp(), pg_catalog.current_setting('log_timezone')"
        ).fetchone()
    except psycopg.Error:
        return None, None
    if row is None:
        return None, None
    clock = row[0] if isinstance(row[0], datetime) else None
    return clock, row[1] if isinstance(row[1], str) and row[1] else None


def check_tool_compatible(program: str, tool_major: int, server_major: int) -> None:
    """Raise ToolVersionError if ``program`` of ``tool_major`` cannot serve ``server_major``.

    pg_dump and pg_dumpall read servers of their own and older major versions only; a
    newer server needs newer tools. Pure: no I/O.
    """
    if tool_major < server_major:
        raise ToolVersionError(program, tool_major, server_major)


def server_major(conninfo: ConnInfo, conn: Connection | None = None) -> int:
    """The server's major version (15 for 15.4), from the connection's own parameters
    (``conn``'s, or a session's of its own: :func:`session`): any role may ask. Raises
    ConnectionFailed."""
    with session(conninfo, conn) as asked:
        return int(asked.info.server_version) // 10000


SERVER_IDENTITY = (
    "SELECT pg_catalog.current_database(),"
    " pg_catalog.pg_postmaster_start_time()::text, pg_catalog.current_setting('port')"
)
"""The database a session is in and, of its server, what any role may read and no two
running servers share: when it started (to the microsecond) and its port."""


def server_identity(conninfo: ConnInfo) -> tuple[str, str, str]:
    """(database, server start time, port) of :data:`SERVER_IDENTITY` for ``conninfo``.
    Raises ConnectionFailed, QueryFailed."""
    with connect(conninfo, autocommit=True) as conn:
        row = _guarded(
            conninfo,
            "reading the server's identity",
            lambda: conn.execute(SERVER_IDENTITY).fetchone(),
        )
    assert row is not None
    return str(row[0]), str(row[1]), str(row[2])


def check_pg_dump_version(conninfo: ConnInfo, *, bindir: Path | str | None = None) -> ToolVersion:
    """Check that the pg_dump in ``bindir`` can dump the server; return its version.

    Raises ToolVersionError (with a hint naming the package to install), ToolNotFound,
    ConnectionFailed or QueryFailed.
    """
    tool = tool_version("pg_dump", bindir=bindir)
    check_tool_compatible(tool.program, tool.major, server_major(conninfo))
    return tool


class ExportedSnapshot(NamedTuple):
    """An exported snapshot id and the exact row count of every user table in it."""

    snapshot_id: str
    row_counts: dict[str, int]
    """``"schema.table"`` -> ``count(*)`` as seen by the snapshot."""


def _export(conn: Connection) -> str:
    with conn.cursor() as cur:
        cur.execute("SELECT pg_catalog.pg_export_snapshot()")
        snapshot_row = cur.fetchone()
        assert snapshot_row is not None
        # Off, so that a role subject to row-level security fails instead of counting short
        # (pg_dump does the same).
        cur.execute("SET LOCAL row_security = off")
    return str(snapshot_row[0])


class _Stopped(Exception):
    """The counting was stopped: its caller failed."""


COUNT_BATCH = 100
"""Tables counted by one statement (:func:`count_batches`)."""


def count_batches(
    tables: Sequence[tuple[str, str]], fmt: int = ROW_COUNTS_FORMAT, size: int = COUNT_BATCH
) -> Iterator[tuple[Sequence[tuple[str, str]], sql.Composed]]:
    """``tables`` (schema, name) a batch of ``size`` at a time, with the one statement
    that counts each batch's tables (format ``fmt``): a row ``(n, count)`` for the
    ``n``-th table of the batch. A statement for each table cost a round trip each: on a
    loaded machine, 20,000 tables' counts took longer than the server's work on them
    (docs/benchmarks.md, session 26). Pure."""
    query = count_query(fmt).replace("SELECT count(*)", "SELECT {}, count(*)")
    for first in range(0, len(tables), size):
        batch = tables[first : first + size]
        yield (
            batch,
            sql.SQL(" UNION ALL ").join(
                sql.SQL(query).format(sql.Literal(n), sql.Identifier(schema, table))
                for n, (schema, table) in enumerate(batch)
            ),
        )


def _counted(
    cur: psycopg.Cursor[TupleRow],
    batch: Sequence[tuple[str, str]],
    statement: sql.Composed,
    fmt: int,
) -> dict[str, int]:
    """Run one of :func:`count_batches`' statements: its tables' counts, keyed."""
    rows = cur.execute(statement).fetchall()
    if len(rows) != len(batch):
        raise QueryFailed(f"{len(rows)} row counts for {len(batch)} tables")
    return {count_key(*batch[int(n)], fmt): int(count) for n, count in rows}


def _count(
    conn: Connection,
    stop: threading.Event | None = None,
    fmt: int = ROW_COUNTS_FORMAT,
    before: Callable[[list[int]], None] | None = None,
) -> dict[str, int]:
    # Counted and keyed as respaldo.postgres.counts says for format ``fmt``.
    with conn.cursor() as cur:
        rows = cur.execute(_USER_TABLES).fetchall()
        tables = [(str(s), str(t)) for s, t, _ in rows]
        oids = [int(oid) for _, _, oid in rows]
        if before is not None:
            before(oids)
            # Every table's lock at once, right after pg_dump took its own: an ALTER or
            # TRUNCATE that queues later waits for both, and no count waits behind it.
            for first in range(0, len(tables), _LOCK_BATCH):
                names = [sql.Identifier(*t) for t in tables[first : first + _LOCK_BATCH]]
                cur.execute(
                    sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(
                        sql.SQL(", ").join(sql.SQL("ONLY {}").format(n) for n in names)
                    )
                )
        counts: dict[str, int] = {}
        for batch, statement in count_batches(tables, fmt):
            if stop is not None and stop.is_set():
                raise _Stopped
            counts.update(_counted(cur, batch, statement, fmt))
        rewritten = cur.execute(_REWRITTEN, (oids,)).fetchall()
    if rewritten:
        which = ", ".join(count_key(str(s), str(t), fmt) for s, t in rewritten)
        raise QueryFailed(
            f"{which} was truncated or rewritten (TRUNCATE, ALTER TABLE, VACUUM FULL, "
            "CLUSTER) while the backup ran: its rows in the backup's snapshot cannot be "
            "counted, and its dump may not hold them",
            hint="nothing was recorded as good; take the backup again, away from the "
            "statement that did it",
        )
    return counts


def count_rows(
    conninfo: ConnInfo, tables: Sequence[tuple[str, str]], *, fmt: int = ROW_COUNTS_FORMAT
) -> dict[str, int]:
    """Count the rows of ``tables`` (schema, name) of ``conninfo.dbname`` as
    :func:`exported_snapshot` counts every table (format ``fmt``, row-level security
    off: a role subject to it fails rather than counting short), in one read-only
    transaction; keyed by :func:`~respaldo.postgres.counts.count_key`. For a restore's
    worker that counts the tables it has just loaded. Raises ConnectionFailed,
    QueryFailed."""

    def count(conn: Connection) -> dict[str, int]:
        counts: dict[str, int] = {}
        with conn.cursor() as cur:
            cur.execute("SET LOCAL row_security = off")
            # One process: the count stands in for a worker's session of the restore's
            # --jobs, and the other workers still load; parallel workers of a scan
            # would take cores beyond it.
            cur.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            for batch, statement in count_batches(tables, fmt):
                # A cancel that came between two counts cancelled no query: this one
                # would run, and wait on whatever lock it met.
                cancellation.check()
                counts.update(_counted(cur, batch, statement, fmt))
        return counts

    conn = connect(conninfo)
    try:
        conn.read_only = True
        return _guarded(conninfo, "counting the restored rows", lambda: count(conn))
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.rollback()
        conn.close()


_UNPAUSED_TABLES = """
SELECT n.nspname, c.relname
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_catalog.pg_class t ON t.oid = c.reltoastrelid
 WHERE c.relkind = 'r'
   AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(c.reloptions || t.reloptions) o
                    WHERE o LIKE 'autovacuum\\_enabled=%')
   AND pg_catalog.pg_has_role(c.relowner, 'USAGE')
 ORDER BY 1, 2
"""


_AUTOVACUUM_BATCH = 100
"""Tables whose autovacuum setting one transaction changes: each ``ALTER TABLE`` holds
two locks (the table's and its TOAST table's) until the commit, and one transaction for
every table ran out of the server's lock table ('out of shared memory', sized by
max_locks_per_transaction and the connections) for a database of some thousands of tables
that pg_dump, one lock each, had dumped: its restore --jobs failed."""


def pause_autovacuum(conninfo: ConnInfo) -> list[tuple[str, str]]:
    """Turn autovacuum off (``autovacuum_enabled = false``) for every plain table of
    ``conninfo.dbname`` that sets nothing of its own about it (nor its TOAST table) and
    that this role may alter, :data:`_AUTOVACUUM_BATCH` tables a transaction; returns
    the tables it turned off (schema, name), for :func:`resume_autovacuum`.

    For a restore's staging database, between its pre-data section and its data: a table
    loaded by one worker waits for its indexes while the other worker loads, and the
    autovacuum launcher finds it; its vacuum was then cancelled by the index build that
    came (after the build waited ``deadlock_timeout``), its work thrown away, about two a
    restore at 1 GB and none under ``pg_restore --jobs``, which indexes a table as soon as
    it is loaded (docs/benchmarks.md, session 17).

    Raises ConnectionFailed, QueryFailed: some batches may be paused then (one whose
    commit was lost with its connection, too), and the caller must not hand the database
    over (a restore drops its staging database)."""
    what = "pausing autovacuum of the tables to load"
    with connect(conninfo) as conn:
        rows = _guarded(conninfo, what, lambda: conn.execute(_UNPAUSED_TABLES).fetchall())
        conn.commit()
        tables = [(str(r[0]), str(r[1])) for r in rows]
        for start in range(0, len(tables), _AUTOVACUUM_BATCH):
            _set_autovacuum(
                conninfo, conn, tables[start : start + _AUTOVACUUM_BATCH], what, on=False
            )
    return tables


def resume_autovacuum(conninfo: ConnInfo, tables: Sequence[tuple[str, str]]) -> None:
    """Take back :func:`pause_autovacuum`'s setting of ``tables`` (``RESET``: each is left
    setting nothing about it, as it was), :data:`_AUTOVACUUM_BATCH` tables a
    transaction. Raises ConnectionFailed, QueryFailed: some may be left off then, and the
    caller must not hand the database over (a restore drops its staging database)."""
    if not tables:
        return
    with connect(conninfo) as conn:
        for start in range(0, len(tables), _AUTOVACUUM_BATCH):
            _set_autovacuum(
                conninfo,
                conn,
                tables[start : start + _AUTOVACUUM_BATCH],
                "turning autovacuum back on for the restored tables",
                on=True,
            )


def _set_autovacuum(
    conninfo: ConnInfo,
    conn: Connection,
    tables: Sequence[tuple[str, str]],
    what: str,
    *,
    on: bool,
) -> None:
    """Turn autovacuum off for ``tables``, or back to what the table says (``on``), in
    one transaction, committed. Raises QueryFailed (the transaction is left failed)."""
    statement = sql.SQL(
        "ALTER TABLE {} RESET (autovacuum_enabled)"
        if on
        else "ALTER TABLE {} SET (autovacuum_enabled = false)"
    )

    # All of them in one round trip: one each cost more than the server's work on a
    # loaded machine (docs/benchmarks.md, session 26).
    statements = sql.SQL("; ").join(statement.format(sql.Identifier(*t)) for t in tables)

    def run() -> None:
        conn.execute(statements)
        conn.commit()

    _guarded(conninfo, what, run)


def _large_objects(conn: Connection, part_size: int = PART_SIZE) -> LargeObjects:
    row = conn.execute(summary_query(part_size)).fetchone()
    assert row is not None
    return LargeObjects.from_row(tuple(row), part_size)


def large_objects(conninfo: ConnInfo, *, part_size: int = PART_SIZE) -> LargeObjects:
    """The large objects of ``conninfo.dbname`` (count, bytes, digest in parts of
    ``part_size``: :mod:`respaldo.postgres.largeobjects`), read in one read-only
    transaction. For a restore, which compares them with its backup's record. Raises
    ConnectionFailed, QueryFailed (a large object the role may not read, too)."""
    conn = connect(conninfo)
    try:
        conn.read_only = True
        return _guarded(
            conninfo, "reading the restored large objects", lambda: _large_objects(conn, part_size)
        )
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.rollback()
        conn.close()


def _catalog_rows(conninfo: ConnInfo, doing: str, query: str) -> list[TupleRow]:
    """The rows of one query of the system catalogs, outside any transaction. Raises
    ConnectionFailed, QueryFailed (naming what was being done)."""
    with connect(conninfo, autocommit=True) as conn:
        return _guarded(conninfo, doing, lambda: conn.execute(query).fetchall())


# Unlogged tables (and leaf partitions): PostgreSQL writes no WAL for them and
# pg_basebackup copies only their empty init fork, so a physical backup gives every one
# back empty, whatever it held. Extension members too: their rows are lost alike.
# Unlogged sequences (PostgreSQL 15+) alike come back reset to their start; those owned
# by an unlogged table (its serial or identity column) are left out, their table coming
# back empty with them: the others may number a logged table's rows.
_UNLOGGED_RELATIONS = """
SELECT n.nspname, c.relname, c.relkind = 'S'
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'S')
   AND c.relpersistence = 'u'
   AND n.nspname <> 'information_schema'
   AND n.nspname !~ '^pg_'
   AND NOT EXISTS (
         SELECT 1 FROM pg_catalog.pg_depend d
           JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
          WHERE c.relkind = 'S'
            AND d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
            AND d.objid = c.oid
            AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
            AND d.deptype IN ('a', 'i')
            AND t.relpersistence = 'u')
 ORDER BY n.nspname, c.relname
"""


class Unlogged(NamedTuple):
    """A database's unlogged tables and sequences (see :func:`unlogged_relations`)."""

    tables: list[str]
    sequences: list[str]


def unlogged_relations(conninfo: ConnInfo) -> Unlogged:
    """The unlogged tables of ``conninfo.dbname`` and its unlogged sequences that no
    unlogged table owns, keyed as :func:`count_key` keys tables, in order. Raises
    ConnectionFailed, QueryFailed."""
    rows = _catalog_rows(conninfo, "listing the unlogged tables", _UNLOGGED_RELATIONS)
    found = Unlogged([], [])
    for schema, name, sequence in rows:
        (found.sequences if sequence else found.tables).append(count_key(str(schema), str(name)))
    return found


# Leaf partitions under a hash-partitioned table, with their tree's root. pg_dump loads
# such a leaf's rows through the root when the hash follows values a new database gives
# anew (an enum's OIDs: PostgreSQL commit 012ffb365), so a restore may route them to
# another leaf of the same tree: only the tree's total is the backup's.
_HASH_LEAVES = """
SELECT ln.nspname, l.relname, rn.nspname, r.relname
  FROM pg_catalog.pg_class l
  JOIN pg_catalog.pg_namespace ln ON ln.oid = l.relnamespace
  JOIN pg_catalog.pg_class r ON r.oid = pg_catalog.pg_partition_root(l.oid)
  JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace
 WHERE l.relispartition AND l.relkind = 'r'
   AND EXISTS (SELECT 1 FROM pg_catalog.pg_partition_ancestors(l.oid) a
                 JOIN pg_catalog.pg_partitioned_table t ON t.partrelid = a.relid
                WHERE t.partstrat = 'h')
"""


def hash_partition_leaves(conninfo: ConnInfo, *, fmt: int = ROW_COUNTS_FORMAT) -> dict[str, str]:
    """Every leaf partition of ``conninfo.dbname`` under a hash-partitioned table, keyed
    as :func:`count_rows` keys it, with its tree's root (keyed alike). Raises
    ConnectionFailed, QueryFailed."""
    rows = _catalog_rows(conninfo, "listing the hash partitions", _HASH_LEAVES)
    return {
        count_key(str(ls), str(lt), fmt): count_key(str(rs), str(rt), fmt)
        for ls, lt, rs, rt in rows
    }


_LOCK_BATCH = 500
"""Tables locked by one LOCK statement."""

# Tables whose file, as the snapshot's catalog names it, is no longer their file: they
# were truncated or rewritten after the snapshot was taken. TRUNCATE and rewrites are
# not MVCC-safe: a snapshot from before them sees the new (empty) file, so neither a
# count nor pg_dump can be trusted to have read the snapshot's rows.
_REWRITTEN = """
SELECT n.nspname, c.relname
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = ANY(%s)
   AND c.relfilenode IS DISTINCT FROM pg_catalog.pg_relation_filenode(c.oid)
 ORDER BY 1, 2
"""


def _export_and_count(conn: Connection, fmt: int) -> ExportedSnapshot:
    snapshot_id = _export(conn)
    return ExportedSnapshot(snapshot_id, _count(conn, fmt=fmt))


@contextmanager
def exported_snapshot(
    conninfo: ConnInfo, *, fmt: int = ROW_COUNTS_FORMAT
) -> Iterator[ExportedSnapshot]:
    """Export a snapshot of ``conninfo.dbname`` and count every user table's rows in it.

    Opens a read-only REPEATABLE READ transaction, runs ``pg_export_snapshot()``, counts
    every ordinary table and leaf partition (not catalogs, not extension members) in that
    same snapshot (counted and keyed in row-count format ``fmt``,
    :mod:`respaldo.postgres.counts`: a restore counts as its backup did), and yields
    ``(snapshot_id, row_counts)``. The transaction stays open until the context exits:
    run ``pg_dump --snapshot=<id>`` inside it, and the dump holds exactly the counted
    rows; after it, the id is no longer valid. Row-level security is off for the counts,
    so a role subject to it gets an error rather than a short count. Counting reads every
    table in full, about what the dump itself reads. Raises ConnectionFailed, QueryFailed.
    """
    conn = connect(conninfo)
    try:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        snapshot = _guarded(conninfo, "exporting a snapshot", lambda: _export_and_count(conn, fmt))
        log.debug(
            "exported snapshot %s of %s (%d tables)",
            snapshot.snapshot_id,
            conninfo,
            len(snapshot.row_counts),
        )
        yield snapshot
    finally:
        try:
            conn.rollback()
        except psycopg.Error:
            log.debug("rollback of the snapshot transaction failed", exc_info=True)
        conn.close()


INSUFFICIENT_PRIVILEGE = "42501"
"""SQLSTATE of a table the role may not read, or whose rows row-level security hides."""

READ_EVERY_ROW = (
    "the backup role must read every row of every table and large object: back up as a "
    "superuser, or grant the role SELECT on them (pg_read_all_data) and BYPASSRLS"
)
"""The hint of a backup whose role cannot read everything."""

FEATURE_NOT_SUPPORTED = "0A000"
"""SQLSTATE of an unlogged table read on a standby ("cannot access temporary or unlogged
relations during recovery"), whatever the server's language."""

UNLOGGED_ON_STANDBY = (
    "on a standby (a server in recovery) unlogged tables cannot be read, and pg_dump leaves "
    "their rows out: back up through a dsn that leads to the primary, or make the tables "
    "logged (ALTER TABLE ... SET LOGGED) if their rows must be kept"
)
"""The hint of a backup whose count failed so: every logical backup through a replica's
dsn failed once one unlogged table existed, with the server's words alone."""


def count_failure_hint(sqlstate: str | None, *, in_recovery: bool) -> str | None:
    """The hint of a snapshot's row count that failed with ``sqlstate`` on a server that
    is (``in_recovery``) or is not a standby; None where there is none to add. SQLSTATE
    0A000 ("feature not supported") is an unlogged table read on a standby only where
    the server is one: on a primary it is something else, and the standby's way on
    (back up through the primary) would send the user the wrong way."""
    if sqlstate == INSUFFICIENT_PRIVILEGE:
        return READ_EVERY_ROW
    if sqlstate == FEATURE_NOT_SUPPORTED and in_recovery:
        return UNLOGGED_ON_STANDBY
    return None


def _recovering(conn: Connection) -> bool:
    row = conn.execute("SELECT pg_catalog.pg_is_in_recovery()").fetchone()
    return bool(row is not None and row[0])


CANCEL_AGAIN = 0.2
"""Seconds between cancels of a snapshot's count whose caller failed."""


class CountingSnapshot:
    """An exported snapshot whose row counts are being taken in a thread (on the
    exporting connection, in the snapshot's own transaction) while the caller dumps."""

    def __init__(self, snapshot_id: str, counting: threading.Thread) -> None:
        self.snapshot_id = snapshot_id
        self._counting = counting
        self.counts: dict[str, int] | None = None
        self.objects: LargeObjects | None = None
        self.failure: BaseException | None = None
        self.failed_after_stop = False
        """Whether :attr:`failure` came once the counting was told to stop."""
        self.dump_ended = threading.Event()
        """Set once the block's pg_dump has ended (its locks are gone)."""
        self.server_encoding: str | None = None
        """The database's encoding (``LATIN1``…), as the server reported it: the one
        pg_dump writes names in, and pg_restore prints them in."""

    def row_counts(self) -> dict[str, int]:
        """Every user table's ``count(*)`` in the snapshot, once counted (waits for it).
        Raises ConnectionFailed, QueryFailed."""
        self.dump_ended.set()  # called once the dump is done: nothing to wait for now
        self._counting.join()
        if self.failure is not None:
            raise self.failure
        assert self.counts is not None
        return self.counts

    def large_objects(self) -> LargeObjects:
        """The large objects' count, bytes and digest in the snapshot, read after the
        row counts (waits for them, as :meth:`row_counts`). Raises ConnectionFailed,
        QueryFailed."""
        self.row_counts()
        assert self.objects is not None
        return self.objects


def _import_failed(exc: BaseException, snapshot_id: str) -> bool:
    """Whether ``exc`` is pg_dump's failure to import the snapshot ``snapshot_id``: what
    it does once the exporting transaction has ended.

    Told from the query pg_dump reports with its failure (``Query was: SET TRANSACTION
    SNAPSHOT '<id>'``), which is the same in every language: the server's reason
    ("could not import the requested snapshot", "invalid snapshot identifier") is in the
    server's (lc_messages), and pg_dump prints no SQLSTATE."""
    text = exc.stderr if isinstance(exc, PostgresError) else str(exc)
    return f"SET TRANSACTION SNAPSHOT '{snapshot_id}'" in text


# Both looks carry WAITING_FOR_LOCKS: pg_stat_activity shows it as the query of the counts'
# session (busy or idle in its transaction), which says why that session waits.
WAITING_FOR_LOCKS = "/* respaldo: waiting for the locks of pg_dump */"
_CLEAR_STATS = (
    "/* respaldo: waiting for the locks of pg_dump */ SELECT pg_catalog.pg_stat_clear_snapshot()"
)
_LOCKED_BY = """/* respaldo: waiting for the locks of pg_dump */
SELECT count(DISTINCT l.relation)
  FROM pg_catalog.pg_locks l
  JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
 WHERE a.application_name = %s
   AND l.locktype = 'relation'
   AND l.granted
   AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
   AND l.relation = ANY(%s)
"""
LOCK_POLL = 0.05
"""Seconds between two looks at whether pg_dump holds its locks yet."""


def _wait_for_locks(
    conn: Connection,
    holder: str,
    oids: list[int],
    stop: threading.Event,
    dump_ended: threading.Event,
) -> None:
    """Return once the sessions named ``holder`` (pg_dump's) hold a lock on every table of
    ``oids``, or the dump has ended; raise _Stopped if ``stop`` is set first.

    Why: the counts' transaction keeps a lock on each table it counted until the dump
    ends. A table counted before pg_dump locked it, then an ``ALTER``/``TRUNCATE`` of it
    (queued behind that lock), and pg_dump's own lock request queues behind the
    ``TRUNCATE``: the server sees no deadlock (the counts' session only waits, in
    respaldo, for pg_dump), so the backup and every query of that table would wait
    forever. pg_dump locks every table it dumps before reading any; counting after
    that (all the counts' locks taken at once, at that moment), a ``TRUNCATE`` waits for
    the dump, as it does for pg_dump alone. One that queued in between is found by the
    count (:data:`_REWRITTEN`), which then fails.

    The look is made from ``conn``, the counts' own session (a third one would need a
    connection the backup role may not have: ``CONNECTION LIMIT 2`` served a serial
    backup). A transaction sees ``pg_stat_activity`` as it was when it first read it, so
    each look first drops that picture (``pg_stat_clear_snapshot``); ``pg_locks`` is read
    anew by every query, and neither takes a lock on a user table."""
    wanted = len(set(oids))
    while not dump_ended.is_set():
        if stop.is_set():
            raise _Stopped
        conn.execute(_CLEAR_STATS)
        row = conn.execute(_LOCKED_BY, (holder, oids)).fetchone()
        if row is not None and int(row[0]) >= wanted:
            return
        dump_ended.wait(LOCK_POLL)


_IMPORT_ELSEWHERE = (
    "pg_dump must reach the same server and database as respaldo's own session, which "
    "holds the snapshot open; a connection pooler in transaction mode or a load balancer "
    "in the DSN can send it elsewhere: give the database a DSN straight to the server"
)


def _stop_counting(conn: Connection, counting: threading.Thread, stop: threading.Event) -> None:
    """Stop the counts' thread and wait for it to end. A cancel that arrives between two
    counts cancels nothing, so it is sent again until the thread has seen the stop
    (before its next count) or the cancel (during one)."""
    stop.set()
    while counting.is_alive():
        _cancel_query(conn)
        counting.join(CANCEL_AGAIN)


def _stopped(snapshot: CountingSnapshot) -> bool:
    """Whether the count's failure is the stop of :func:`_stop_counting` (its flag, or
    its cancel of the query: SQLSTATE 57014, once the stop was set; a statement timeout
    of the count's own says 57014 too), not a failure of its own."""
    failure = snapshot.failure
    return isinstance(failure, _Stopped) or (
        snapshot.failed_after_stop
        and isinstance(failure, QueryFailed)
        and failure.sqlstate == _QUERY_CANCELED
    )


_QUERY_CANCELED = "57014"


@contextmanager
def counting_snapshot(
    conninfo: ConnInfo, *, fmt: int = ROW_COUNTS_FORMAT, holder: str | None = None
) -> Iterator[CountingSnapshot]:
    """:func:`exported_snapshot`, with the rows counted while the block runs instead of
    before it: a backup's pg_dump starts at once, and the counts (a full read of every
    table: 5.8 s of a 10 GB database, measured) overlap the dump instead of preceding
    it. The counts are those of the same snapshot, read in the same transaction, so they
    are exactly what :func:`exported_snapshot` gives. The connection belongs to the
    counting thread until it ends: leaving the block early cancels the count, and the
    transaction ends only after it. Counts are in row-count format ``fmt``. With
    ``holder``, the ``application_name`` of the block's pg_dump, the counting starts once
    pg_dump holds its locks on the tables (or has ended): see :func:`_wait_for_locks`.

    A count that fails makes the backup fail: the programs the block started (pg_dump)
    are killed at once, through a cancel token of the block's own
    (:func:`respaldo.cancellation.linked`; the job's own cancel still reaches them), and
    the block fails with the count's error rather than with what the killing made of the
    dump. Raises ConnectionFailed, QueryFailed (also from
    :meth:`CountingSnapshot.row_counts`)."""
    conn = connect(conninfo)
    counting: threading.Thread | None = None
    stop = threading.Event()
    try:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        snapshot_id = _guarded(conninfo, "exporting a snapshot", lambda: _export(conn))
        # Read now, for the hint of a count that fails: the failed transaction can no
        # longer be asked.
        standby = _guarded(
            conninfo, "reading whether the server is a standby", lambda: _recovering(conn)
        )
        with cancellation.linked() as block:

            def count() -> None:
                try:
                    snapshot.counts = _guarded(
                        conninfo,
                        "counting the snapshot's rows",
                        lambda: _count(conn, stop, fmt, before=wait),
                    )
                    # In the same snapshot: what pg_dump wrote of them.
                    if stop.is_set():
                        raise _Stopped
                    snapshot.objects = _guarded(
                        conninfo,
                        "reading the snapshot's large objects",
                        lambda: _large_objects(conn),
                    )
                except BaseException as exc:  # handed to the caller by row_counts()
                    if isinstance(exc, QueryFailed) and not exc.hint:
                        exc.hint = count_failure_hint(exc.sqlstate, in_recovery=standby) or ""
                    snapshot.failure = exc
                    snapshot.failed_after_stop = stop.is_set()
                    if not stop.is_set():
                        # Failed on its own: the dump beside it is of no use any more.
                        # Killed now, not left to run to its end (hours, on a big
                        # database) before the backup fails.
                        block.cancel(f"counting the snapshot's rows failed: {exc}")

            def wait(oids: list[int]) -> None:
                if holder is not None:
                    _wait_for_locks(conn, holder, oids, stop, snapshot.dump_ended)

            counting = threading.Thread(target=count, name="row-counts", daemon=True)
            snapshot = CountingSnapshot(snapshot_id, counting)
            # Reported by the server at connection: no query.
            snapshot.server_encoding = conn.info.parameter_status("server_encoding")
            counting.start()
            log.debug("exported snapshot %s of %s, counting its rows", snapshot_id, conninfo)
            try:
                yield snapshot
            except BaseException as exc:
                if snapshot.failure is None and _import_failed(exc, snapshot_id):
                    # A count that fails ends the snapshot's transaction: a pg_dump that
                    # had not imported it yet fails to, maybe before the count's thread
                    # has noted its error. A healthy count is not waited for (a full read
                    # of every table, or a wait for a lock, while the backup has failed
                    # already): it is stopped, and what it failed of on its own before
                    # the stop still comes through (a count's error arrives with the
                    # server's, before any cancel of ours could).
                    snapshot.dump_ended.set()
                    _stop_counting(conn, counting, stop)
                failure = snapshot.failure
                if failure is not None and failure is not exc and not _stopped(snapshot):
                    # The dump failed because the count did (it was killed): say why.
                    raise failure from exc
                if (
                    isinstance(exc, PostgresError)
                    and not exc.hint
                    and _import_failed(exc, snapshot_id)
                ):
                    exc.hint = _IMPORT_ELSEWHERE
                raise
    finally:
        if counting is not None:
            # The caller failed: its counts are of no use.
            _stop_counting(conn, counting, stop)
        try:
            conn.rollback()
        except psycopg.Error:
            log.debug("rollback of the snapshot transaction failed", exc_info=True)
        conn.close()


_TABLE_SIZES = """
SELECT n.nspname, c.relname, pg_catalog.pg_table_size(c.oid)
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r'
   AND c.relpersistence <> 't'
   AND n.nspname <> 'information_schema'
   AND n.nspname !~ '^pg_'
"""


def table_sizes(conninfo: ConnInfo) -> dict[str, int]:
    """:func:`~respaldo.postgres.counts.count_key` -> ``pg_table_size`` (data, TOAST and
    maps; no indexes) of every ordinary table and leaf partition: what ``respaldo ls``
    shows of a backup. Read from the catalog at once (sizes are not part of a snapshot).
    Raises ConnectionFailed, QueryFailed."""
    rows = _catalog_rows(conninfo, "reading the tables' sizes", _TABLE_SIZES)
    return {count_key(schema, table): int(size) for schema, table, size in rows}


# Hash-partitioned tables whose key holds an enum inside another type (an array, a
# composite, a range or multirange, through domains too). An enum's hash follows its
# values' OIDs, which a new database numbers anew: a row dumped from one partition may
# belong to another there. pg_dump loads a table through its root itself only when the
# key is an enum or a domain over one (PostgreSQL commit 012ffb365); these it writes
# straight into each partition, and the restore fails ("violates partition constraint").
# So do a key of an OID alias type (regclass, regtype...: dumped as a name, restored as
# the new object's OID), at any depth, and an expression key whose operator class takes
# any array, range or record, or an OID: its type is not in the catalog (only its
# operator class is), so it may hold either. Two more hash on what a new server may
# compute otherwise: a key whose operator class is not PostgreSQL's own (an extension's
# or the user's: its hash function may be anything) and one under a nondeterministic
# collation (an ICU collation hashes ICU's sort key, which changes with ICU's version:
# a restore onto a newer system, the usual disaster recovery, would refuse the rows).
_HASH_KEYS_VIA_ROOT = """
WITH RECURSIVE key_types(partrelid, typid, nested) AS (
    SELECT pt.partrelid, a.atttypid, false
      FROM pg_catalog.pg_partitioned_table pt
      JOIN pg_catalog.pg_attribute a
        ON a.attrelid = pt.partrelid AND a.attnum = ANY (pt.partattrs::int2[])
     WHERE pt.partstrat = 'h'
    UNION
    SELECT k.partrelid, inner_type.typid, k.nested OR inner_type.wraps
      FROM key_types k
      JOIN pg_catalog.pg_type t ON t.oid = k.typid
     CROSS JOIN LATERAL (
        SELECT t.typbasetype AS typid, false AS wraps WHERE t.typtype = 'd'
        UNION ALL
        SELECT t.typelem, true WHERE t.typcategory = 'A' AND t.typelem <> 0
        UNION ALL
        SELECT r.rngsubtype, true FROM pg_catalog.pg_range r
         WHERE r.rngtypid = t.oid
            -- A multirange's range (rngmultitypid, PostgreSQL 14+: read through jsonb,
            -- which older servers answer with NULL instead of an unknown column).
            OR (pg_catalog.to_jsonb(r) ->> 'rngmultitypid')::oid = t.oid
        UNION ALL
        SELECT c.atttypid, true FROM pg_catalog.pg_attribute c
         WHERE t.typtype = 'c' AND c.attrelid = t.typrelid AND c.attnum > 0
           AND NOT c.attisdropped
     ) inner_type
), renumbered(partrelid) AS (
    SELECT k.partrelid
      FROM key_types k
      JOIN pg_catalog.pg_type t ON t.oid = k.typid
     WHERE (t.typtype = 'e' AND k.nested)
        OR (t.typnamespace = 'pg_catalog'::pg_catalog.regnamespace AND t.typname ~ '^reg')
    UNION
    SELECT pt.partrelid
      FROM pg_catalog.pg_partitioned_table pt
     CROSS JOIN LATERAL unnest(pt.partattrs::int2[], pt.partclass::oid[]) AS k(attnum, opc)
      JOIN pg_catalog.pg_opclass o ON o.oid = k.opc
      JOIN pg_catalog.pg_type t ON t.oid = o.opcintype
     WHERE pt.partstrat = 'h' AND k.attnum = 0
       -- An enum (anyenum) pg_dump sees by itself.
       AND ((t.typtype = 'p' AND t.typname <> 'anyenum')
            OR t.oid = 'pg_catalog.oid'::pg_catalog.regtype)
    UNION
    SELECT pt.partrelid
      FROM pg_catalog.pg_partitioned_table pt
     CROSS JOIN LATERAL unnest(pt.partclass::oid[], pt.partcollation::oid[]) AS k(opc, coll)
      JOIN pg_catalog.pg_opclass o ON o.oid = k.opc
      LEFT JOIN pg_catalog.pg_collation l ON l.oid = k.coll
     WHERE pt.partstrat = 'h'
       AND (o.opcnamespace <> 'pg_catalog'::pg_catalog.regnamespace
            -- PostgreSQL 12+ (read through jsonb: NULL on older servers, which have
            -- only deterministic collations).
            OR (pg_catalog.to_jsonb(l) ->> 'collisdeterministic')::boolean IS FALSE)
)
SELECT DISTINCT n.nspname, c.relname
  FROM renumbered r
  JOIN pg_catalog.pg_class c ON c.oid = r.partrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 ORDER BY 1, 2
"""


def hash_keys_to_load_via_root(conninfo: ConnInfo) -> list[str]:
    """The hash-partitioned tables of ``conninfo.dbname`` (keyed as
    :func:`~respaldo.postgres.counts.count_key`) that a dump must load through their root
    table, which pg_dump does not see by itself (``_HASH_KEYS_VIA_ROOT``). Raises
    ConnectionFailed, QueryFailed."""
    rows = _catalog_rows(conninfo, "reading the partition keys", _HASH_KEYS_VIA_ROOT)
    return [count_key(str(schema), str(table)) for schema, table in rows]


# --- databases ---------------------------------------------------------------------------


@contextmanager
def _maintenance(
    conninfo: ConnInfo, name: str, conn: Connection | None = None
) -> Iterator[Connection]:
    """A session (``conn``, or one of its own: :func:`session`) on another database than
    ``name``, to manage ``name`` from."""
    if conninfo.dbname == name:
        raise ValueError(f"connect to another database than {name!r} to manage it")
    with session(conninfo, conn) as managing:
        yield managing


def can_read_role_passwords(conninfo: ConnInfo) -> bool:
    """Whether the role of ``conninfo`` may read ``pg_authid``, where the role passwords
    are (a superuser may; other roles only if granted it)."""
    with connect(conninfo, autocommit=True) as conn:
        row = _guarded(
            conninfo,
            "checking whether role passwords can be read",
            lambda: conn.execute(
                "SELECT pg_catalog.has_table_privilege('pg_catalog.pg_authid', 'SELECT')"
            ).fetchone(),
        )
    return bool(row is not None and row[0])


SHORT_LOCK_WAIT = "100ms"
"""The ``deadlock_timeout`` of a restore's own sessions (:func:`restore_sessions`)."""


def restore_sessions(conninfo: ConnInfo, conn: Connection | None = None) -> ConnInfo:
    """``conninfo`` for the sessions of a restore or a restore test on the database it
    restores into: :func:`own_sessions`', giving up waiting behind autovacuum after
    :data:`SHORT_LOCK_WAIT`, and firing no event trigger (``event_triggers = off``,
    PostgreSQL 17 and later), each where its role may set that parameter (a superuser;
    from PostgreSQL 15 also a role granted ``SET`` on it). The options of ``conninfo``
    (or, without them, ``PGOPTIONS``, which libpq would otherwise use) are kept.

    A session waiting for a lock that an autovacuum worker holds has the worker cancelled
    only when its deadlock check runs, ``deadlock_timeout`` (one second by default) after
    it began to wait. A restore's tables, loaded and left alone until their indexes and
    keys are built, are what autovacuum takes next: at 1 GB a ``--jobs 2`` restore's
    post-data steps waited a second up to six times (the trigger on a partitioned table
    once per partition being vacuumed), the longest part of its end (docs/benchmarks.md,
    session 15). Only the deadlock check comes sooner; what waits, and for what, is
    unchanged.

    A restored database's own ``login`` event trigger (PostgreSQL 17: one that records
    each session in a table, an ERP's audit of who logged in) fires for every session
    respaldo opens on it once pg_restore has created it: the row counts then found that
    table one row or more longer than the backup's snapshot, and no backup of such a
    database could be restored or pass a restore test ('the backup may be damaged').
    Asked on ``conn`` (a session of :func:`own_sessions`' ``conninfo``, left open), or on
    sessions of its own. Raises ConnectionFailed, QueryFailed."""
    # Its own timeouts lifted before it asks anything (a database restored with a short
    # transaction_timeout may end even these questions).
    version = conn.info.server_version if conn is not None else server_version_num(conninfo)
    conninfo = own_sessions(conninfo, version)
    with session(conninfo, conn) as asked:

        def allowed() -> tuple[bool, bool]:
            quiet = asked.info.server_version >= 170000 and _may_set(asked, "event_triggers")
            return _may_set(asked, "deadlock_timeout"), quiet

        short, quiet = _guarded(conninfo, "checking what the restore's sessions may set", allowed)
    if short:
        conninfo = _with_option(conninfo, f"deadlock_timeout={SHORT_LOCK_WAIT}")
    if quiet:
        conninfo = _with_option(conninfo, "event_triggers=off")
    return conninfo


def _may_set(conn: Connection, parameter: str) -> bool:
    """Whether the session's role may set superuser-only ``parameter`` (a literal name):
    a superuser; from PostgreSQL 15 also a role granted ``SET`` on it."""
    if conn.info.server_version >= 150000:
        row = conn.execute(
            "SELECT pg_catalog.has_parameter_privilege(%s, 'SET')", (parameter,)
        ).fetchone()
    else:
        row = conn.execute("SELECT pg_catalog.current_setting('is_superuser') = 'on'").fetchone()
    return bool(row is not None and row[0])


def _with_option(conninfo: ConnInfo, setting: str) -> ConnInfo:
    """``conninfo`` with ``-c setting`` added to its options (or, without them, to
    ``PGOPTIONS``, which libpq takes only when the options parameter is not given)."""
    options = conninfo.params.get("options", os.environ.get("PGOPTIONS", ""))
    options = f"{options} -c {setting}".strip()
    return replace(conninfo, params={**conninfo.params, "options": options})


def own_sessions(conninfo: ConnInfo, server_version_num: int, *, lock_wait_ms: int = 0) -> ConnInfo:
    """``conninfo`` whose sessions wait as long as their work takes, whatever the
    database's or the role's ``statement_timeout``, ``lock_timeout``,
    ``idle_in_transaction_session_timeout`` and, on a server of ``server_version_num``
    170000 or later, ``transaction_timeout`` say (the options of ``conninfo``, or without
    them ``PGOPTIONS``, kept), as pg_dump sets them for its own session. A database set
    to cancel its application's long statements (``ALTER DATABASE … SET statement_timeout
    = '30s'``) cancelled a backup's row counts once one table took longer to count, and
    every backup of it failed; the snapshot's transaction, idle while pg_dump works, was
    ended by an idle timeout, and on PostgreSQL 17 by a ``transaction_timeout`` shorter
    than the dump. An older server refuses to start a session that sets the last one
    (unknown parameter), hence the version (:func:`server_version_num`).
    ``lock_wait_ms`` above 0 is their ``lock_timeout`` instead: a backup through a standby
    fails rather than wait for ever behind WAL replay stuck on a lock
    (respaldo.postgres.standby_blocked). Pure."""
    settings = [
        "statement_timeout=0",
        f"lock_timeout={int(lock_wait_ms)}",
        "idle_in_transaction_session_timeout=0",
    ]
    if server_version_num >= 170000:
        settings.append("transaction_timeout=0")
    for setting in settings:
        conninfo = _with_option(conninfo, setting)
    return conninfo


def server_version_num(conninfo: ConnInfo) -> int:
    """The server's version number as it says when a session starts, asked without a
    statement: under a database's ``transaction_timeout`` even one may be ended (the
    setting :func:`own_sessions` lifts needs it). Raises ConnectionFailed."""
    with connect(conninfo, autocommit=True) as conn:
        return int(conn.info.server_version)


def writable(conninfo: ConnInfo) -> ConnInfo:
    """``conninfo`` whose sessions may write whatever the database's or the role's
    ``default_transaction_read_only`` says (the options of ``conninfo``, or without them
    ``PGOPTIONS``, kept). A restore manages the server (CREATE, ALTER, RENAME and DROP
    DATABASE) from the configured database: one made read-only by ``ALTER DATABASE … SET
    default_transaction_read_only = on`` (an archive of past years' works) refused every
    restore of its backups under a new name, while its restore tests, managed from
    ``postgres``, passed. Pure."""
    return _with_option(conninfo, "default_transaction_read_only=off")


def database_exists(conninfo: ConnInfo, name: str, conn: Connection | None = None) -> bool:
    """Whether database ``name`` exists in the cluster of ``conninfo`` (asked on ``conn``
    if given: :func:`session`)."""
    with session(conninfo, conn) as asked:
        row = _guarded(
            conninfo,
            "checking for a database",
            lambda: asked.execute(
                "SELECT 1 FROM pg_catalog.pg_database WHERE datname = %s", (name,)
            ).fetchone(),
        )
    return row is not None


# What a database fresh from template0 must not hold, found generically rather than
# from a list of object kinds (which misses the next kind: casts, operators, default
# privileges...). Three rules, each about template0 as initdb made it:
#
# 1. A row with an OID from FirstNormalObjectId (16384) in any catalog of pg_catalog
#    that has an ``oid`` column: those OIDs are handed out only once the server runs
#    normally, so the object was made after initdb. Shared catalogs (roles, databases,
#    tablespaces...) are the cluster's, not template0's, and are left out. plpgsql and
#    its members are initdb's, and late enough that many locales could push their OIDs
#    up. pg_default_acl must be empty whatever its OIDs.
# 2. A row whose xmin is newer than its catalog's relfrozenxid: initdb ends with VACUUM
#    FREEZE before copying template1 to template0, so every row it wrote is older than
#    that horizon, and any row written since (a CREATE OR REPLACE of a built-in
#    function, a GRANT on a system schema, ...) is newer. Raw xids compare in order only
#    within the first xid epoch, so the rule is applied only while the cluster has used
#    fewer than 2^32 transactions. Left out: pg_class, whose rows pg_upgrade rewrites in
#    template0 to set relfrozenxid (its ACLs are rule 3's, new relations rule 1's), and
#    the planner statistics (an ANALYZE changes no meaning). An anti-wraparound VACUUM of
#    template0 moves the horizon past older changes: those are then rules 1 and 3's only.
# 3. Privileges of system objects that differ from initdb's, as pg_init_privs records
#    them (or the built-in default where it records none); information_schema's grants
#    are made after pg_init_privs is filled, so objects there count only if recorded.
_CATALOGS = """
SELECT c.relname, c.relfrozenxid::text::bigint,
       EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                WHERE a.attrelid = c.oid AND a.attname = 'oid' AND a.attnum > 0)
  FROM pg_catalog.pg_class c
 WHERE c.relnamespace = 'pg_catalog'::pg_catalog.regnamespace AND c.relkind = 'r'
   AND NOT c.relisshared
 ORDER BY c.relname
"""

# Whether raw xids still compare in order: fewer than 2^32 transactions so far.
_FIRST_EPOCH = (
    "SELECT pg_catalog.txid_snapshot_xmax(pg_catalog.txid_current_snapshot()) < 4294967296"
)

_XMIN_EXEMPT = frozenset({"pg_class", "pg_statistic", "pg_statistic_ext_data"})
_MUST_BE_EMPTY = frozenset({"pg_default_acl"})

_PLPGSQL = """
WITH plpgsql(classid, objid) AS (
  SELECT 'pg_catalog.pg_extension'::pg_catalog.regclass, oid
    FROM pg_catalog.pg_extension WHERE extname = 'plpgsql'
  UNION ALL
  SELECT d.classid, d.objid
    FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_extension x ON x.oid = d.refobjid
   WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
     AND d.deptype = 'e' AND x.extname = 'plpgsql'
)
"""

_CHANGED_ACLS = """
WITH acls(classid, objid, objsubid, kind, owner, acl) AS (
  SELECT 'pg_catalog.pg_namespace'::pg_catalog.regclass, oid, 0, 'n'::"char", nspowner, nspacl
    FROM pg_catalog.pg_namespace
  UNION ALL
  SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, oid, 0,
         CASE relkind WHEN 'S' THEN 's'::"char" ELSE 'r'::"char" END, relowner, relacl
    FROM pg_catalog.pg_class
  UNION ALL
  SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, a.attrelid, a.attnum, 'c'::"char",
         c.relowner, a.attacl
    FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
   WHERE a.attacl IS NOT NULL
  UNION ALL
  SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass, oid, 0, 'f'::"char", proowner, proacl
    FROM pg_catalog.pg_proc
  UNION ALL
  SELECT 'pg_catalog.pg_type'::pg_catalog.regclass, oid, 0, 'T'::"char", typowner, typacl
    FROM pg_catalog.pg_type
  UNION ALL
  SELECT 'pg_catalog.pg_language'::pg_catalog.regclass, oid, 0, 'l'::"char", lanowner, lanacl
    FROM pg_catalog.pg_language
  UNION ALL
  SELECT 'pg_catalog.pg_foreign_data_wrapper'::pg_catalog.regclass, oid, 0, 'F'::"char",
         fdwowner, fdwacl
    FROM pg_catalog.pg_foreign_data_wrapper
  UNION ALL
  SELECT 'pg_catalog.pg_foreign_server'::pg_catalog.regclass, oid, 0, 'S'::"char",
         srvowner, srvacl
    FROM pg_catalog.pg_foreign_server
)
SELECT a.classid::pg_catalog.regclass::text, a.objid, a.objsubid
  FROM acls a
  LEFT JOIN pg_catalog.pg_init_privs i
    ON i.classoid = a.classid AND i.objoid = a.objid AND i.objsubid = a.objsubid
 WHERE a.objid < 16384
   AND (i.objoid IS NOT NULL OR a.objid NOT IN (
          SELECT c.oid FROM pg_catalog.pg_class c
           WHERE c.relnamespace = 'information_schema'::pg_catalog.regnamespace
          UNION ALL
          SELECT 'information_schema'::pg_catalog.regnamespace::oid))
   AND ARRAY(SELECT x::text FROM pg_catalog.unnest(
               COALESCE(a.acl, pg_catalog.acldefault(a.kind, a.owner))) x ORDER BY 1)
       IS DISTINCT FROM
       ARRAY(SELECT x::text FROM pg_catalog.unnest(
               COALESCE(i.initprivs, pg_catalog.acldefault(a.kind, a.owner))) x ORDER BY 1)
 ORDER BY 1, 2, 3
"""

_IDENTIFY = (
    "SELECT pg_catalog.concat_ws(' ', type, identity)"
    " FROM pg_catalog.pg_identify_object(%s::pg_catalog.regclass, %s, %s)"
)

# Describing one object is one query; beyond these, found objects are only counted.
_DESCRIBED = 10


class _Found(NamedTuple):
    catalog: str  # "pg_cast"
    objid: int | None  # None: a catalog without OIDs (a changed row of pg_depend)
    objsubid: int
    acl: bool  # the object's privileges changed, not the object


def _changed_rows_query(catalogs: list[tuple[str, int, bool]], first_epoch: bool) -> sql.Composed:
    """One UNION over every catalog: the rows rules 1 and 2 find (see above)."""
    parts = []
    for relname, frozen, has_oid in catalogs:
        table = sql.Identifier("pg_catalog", relname)
        xmin_new = (
            sql.SQL("t.xmin::text::bigint >= {}").format(sql.Literal(frozen))
            if first_epoch
            else sql.SQL("false")
        )
        changed = xmin_new if relname not in _XMIN_EXEMPT else sql.SQL("false")
        made: sql.Composable
        if has_oid:
            made = sql.SQL(
                "(t.oid >= 16384 AND NOT ({old}) AND NOT EXISTS (SELECT 1 FROM plpgsql p"
                " WHERE p.classid = {cls}::pg_catalog.regclass AND p.objid = t.oid))"
            ).format(
                old=sql.SQL("t.xmin::text::bigint < {}").format(sql.Literal(frozen))
                if first_epoch
                else sql.SQL("false"),
                cls=sql.Literal(f"pg_catalog.{relname}"),
            )
            if relname in _MUST_BE_EMPTY:
                made = sql.SQL("true")
            objid: sql.Composable = sql.SQL("t.oid")
        elif relname in _XMIN_EXEMPT or not first_epoch:
            continue
        else:
            made = sql.SQL("false")
            objid = sql.SQL("NULL::pg_catalog.oid")
        parts.append(
            sql.SQL("SELECT {name}::text, {objid} FROM {table} t WHERE {made} OR {changed}").format(
                name=sql.Literal(relname), objid=objid, table=table, made=made, changed=changed
            )
        )
    return sql.SQL("{} SELECT * FROM ({}) found").format(
        sql.SQL(_PLPGSQL), sql.SQL(" UNION ALL ").join(parts)
    )


def _describe(conn: Connection, found: _Found) -> str:
    if found.objid is None:
        return f"changed rows of pg_catalog.{found.catalog}"
    try:
        row = conn.execute(
            _IDENTIFY, (f"pg_catalog.{found.catalog}", found.objid, found.objsubid)
        ).fetchone()
        what = str(row[0]) if row is not None and row[0] else ""
    except psycopg.Error:  # a catalog pg_identify_object does not know (pg_enum...)
        what = ""
    what = what or f"pg_catalog.{found.catalog} row {found.objid}"
    return f"privileges of {what}" if found.acl else what


def _template_differences(conn: Connection) -> list[str]:
    catalogs = [(str(r[0]), int(r[1]), bool(r[2])) for r in conn.execute(_CATALOGS).fetchall()]
    epoch_row = conn.execute(_FIRST_EPOCH).fetchone()
    first_epoch = bool(epoch_row[0]) if epoch_row is not None else False
    found: list[_Found] = []
    seen_catalogs: set[str] = set()
    for catalog, objid in conn.execute(_changed_rows_query(catalogs, first_epoch)).fetchall():
        if objid is None:
            if catalog in seen_catalogs:
                continue
            seen_catalogs.add(catalog)
        found.append(_Found(str(catalog), None if objid is None else int(objid), 0, False))
    listed = {(f.catalog, f.objid) for f in found}
    for regclass, objid, objsubid in conn.execute(_CHANGED_ACLS.encode()).fetchall():
        catalog = str(regclass).removeprefix("pg_catalog.")
        if objsubid == 0 and (catalog, int(objid)) in listed:
            continue  # already named as changed
        found.append(_Found(catalog, int(objid), int(objsubid), True))
    # Objects before the rows of catalogs without OIDs (pg_depend...), which only echo them.
    found.sort(key=lambda f: f.objid is None)
    return [
        _describe(conn, f) if i < _DESCRIBED else f"pg_catalog.{f.catalog} row {f.objid}"
        for i, f in enumerate(found)
    ]


def unexpected_objects(conninfo: ConnInfo) -> list[str]:
    """How database ``conninfo.dbname``, just created from template0, differs from initdb's.

    Empty for a database as template0 comes from initdb; otherwise one description per
    object (``table public.t``, ``cast from text to integer``, ``privileges of schema
    public``, ``changed rows of pg_catalog.pg_depend``...), objects first. A template0
    someone connected to and changed would otherwise slip its objects, or its changed
    built-ins and privileges, into every restore. Blind spots: see the rules above.
    Raises ConnectionFailed, QueryFailed.
    """
    with connect(conninfo, autocommit=True) as conn:
        return _guarded(
            conninfo,
            "comparing a new database with template0 as initdb made it",
            lambda: _template_differences(conn),
        )


# The encoding and locale options of CREATE DATABASE, as respaldo.postgres.dbprops reads
# them from a dump, and how each is written.
LOCALE_OPTIONS: dict[str, sql.SQL] = {
    "ENCODING": sql.SQL("ENCODING {}"),
    "LOCALE": sql.SQL("LOCALE {}"),
    "LC_COLLATE": sql.SQL("LC_COLLATE {}"),
    "LC_CTYPE": sql.SQL("LC_CTYPE {}"),
    "ICU_LOCALE": sql.SQL("ICU_LOCALE {}"),
    "ICU_RULES": sql.SQL("ICU_RULES {}"),
    "BUILTIN_LOCALE": sql.SQL("BUILTIN_LOCALE {}"),
}
LOCALE_PROVIDERS: dict[str, sql.SQL] = {
    "libc": sql.SQL("LOCALE_PROVIDER libc"),
    "icu": sql.SQL("LOCALE_PROVIDER icu"),
    "builtin": sql.SQL("LOCALE_PROVIDER builtin"),
}


def create_database(
    conninfo: ConnInfo,
    name: str,
    *,
    owner: str | None = None,
    template: str = "template0",
    locale: Sequence[tuple[str, str]] = (),
    conn: Connection | None = None,
) -> None:
    """Create database ``name`` from ``template`` (template0: empty, as pg_restore wants),
    with the encoding and locale ``locale`` gives (``(option, value)``: keys of
    :data:`LOCALE_OPTIONS`, or ``LOCALE_PROVIDER`` and a key of
    :data:`LOCALE_PROVIDERS`; none: the template's).

    ``conninfo`` names the database to connect to for this (not ``name``); ``conn``, if
    given, is a session on it (:func:`session`). Not idempotent: raises DatabaseExists if
    ``name`` is taken, QueryFailed otherwise.
    """
    statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
        sql.Identifier(name), sql.Identifier(template)
    )
    for key, value in locale:
        clause = (
            LOCALE_PROVIDERS[value]
            if key == "LOCALE_PROVIDER"
            else LOCALE_OPTIONS[key].format(sql.Literal(value))
        )
        statement = sql.SQL("{} {}").format(statement, clause)
    if owner is not None:
        statement = sql.SQL("{} OWNER {}").format(statement, sql.Identifier(owner))
    with _maintenance(conninfo, name, conn) as managing:
        _guarded(
            conninfo,
            f"creating database {name!r}",
            lambda: managing.execute(statement),
            {psycopg.errors.DuplicateDatabase: DatabaseExists(f"database {name!r} already exists")},
        )
    log.info("created database %r", name)


def _terminate_query(server_version: int) -> str:
    """The query that terminates every other session on the database named by its one
    parameter and counts them; from PostgreSQL 14 on it waits (up to 5 s each) until they
    have gone, before, they are only signalled."""
    if server_version >= 140000:
        return (
            "SELECT count(*) FILTER (WHERE pg_catalog.pg_terminate_backend(pid, 5000))"
            " FROM pg_catalog.pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_catalog.pg_backend_pid()"
        )
    return (
        "SELECT count(*) FILTER (WHERE pg_catalog.pg_terminate_backend(pid))"
        " FROM pg_catalog.pg_stat_activity"
        " WHERE datname = %s AND pid <> pg_catalog.pg_backend_pid()"
    )


def terminate_connections(conninfo: ConnInfo, name: str) -> int:
    """Terminate every other session connected to database ``name``; return how many.

    Waits (up to 5 s each, PostgreSQL 14+) until they have gone, so that a following DROP
    or RENAME does not find them still exiting. Idempotent. Needs superuser or the
    ``pg_signal_backend`` role for sessions of other roles.
    """
    with _maintenance(conninfo, name) as conn:
        query = _terminate_query(conn.info.server_version)
        row = _guarded(
            conninfo,
            f"terminating connections to {name!r}",
            lambda: conn.execute(query, (name,)).fetchone(),
        )
    return int(row[0]) if row is not None else 0


def drop_database(
    conninfo: ConnInfo,
    name: str,
    *,
    force: bool = True,
    missing_ok: bool = True,
    conn: Connection | None = None,
) -> None:
    """Drop database ``name``; with ``force``, sessions connected to it are terminated.

    Idempotent with ``missing_ok`` (the default); otherwise raises DatabaseNotFound.
    Raises QueryFailed when sessions are connected and ``force`` is false. A database
    marked as a template (IS_TEMPLATE, which a restored database gets from a backup of
    one) is unmarked first: PostgreSQL refuses to drop it otherwise. On ``conn`` if given
    (:func:`session`).
    """
    unmark = sql.SQL("ALTER DATABASE {} IS_TEMPLATE false").format(sql.Identifier(name))
    with _maintenance(conninfo, name, conn) as managing:
        modern = managing.info.server_version >= 130000
        template = _guarded(
            conninfo,
            f"reading whether {name!r} is a template",
            lambda: managing.execute(
                "SELECT datistemplate FROM pg_catalog.pg_database WHERE datname = %s", (name,)
            ).fetchone(),
        )
        if template is not None and template[0]:
            _guarded(conninfo, f"unmarking template {name!r}", lambda: managing.execute(unmark))
    if force and not modern:
        terminate_connections(conninfo, name)
    statement = sql.SQL("DROP DATABASE {exists}{name}{force}").format(
        exists=sql.SQL("IF EXISTS " if missing_ok else ""),
        name=sql.Identifier(name),
        force=sql.SQL(" WITH (FORCE)" if force and modern else ""),
    )
    with _maintenance(conninfo, name, conn) as managing:
        _guarded(
            conninfo,
            f"dropping database {name!r}",
            lambda: managing.execute(statement),
            {
                psycopg.errors.InvalidCatalogName: DatabaseNotFound(
                    f"database {name!r} does not exist"
                )
            },
        )
    log.info("dropped database %r", name)


# pg_subscription is a shared catalog: its rows are seen from any database of the server.
_SUBSCRIPTIONS_OF = """
SELECT s.subname, s.subenabled FROM pg_catalog.pg_subscription s
  JOIN pg_catalog.pg_database d ON d.oid = s.subdbid
 WHERE d.datname = %s
 ORDER BY s.subname
"""


def subscriptions_of(
    conninfo: ConnInfo, name: str, conn: Connection | None = None
) -> list[tuple[str, bool]]:
    """The logical replication subscriptions of database ``name``: (name, enabled) each,
    read from another database of its server (on ``conn`` if given: :func:`session`).
    Raises ConnectionFailed, QueryFailed."""
    with _maintenance(conninfo, name, conn) as asked:
        rows = _guarded(
            conninfo,
            f"listing the subscriptions of {name!r}",
            lambda: asked.execute(_SUBSCRIPTIONS_OF, (name,)).fetchall(),
        )
    return [(str(row[0]), bool(row[1])) for row in rows]


_LOGICAL_SLOTS_OF = """
SELECT slot_name FROM pg_catalog.pg_replication_slots
 WHERE slot_type = 'logical' AND database = %s AND NOT temporary
 ORDER BY slot_name
"""


def logical_slots_of(conninfo: ConnInfo, name: str) -> list[str]:
    """The logical replication slots of database ``name`` (its subscribers', on a
    publisher), read from another database of its server. A slot belongs to the database
    it was created in, by OID: renamed, the database keeps them. Raises ConnectionFailed,
    QueryFailed."""
    with _maintenance(conninfo, name) as conn:
        rows = _guarded(
            conninfo,
            f"listing the replication slots of {name!r}",
            lambda: conn.execute(_LOGICAL_SLOTS_OF, (name,)).fetchall(),
        )
    return [str(row[0]) for row in rows]


def drop_copied_subscriptions(
    conninfo: ConnInfo, name: str, conn: Connection | None = None
) -> list[str]:
    """Drop the logical replication subscriptions of database ``name``, a copy restored
    from a backup, without touching their publisher; return their names.

    PostgreSQL refuses to drop a database that holds a subscription, and pg_restore
    creates the backed-up database's own (disabled, ``connect = false``) but naming the
    original's replication slot. ``DROP SUBSCRIPTION`` alone would connect to the
    publisher and drop that slot, which the original subscriber is using: so each is
    disabled and detached from its slot (``slot_name = NONE``) first. Only for copies:
    the live subscriber's slot must go with its own subscription. Connects to ``name``
    only when it holds one. Raises ConnectionFailed, QueryFailed (a role that does not
    own them and is no superuser).
    """
    found = [subscription for subscription, _ in subscriptions_of(conninfo, name, conn)]
    if not found:
        return []
    inside = conninfo.with_dbname(name)
    with connect(inside, autocommit=True) as conn:

        def run(query: sql.Composed) -> None:
            conn.execute(query)

        for subscription in found:
            ident = sql.Identifier(subscription)
            for statement in (
                sql.SQL("ALTER SUBSCRIPTION {} DISABLE"),
                sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)"),
                sql.SQL("DROP SUBSCRIPTION {}"),
            ):
                query = statement.format(ident)
                _guarded(
                    inside,
                    f"dropping subscription {subscription!r} of {name!r}",
                    functools.partial(run, query),
                )
    log.info("dropped the subscriptions of %r: %s", name, ", ".join(found))
    return found


RENAME_ATTEMPTS = 3
"""How many times :func:`rename_database` ends the sessions on a database and renames it
before it gives up on sessions that come back each time."""

_OBJECT_IN_USE = "55006"  # "database … is being accessed by other users"


def allows_connections(conninfo: ConnInfo, name: str) -> bool:
    """Whether database ``name`` accepts connections (``datallowconn``). Raises
    DatabaseNotFound, ConnectionFailed, QueryFailed."""
    with _maintenance(conninfo, name) as conn:
        row = _guarded(
            conninfo,
            f"reading whether {name!r} accepts connections",
            lambda: conn.execute(
                "SELECT datallowconn FROM pg_catalog.pg_database WHERE datname = %s", (name,)
            ).fetchone(),
        )
    if row is None:
        raise DatabaseNotFound(f"database {name!r} does not exist")
    return bool(row[0])


def allow_connections(conninfo: ConnInfo, name: str, allow: bool) -> None:
    """``ALTER DATABASE name ALLOW_CONNECTIONS allow``: with ``False`` nobody (a superuser
    neither) opens a new session on it; those open stay. Raises ConnectionFailed,
    QueryFailed (not its owner nor a superuser)."""
    statement = sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
        sql.Identifier(name), sql.SQL("true" if allow else "false")
    )
    with _maintenance(conninfo, name) as conn:
        _guarded(
            conninfo,
            f"{'allowing' if allow else 'refusing'} connections to {name!r}",
            lambda: conn.execute(statement),
        )


def rename_database(
    conninfo: ConnInfo,
    old: str,
    new: str,
    *,
    force: bool = True,
    conn: Connection | None = None,
) -> None:
    """Rename database ``old`` to ``new``; with ``force``, sessions on ``old`` are ended first.

    Used to swap a freshly restored database into place. With ``force`` the sessions are
    ended and the database renamed from one session, again while sessions came back
    meanwhile (up to :data:`RENAME_ATTEMPTS` times). An application's connection pool
    reconnects faster than that: refuse new connections first (:func:`allow_connections`).
    Not idempotent: raises DatabaseNotFound if ``old`` does not exist, DatabaseExists if
    ``new`` does, and QueryFailed otherwise (sessions that come back every time, with a
    hint to stop them). On ``conn`` if given (:func:`session`).
    """
    if conninfo.dbname == new:
        raise ValueError(f"connect to another database than {new!r} to rename into it")
    statement = sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
        sql.Identifier(old), sql.Identifier(new)
    )
    errors: dict[type[psycopg.Error], SourceError] = {
        psycopg.errors.InvalidCatalogName: DatabaseNotFound(f"database {old!r} does not exist"),
        psycopg.errors.DuplicateDatabase: DatabaseExists(f"database {new!r} already exists"),
    }
    with _maintenance(conninfo, old, conn) as managing:
        terminate = _terminate_query(managing.info.server_version)
        for attempt in range(1, RENAME_ATTEMPTS + 1):
            if force:
                _guarded(
                    conninfo,
                    f"terminating connections to {old!r}",
                    lambda: managing.execute(terminate, (old,)),
                )
            try:
                _guarded(
                    conninfo,
                    f"renaming database {old!r} to {new!r}",
                    lambda: managing.execute(statement),
                    errors,
                )
            except QueryFailed as exc:
                if not force or exc.sqlstate != _OBJECT_IN_USE:
                    raise
                if attempt < RENAME_ATTEMPTS:
                    log.info("sessions came back to %r before it was renamed: again", old)
                    continue
                exc.hint = (
                    f"sessions connect to {old} again as soon as they are ended (an "
                    "application or its connection pool): stop them, then run this again"
                )
                raise
            break
    log.info("renamed database %r to %r", old, new)

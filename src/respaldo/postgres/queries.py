"""Read-only queries with a time limit, for the checks of a restore test."""

from __future__ import annotations

import psycopg
from psycopg import sql

from respaldo.errors import QueryFailed, first_line
from respaldo.postgres.connection import ConnInfo
from respaldo.postgres.server import Connection, connect


def readonly_value(conninfo: ConnInfo, query: str, *, timeout_seconds: int) -> str:
    """Run ``query`` in a read-only transaction and return its first value as text.

    A query that returns no row gives ``""``; NULL gives ``"NULL"``. The transaction is
    read-only and rolled back, so a validation query can never change the database;
    ``statement_timeout`` bounds it. ``query`` must be one statement: it is sent as a
    prepared statement (the extended protocol), because in the simple protocol a
    ``COMMIT;`` in it would end the read-only transaction and a ``SET statement_timeout``
    lift the bound for what follows. Raises QueryFailed (with PostgreSQL's message, or
    saying that the query is more than one statement), ConnectionFailed.
    """
    with connect(conninfo) as conn:
        try:
            conn.read_only = True
            with conn.cursor() as cur:
                cur.execute(
                    sql.SQL("SET LOCAL statement_timeout = {}").format(
                        sql.Literal(f"{int(timeout_seconds)}s")
                    )
                )
                # The user's SQL from the config file: trusted like the config itself.
                cur.execute(query.encode(), prepare=True)
                row = cur.fetchone() if cur.description is not None else None
        except psycopg.errors.SyntaxError as exc:
            if not _several_statements(conn, exc):
                raise _failed(conninfo, exc) from None
            raise QueryFailed(
                f"query failed on {conninfo.describe()}: it is more than one statement; "
                "a validation query must be one statement (one SELECT), which runs "
                "read-only and within the time limit",
                sqlstate=exc.sqlstate,
            ) from None
        except psycopg.Error as exc:
            raise _failed(conninfo, exc) from None
        finally:
            conn.rollback()
    if row is None:
        return ""
    return "NULL" if row[0] is None else str(row[0])


# A query known to be two statements: what the server says when asked to prepare it.
_TWO_STATEMENTS = b"SELECT 1; SELECT 1"


def _several_statements(conn: Connection, exc: psycopg.Error) -> bool:
    """Whether ``exc`` is the server's refusal to prepare more than one statement.

    Its SQLSTATE is any syntax error's (42601), and its words are in the server's
    language (lc_messages: "no se pueden insertar múltiples órdenes en una sentencia
    preparada"); so the server is asked for its words on a query known to be two
    statements, in the same session (the same language), and they are compared."""
    conn.rollback()
    try:
        conn.execute(_TWO_STATEMENTS, prepare=True)
    except psycopg.errors.SyntaxError as known:
        return bool(exc.diag.message_primary) and (
            known.diag.message_primary == exc.diag.message_primary
        )
    except psycopg.Error:
        return False  # not known: PostgreSQL's own message rather than a wrong one
    finally:
        conn.rollback()
    return False


def _failed(conninfo: ConnInfo, exc: psycopg.Error) -> QueryFailed:
    message = first_line(exc)
    return QueryFailed(
        f"query failed on {conninfo.describe()}: {message}",
        sqlstate=getattr(exc, "sqlstate", None),
    )

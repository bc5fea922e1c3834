"""Read-only queries with a time limit, for the checks of a restore test."""

from __future__ import annotations

import psycopg
from psycopg import sql

from respaldo.errors import QueryFailed, first_line
from respaldo.postgres.connection import ConnInfo
from respaldo.postgres.server import connect


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
            if "multiple commands" not in str(exc):
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


def _failed(conninfo: ConnInfo, exc: psycopg.Error) -> QueryFailed:
    message = first_line(exc)
    return QueryFailed(
        f"query failed on {conninfo.describe()}: {message}",
        sqlstate=getattr(exc, "sqlstate", None),
    )

"""A query that failed because the session itself is gone says so, with what to do."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from respaldo.postgres.server import _session_lost

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("error", "lost"),
    [
        (psycopg.OperationalError("server closed the connection unexpectedly"), True),
        (errors.AdminShutdown("terminating connection due to administrator command"), True),
        (errors.ConnectionFailure("connection failure"), True),
        (errors.QueryCanceled("canceling statement due to user request"), False),
        (errors.UndefinedTable('relation "x" does not exist'), False),
        (psycopg.InterfaceError("the connection is closed"), False),
    ],
)
def test_a_session_that_ended_is_told_apart_from_a_query_that_failed(
    error: psycopg.Error, lost: bool
) -> None:
    assert _session_lost(error) is lost

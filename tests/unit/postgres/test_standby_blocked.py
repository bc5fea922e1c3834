"""A logical backup through a standby whose WAL replay blocks a lock
(respaldo.postgres.standby_blocked): its limit, the failures that are that limit, and
what the error says; the integration test (tests/integration/physical/test_standby_dsn.py)
builds replay stuck behind a standby query, not the other cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from respaldo.errors import PostgresError, QueryFailed
from respaldo.postgres import commands
from respaldo.postgres.commands import pg_dump, pg_dump_directory
from respaldo.postgres.connection import ConnInfo
from respaldo.postgres.server import own_sessions
from respaldo.postgres.standby_blocked import (
    ReplayLock,
    lock_wait_ms,
    lock_waited,
    replay_blocked,
)

WAIT = timedelta(minutes=5)

# What pg_dump 15 printed, its --lock-wait-timeout ended, custom and directory format
# alike (the integration test's standby, replay stuck behind a standby query).
DUMP_STDERR = (
    "pg_dump: error: query failed: ERROR:  canceling statement due to statement timeout\n"
    "pg_dump: detail: Query was: LOCK TABLE public.mark IN ACCESS SHARE MODE\n"
)


def test_the_limit_in_milliseconds_is_never_none() -> None:
    assert lock_wait_ms(WAIT) == 300_000
    assert lock_wait_ms(timedelta(minutes=0.01)) == 600
    assert lock_wait_ms(timedelta(microseconds=10)) == 1  # 0 would be no limit at all


def test_the_sessions_of_a_backup_through_a_standby_wait_that_long_for_a_lock() -> None:
    primary = own_sessions(ConnInfo(dbname="erp"), 150000)
    assert "-c lock_timeout=0" in primary.params["options"]
    standby = own_sessions(ConnInfo(dbname="erp"), 150000, lock_wait_ms=600)
    options = standby.params["options"]
    assert "-c lock_timeout=600" in options and "lock_timeout=0" not in options
    assert "-c statement_timeout=0" in options


def test_the_failures_that_are_the_limit() -> None:
    assert lock_waited(QueryFailed("canceling statement due to lock timeout", sqlstate="55P03"))
    assert lock_waited(PostgresError("pg_dump", 1, DUMP_STDERR))
    # Others are not: a statement cancelled otherwise, pg_dump's other failures, and a
    # parallel worker's NOWAIT (its own lock taken after the leader's, in the queue).
    assert not lock_waited(QueryFailed("canceling statement", sqlstate="57014"))
    assert not lock_waited(QueryFailed("no sqlstate"))
    assert not lock_waited(PostgresError("pg_dump", 1, "pg_dump: error: permission denied"))
    nowait = 'pg_dump: error: could not obtain lock on relation "public.mark"'
    assert not lock_waited(PostgresError("pg_dump", 1, nowait))
    assert not lock_waited(RuntimeError(DUMP_STDERR))


def test_pg_dump_is_given_the_limit_in_either_format(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[list[str]] = []

    def start(program: str, conninfo: ConnInfo, build: list[str], **kwargs: object) -> None:
        started.append(build)

    monkeypatch.setattr(commands, "_start", start)
    pg_dump(ConnInfo(dbname="erp"), lock_wait_timeout_ms=600)
    pg_dump(ConnInfo(dbname="erp"))
    pg_dump_directory(
        ConnInfo(dbname="erp"),
        Path("/nonexistent/d"),
        jobs=2,
        progress=_Lines(),
        lock_wait_timeout_ms=600,
    )
    assert "--lock-wait-timeout=600" in started[0]
    assert not any(a.startswith("--lock-wait-timeout") for a in started[1])  # a primary's
    assert "--lock-wait-timeout=600" in started[2]


class _Lines:
    def line(self, line: bytes) -> bool:
        return True

    def end(self) -> None:
        pass


def test_replay_stuck_behind_standby_sessions_names_them() -> None:
    since = datetime(2026, 12, 8, 1, 0, tzinfo=UTC)
    waiting = [
        ReplayLock("public.mark", False, 4242, "erp", "psql", "idle in transaction", since, "-1"),
        ReplayLock("public.mark", False, 4343, "bi", None, None, None, "-1"),
        ReplayLock("public.other", True, streaming_delay="-1"),
    ]
    error = replay_blocked(WAIT, waiting)
    message = str(error.message)
    assert message.startswith(
        "the server is a standby whose WAL replay blocks a table's lock the backup needs, "
        "and the backup waited for it longer than [rpo] standby_lock_wait_minutes = 5: "
        "replay is stuck, waiting for a lock on table public.mark, held by the standby's "
        "session 4242 (user erp, application psql, idle in transaction since "
        "2026-12-08 01:00:00+00:00) and session 4343 (user bi), which it does not cancel "
        "(max_standby_streaming_delay = -1)"
    ), message
    assert str(error.hint).startswith(
        "end those sessions on the standby (SELECT pg_terminate_backend(4242), "
        "pg_terminate_backend(4343)) or let replay cancel such queries"
    ), error.hint
    assert "a dsn that leads to the primary" in str(error.hint)
    # A session holding two modes of the lock is one row each: named once.
    twice = [waiting[1], waiting[1]]
    assert str(replay_blocked(WAIT, twice).hint).startswith(
        "end that session on the standby (SELECT pg_terminate_backend(4343)) or"
    )


def test_replay_holding_a_lock_for_the_primary_says_so() -> None:
    error = replay_blocked(WAIT, [ReplayLock("public.mark", True, streaming_delay="30s")])
    assert (
        "replay holds an ACCESS EXCLUSIVE lock on table public.mark for a transaction of "
        "the primary that has not ended"
    ) in str(error.message)
    assert "once that transaction has ended on the primary" in str(error.hint)


def test_replay_that_moved_on_or_could_not_be_asked() -> None:
    nothing: list[ReplayLock] = []
    for locks in (None, nothing):
        error = replay_blocked(WAIT, locks)
        assert "what replay waited for could not be told" in str(error.message)
        assert "pg_locks and pg_stat_activity on the standby" in str(error.hint)

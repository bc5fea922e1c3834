"""Row counts and autovacuum settings of many tables: a statement for many tables, not one
for each (a round trip each cost more than the server's work on a loaded machine)."""

from __future__ import annotations

from typing import Any

import pytest

from respaldo.postgres import server
from respaldo.postgres.connection import ConnInfo
from respaldo.postgres.server import count_batches, count_rows

pytestmark = pytest.mark.unit

TABLES = [(f"s{n // 10}", f"t{n}") for n in range(250)] + [("a.b", 'c"d')]


def test_the_tables_are_counted_a_batch_at_a_time_each_row_numbered() -> None:
    batches = list(count_batches(TABLES, fmt=2, size=100))
    assert [len(b) for b, _ in batches] == [100, 100, 51]
    assert [t for b, _ in batches for t in b] == TABLES
    text = batches[2][1].as_string(None)
    assert text.startswith('SELECT 0, count(*) FROM ONLY "s20"."t200" UNION ALL SELECT 1, ')
    assert text.endswith('SELECT 50, count(*) FROM ONLY "a.b"."c""d"')
    # Format 1 counted a table with its inheritance children.
    assert "ONLY" not in next(count_batches(TABLES, fmt=1))[1].as_string(None)


class _Session:
    """Stands in for a psycopg connection and its cursor: records each statement, and
    answers a batch's count with ``(n, n)`` for its ``n``-th table."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.read_only = False
        self._rows: list[tuple[int, int]] = []

    def cursor(self) -> _Session:
        return self

    def __enter__(self) -> _Session:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def execute(self, statement: Any, *_: object) -> _Session:
        text = statement if isinstance(statement, str) else statement.as_string(None)
        self.statements.append(text)
        self._rows = [(n, n) for n in range(text.count(" UNION ALL ") + 1)]
        return self

    def fetchall(self) -> list[tuple[int, int]]:
        return self._rows

    def fetchone(self) -> tuple[int, int]:
        return self._rows[0]

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_restore_counts_its_tables_in_a_statement_for_each_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session = _Session()
    monkeypatch.setattr(server, "connect", lambda _conninfo: session)
    counts = count_rows(ConnInfo(dbname="x"), TABLES, fmt=2)
    assert counts["s0.t0"] == 0 and counts["s10.t101"] == 1 and counts['"a.b"."c""d"'] == 50
    assert len(counts) == len(TABLES)
    counting = [s for s in session.statements if "count(*)" in s]
    assert len(counting) == 3


@pytest.mark.parametrize("on", [False, True])
def test_autovacuum_is_set_for_a_batch_of_tables_in_one_round_trip(on: bool) -> None:
    session = _Session()
    server._set_autovacuum(ConnInfo(dbname="x"), session, TABLES[:100], "pausing", on=on)  # type: ignore[arg-type]
    assert len(session.statements) == 1
    statements = session.statements[0].split("; ")
    assert len(statements) == 100
    setting = "RESET (autovacuum_enabled)" if on else "SET (autovacuum_enabled = false)"
    assert statements[1] == f'ALTER TABLE "s0"."t1" {setting}'

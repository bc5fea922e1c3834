"""The last line of a logical restore names the tables a ``--table`` restore brought back,
and only the first few of them: ``--table`` of a table partitioned 2,000 ways named every
partition in one line of some 30 KB (seen in session 25's hunt over database shapes)."""

from __future__ import annotations

import pytest

from respaldo.cli.restore_cmd import NAMED_TABLES, _print
from respaldo.operations.restore import RestoreResult
from respaldo.operations.restore_request import RestoreOutcome

pytestmark = pytest.mark.unit

BACKUP = "20261207T120000Z-1a2b3c4d"


def _said(capsys: pytest.CaptureFixture[str], tables: list[str]) -> str:
    result = RestoreResult(
        backup_id=BACKUP, target="rescate", bytes_restored=1 << 20, seconds=1.5, tables=tables
    )
    capsys.readouterr()
    _print(BACKUP, RestoreOutcome(logical=result))
    return capsys.readouterr().err


def test_a_few_tables_are_all_named(capsys: pytest.CaptureFixture[str]) -> None:
    said = _said(capsys, ["finanzas.facturas", "finanzas.pagos"])
    assert f"restored finanzas.facturas, finanzas.pagos of {BACKUP} into rescate: " in said


def test_thousands_of_partitions_are_counted_past_the_first_few(
    capsys: pytest.CaptureFixture[str],
) -> None:
    partitions = [f"ventas.lineas_p{i:04}" for i in range(2000)]
    said = _said(capsys, partitions)
    named = ", ".join(partitions[:NAMED_TABLES])
    assert f"restored {named} and {2000 - NAMED_TABLES} more tables of {BACKUP} into " in said
    assert partitions[NAMED_TABLES] not in said
    assert len(said) < 1000, said
    one_more = _said(capsys, partitions[: NAMED_TABLES + 1])
    assert f"and 1 more table of {BACKUP}" in one_more

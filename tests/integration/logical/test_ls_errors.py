"""``ls`` and ``restore --table/--schema`` refused: one line that says what is wrong and a
hint, and nothing created."""

from __future__ import annotations

import pytest
from sample.cluster import TempCluster

from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import databases, flip_byte

pytestmark = pytest.mark.integration


def _refused(respaldo: Respaldo, *args: str) -> tuple[str, str]:
    run = respaldo.run(*args)
    assert run.code == 1, str(run)
    assert len(run.err_lines) == 2, str(run)
    error, hint = run.err_lines
    assert error.startswith("respaldo: error: ") and hint.startswith("respaldo: hint: "), str(run)
    return error, hint


def test_a_failed_backup_is_said_to_have_failed_not_to_be_missing(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    # 'respaldo list' shows it (failed): "no backup X; 'respaldo list' shows the backups
    # that exist" sent the operator in a circle.
    assert respaldo.run("backup", "unreachable").code == 1
    (record,) = respaldo.records()
    before = databases(pg)
    for args in (
        ("ls", record.id),
        ("restore", record.id, "-t", new_dbname, "--table", "finanzas.facturas"),
    ):
        error, hint = _refused(respaldo, *args)
        assert f"backup {record.id} failed" in error, error
        assert "respaldo list" in hint
    assert databases(pg) == before


def test_a_damaged_manifest_and_an_empty_schema_name_are_refused_with_a_hint(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    backup_id = respaldo.backup()["id"]
    before = databases(pg)
    error, _ = _refused(
        respaldo, "restore", backup_id, "-t", new_dbname, "--schema", "", "--table", "core.clientes"
    )
    assert "--schema" in error, error
    flip_byte(respaldo.repo_dir / "manifests" / backup_id, 40)
    for args in (
        ("ls", backup_id),
        ("restore", backup_id, "-t", new_dbname, "--table", "core.clientes"),
    ):
        error, hint = _refused(respaldo, *args)
        assert "manifest is damaged" in error
        assert "another backup" in hint
    assert databases(pg) == before

"""What ``backup``, ``list`` and ``show`` tell scripts: ids, records with the API's fields."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from sample.cluster import TempCluster

from respaldo import __version__
from respaldo.catalog import API_FIELDS
from tests.integration.logical.conftest import SCHEMA_VERSION, Respaldo
from tests.integration.logical.support import table_checksums

pytestmark = pytest.mark.integration

# The original BackupManager contract, in its order; respaldo's additions follow it.
ORIGINAL_FIELDS = [
    "id",
    "timestamp",
    "backupType",
    "storagePath",
    "s3Url",
    "storageTier",
    "sizeBytes",
    "sizeCompressed",
    "checksum",
    "checksumAlgorithm",
    "isVerified",
    "verifiedAt",
    "status",
    "startedAt",
    "completedAt",
    "duration",
    "retentionDays",
    "expiresAt",
    "errorMessage",
    "databaseVersion",
    "schemaVersion",
]


def _time(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value)


def test_backup_json_is_the_api_record(respaldo: Respaldo) -> None:
    ran = time.monotonic()
    run = respaldo.run("backup", "erp", "--json")
    ran = time.monotonic() - ran
    assert run.code == 0, str(run)
    record = run.json()
    assert list(record)[: len(ORIGINAL_FIELDS)] == ORIGINAL_FIELDS
    assert list(record) == list(API_FIELDS)

    assert record["backupType"] == "full"
    assert record["status"] == "completed"
    assert record["storagePath"] == f"file://{respaldo.repo_dir}"
    assert record["s3Url"] is None
    assert record["sizeBytes"] > 500_000
    assert 0 < record["sizeCompressed"] < record["sizeBytes"]
    assert len(record["checksum"]) == 64
    assert record["checksumAlgorithm"] == "sha256"
    assert record["isVerified"] is False
    assert record["verifiedAt"] is None
    assert record["errorMessage"] is None
    assert record["databaseVersion"].startswith("15.")
    assert record["schemaVersion"] == SCHEMA_VERSION
    assert record["databaseName"] == "erp"
    assert record["repository"] == "local"
    assert record["manifest"] == f"manifests/{record['id']}"
    assert record["storedNewBytes"] > 0
    assert record["triggeredBy"] == "cli"
    assert record["pinned"] is False
    assert record["toolVersion"] == __version__

    started, completed = _time(record["startedAt"]), _time(record["completedAt"])
    assert _time(record["timestamp"]) <= started <= completed
    # Measured by the backup on the monotonic clock (not completed - started, which a
    # clock step would falsify): inside the command's own run, whatever the load.
    assert 0 < record["duration"] <= ran
    assert record["retentionDays"] == 7
    assert _time(record["expiresAt"]) == completed + timedelta(days=7)
    assert "backup of erp completed" in run.err
    assert "new in the repository" in run.err

    shown = respaldo.run("show", record["id"], "--json")
    assert shown.code == 0, str(shown)
    assert shown.json() == record
    plain = respaldo.run("show", record["id"])
    assert plain.code == 0, str(plain)
    fields = dict(line.split(None, 1) for line in plain.out.splitlines())
    assert list(fields) == list(API_FIELDS)
    assert fields["checksum"] == record["checksum"]
    assert fields["schemaVersion"] == SCHEMA_VERSION
    assert fields["verifiedAt"] == "-"


def test_the_last_line_of_a_plain_backup_is_its_id(respaldo: Respaldo) -> None:
    run = respaldo.run("backup", "erp")
    assert run.code == 0, str(run)
    assert run.out.splitlines() == [run.last_line]  # stdout: the id and nothing else
    (record,) = respaldo.records()
    assert record.id == run.last_line
    assert record.status == "completed"


def test_list_filters_by_database_type_and_status(respaldo: Respaldo) -> None:
    first = respaldo.backup()["id"]
    failed = respaldo.run("backup", "unreachable")
    assert failed.code == 1, str(failed)
    second = respaldo.backup()["id"]

    def ids(*options: str) -> list[str]:
        run = respaldo.run("list", "--json", *options)
        assert run.code == 0, str(run)
        records = run.json()
        assert all(list(r) == list(API_FIELDS) for r in records)
        return [r["id"] for r in records]

    everything = ids()
    assert len(everything) == 3
    assert everything[2] == first  # newest first
    assert everything.index(second) < everything.index(first)
    (failed_id,) = ids("--status", "failed")
    assert set(everything) == {first, second, failed_id}
    assert ids("--database", "erp") == [second, first]
    assert ids("--database", "unreachable") == [failed_id]
    assert ids("--database", "erp", "--status", "failed") == []
    assert ids("--status", "completed") == [second, first]
    assert ids("--type", "full") == everything
    assert ids("--type", "incremental") == []
    assert ids("--limit", "1") == everything[:1]

    table = respaldo.run("list")
    assert table.code == 0, str(table)
    for backup_id in everything:
        assert backup_id in table.out
    bad = respaldo.run("list", "--status", "lost")
    assert bad.code == 2
    assert "lost" in bad.err


def test_a_second_backup_stores_only_what_changed(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    first = respaldo.backup()
    source = respaldo.dbname
    pg.execute(
        "UPDATE core.clientes SET telefono = '600 000 000' WHERE id IN (3, 17);"
        "UPDATE finanzas.facturas SET estado = 'pagada' WHERE id = 5;"
        "DELETE FROM finanzas.pagos WHERE id = (SELECT max(id) FROM finanzas.pagos);"
        "INSERT INTO public.schema_migrations VALUES ('2025.04.01')",
        dbname=source,
    )
    second = respaldo.backup()
    assert second["checksum"] != first["checksum"]
    assert second["schemaVersion"] == "2025.04.01"
    assert second["sizeBytes"] == pytest.approx(first["sizeBytes"], rel=0.01)
    ratio = second["storedNewBytes"] / first["storedNewBytes"]
    assert ratio < 0.3, (first["storedNewBytes"], second["storedNewBytes"])

    # The second backup is built mostly of the first one's chunks: it must restore whole.
    respaldo.restore(second["id"], new_dbname)
    assert table_checksums(pg, new_dbname) == table_checksums(pg, source)

"""The repository is the truth: the catalog is rebuilt from it, and ``verify`` checks it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sample.cluster import TempCluster

from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import flip_byte

pytestmark = pytest.mark.integration

# What a manifest knows about its backup, so what a rebuilt record must have again.
REBUILT_FIELDS = [
    "id",
    "backupType",
    "storagePath",
    "sizeBytes",
    "sizeCompressed",
    "checksum",
    "checksumAlgorithm",
    "status",
    "startedAt",
    "completedAt",
    "retentionDays",
    "expiresAt",
    "errorMessage",
    "databaseVersion",
    "schemaVersion",
    "databaseName",
    "repository",
    "manifest",
    "toolVersion",
]


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _listed(respaldo: Respaldo) -> dict[str, dict[str, Any]]:
    run = respaldo.run("list", "--json")
    assert run.code == 0, str(run)
    return {r["id"]: r for r in run.json()}


def test_catalog_rebuild_brings_the_records_back(respaldo: Respaldo, pg: TempCluster) -> None:
    respaldo.backup()
    pg.execute("UPDATE core.clientes SET activo = false WHERE id = 2", dbname=respaldo.dbname)
    respaldo.backup()
    assert respaldo.run("backup", "unreachable").code == 1  # a failed one: no manifest
    before = _listed(respaldo)
    completed = {i: r for i, r in before.items() if r["status"] == "completed"}
    assert len(before) == 3
    assert len(completed) == 2

    respaldo.catalog_file.unlink()
    # No new, empty catalog that lists nothing: the lost one is missed...
    lost = respaldo.run("list", "--json")
    assert (lost.code, lost.out) == (1, "")
    assert f"no catalog at {respaldo.catalog_file}" in lost.err
    assert not respaldo.catalog_file.exists()
    # ...and a new empty one says the repository holds backups it does not list.
    assert respaldo.run("init").code == 0
    empty = respaldo.run("list", "--json")
    assert (empty.code, empty.json()) == (0, [])
    assert "is empty, but repository local holds backups" in empty.err
    assert "respaldo catalog rebuild" in empty.err
    run = respaldo.run("catalog", "rebuild")
    assert run.code == 0, str(run)
    assert "2 records created, 0 updated" in run.err

    after = _listed(respaldo)
    assert set(after) == set(completed)
    for backup_id, record in completed.items():
        rebuilt = after[backup_id]
        assert rebuilt["status"] == "completed"
        assert {k: rebuilt[k] for k in REBUILT_FIELDS} == {k: record[k] for k in REBUILT_FIELDS}
        # The backup measured its duration on the monotonic clock; the manifest keeps its
        # start and end times, so a rebuilt record's duration is their difference.
        span = _time(rebuilt["completedAt"]) - _time(rebuilt["startedAt"])
        assert rebuilt["duration"] == pytest.approx(span.total_seconds(), abs=1e-6)
        assert record["duration"] > 0
        # The record's creation time comes back from the id, to the second.
        assert record["timestamp"].startswith(rebuilt["timestamp"].removesuffix("Z"))

    again = respaldo.run("catalog", "rebuild")
    assert again.code == 0, str(again)
    assert "0 records created, 2 updated" in again.err
    assert _listed(respaldo) == after


def test_verify_all_passes_then_finds_a_flipped_byte(respaldo: Respaldo) -> None:
    first = respaldo.backup()["id"]
    second = respaldo.backup()["id"]
    run = respaldo.run("verify", "--all")
    assert run.code == 0, str(run)
    assert "ok: 2 backups" in run.err
    assert respaldo.run("verify", first, second).code == 0

    pack = respaldo.damage_dump(first)
    run = respaldo.run("verify", "--all")
    assert run.code == 3, str(run)
    problems = [line for line in run.err_lines if line.startswith("problem:")]
    assert problems, run.err
    assert all(pack in line for line in problems), run.err
    assert any(f"backup {first}" in line for line in problems), run.err
    assert "problems" in run.err_lines[-1]
    # The damaged chunk is shared: both backups are hurt, and each says so.
    for backup_id in (first, second):
        single = respaldo.run("verify", backup_id)
        assert single.code == 3, str(single)
        assert pack in single.err


def test_verify_notices_a_damaged_pack_header(respaldo: Respaldo) -> None:
    respaldo.backup()
    pack = respaldo.pack_files()[0]
    flip_byte(pack, pack.stat().st_size - 10)  # inside the sealed header at the end
    run = respaldo.run("verify", "--all")
    assert run.code == 3, str(run)
    assert pack.name in run.err


def test_init_is_idempotent(respaldo: Respaldo) -> None:
    backup_id = respaldo.backup()["id"]
    run = respaldo.run("init")
    assert run.code == 0, str(run)
    assert f"repository local (file://{respaldo.repo_dir}): exists, opened" in run.err
    assert respaldo.repository().backup_ids() == [backup_id]

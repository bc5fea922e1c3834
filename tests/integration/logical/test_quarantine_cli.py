"""Damaged chunks, end to end: verify quarantines them, the next backup stores them anew,
``repair`` takes them from a mirror or names the backups that lost data."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sample.cluster import TempCluster

from respaldo.domain import BackupStatus
from respaldo.repository.packs import pack_name
from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import flip_byte, table_checksums

pytestmark = pytest.mark.integration


def _add_mirror(respaldo: Respaldo) -> Path:
    """Configure a second repository and create it as a mirror of the first."""
    offsite = respaldo.tmp / "offsite"
    text = respaldo.config.read_text()
    mirror = f'\n[[repositories]]\nname = "offsite"\nurl = "file://{offsite}"\n'
    # Before the databases: a [[repositories]] table must not follow [[databases]] keys.
    at = text.index("[[databases]]")
    respaldo.config.write_text(text[:at] + mirror + "\n" + text[at:])
    run = respaldo.run("init")
    assert run.code == 0, str(run)
    return offsite


def test_the_backup_after_verify_found_damage_restores_exactly(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    first = respaldo.backup()["id"]
    pack = respaldo.damage_dump(first)
    verified = respaldo.run("verify", first)
    assert verified.code == 3, str(verified)
    assert pack in verified.err

    second = respaldo.run("backup", "erp")
    assert second.code == 0, str(second)
    respaldo.restore(second.last_line, new_dbname)
    assert table_checksums(pg, new_dbname) == table_checksums(pg, respaldo.dbname)
    assert "quarantined 1 damaged chunk copy: no backup will use it" in verified.err, verified.err
    assert "stored 1 chunk anew whose earlier copy is quarantined" in second.err
    # The fresh copy serves the first backup too: the repository is whole again.
    run = respaldo.run("verify", "--all")
    assert run.code == 0, str(run)


def test_repair_takes_the_chunk_from_a_mirror(respaldo: Respaldo) -> None:
    _add_mirror(respaldo)
    backup_id = respaldo.backup()["id"]  # copied to the mirror at its end
    respaldo.damage_dump(backup_id)
    assert respaldo.run("verify", "--all").code == 3

    dry = respaldo.run("repair", "--dry-run", "--json")
    assert dry.code == 0, str(dry)
    assert (dry.json()["repaired"], dry.json()["packsWritten"]) == (1, 0)
    run = respaldo.run("repair")
    assert run.code == 0, str(run)
    assert "rewrote 1" in run.err and "offsite" in run.err, run.err
    # The primary alone (verify reads no mirror) is whole again.
    run = respaldo.run("verify", "--all")
    assert run.code == 0, str(run)


def test_repair_without_a_good_copy_names_the_backups_that_lose_data(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    first = respaldo.backup()["id"]
    respaldo.damage_dump(first)
    assert respaldo.run("verify", first).code == 3

    run = respaldo.run("repair", "--json")
    assert run.code == 3, str(run)
    result = run.json()
    assert len(result["lostChunks"]) == 1
    [lost] = result["lostBackups"]
    assert (lost["backupId"], lost["database"], lost["streams"]) == (first, "erp", ["dump"])
    assert lost["chunksLost"] == 1 and lost["markedInCatalog"] is True
    assert lost["completedAt"]

    listed = {r["id"]: r for r in respaldo.run("list", "--json").json()}
    assert listed[first]["isVerified"] is False and listed[first]["verifiedAt"]
    assert listed[first]["errorMessage"].startswith("damaged: 1 chunk has no good copy")
    assert "failed" in respaldo.run("list").out
    assert "damaged: 1 chunk has no good copy" in respaldo.run("show", first).out

    refused = respaldo.run("restore", first, "--target-database", new_dbname)
    assert refused.code == 1, str(refused)
    assert "the backup is damaged" in refused.err and "respaldo repair" in refused.err
    assert new_dbname not in {r[0] for r in pg.query("SELECT datname FROM pg_database")}

    # A new backup stores the chunk anew and restores exactly.
    second = respaldo.backup()["id"]
    respaldo.restore(second, new_dbname)
    assert table_checksums(pg, new_dbname) == table_checksums(pg, respaldo.dbname)


def test_a_damaged_quarantine_record_is_found_again_and_blocks_gc_and_dedup(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    first = respaldo.backup()["id"]
    pack = respaldo.damage_dump(first)
    assert respaldo.run("verify", first).code == 3
    [record] = sorted((respaldo.repo_dir / "quarantine").iterdir())
    second = respaldo.backup()["id"]  # holds a fresh copy of the damaged chunk
    flip_byte(record, record.stat().st_size // 2)

    # The damaged copy is back in the index: verify --all reads every copy and finds it.
    verified = respaldo.run("verify", "--all")
    assert verified.code == 3, str(verified)
    assert f"quarantine/{record.name}" in verified.err and pack in verified.err, verified.err
    assert "quarantined 1 damaged chunk copy: no backup will use it" in verified.err, verified.err

    refused = respaldo.run("prune")
    assert refused.code != 0, str(refused)
    assert f"quarantine/{record.name}" in refused.err and "respaldo repair" in refused.err
    assert {p.name for p in respaldo.pack_files()} >= {Path(pack).name}

    # No dedup against any pack the unreadable record may name: everything is stored anew.
    third = respaldo.run("backup", "erp")
    assert third.code == 0, str(third)
    counts = re.search(r"\((\d+) of (\d+) chunks new\)", third.err)
    assert counts is not None and counts[1] == counts[2], third.err
    respaldo.restore(third.last_line, new_dbname)
    assert table_checksums(pg, new_dbname) == table_checksums(pg, respaldo.dbname)
    del second

    # repair replaces the unreadable record by what the fresh verify found.
    repaired = respaldo.run("repair")
    assert "unreadable quarantine record" in repaired.err, str(repaired)
    assert not (respaldo.repo_dir / "quarantine" / record.name).exists()
    assert respaldo.run("verify", "--all").code == 0
    assert respaldo.run("prune").code == 0


def test_with_a_damaged_index_file_unindexed_packs_point_at_index_rebuild(
    respaldo: Respaldo,
) -> None:
    respaldo.backup()
    [index_file] = sorted((respaldo.repo_dir / "index").iterdir())
    flip_byte(index_file, index_file.stat().st_size // 2)
    run = respaldo.run("verify", "--all")
    assert run.code == 3, str(run)
    assert "left by interrupted backups" not in run.err, run.err
    assert "not covered by a readable index" in run.err, run.err
    assert "respaldo index rebuild" in run.err, run.err


def test_a_backup_over_a_deleted_pack_fails_and_the_next_one_stores_it_anew(
    respaldo: Respaldo,
) -> None:
    """The packs a backup deduplicated against are checked before its manifest: one
    deleted by hand fails the backup (not 'completed', so retention never counts it as
    good), its copies are quarantined, the earlier backup that uses them is marked
    damaged (it cannot restore either: no mirror here), and the backup run again stores
    them anew."""
    first = respaldo.backup()["id"]
    lost = respaldo.repo_dir / pack_name(respaldo.middle_of_dump(first).pack_id)
    lost.unlink()

    run = respaldo.run("backup", "erp")
    assert run.code == 1, str(run)
    assert f"{lost.name} (missing)" in run.err and "run it again" in run.err, run.err
    failed = respaldo.records()[0]
    assert failed.status is BackupStatus.FAILED, failed
    assert "it references is missing or truncated" in (failed.error_message or "")
    assert f"earlier backup {first}, which uses them" in run.err, run.err
    marked = next(r for r in respaldo.records() if r.id == first)
    assert marked.verified_at is not None and not marked.is_verified, marked
    assert "lost with packs found missing or truncated" in (marked.error_message or "")

    again = respaldo.run("backup", "erp")
    assert again.code == 0, str(again)
    assert re.search(r"stored \d+ chunks? anew whose earlier cop", again.err), again.err

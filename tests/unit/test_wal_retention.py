"""WAL retention follows the oldest physical backup kept in the repository."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from respaldo.operations.wal_retention import prune_wal
from respaldo.repository import BackupWriter, ChunkerParams, KdfParams, Repository
from respaldo.repository.wal import put_wal, wal_objects
from respaldo.storage.memory import MemoryStorage

pytestmark = pytest.mark.unit
SYSTEM = "7312345678901234567"
SEGMENT = 16 * 1024 * 1024


def _repo() -> Repository:
    return Repository.init(
        MemoryStorage("walret"),
        "pw",
        chunker=ChunkerParams(256, 1024, 4096),
        kdf=KdfParams(1, 1024, 1),
        pack_size=16 * 1024,
    )


def _physical(repo: Repository, backup_id: str, start_lsn: str, timeline: int = 1) -> None:
    with BackupWriter(repo, backup_id) as writer:
        writer.write_stream("base", io.BytesIO(b"base backup " * 100))
        writer.commit(
            kind="incremental",
            source="erp",
            started_at=datetime.now(UTC),
            meta={
                "system_identifier": SYSTEM,
                "timeline": timeline,
                "start_lsn": start_lsn,
                "wal_segment_size": SEGMENT,
            },
        )


def _segments(repo: Repository) -> list[str]:
    return [f"{tl}/{f}" for _, tl, f, _ in wal_objects(repo)]


def test_wal_before_the_oldest_physical_backup_goes() -> None:
    repo = _repo()
    for n in range(1, 9):
        put_wal(repo, SYSTEM, "00000001", f"00000001000000000000000{n}", b"w" * 100)
    put_wal(repo, SYSTEM, "00000002", "00000002000000000000000A", b"w" * 100)
    put_wal(repo, SYSTEM, "00000002", "00000002.history", b"1\t0/5000000\tno reason\n")
    put_wal(repo, "999", "00000001", "000000010000000000000001", b"other cluster")
    _physical(repo, "b-old", "0/4000028")  # needs segment 4 onward
    _physical(repo, "b-new", "0/7000028")

    preview = prune_wal(repo, dry_run=True)
    assert preview.files_deleted == 3 and len(_segments(repo)) == 11
    assert preview.kept_from == {SYSTEM: "000000010000000000000004"}

    report = prune_wal(repo)
    assert report.files_deleted == 3 and report.bytes_deleted > 0
    assert report.clusters_without_backup == ["999"]
    left = _segments(repo)
    assert "00000001/000000010000000000000003" not in left
    assert "00000001/000000010000000000000004" in left
    # Later timelines, history files and clusters without a backup are untouched.
    assert "00000002/00000002000000000000000A" in left
    assert "00000002/00000002.history" in left
    assert [s for s, *_ in wal_objects(repo)].count("999") == 1


def test_pruning_the_oldest_backup_moves_the_horizon() -> None:
    repo = _repo()
    for n in range(1, 9):
        put_wal(repo, SYSTEM, "00000001", f"00000001000000000000000{n}", b"w" * 100)
    _physical(repo, "b-old", "0/2000028")
    _physical(repo, "b-new", "0/6000028")
    assert prune_wal(repo, dry_run=True, assume_deleted={"b-old"}).files_deleted == 5
    assert prune_wal(repo).files_deleted == 1  # b-old still there: only segment 1 goes


def test_no_physical_backup_keeps_all_wal() -> None:
    repo = _repo()
    put_wal(repo, SYSTEM, "00000001", "000000010000000000000001", b"w")
    report = prune_wal(repo)
    assert report.files_deleted == 0 and report.clusters_without_backup == [SYSTEM]

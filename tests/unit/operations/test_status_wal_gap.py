"""Finding a hole in the archived WAL between the newest base backup and the last segment
the server archived (respaldo.operations.status_wal.find_gap), from names alone."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import pytest

from respaldo.operations import status_wal
from respaldo.operations.status_wal import _backup_start, find_gap
from respaldo.repository.wal import ClusterRecord
from respaldo.storage.memory import MemoryStorage

pytestmark = pytest.mark.unit

SYSTEM = "7716158196002574082"
MIB16 = 16 * 1024 * 1024
AT = datetime(2026, 12, 6, 23, 0, tzinfo=UTC)


def _repo(*names: str) -> Any:
    storage = MemoryStorage()
    for name in names:
        storage.put(f"wal/{SYSTEM}/{name[:8]}/{name}", b"x")
    return SimpleNamespace(storage=storage)


def seg(number: int, timeline: int = 1) -> str:
    return f"{timeline:08X}{number // 256:08X}{number % 256:08X}"


def test_a_hole_after_the_newest_backup_history_file_is_found() -> None:
    repo = _repo(seg(2), f"{seg(2)}.00000028.backup", seg(4), seg(5))
    assert find_gap(repo, SYSTEM, seg(5), MIB16) == (seg(3), seg(4))


def test_a_hole_before_the_newest_backup_does_not_count() -> None:
    repo = _repo(seg(1), seg(3), f"{seg(3)}.00000028.backup", seg(4))
    assert find_gap(repo, SYSTEM, seg(4), MIB16) is None


def test_the_newest_backups_own_start_bounds_it_before_its_history_file_is_archived() -> None:
    # The backup ended in segment 6; the server archives its history file after that.
    repo = _repo(seg(2), f"{seg(2)}.00000028.backup", seg(4), seg(5))
    assert find_gap(repo, SYSTEM, seg(5), MIB16, ("00000001", 6)) is None
    assert find_gap(repo, SYSTEM, seg(5), MIB16, ("00000001", 4)) is None
    assert find_gap(repo, SYSTEM, seg(5), MIB16, ("00000001", 2)) == (seg(3), seg(4))


def test_holes_across_log_ids_are_found() -> None:
    repo = _repo(seg(250), f"{seg(250)}.00000028.backup", *map(seg, range(251, 255)), seg(257))
    assert find_gap(repo, SYSTEM, seg(257), MIB16) == (seg(255), seg(257))


def test_without_a_backup_history_file_or_a_segment_nothing_is_claimed() -> None:
    assert find_gap(_repo(seg(1), seg(3)), SYSTEM, seg(3), MIB16) is None
    repo = _repo(seg(1), f"{seg(1)}.00000028.backup", seg(3))
    assert find_gap(repo, SYSTEM, f"{seg(1)}.00000028.backup", MIB16) is None
    assert find_gap(repo, SYSTEM, "00000002.history", MIB16) is None


def test_another_timelines_backup_is_not_a_start() -> None:
    repo = _repo(seg(1), f"{seg(1)}.00000028.backup", seg(3, 2), seg(5, 2))
    assert find_gap(repo, SYSTEM, seg(5, 2), MIB16) is None


def test_a_newer_base_backup_respaldo_cannot_restore_does_not_hide_the_hole() -> None:
    # Respaldo's newest good backup began in segment 2; segment 3 never reached the
    # repository (archive_command 'true' for a while). A standby built later with
    # pg_basebackup (or a backup of respaldo's that failed) archived a history file at
    # segment 6: recovery from respaldo's backup still stops at the hole.
    repo = _repo(seg(2), f"{seg(2)}.00000028.backup", seg(4), seg(5), f"{seg(6)}.00000028.backup")
    repo.storage.put(f"wal/{SYSTEM}/00000001/{seg(6)}", b"x")
    repo.storage.put(f"wal/{SYSTEM}/00000001/{seg(7)}", b"x")
    assert find_gap(repo, SYSTEM, seg(7), MIB16, ("00000001", 2)) == (seg(3), seg(4))
    # Its history file is the last file archived (a quiet database): the same.
    last = f"{seg(6)}.00000028.backup"
    assert find_gap(repo, SYSTEM, last, MIB16, ("00000001", 2)) == (seg(3), seg(4))
    # Across log ids, down to the backup's own.
    repo = _repo(seg(250), *map(seg, range(252, 258)), f"{seg(256)}.00000028.backup")
    assert find_gap(repo, SYSTEM, seg(257), MIB16, ("00000001", 250)) == (seg(251), seg(252))


def test_the_newest_backup_of_another_cluster_is_no_start() -> None:
    # The database moved to a new server, not backed up physically there yet: the old
    # cluster's backup LSNs say nothing of the new one's archive.
    meta = {"system_identifier": SYSTEM, "timeline": 1, "start_lsn": "0/2000028"}
    assert _backup_start(meta, MIB16, SYSTEM) == ("00000001", 2)
    assert _backup_start(meta, MIB16, "7716158196002574083") is None


def test_the_segments_a_backup_holds_itself_are_no_hole() -> None:
    # pg_basebackup fetched segments 2 to 4 into the backup: recovery reads them from it,
    # and one of them missing from the archive stops nothing (the status said red).
    meta = {
        "system_identifier": SYSTEM,
        "timeline": 1,
        "start_lsn": "0/2000028",
        "stop_lsn": "0/4000100",
    }
    after = _backup_start(meta, MIB16, SYSTEM)
    assert after == ("00000001", 4)
    repo = _repo(seg(2), seg(4), seg(5), seg(6))
    assert find_gap(repo, SYSTEM, seg(6), MIB16, after) is None
    # A hole after its stop segment is one.
    repo = _repo(seg(2), seg(3), seg(4), seg(6))
    assert find_gap(repo, SYSTEM, seg(6), MIB16, after) == (seg(5), seg(6))


def _read_primary_wal(
    monkeypatch: pytest.MonkeyPatch,
    record: ClusterRecord,
    backup_timeline: int = 1,
    last: str = seg(5),
    timelines: dict[str, int] | None = None,
    history: int | None = None,
) -> tuple[status_wal.PrimaryWal, list[str], list[str]]:
    """read_primary_wal of database erp, whose last file ``last`` is stored and whose
    newest backup b1 (of ``backup_timeline``) started at 0/2000028; with the repository
    reads it made: the records', the manifests'. ``history``: a timeline whose history
    file the repository holds too; ``timelines``: the servers' own, as read."""
    storage = MemoryStorage()
    storage.put(f"wal/{SYSTEM}/{last[:8]}/{last}", b"x")
    if history is not None:
        storage.put(f"wal/{SYSTEM}/{history:08X}/{history:08X}.history", b"x")
    meta = {"system_identifier": SYSTEM, "timeline": backup_timeline, "start_lsn": "0/2000028"}
    loads: list[str] = []
    reads: list[str] = []

    def load_manifest(backup_id: str) -> Any:
        loads.append(backup_id)
        return SimpleNamespace(meta=meta)

    def read_cluster(_repo: Any, database: str) -> ClusterRecord:
        reads.append(database)
        return record

    repo = SimpleNamespace(storage=storage, load_manifest=load_manifest, close=lambda: None)
    monkeypatch.setattr(status_wal, "open_wal_repository", lambda _settings: repo)
    monkeypatch.setattr(status_wal, "read_cluster", read_cluster)
    found = status_wal.read_primary_wal(
        cast(Any, None),
        {"erp": last},
        {"erp": MIB16},
        {"erp": "b1"},
        {"erp": SYSTEM},
        timelines,
    )
    return found, reads, loads


def test_the_status_reads_each_record_and_manifest_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # The server's cluster, its last file stored, its newest backup, a switch to minimal
    # recorded: four questions of one record and one manifest, each a repository read.
    record = ClusterRecord("erp", SYSTEM, AT, "wal-push", minimal_wal="0/3000028")
    found, reads, loads = _read_primary_wal(monkeypatch, record)
    assert found.stored == {"erp": True}
    assert found.minimal == {"erp": ("0/3000028", "b1")}
    assert (reads, loads) == (["erp"], ["b1"])


def test_a_switch_on_a_timeline_older_than_the_newest_backups_is_not_red(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Timeline 1 switched to minimal at 0/3000028; a restore to a target before it,
    # promoted, made timeline 2, whose backup b1 started at 0/2000028: below the switch's
    # LSN, but recovery of it never reads timeline 1 there.
    record = ClusterRecord(
        "erp", SYSTEM, AT, "wal-push", minimal_wal="0/3000028", minimal_timeline=1
    )
    found, _, _ = _read_primary_wal(monkeypatch, record, backup_timeline=2, last=seg(5, 2))
    assert found.minimal == {}
    # Of the backup's own timeline, or a later one: red.
    found, _, _ = _read_primary_wal(monkeypatch, record, backup_timeline=1)
    assert found.minimal == {"erp": ("0/3000028", "b1")}
    later = ClusterRecord(
        "erp", SYSTEM, AT, "wal-push", minimal_wal="0/3000028", minimal_timeline=2
    )
    found, _, _ = _read_primary_wal(monkeypatch, later, backup_timeline=1, last=seg(5, 2))
    assert found.minimal == {"erp": ("0/3000028", "b1")}


def test_a_promoted_servers_last_file_of_its_old_timeline_is_not_another_servers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A standby promoted to timeline 2 archives, at a checkpoint after its promotion, the
    # old timeline's segments it never marked done: one of them was its last archived
    # file, and the status took the server for one still on timeline 1 beside another
    # server's timeline 2 (red: "remove the files of timeline 2", the new primary's own).
    record = ClusterRecord("erp", SYSTEM, AT, "wal-push")
    across: list[object] = []

    def gap_across_timelines(_repo: Any, backup: Any) -> tuple[str, str]:
        across.append(backup.meta["timeline"])
        return seg(4), seg(6, 2)

    monkeypatch.setattr(status_wal, "gap_across_timelines", gap_across_timelines)
    found, _, _ = _read_primary_wal(
        monkeypatch, record, last=seg(3), history=2, timelines={"erp": 2}
    )
    assert found.strays == {}
    # Its backup of timeline 1 recovers across the switch: the hole is looked for there.
    assert (found.gaps, across) == ({"erp": (seg(4), seg(6, 2))}, [1])
    # A server that says it is on timeline 1 (or says nothing) beside timeline 2's
    # history file: another server's, as before.
    for said in ({"erp": 1}, None):
        found, _, _ = _read_primary_wal(monkeypatch, record, last=seg(3), history=2, timelines=said)
        assert found.strays == {"erp": (1, 2)}

"""The cluster record (``clusters/<database>``): the switch to ``wal_level = minimal``
kept beside the system identifier, and the record without it as older versions wrote it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from respaldo.operations import wal as wal_operations
from respaldo.operations.wal_coverage import WalCoverage, minimal_switch
from respaldo.postgres.wal import WalFile, parse_lsn, parse_wal_name
from respaldo.repository import Manifest, Repository
from respaldo.repository.wal import ClusterRecord, read_cluster, write_cluster

pytestmark = pytest.mark.unit

AT = datetime(2026, 12, 6, 22, 30, tzinfo=UTC)


def test_a_record_without_a_switch_is_as_older_versions_wrote_it() -> None:
    record = ClusterRecord("erp", "7716323556378723743", AT, "wal-push")
    assert json.loads(record.to_bytes()) == {
        "version": 1,
        "database": "erp",
        "system_identifier": "7716323556378723743",
        "recorded_at": AT.isoformat(),
        "recorded_by": "wal-push",
    }
    assert ClusterRecord.from_bytes(record.to_bytes()) == record


def test_the_switch_to_minimal_is_kept_through_the_repository(repo: Repository) -> None:
    record = ClusterRecord("erp", "7716323556378723743", AT, "wal-push", minimal_wal="0/40000A0")
    write_cluster(repo, record)
    assert read_cluster(repo, "erp") == record


# --- the switch's timeline: a timeline that branched off before it never replays it -----

SYSTEM = "7716323556378723743"
# Timeline 1 switched to minimal at 0/9000028; a point-in-time restore of an older backup
# to 0/7000000, promoted, made timeline 2, which the server goes on with.
SWITCH = "0/9000028"
FORK = parse_lsn("0/7000000")


def _backup(timeline: int, stop: str) -> Manifest:
    at = datetime(2026, 12, 6, 23, 0, tzinfo=UTC)
    return Manifest(
        "b", "full", "erp", at, at, "0", [],
        meta={"system_identifier": SYSTEM, "timeline": timeline, "stop_lsn": stop},
    )  # fmt: skip


def _coverage(*path: tuple[int, int]) -> WalCoverage:
    return WalCoverage(end=0, missing=None, resumes=None, path=path)


def test_a_switch_on_a_timeline_recovery_does_not_follow_there_is_none(repo: Repository) -> None:
    write_cluster(
        repo, ClusterRecord("erp", SYSTEM, AT, "wal-push", minimal_wal=SWITCH, minimal_timeline=1)
    )
    switch = parse_lsn(SWITCH)
    # A backup of timeline 2 (after the fork, before the LSN of timeline 1's switch):
    # its recovery never reads timeline 1 there.
    on_two = _backup(2, "0/7800000")
    assert minimal_switch(repo, on_two, _coverage((2, 0))) is None
    assert minimal_switch(repo, on_two) is None  # without the path: an older timeline
    # A backup of timeline 1 from before the fork: recovery leaves timeline 1 at the fork.
    before = _backup(1, "0/5000000")
    assert minimal_switch(repo, before, _coverage((1, 0), (2, FORK))) is None
    # ... but where timeline 1 goes on past the switch, recovery reaches it.
    assert minimal_switch(repo, before, _coverage((1, 0))) == switch
    assert minimal_switch(repo, before, _coverage((1, 0), (2, switch + 0x100))) == switch
    assert minimal_switch(repo, before) == switch


def test_a_switch_recorded_without_its_timeline_is_on_every_path(repo: Repository) -> None:
    write_cluster(repo, ClusterRecord("erp", SYSTEM, AT, "wal-push", minimal_wal=SWITCH))
    assert minimal_switch(repo, _backup(2, "0/7800000"), _coverage((2, 0))) == parse_lsn(SWITCH)


@pytest.mark.parametrize(
    ("timeline", "lsn", "kept"),
    [
        (2, "0/8000028", (2, "0/8000028")),  # the newer timeline's, though at a lower LSN
        (1, "0/A000028", (1, "0/A000028")),  # a later one of the same timeline
        (1, "0/8000028", (1, SWITCH)),  # an earlier one of it, pushed late
    ],
)
def test_wal_push_keeps_the_newest_timelines_switch(
    repo: Repository,
    monkeypatch: pytest.MonkeyPatch,
    timeline: int,
    lsn: str,
    kept: tuple[int, str],
) -> None:
    write_cluster(
        repo, ClusterRecord("erp", SYSTEM, AT, "wal-push", minimal_wal=SWITCH, minimal_timeline=1)
    )
    monkeypatch.setattr(wal_operations, "minimal_wal_level", lambda data: parse_lsn(lsn))
    name = parse_wal_name(f"{timeline:08X}0000000000000008")
    wal_operations._note_minimal_wal_level(repo, "erp", SYSTEM, WalFile(name, b"", int(SYSTEM)))
    record = read_cluster(repo, "erp")
    assert record is not None
    assert (record.minimal_timeline, record.minimal_wal) == kept

"""WAL names, LSNs and segment headers (pure parsing, no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from respaldo.cli.entry import command_of
from respaldo.errors import InvalidWalFile
from respaldo.postgres.wal import (
    WalKind,
    format_lsn,
    inherited_segment_problem,
    parse_lsn,
    parse_timeline_history,
    parse_wal_name,
    read_wal_file,
    segment_name,
    segment_range,
    segment_start,
)
from tests.unit.postgres.support import SEGMENT_SIZE, make_segment

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("name", "kind", "timeline"),
    [
        ("000000010000000A000000FF", WalKind.SEGMENT, "00000001"),
        ("000000020000000A000000FF.partial", WalKind.PARTIAL, "00000002"),
        ("00000003.history", WalKind.HISTORY, "00000003"),
        ("000000010000000000000002.00000028.backup", WalKind.BACKUP, "00000001"),
    ],
)
def test_wal_names(name: str, kind: WalKind, timeline: str) -> None:
    parsed = parse_wal_name(name)
    assert (parsed.kind, parsed.timeline) == (kind, timeline)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "00000001000000000000000",
        "000000010000000000000001x",
        "../00000001.history",
        "0000000100000000000000g1",
        "archive_status",
        "000000010000000000000001.ready",
    ],
)
def test_other_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidWalFile):
        parse_wal_name(name)


def test_lsns_and_segment_names() -> None:
    assert parse_lsn("16/B374D848") == 0x16B374D848
    assert format_lsn(0x16B374D848) == "16/B374D848"
    size = 16 * 1024 * 1024
    assert segment_name(1, parse_lsn("0/2000028"), size) == "000000010000000000000002"
    assert segment_name(3, parse_lsn("1/FF000000"), size) == "0000000300000001000000FF"
    assert segment_start("0000000300000001000000FF", size) == parse_lsn("1/FF000000")
    assert segment_range(1, parse_lsn("0/2FFFFF0"), parse_lsn("0/3000100"), size) == [
        "000000010000000000000002",
        "000000010000000000000003",
    ]
    with pytest.raises(ValueError):
        parse_lsn("0/xyz")


def test_segments_are_checked_against_their_names(tmp_path: Path) -> None:
    good = tmp_path / "000000010000000000000005"
    good.write_bytes(make_segment(42, 1, 5))
    assert read_wal_file(good).system_identifier == 42
    wrong_place = tmp_path / "000000010000000000000006"
    wrong_place.write_bytes(make_segment(42, 1, 5))
    with pytest.raises(InvalidWalFile, match="its name says"):
        read_wal_file(wrong_place)
    short = tmp_path / "000000010000000000000007"
    short.write_bytes(make_segment(42, 1, 7)[: SEGMENT_SIZE // 2])
    with pytest.raises(InvalidWalFile, match="its header says"):
        read_wal_file(short)


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["wal-push", "p"], "wal-push"),
        (["--config", "c.toml", "wal-fetch", "f", "p"], "wal-fetch"),
        (["-c", "c.toml", "-v", "wal-push", "p"], "wal-push"),
        (["--config=c.toml", "backup", "erp"], "backup"),
        (["--verbose"], None),
    ],
)
def test_the_console_script_spots_wal_commands(argv: list[str], command: str | None) -> None:
    assert command_of(argv) == command


def test_a_segment_beginning_with_an_earlier_timeline_is_read_with_that_timeline(
    tmp_path: Path,
) -> None:
    # At a promotion PostgreSQL starts the new timeline's segment as a copy of the old
    # timeline's up to the switch point: its first page header carries the old timeline.
    # Whether this one is that segment only the history file tells: the header's timeline
    # is reported for wal-push to check (tests/unit/operations/test_wal_push_timeline.py).
    switched = tmp_path / "000000020000000000000003"
    switched.write_bytes(make_segment(42, 1, 3))
    wal = read_wal_file(switched)
    assert (wal.system_identifier, wal.header_timeline) == (42, 1)
    # A page of a later timeline than the name's cannot be in it.
    ahead = tmp_path / "000000020000000000000004"
    ahead.write_bytes(make_segment(42, 3, 4))
    with pytest.raises(InvalidWalFile, match="its header is of timeline 3"):
        read_wal_file(ahead)


MIB = 1024 * 1024
# Timeline 3 (1 MiB segments): timeline 1 until 0/3002A0 in segment 3, then 2 until
# 0/500100 in segment 5.
HISTORY = "1\t0/3002A0\tno recovery target specified\n\n# comment\n2\t0/500100\tpromoted\n"


def test_a_timeline_history_file_is_read_oldest_first() -> None:
    assert parse_timeline_history(HISTORY) == [(1, 0x3002A0), (2, 0x500100)]
    with pytest.raises(InvalidWalFile, match="not a timeline history line"):
        parse_timeline_history("1 nowhere\n")


@pytest.mark.parametrize(
    ("name", "header_timeline", "problem"),
    [
        ("000000030000000000000005", 2, None),  # the switch segment, its parent's pages
        ("000000030000000000000005", 1, "the WAL at 0/500000 is of timeline 2"),
        ("000000030000000000000004", 2, "does not hold the switch point"),
        ("000000030000000000000006", 2, "does not hold the switch point"),
        ("000000030000000000000003", 1, "does not hold the switch point"),
    ],
)
def test_only_the_switch_segment_may_begin_with_its_parents_pages(
    name: str, header_timeline: int, problem: str | None
) -> None:
    history = parse_timeline_history(HISTORY)
    found = inherited_segment_problem(name, header_timeline, MIB, history)
    if problem is None:
        assert found is None
    else:
        assert problem in str(found)


def test_a_switch_at_a_segment_start_leaves_no_segment_with_its_parents_pages() -> None:
    history = [(1, 0x300000)]
    assert "does not hold" in str(
        inherited_segment_problem("000000020000000000000003", 1, MIB, history)
    )

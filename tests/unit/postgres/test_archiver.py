"""The verdict on a server's archiving, from its statistics and its waiting segments."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from respaldo.postgres.archiver import STUCK_AFTER, ArchiverState, finished_between, judge

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
SEGMENT = "000000010000000000000042"

HEALTHY = ArchiverState(
    now=NOW,
    archived=41,
    last_wal="000000010000000000000041",
    last_time=NOW - timedelta(hours=3),
    failed=0,
    failed_wal=None,
    failed_time=None,
    waiting=0,
    oldest_waiting=None,
)


def test_nothing_waiting_is_ok_however_long_ago_the_last_segment() -> None:
    verdict = judge(HEALTHY)
    assert verdict.status == "ok"
    assert verdict.value.startswith("41 archived, last 000000010000000000000041 at ")


def test_a_segment_that_just_began_to_wait_is_ok() -> None:
    state = replace(HEALTHY, waiting=1, oldest_waiting=NOW - timedelta(seconds=2))
    assert judge(state).status == "ok"
    assert judge(state).value.endswith("; 1 segment waiting")


def test_a_backlog_being_worked_off_is_ok() -> None:
    state = replace(
        HEALTHY,
        waiting=30,
        oldest_waiting=NOW - timedelta(hours=1),
        last_time=NOW - timedelta(seconds=3),
    )
    assert judge(state).status == "ok"


def test_segments_waiting_long_with_nothing_archived_meanwhile_is_failing() -> None:
    state = replace(HEALTHY, waiting=3, oldest_waiting=NOW - timedelta(minutes=40))
    verdict = judge(state)
    assert verdict.status == "missing"
    assert verdict.value == (
        "archiving is failing: 3 segments waiting, the oldest for 40 min; "
        "last archived 3 h ago (000000010000000000000041)"
    )
    # No failure counted: the command cannot run at all.
    assert "executable by the server's OS user" in verdict.fix


def test_the_limit_is_stuck_after_on_both_sides() -> None:
    just_under = replace(
        HEALTHY,
        waiting=1,
        oldest_waiting=NOW - STUCK_AFTER + timedelta(seconds=1),
        last_time=None,
        archived=0,
    )
    assert judge(just_under).status == "warning"  # not proven yet, not failing yet
    at_limit = replace(just_under, oldest_waiting=NOW - STUCK_AFTER)
    assert judge(at_limit).status == "missing"
    assert "never archived" in judge(at_limit).value
    archived_recently = replace(
        at_limit, last_time=NOW - STUCK_AFTER + timedelta(seconds=1), last_wal=SEGMENT
    )
    assert judge(archived_recently).status == "ok"


def test_counted_failures_point_at_the_server_log() -> None:
    failing = replace(
        HEALTHY, failed=5, failed_wal=SEGMENT, failed_time=NOW - timedelta(seconds=30)
    )
    recent = replace(failing, waiting=1, oldest_waiting=NOW - timedelta(minutes=1))
    assert judge(recent).status == "warning"
    assert f"failing: {SEGMENT} at " in judge(recent).value
    stuck = replace(failing, waiting=2, oldest_waiting=NOW - timedelta(hours=2))
    verdict = judge(stuck)
    assert verdict.status == "missing"
    assert verdict.fix == "archive_command keeps failing: its error is in the server log"


def test_unknown_waiting_segments_are_a_warning_not_ok() -> None:
    state = replace(HEALTHY, waiting=None, unknown_why="erp may not call it")
    verdict = judge(state)
    assert verdict.status == "warning"
    assert "could not check the segments waiting to be archived (erp may not call it)" in (
        verdict.value
    )
    assert "pg_monitor" in verdict.fix


def test_not_archiving_lists_nothing_and_is_judged_on_the_statistics() -> None:
    state = replace(HEALTHY, waiting=None, archived=0, last_wal=None, last_time=None)
    assert judge(state).status == "ok"
    assert judge(state).value == "0 archived"


def test_a_segment_waiting_when_none_was_ever_archived_is_not_proven() -> None:
    """Right after a (broken) archive_command is set: no failure counted, nothing stuck
    for 5 minutes yet, but nothing archived either: not "ok"."""
    state = replace(
        HEALTHY,
        archived=0,
        last_wal=None,
        last_time=None,
        waiting=2,
        oldest_waiting=NOW - timedelta(seconds=20),
    )
    verdict = judge(state)
    assert verdict.status == "warning"
    assert verdict.value == "not proven yet: 2 segments waiting, none archived yet"
    assert "SELECT pg_switch_wal()" in verdict.fix
    assert "check again" in verdict.fix and "server log" in verdict.fix
    one = judge(replace(state, waiting=1))
    assert one.value == "not proven yet: 1 segment waiting, none archived yet"
    # Once one segment is archived, what waits is judged as a backlog.
    archived = replace(state, archived=1, last_wal=SEGMENT, last_time=NOW - timedelta(seconds=1))
    assert judge(archived).status == "ok"
    # Nothing waiting and nothing archived (archiving just turned on, no segment done).
    assert judge(replace(state, waiting=0, oldest_waiting=None)).status == "ok"


MIB16 = 16 * 1024 * 1024


@pytest.mark.parametrize(
    ("current_file", "position", "finished"),
    [
        # Still writing the segment after the last one archived: nothing finished.
        ("000000010000000000000042", 0x42 * MIB16 + 8192, 0),
        # Right after a switch, nothing written since: the position is the boundary,
        # which pg_walfile_name() names as the segment just finished. It waits.
        ("000000010000000000000042", 0x43 * MIB16, 1),
        ("000000010000000000000043", 0x43 * MIB16 + 40, 1),
        ("000000010000000000000045", 0x45 * MIB16 + 40, 3),
        # Across a log file: segment FF of log 0 and 00 of log 1 are neighbours.
        ("000000010000000100000001", 0x101 * MIB16 + 40, 0xBF),
    ],
)
def test_finished_segments_are_counted_from_the_write_position(
    current_file: str, position: int, finished: int
) -> None:
    assert finished_between("000000010000000000000041", current_file, position, MIB16) == finished


def test_segments_of_another_timeline_or_other_files_are_not_compared() -> None:
    other = finished_between("000000020000000000000041", SEGMENT, 0x45 * MIB16, MIB16)
    assert other is None
    assert finished_between("00000002.history", SEGMENT, 0x45 * MIB16, MIB16) is None

"""How far archived WAL lets a backup recover, from file names alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from respaldo.errors import InvalidWalFile
from respaldo.operations.wal_coverage import (
    backup_start_time,
    newest_timeline,
    timeline_path,
    wal_coverage,
)
from respaldo.postgres.wal import format_lsn, parse_lsn
from respaldo.repository import Manifest

pytestmark = pytest.mark.unit

MIB16 = 16 * 1024 * 1024


def _seg(number: int, timeline: int = 1) -> str:
    return f"{timeline:08X}{number // 256:08X}{number % 256:08X}"


def test_continuous_archive_ends_at_its_last_segment() -> None:
    # The backup ended in segment 3 (its tar holds it); 4 and 5 are archived.
    names = [_seg(n) for n in range(1, 6)] + [f"{_seg(3)}.00000028.backup"]
    found = wal_coverage(names, timeline=1, stop_lsn=3 * MIB16 + 0x100, segment_size=MIB16)
    assert found.end == 6 * MIB16
    assert found.missing is None


def test_a_missing_segment_after_the_backup_is_a_gap() -> None:
    names = [_seg(4), _seg(6), _seg(7)]
    found = wal_coverage(names, timeline=1, stop_lsn=3 * MIB16 + 0x100, segment_size=MIB16)
    assert (found.missing, found.resumes) == (_seg(5), _seg(6))
    assert found.end == 5 * MIB16


def test_segments_missing_before_the_backups_end_are_in_its_tar() -> None:
    found = wal_coverage([_seg(9)], timeline=1, stop_lsn=9 * MIB16, segment_size=MIB16)
    # Stop exactly at the start of segment 9: the tar's WAL ends with segment 8.
    assert found.missing is None and found.end == 10 * MIB16


def test_nothing_archived_after_the_backup_ends_at_its_stop() -> None:
    stop = parse_lsn("0/3000100")
    found = wal_coverage([_seg(1), _seg(2)], timeline=1, stop_lsn=stop, segment_size=MIB16)
    assert found.end == 4 * MIB16 and found.missing is None


def test_other_timelines_and_names_do_not_count_on_their_own() -> None:
    names = [_seg(4, 2), "00000002.history", "00000001.history", "junk", f"{_seg(4)}.partial"]
    found = wal_coverage(names, timeline=1, stop_lsn=3 * MIB16 + 1, segment_size=MIB16)
    assert found.end == 4 * MIB16 and found.missing is None


def test_the_newest_timeline_is_the_last_of_consecutive_history_files() -> None:
    names = ["00000002.history", "00000003.history", "00000005.history", _seg(3, 4)]
    assert newest_timeline(names, 1) == 3
    assert newest_timeline(names, 5) == 5


def test_recovery_follows_the_timelines_of_the_newest_history() -> None:
    # Timeline 1 until 0/5000100 (in segment 5), then 2 until 0/7000000, then 3.
    history = "1\t0/5000100\tno recovery target specified\n\n2\t0/7000000\tbefore 123\n"
    path = timeline_path(history, 3)
    assert path == [(1, 0), (2, parse_lsn("0/5000100")), (3, parse_lsn("0/7000000"))]
    # The backup ended in segment 3 of timeline 1; segment 5 is the switch: timeline 2's.
    names = [_seg(4), _seg(5), _seg(6), _seg(5, 2), _seg(6, 2), _seg(7, 3), _seg(8, 3)]
    found = wal_coverage(names, timeline=1, stop_lsn=3 * MIB16 + 8, segment_size=MIB16, path=path)
    assert found.missing is None and found.end == 9 * MIB16
    # Timeline 2's segment 6 missing: timeline 1's segment 6 does not stand in for it.
    names.remove(_seg(6, 2))
    found = wal_coverage(names, timeline=1, stop_lsn=3 * MIB16 + 8, segment_size=MIB16, path=path)
    assert (found.missing, found.resumes) == (_seg(6, 2), _seg(7, 3))


def test_segment_numbers_carry_into_the_next_log_id() -> None:
    names = [_seg(255), _seg(256), _seg(258)]
    found = wal_coverage(names, timeline=1, stop_lsn=254 * MIB16 + 8, segment_size=MIB16)
    assert found.missing == "000000010000000100000001"
    assert found.end == 257 * MIB16


def test_a_switch_in_the_backups_last_segment_needs_the_new_timelines_copy() -> None:
    # Promoted right at the backup's end (restore --immediate, then archiving kept on).
    stop = 3 * MIB16 + 0x100
    path = timeline_path(f"1\t{format_lsn(stop)}\treached consistency\n", 2)
    found = wal_coverage(
        [_seg(3), _seg(4, 2)], timeline=1, stop_lsn=stop, segment_size=MIB16, path=path
    )
    assert (found.missing, found.resumes) == (_seg(3, 2), _seg(4, 2))
    found = wal_coverage(
        [_seg(3, 2), _seg(4, 2)], timeline=1, stop_lsn=stop, segment_size=MIB16, path=path
    )
    assert found.missing is None and found.end == 5 * MIB16


def _manifest(started_at: datetime, start_time: str) -> Manifest:
    return Manifest(
        "b", "incremental", "erp", started_at, started_at + timedelta(minutes=5), "0", [],
        meta={"start_time": start_time},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("label", "earliest"),
    [
        # The server's START TIME, earlier than respaldo's start (another clock).
        ("2026-12-05 06:59:58 UTC", datetime(2026, 12, 5, 6, 59, 58, tzinfo=UTC)),
        ("2026-12-05 07:59:58 +01", datetime(2026, 12, 5, 6, 59, 58, tzinfo=UTC)),
        # A later one, a zone name that does not say its offset, none: respaldo's start.
        ("2026-12-05 07:00:03 GMT", datetime(2026, 12, 5, 7, 0, 0, tzinfo=UTC)),
        ("2026-12-05 07:59:58 CET", datetime(2026, 12, 5, 7, 0, 0, tzinfo=UTC)),
        ("", datetime(2026, 12, 5, 7, 0, 0, tzinfo=UTC)),
    ],
)
def test_a_backup_started_at_the_earliest_of_both_clocks(label: str, earliest: datetime) -> None:
    manifest = _manifest(datetime(2026, 12, 5, 7, 0, 0, tzinfo=UTC), label)
    assert backup_start_time(manifest) == earliest


def test_a_history_file_that_is_not_one_is_an_error_not_a_shorter_path() -> None:
    # Skipping a line it cannot read would follow the wrong timelines without a word.
    with pytest.raises(InvalidWalFile, match="not a timeline history line"):
        timeline_path("1\t0/5000100\tok\nthis is not history\n", 3)

"""Whether the archive holds a segment after one recovery finds missing
(:func:`later_segment`): a hole, or the end of the WAL."""

from __future__ import annotations

import pytest

from respaldo.repository import Repository
from respaldo.repository.wal import later_segment, wal_object

pytestmark = pytest.mark.unit

SYSTEM_ID = "7000000000000000001"
TIMELINE = "00000001"
MISSING = "0000000100000000000000F3"


def _archive(repo: Repository, *files: str) -> None:
    for file in files:
        repo.storage.put(wal_object(SYSTEM_ID, TIMELINE, file), b"x")


def test_a_hole_wider_than_two_log_files_is_found(repo: Repository) -> None:
    # A prune deletes the WAL between an expired backup and the oldest kept one: a day at
    # archive_timeout = 60 is over 1,400 segments, five log files. Before, only the
    # missing segment's log file and the next were listed: such a hole was taken for
    # the end of the WAL, and the server promoted there without what came after.
    _archive(repo, "0000000100000000000000F2", "000000010000000500000002")
    _archive(repo, "000000010000000500000003", "000000010000001000000000")
    assert later_segment(repo, SYSTEM_ID, TIMELINE, MISSING) == "000000010000000500000002"


@pytest.mark.parametrize(
    "later",
    [
        "0000000100000000000000F4",
        "000000010000000100000000",
        "00000001000000020000001A",
        "00000001000000A000000000",
        "000000011000000000000000",
    ],
)
def test_the_first_later_segment_is_found_wherever_it_is(repo: Repository, later: str) -> None:
    _archive(repo, "0000000100000000000000F2", later)
    assert later_segment(repo, SYSTEM_ID, TIMELINE, MISSING) == later


def test_the_end_of_the_wal_is_no_hole(repo: Repository) -> None:
    # Earlier segments, a .partial and a .backup after it, other timelines: the end.
    _archive(repo, "0000000100000000000000F1", "0000000100000000000000F2")
    _archive(repo, "0000000100000000000000F3.partial")
    _archive(repo, "0000000100000000000000F2.00000028.backup")
    repo.storage.put(wal_object(SYSTEM_ID, "00000002", "000000020000000500000000"), b"x")
    assert later_segment(repo, SYSTEM_ID, TIMELINE, MISSING) is None

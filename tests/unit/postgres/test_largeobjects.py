"""The record of a backup's large objects and what a restore says of a difference."""

from __future__ import annotations

import pytest

from respaldo.postgres.largeobjects import (
    PART_SIZE,
    LargeObjects,
    differences,
    recorded,
    summary_query,
)

pytestmark = pytest.mark.unit

BACKED_UP = LargeObjects(3, 5000, "-1234567890123")


def test_the_record_goes_into_the_manifest_and_back() -> None:
    meta = {"large_objects": BACKED_UP.to_meta()}
    assert meta["large_objects"] == {
        "format": 1,
        "count": 3,
        "bytes": 5000,
        "part_size": PART_SIZE,
        "digest": "-1234567890123",
    }
    assert recorded(meta) == BACKED_UP


def test_a_backup_from_before_the_record_has_none() -> None:
    assert recorded({"row_counts": {"a.b": 1}}) is None


def test_a_record_without_its_format_is_of_the_first() -> None:
    meta = {"large_objects": {"count": 3, "bytes": 5000, "digest": "-1234567890123"}}
    assert recorded(meta) == BACKED_UP


def test_a_record_of_a_later_format_is_not_compared() -> None:
    # A later respaldo's digest cannot be computed here: comparing it with this one's
    # would fail a sound restore.
    meta = {"large_objects": {**BACKED_UP.to_meta(), "format": 2}}
    assert recorded(meta) is None


def test_a_recorded_part_size_is_kept_and_hashed_in() -> None:
    meta = {"large_objects": {"count": 1, "bytes": 2, "digest": "3", "part_size": 4096}}
    found = recorded(meta)
    assert found is not None and found.part_size == 4096
    assert "4096" in summary_query(found.part_size).as_string(None)
    assert str(PART_SIZE) not in summary_query(found.part_size).as_string(None)


def test_the_same_objects_differ_in_nothing() -> None:
    assert differences(BACKED_UP, LargeObjects(3, 5000, "-1234567890123")) == []


def test_fewer_and_shorter_objects_are_both_named() -> None:
    assert differences(BACKED_UP, LargeObjects(2, 4000, "5")) == [
        "2 large objects, 3 expected",
        "4000 bytes of large objects, 5000 expected",
    ]


def test_changed_contents_of_the_same_size_are_named_by_their_digest() -> None:
    assert differences(BACKED_UP, LargeObjects(3, 5000, "77")) == [
        "the large objects' contents differ (digest 77, -1234567890123 expected)"
    ]


def test_a_row_of_the_query_makes_a_record() -> None:
    assert LargeObjects.from_row((3, 5000, -1234567890123)) == BACKED_UP

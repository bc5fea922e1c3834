"""An ``.ok`` verdict of ``wal-push --async`` is taken only for the file it names."""

from __future__ import annotations

from pathlib import Path

import pytest

from respaldo.operations.wal_async_client import _verdict_of, file_identity

pytestmark = pytest.mark.unit

SEGMENT = "000000010000000000000005"


def test_a_verdict_of_this_file_is_taken(tmp_path: Path) -> None:
    segment = tmp_path / SEGMENT
    segment.write_bytes(b"new cluster")
    ok = tmp_path / f"{SEGMENT}.ok"
    ok.write_text(f"stored wal/1/00000001/{SEGMENT} {file_identity(segment)}\n")
    assert _verdict_of(ok, segment)
    assert ok.exists()  # the caller consumes it


def test_a_verdict_of_another_file_of_that_name_is_removed(tmp_path: Path) -> None:
    # The old server's file, then removed; the re-created server's file of that name.
    old = tmp_path / "old" / SEGMENT
    old.parent.mkdir()
    old.write_bytes(b"old cluster")
    ok = tmp_path / f"{SEGMENT}.ok"
    ok.write_text(f"stored wal/1/00000001/{SEGMENT} {file_identity(old)}\n")
    segment = tmp_path / SEGMENT
    segment.write_bytes(b"new cluster")
    assert not _verdict_of(ok, segment)
    assert not ok.exists()  # so that the pusher pushes this file


def test_a_verdict_of_an_older_pusher_is_taken_as_before(tmp_path: Path) -> None:
    segment = tmp_path / SEGMENT
    segment.write_bytes(b"segment")
    ok = tmp_path / f"{SEGMENT}.ok"
    ok.write_text(f"stored wal/1/00000001/{SEGMENT}\n")
    assert _verdict_of(ok, segment)

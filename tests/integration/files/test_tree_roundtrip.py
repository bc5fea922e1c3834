"""The tree stream and the restore's extraction, round trip, on real files (no repository)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from respaldo.files import TreeTarStream, extract_tar


@pytest.mark.parametrize(
    "mtime_ns",
    [
        -315_619_199_876_543_211,  # 1960-01-01 00:00:00.123456789 UTC: before 1970
        -1,  # a nanosecond before the epoch
        -2_000_000_000,  # a whole number of seconds before
        1_700_000_000_123_456_789,
        4_102_444_800_500_000_000,  # 2100
    ],
)
def test_modification_times_come_back_to_the_nanosecond(tmp_path: Path, mtime_ns: int) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    path = tree / "old.txt"
    path.write_bytes(b"archived")
    os.utime(path, ns=(mtime_ns, mtime_ns))
    target = tmp_path / "restored"
    target.mkdir()
    extract_tar([TreeTarStream([tree]).read()], target)
    restored = target / str(path).lstrip("/")
    assert restored.stat().st_mtime_ns == mtime_ns

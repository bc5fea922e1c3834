"""The tree stream and the restore's extraction, round trip, on real files (no repository)."""

from __future__ import annotations

import os
import subprocess
import sys
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


def test_sparse_files_come_back_sparse_and_dense_ones_dense(tmp_path: Path) -> None:
    # A 64 MiB file holding 3 bytes takes a few KiB of disk; written out whole it would
    # take 64 MiB, and a restore onto a disk that held the original could run out.
    tree = tmp_path / "tree"
    tree.mkdir()
    sparse = tree / "disk.img"
    with sparse.open("wb") as fh:
        fh.seek(32 * 1024 * 1024)
        fh.write(b"mid")
        fh.truncate(64 * 1024 * 1024)
    assert sparse.stat().st_blocks * 512 < 1024 * 1024  # the filesystem keeps holes
    dense = tree / "zeros.bin"
    dense.write_bytes(bytes(2 * 1024 * 1024))  # zeros, but written: stays allocated
    target = tmp_path / "restored"
    target.mkdir()
    stream = TreeTarStream([tree])
    extract_tar(iter(lambda: stream.read(1024 * 1024), b""), target)
    restored = target / str(tree).lstrip("/")
    with (restored / "disk.img").open("rb") as fh, sparse.open("rb") as original:
        while block := original.read(1024 * 1024):
            assert fh.read(1024 * 1024) == block
        assert fh.read(1) == b""
    assert (restored / "disk.img").stat().st_blocks * 512 < 1024 * 1024
    assert (restored / "zeros.bin").read_bytes() == bytes(2 * 1024 * 1024)
    assert (restored / "zeros.bin").stat().st_blocks * 512 >= 2 * 1024 * 1024


WALK_WITH_A_LOW_LIMIT = """
import resource
import sys
from respaldo.files import TreeTarStream
sys.setrecursionlimit(200)
# A descriptor is held per level: 300 levels under a soft limit of 64 open files (as
# 2000 under systemd's 1024) failed "cannot list: Too many open files".
resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
sys.stdout.buffer.write(TreeTarStream([sys.argv[1]]).read())
"""
"""The tree stream of argv[1] on stdout, read with Python's recursion limit at 200 and a
soft limit of 64 open files."""


def test_a_tree_deeper_than_pythons_recursion_limit(tmp_path: Path) -> None:
    # Linux allows some 2000 levels (paths to 4096 bytes); the walk must not be a
    # recursion that stops at sys.getrecursionlimit(). The limit is lowered (in a
    # process of its own: it holds for every thread) rather than the tree made 1000
    # deep: the restore's containment check costs a path's depth for each member, and
    # pytest's own clean-up of such a tree is a recursion too.
    tree = tmp_path / "tree"
    tree.mkdir()
    deepest = tree
    for _ in range(300):
        deepest /= "d"
        deepest.mkdir()
    (deepest / "f.txt").write_bytes(b"at the bottom")
    walked = subprocess.run(
        [sys.executable, "-c", WALK_WITH_A_LOW_LIMIT, str(tree)],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert walked.returncode == 0, walked.stderr.decode()[-2000:]
    target = tmp_path / "restored"
    target.mkdir()
    stats = extract_tar([walked.stdout], target)
    assert stats.directories == 301 and stats.files == 1
    restored = target / str(deepest).lstrip("/") / "f.txt"
    assert restored.read_bytes() == b"at the bottom"

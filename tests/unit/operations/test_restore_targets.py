"""Removing what a failed restore (or a drill) wrote: whole trees, however deep."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from respaldo.operations.targets import abort_restore, begin_restore, remove_tree


@pytest.fixture
def tmp_path(tmp_path: Path) -> Iterator[Path]:
    """pytest's own tmp_path, emptied by ``rm`` afterwards whatever happened: pytest
    removes old temporary directories with ``shutil.rmtree``, which fails on a tree left
    this deep (by a failing test) in every later pytest run on the machine."""
    yield tmp_path
    subprocess.run(["rm", "-rf", "--", str(tmp_path)], check=True)


def _deep(top: Path) -> Path:
    """A chain of directories deeper than Python's recursion limit (a files backup
    stores such a tree, so its restore and its drill make one), a file at the bottom."""
    bottom = top
    for _ in range(sys.getrecursionlimit() + 100):
        bottom = bottom / "d"
        bottom.mkdir()
    (bottom / "f.txt").write_bytes(b"bottom")
    return bottom


def test_a_tree_deeper_than_the_recursion_limit_is_removed_whole(tmp_path: Path) -> None:
    top = tmp_path / "scratch"
    top.mkdir()
    bottom = _deep(top)
    bottom.parent.chmod(0o555)  # as a restore leaves a read-only directory
    (top / "link").symlink_to(tmp_path)  # removed as a link, never followed
    (tmp_path / "kept.txt").write_bytes(b"outside")
    remove_tree(top)
    assert not top.exists()
    assert (tmp_path / "kept.txt").read_bytes() == b"outside"


def test_an_aborted_restore_of_a_deep_tree_removes_it(tmp_path: Path) -> None:
    target = begin_restore(tmp_path / "restored", "backup-1")
    _deep(target.path)
    abort_restore(target)  # raised RecursionError, masking the restore's own error
    assert not target.path.exists()
    assert list(tmp_path.iterdir()) == []

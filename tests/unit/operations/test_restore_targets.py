"""Removing what a failed restore (or a drill) wrote: whole trees, however deep."""

from __future__ import annotations

import logging
import os
import resource
import stat
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


class _Listing(list[os.DirEntry[str]]):
    """A directory's entries, listed whole, usable as ``os.scandir``'s result is."""

    def __enter__(self) -> _Listing:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def test_a_directory_swapped_for_a_link_while_removed_is_never_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A restore gives directories their backed-up owners, so the user owning one (say
    # www-data) can swap it for a link between the listing of its parent and the walk
    # into it: root must then remove the link, and nothing it points to.
    top = tmp_path / "restored"
    (top / "uploads").mkdir(parents=True)
    (top / "uploads" / "f").write_bytes(b"x")
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o755)
    (victim / "precious.txt").write_bytes(b"keep me")
    listings = 0
    real_scandir = os.scandir

    def racing(path: object) -> _Listing:
        nonlocal listings
        entries = _Listing(real_scandir(path))  # type: ignore[call-overload]
        listings += 1
        if listings == 1:  # the top is listed: its "uploads" becomes a link to the victim
            (top / "uploads" / "f").unlink()
            (top / "uploads").rmdir()
            (top / "uploads").symlink_to(victim)
        return entries

    monkeypatch.setattr(os, "scandir", racing)
    remove_tree(top)
    monkeypatch.undo()
    assert listings >= 1
    assert sorted(p.name for p in victim.iterdir()) == ["precious.txt"]
    assert (victim / "precious.txt").read_bytes() == b"keep me"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o755  # not opened up either
    assert not top.exists()  # the link went, as a link


def _open_fds() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


def test_unreadable_and_read_only_directories_are_opened_up_and_removed(tmp_path: Path) -> None:
    # What a killed restore leaves: directories restored as 0000 and 0555, files in them.
    top = tmp_path / "restored"
    (top / "locked" / "inner").mkdir(parents=True)
    (top / "locked" / "inner" / "f").write_bytes(b"x")
    (top / "ro").mkdir()
    (top / "ro" / "g").write_bytes(b"y")
    (top / "locked" / "inner").chmod(0o000)
    (top / "locked").chmod(0o000)
    (top / "ro").chmod(0o555)
    fds = _open_fds()
    remove_tree(top)
    assert not top.exists()
    assert _open_fds() == fds


def test_a_deep_tree_is_removed_with_few_file_descriptors_left(tmp_path: Path) -> None:
    # The walk holds one descriptor per level at most, and fewer when the process may
    # open few (a soft limit of 1024 is common): a tree deeper than that still goes.
    top = tmp_path / "scratch"
    top.mkdir()
    _deep(top)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = _open_fds() + 100
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        remove_tree(top)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert not top.exists()


def test_what_cannot_be_removed_is_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tree = tmp_path / "restored"
    (tree / "a").mkdir(parents=True)
    (tree / "a" / "f").write_bytes(b"x")
    real_unlink = os.unlink

    def refusing(name: object, *args: object, **kwargs: object) -> None:
        if name == "f":
            raise PermissionError(1, "Operation not permitted")
        real_unlink(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "unlink", refusing)
    with caplog.at_level(logging.WARNING, logger="respaldo.operations.targets"):
        remove_tree(tree)
    assert (tree / "a" / "f").exists()
    assert any(str(tree) in r.getMessage() for r in caplog.records), caplog.records

"""A tree's directories and files swapped for links (or other things) while the tree
stream walks it: what is stored is what was listed, never what a link swapped in leads
to.

Whoever may write in a backed-up tree could otherwise, with careful timing, have the
backup read a file they cannot read (/etc/shadow, say) and hand it to anyone who may
restore the file set. The races are made exact, with no timing: between two pieces of
the stream (it is a generator, read as the chunker reads it), or from the function the
walk opens what it listed with (wrapped to swap first, then open). The files, links and
renames are real.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from respaldo.files import TreeTarStream, extract_tar
from respaldo.files import tree as tree_module

SECRET = b"root:$6$not-for-the-uploaders$:19000:0:99999:7:::\n"
DECOY = b"uploaded by the attacker\n"


def _layout(tmp_path: Path) -> tuple[Path, Path]:
    """A tree with a directory ``b`` holding ``shadow`` (the attacker's own file), and
    outside it a directory holding a secret file of the same name."""
    secret_dir = tmp_path / "etc"
    secret_dir.mkdir()
    (secret_dir / "shadow").write_bytes(SECRET)
    tree = tmp_path / "uploads"
    (tree / "b").mkdir(parents=True)
    (tree / "b" / "shadow").write_bytes(DECOY)
    (tree / "z.txt").write_bytes(b"last")
    return tree, secret_dir


def _member_offset(tree: Path, suffix: str) -> int:
    """Where the member whose name ends with ``suffix`` starts in the stream of ``tree``
    (its pax header included): the members before it end there."""
    with tarfile.open(fileobj=io.BytesIO(TreeTarStream([tree]).read())) as tar:
        return next(m.offset for m in tar if m.name.endswith(suffix))


def _swap_for_link(path: Path, target: Path) -> None:
    """``path`` moved aside and a link to ``target`` put in its place."""
    path.rename(path.with_name(path.name + ".moved"))
    path.symlink_to(target)


def _restored(pieces: list[bytes], tmp_path: Path, tree: Path) -> Path:
    target = tmp_path / "restored"
    target.mkdir()
    extract_tar(pieces, target)
    return target / str(tree).lstrip("/")


def test_a_directory_swapped_for_a_link_after_its_header_is_walked_as_listed(
    tmp_path: Path,
) -> None:
    # Between b's header and its children, b becomes a link to the secret directory: a
    # walk that goes on through b's path lists and reads the secret directory.
    tree, secret_dir = _layout(tmp_path)
    end_of_b = _member_offset(tree, "b/shadow")
    stream = TreeTarStream([tree])
    head = stream.read(end_of_b)
    _swap_for_link(tree / "b", secret_dir)
    rest = stream.read()
    assert SECRET not in head + rest
    assert stream.stats.errors == [], stream.stats.errors
    restored = _restored([head, rest], tmp_path, tree)
    # The directory that was listed, wherever it is now, is what the backup holds.
    assert (restored / "b" / "shadow").read_bytes() == DECOY
    assert (restored / "z.txt").read_bytes() == b"last"


def _swapping_open(
    monkeypatch: pytest.MonkeyPatch, name: str, swap: Callable[[], None], times: int = 1
) -> list[str]:
    """The walk's opening of what it listed, swapping first the first ``times`` times it
    opens ``name``; returns the names it opened."""
    real = tree_module._open_at
    opened: list[str] = []

    def open_at(opened_name: str, flags: int, dir_fd: int | None) -> int:
        if opened_name == name and opened.count(name) < times:
            swap()
        opened.append(opened_name)
        return real(opened_name, flags, dir_fd)

    monkeypatch.setattr(tree_module, "_open_at", open_at)
    return opened


def test_a_directory_swapped_for_a_link_after_it_was_listed_is_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # b was found a directory in its parent's listing, then became a link to the secret
    # directory before it was opened.
    tree, secret_dir = _layout(tmp_path)
    opened = _swapping_open(monkeypatch, "b", lambda: _swap_for_link(tree / "b", secret_dir))
    stream = TreeTarStream([tree])
    data = stream.read()
    assert "b" in opened
    assert SECRET not in data
    assert stream.stats.errors == [], stream.stats.errors
    assert stream.stats.warnings == [f"{tree}/b was replaced before it was read"]
    assert stream.stats.files == 1  # z.txt


def test_a_file_swapped_for_a_link_after_it_was_listed_is_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree, secret_dir = _layout(tmp_path)
    shadow = tree / "b" / "shadow"
    opened = _swapping_open(
        monkeypatch, "shadow", lambda: _swap_for_link(shadow, secret_dir / "shadow")
    )
    stream = TreeTarStream([tree])
    data = stream.read()
    assert "shadow" in opened
    assert SECRET not in data
    assert stream.stats.warnings == [f"{shadow} was replaced before it was read"]
    assert stream.stats.errors == [], stream.stats.errors


def test_a_file_replaced_by_another_each_time_it_is_opened_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A hard link can name a file the attacker cannot read, in a directory they can write
    # (where the kernel lets them: fs.protected_hardlinks off); here it is a rename of
    # another file over the listed one: the inode opened is not the inode listed. The
    # walk looks the name up again once (an editor's save, below); replaced again
    # between that look and the open, it is left out.
    tree, _ = _layout(tmp_path)
    shadow = tree / "b" / "shadow"
    others = [tree / "b" / "x-other", tree / "b" / "y-other"]  # listed after shadow
    for other in others:
        other.write_bytes(SECRET)
    left = list(others)

    def rename_over() -> None:
        left.pop(0).rename(shadow)

    opened = _swapping_open(monkeypatch, "shadow", rename_over, times=2)
    stream = TreeTarStream([tree])
    data = stream.read()
    assert opened.count("shadow") == 2
    assert SECRET not in data
    assert stream.stats.warnings == [
        f"{shadow} was replaced before it was read",
        *(f"{other} vanished before it was read" for other in others),
    ]
    assert stream.stats.errors == [], stream.stats.errors


def test_a_file_saved_by_an_editor_between_its_listing_and_its_read_is_backed_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An editor (or a deploy) saves a config file by writing a new one and renaming it
    over the old: between the walk's ``stat`` and its ``open`` the inode is another. It
    was left out with a warning, the backup missing the file; it is looked up again and
    the saved file read, its header from that second look (its own size and time)."""
    tree, _ = _layout(tmp_path)
    config = tree / "b" / "shadow"
    saved = b"listen = 0.0.0.0\nworkers = 4\n"

    def save() -> None:
        new = config.with_name(".shadow.swp")  # not in b's listing, made after it
        new.write_bytes(saved)
        os.utime(new, ns=(1_700_000_000_123_456_789,) * 2)
        new.rename(config)

    opened = _swapping_open(monkeypatch, "shadow", save)
    stream = TreeTarStream([tree])
    data = stream.read()
    assert opened.count("shadow") == 2
    assert stream.stats.warnings == [], stream.stats.warnings
    assert stream.stats.errors == [], stream.stats.errors
    assert stream.stats.files == 2  # shadow, z.txt
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        (member,) = [m for m in tar if m.name.endswith("b/shadow")]
        assert (member.size, member.pax_headers["mtime"]) == (len(saved), "1700000000.123456789")
    restored = _restored([data], tmp_path, tree)
    assert (restored / "b" / "shadow").read_bytes() == saved


def test_a_file_replaced_by_a_directory_is_told_as_replaced_not_as_a_special_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree, _ = _layout(tmp_path)
    shadow = tree / "b" / "shadow"

    def make_it_a_directory() -> None:
        shadow.unlink()
        shadow.mkdir()

    _swapping_open(monkeypatch, "shadow", make_it_a_directory)
    stream = TreeTarStream([tree])
    stream.read()
    assert stream.stats.skipped == []
    assert stream.stats.warnings == [f"{shadow} was replaced before it was read"]
    assert stream.stats.errors == [], stream.stats.errors


def _open_in(tree: Path) -> int:
    """How many of this process's descriptors are open on ``tree`` or below it."""
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):  # the listing's own, closed by now
            target = fd.readlink()
            count += target == tree or tree in target.parents
    return count


def test_a_stream_abandoned_half_way_closes_its_directories(tmp_path: Path) -> None:
    # Each directory being walked is held open: a backup that stops reading (its upload
    # failed) must not leave them open in a long-running service.
    tree = tmp_path / "deep"
    deepest = tree
    for _ in range(20):
        deepest /= "d"
    deepest.mkdir(parents=True)
    (deepest / "f.bin").write_bytes(os.urandom(100_000))
    into_the_file = _member_offset(tree, "f.bin") + 4096
    stream = TreeTarStream([tree])
    stream.read(into_the_file)
    assert _open_in(tree) == 21 + 1  # the directories, and f.bin
    del stream
    gc.collect()  # the walk's generators refer to the stream: a cycle
    assert _open_in(tree) == 0

"""Files that change while the tree stream reads them: never kept as a torn copy.

The stream is read here the way the chunker reads it, piece by piece, and the file is
changed on disk between two pieces, so the change lands in the middle of its read
exactly, with no timing involved. What the stream holds is then extracted with the
restore's own extraction.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

from respaldo.files import TreeTarStream, extract_tar
from respaldo.files.tree import ATTEMPTS, READ_SIZE

PIECE = 256 * 1024
OLD_NS = 1_600_000_000_000_000_000


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    tree = tmp_path / "uploads"
    tree.mkdir()
    (tree / "a.txt").write_bytes(b"before")
    big = tree / "b.bin"
    big.write_bytes(b"A" * (2 * READ_SIZE + READ_SIZE // 2))
    (tree / "c.txt").write_bytes(b"after")
    for path in tree.iterdir():
        os.utime(path, ns=(OLD_NS, OLD_NS))
    return tree, big


def _read(stream: TreeTarStream, change: Callable[[int], None]) -> list[bytes]:
    """All pieces of ``stream``; ``change(bytes read so far)`` runs between pieces."""
    pieces = []
    done = 0
    while piece := stream.read(PIECE):
        pieces.append(piece)
        done += len(piece)
        change(done)
    return pieces


def _extract(pieces: list[bytes], tmp_path: Path, tree: Path) -> tuple[Path, int]:
    target = tmp_path / "restored"
    target.mkdir()
    stats = extract_tar(pieces, target)
    return target / str(tree).lstrip("/"), stats.files


def test_a_file_rewritten_in_place_while_read_is_read_again_whole(tmp_path: Path) -> None:
    tree, big = _tree(tmp_path)
    stream = TreeTarStream([tree])
    rewritten = False

    def rewrite(done: int) -> None:
        nonlocal rewritten
        if not rewritten and done > READ_SIZE:  # a quarter of the way into b.bin
            # Same size, new bytes: only the times tell (what an editor saving in place,
            # or a database file, looks like).
            with big.open("r+b") as fh:
                fh.write(b"B" * big.stat().st_size)
            rewritten = True

    pieces = _read(stream, rewrite)
    assert rewritten
    assert stream.stats.errors == []
    assert stream.stats.reread == 1
    assert stream.stats.files == 3
    restored, files = _extract(pieces, tmp_path, tree)
    assert (restored / "b.bin").read_bytes() == big.read_bytes()  # all B, no A
    assert (restored / "b.bin").stat().st_mtime_ns == big.stat().st_mtime_ns
    assert files == 3  # the torn first read is replaced, not counted
    assert (restored / "c.txt").read_bytes() == b"after"


def test_a_file_that_grows_or_shrinks_while_read_is_read_again_whole(tmp_path: Path) -> None:
    tree, big = _tree(tmp_path)
    stream = TreeTarStream([tree])
    # Grows during the first read (2.5 MiB from the start of the stream), shrinks
    # during the second (3 MiB from 2.5 MiB on), then stays.
    steps = {0: (2 * READ_SIZE, b"C" * (3 * READ_SIZE)), 1: (4 * READ_SIZE, b"D" * 1000)}

    def resize(done: int) -> None:
        step = steps.get(stream.stats.reread)
        if step is not None and done > step[0]:
            big.write_bytes(step[1])
            del steps[stream.stats.reread]

    pieces = _read(stream, resize)
    assert stream.stats.errors == [], stream.stats.errors
    assert stream.stats.reread == 2
    restored, files = _extract(pieces, tmp_path, tree)
    assert (restored / "b.bin").read_bytes() == b"D" * 1000
    assert files == 3


def test_a_file_that_changes_on_every_read_is_an_error(tmp_path: Path) -> None:
    tree, big = _tree(tmp_path)
    stream = TreeTarStream([tree])
    size = big.stat().st_size
    count = 0

    def keep_writing(done: int) -> None:
        # Every piece read while b.bin is being read rewrites it: no read can be whole.
        nonlocal count
        if PIECE < done < PIECE + ATTEMPTS * size:
            count += 1
            with big.open("r+b") as fh:
                fh.write(bytes([count % 256]) * size)

    _read(stream, keep_writing)
    assert len(stream.stats.errors) == 1, stream.stats.errors
    assert "b.bin: changed while read, 3 times" in stream.stats.errors[0]
    assert stream.stats.files == 2


def test_a_directory_replaced_by_a_file_after_it_was_listed_keeps_what_was_listed(
    tmp_path: Path,
) -> None:
    # After a directory's header (it is open and listed by then) the application
    # replaces it with a file: the walk goes on in the directory it opened, whose file
    # was deleted meanwhile (noted, not an error), and never reads the new file as if
    # it were the old one's child.
    tree = tmp_path / "uploads"
    (tree / "b").mkdir(parents=True)
    (tree / "b" / "old.txt").write_bytes(b"old")
    with tarfile.open(fileobj=io.BytesIO(TreeTarStream([tree]).read())) as tar:
        # Where old.txt's member starts (its pax header included): b's header ends there.
        end_of_b = next(m.offset for m in tar if m.name.endswith("b/old.txt"))
    stream = TreeTarStream([tree])
    head = stream.read(end_of_b)
    (tree / "b" / "old.txt").unlink()
    (tree / "b").rmdir()
    (tree / "b").write_bytes(b"now a file")
    rest = _read(stream, lambda done: None)
    assert stream.stats.errors == [], stream.stats.errors
    assert stream.stats.warnings == [f"{tree}/b/old.txt vanished before it was read"]
    target = tmp_path / "restored"
    target.mkdir()
    extract_tar([head, *rest], target)
    assert (target / str(tree).lstrip("/") / "b").is_dir()


def test_a_configured_path_that_vanishes_during_the_backup_is_an_error(tmp_path: Path) -> None:
    # Checked when the stream is made, then gone by the time it is reached (an
    # unmounted share): the backup would hold none of it, and must not count as good.
    first, second = tmp_path / "uploads", tmp_path / "config"
    first.mkdir()
    (first / "a.txt").write_bytes(b"a")
    second.mkdir()
    (second / "erp.ini").write_bytes(b"[erp]")
    stream = TreeTarStream([first, second])
    stream.read(512)
    (second / "erp.ini").unlink()
    second.rmdir()
    _read(stream, lambda done: None)
    assert stream.stats.errors == [f"{second}: configured path vanished before it was read"]


def test_a_configured_path_that_is_a_special_file_is_an_error(tmp_path: Path) -> None:
    # A FIFO (or socket, or device) as a configured path: the backup would hold nothing
    # of it, and said so only in a warning on a completed backup.
    fifo = tmp_path / "queue"
    os.mkfifo(fifo)
    stream = TreeTarStream([fifo])
    _read(stream, lambda done: None)
    assert stream.stats.errors == [
        f"{fifo}: a configured path that is a FIFO, socket or device: never backed up"
    ]


def test_a_file_appended_to_while_read_is_cut_at_its_listed_size_not_read_again(
    tmp_path: Path,
) -> None:
    # A live log: a line appended between every two pieces of its read. Reading it
    # again would race the writer on every read (the backup failed, the stream held
    # three copies); its first bytes are a consistent copy, as GNU tar keeps them.
    tree, big = _tree(tmp_path)
    listed = big.stat().st_size
    stream = TreeTarStream([tree])
    appended = 0

    def append(done: int) -> None:
        nonlocal appended
        if PIECE < done < PIECE + 2 * listed:
            with big.open("ab") as fh:
                fh.write(b"a line of log\n")
            appended += 1

    pieces = _read(stream, append)
    assert appended > 3
    assert stream.stats.errors == [], stream.stats.errors
    assert stream.stats.reread == 0
    assert stream.stats.files == 3
    assert [w for w in stream.stats.warnings if "b.bin" in w] == [
        f"{big} grew while read: cut at {listed} bytes"
    ]
    assert sum(map(len, pieces)) < listed + 64 * 1024  # one copy in the stream, not three
    restored, files = _extract(pieces, tmp_path, tree)
    assert (restored / "b.bin").read_bytes() == big.read_bytes()[:listed]
    assert files == 3


def test_a_file_rewritten_larger_while_read_is_read_again_not_cut(tmp_path: Path) -> None:
    # Grown, but not by an append: its first bytes are not those read (truncated and
    # written anew, as a program saving a file does). Cutting it would keep a mix.
    tree, big = _tree(tmp_path)
    stream = TreeTarStream([tree])
    rewritten = False

    def rewrite(done: int) -> None:
        nonlocal rewritten
        if not rewritten and done > READ_SIZE:
            with big.open("r+b") as fh:
                fh.write(b"B" * (3 * READ_SIZE))
            rewritten = True

    pieces = _read(stream, rewrite)
    assert stream.stats.errors == [], stream.stats.errors
    assert stream.stats.reread == 1
    restored, _ = _extract(pieces, tmp_path, tree)
    assert (restored / "b.bin").read_bytes() == b"B" * (3 * READ_SIZE)


def test_a_file_rewritten_in_the_middle_and_appended_to_while_read_is_read_again(
    tmp_path: Path,
) -> None:
    # One update of a database-like file: a page already read and one not yet read
    # change together, and a record is appended. Its first and last bytes read are
    # still in place, but cut at its listed size the copy would hold the old first page
    # and the new second one: a state the file never had.
    tree, big = _tree(tmp_path)
    listed = big.stat().st_size
    stream = TreeTarStream([tree])
    changed = False

    def update(done: int) -> None:
        nonlocal changed
        if not changed and done > READ_SIZE + PIECE:  # b.bin's first MiB is read
            with big.open("r+b") as fh:
                fh.seek(100 * 1024)
                fh.write(b"N" * 4096)
                fh.seek(2 * READ_SIZE)
                fh.write(b"N" * 4096)
                fh.seek(0, os.SEEK_END)
                fh.write(b"appended")
            changed = True

    pieces = _read(stream, update)
    assert changed
    assert stream.stats.errors == [], stream.stats.errors
    assert [w for w in stream.stats.warnings if "b.bin" in w] == []
    assert stream.stats.reread == 1
    restored, files = _extract(pieces, tmp_path, tree)
    stored = (restored / "b.bin").read_bytes()
    assert stored[100 * 1024 : 100 * 1024 + 4096] == b"N" * 4096
    assert stored == big.read_bytes()  # the whole second read, appended record and all
    assert len(stored) == listed + len(b"appended")
    assert files == 3

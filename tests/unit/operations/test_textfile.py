"""node_exporter's textfile is replaced whole or not at all: a reader never sees half of
it, and a write that cannot happen says why and leaves the old file as it was."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typing_extensions import Buffer

from respaldo.errors import InvalidInput, TextfileNotWritten
from respaldo.operations.textfile import write_atomically

pytestmark = pytest.mark.unit

OLD = b"# HELP respaldo_x old\n# TYPE respaldo_x gauge\nrespaldo_x 1.0\n"
NEW = b"# HELP respaldo_x new\n# TYPE respaldo_x gauge\n" + b"respaldo_x 2.0\n" * 20_000


def test_a_reader_sees_the_old_file_while_the_new_one_is_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "respaldo.prom"
    write_atomically(target, OLD)
    halfway, resume = threading.Event(), threading.Event()
    real_write = os.write

    def half_then_wait(fd: int, data: Buffer) -> int:
        view = memoryview(data)
        written = real_write(fd, view[: len(view) // 2])
        halfway.set()
        resume.wait()
        return written

    monkeypatch.setattr(os, "write", half_then_wait)  # only the writer thread writes
    writer = threading.Thread(target=write_atomically, args=(target, NEW))
    writer.start()
    try:
        assert halfway.wait(60)
        # Half of NEW is on disk, in a hidden file node_exporter does not read (*.prom).
        (temporary,) = [p for p in tmp_path.iterdir() if p != target]
        assert temporary.name.startswith(".respaldo.prom.") and temporary.suffix == ".tmp"
        assert temporary.stat().st_size == len(NEW) // 2
        assert target.read_bytes() == OLD
    finally:
        monkeypatch.setattr(os, "write", real_write)
        resume.set()
        writer.join()
    assert target.read_bytes() == NEW
    assert list(tmp_path.iterdir()) == [target]
    assert target.stat().st_mode & 0o777 == 0o644


def test_a_writer_killed_half_way_leaves_the_old_file_and_the_next_write_sweeps_up(
    tmp_path: Path,
) -> None:
    target = tmp_path / "respaldo.prom"
    write_atomically(target, OLD)
    child = subprocess.Popen(
        [sys.executable, "-c", _HALF_WRITER, str(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "half\n"
    child.kill()
    child.communicate()
    leftover = tmp_path / f".respaldo.prom.{child.pid}.tmp"
    assert leftover.stat().st_size > 0
    assert target.read_bytes() == OLD
    write_atomically(target, NEW)
    assert sorted(tmp_path.iterdir()) == [target]
    assert target.read_bytes() == NEW


_HALF_WRITER = """
import os, sys
from pathlib import Path
from respaldo.operations.textfile import write_atomically
real = os.write
def half_then_wait(fd, data):
    view = memoryview(data)
    written = real(fd, view[: len(view) // 2])
    print("half", flush=True)
    sys.stdin.read()
    return written
os.write = half_then_wait
write_atomically(Path(sys.argv[1]), b"respaldo_x 3.0\\n" * 10_000)
"""


def test_a_missing_directory_is_named_and_nothing_is_created(tmp_path: Path) -> None:
    target = tmp_path / "textfile_collector" / "respaldo.prom"
    with pytest.raises(TextfileNotWritten) as caught:
        write_atomically(target, NEW)
    assert str(caught.value) == (
        f"cannot write {target}: the directory {target.parent} does not exist"
    )
    assert "--collector.textfile.directory" in caught.value.hint
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory everyone may enter and only root may write (pytest's tmp_path sits
    in root's 0700 directory)."""
    path = Path(tempfile.mkdtemp(prefix="respaldo-textfile-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def test_an_unwritable_directory_is_named_and_the_old_file_is_unchanged(public_dir: Path) -> None:
    # Root writes anywhere: the write runs as the unprivileged postgres user, whom the
    # directory (root's, mode 0755) does not let in.
    directory = public_dir
    target = directory / "respaldo.prom"
    write_atomically(target, OLD)
    code = (
        "import sys\nfrom pathlib import Path\n"
        "from respaldo.errors import TextfileNotWritten\n"
        "from respaldo.operations.textfile import write_atomically\n"
        "try:\n    write_atomically(Path(sys.argv[1]), b'respaldo_x 9\\n')\n"
        "except TextfileNotWritten as exc:\n    print(exc)\n    print(exc.hint)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(target)],
        user="postgres",
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    )
    message, hint = done.stdout.splitlines()
    assert message == f"cannot write {target}: permission denied in {directory}", done.stderr
    assert "as a user that may write there" in hint
    assert target.read_bytes() == OLD
    assert sorted(directory.iterdir()) == [target]


def test_a_name_node_exporter_would_not_read_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        write_atomically(tmp_path / "respaldo.txt", NEW)
    assert caught.value.field == "textfile"
    assert "only *.prom files" in str(caught.value)
    assert list(tmp_path.iterdir()) == []

"""A parallel dump stores a table file while pg_dump is still writing it: the stream is
the whole file, ending only once pg_dump has said the file is finished (or has ended)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

from respaldo.operations.pardump import _Finished, _largest_table_file, _Said, _store
from respaldo.repository import BackupWriter
from respaldo.storage.memory import MemoryStorage
from tests.unit.repository.helpers import compressible_bytes, init_repo, read_stream


class _WaitSeen(_Said):
    """Says when the reader first waits at the file's end for pg_dump to write more."""

    def __init__(self, finished: _Finished) -> None:
        super().__init__(finished)
        self.waiting = threading.Event()

    def take(self, wait: float | None) -> None:
        if wait:
            self.waiting.set()
        super().take(wait)


def _store_growing(tmp_path: Path, *, end: bytes) -> tuple[bytes, bytes, _WaitSeen]:
    """Store ``7.dat`` while another thread appends to it once the reader has caught up,
    then says ``end`` (a finished line, or nothing: pg_dump ends). Returns (the whole
    file, the stream stored, what was said)."""
    first, second = compressible_bytes(700_000, seed=1), compressible_bytes(500_000, seed=2)
    path = tmp_path / "7.dat"
    path.write_bytes(first)
    finished = _Finished()
    said = _WaitSeen(finished)

    def pg_dump() -> None:
        said.waiting.wait()
        with path.open("ab") as fh:
            fh.write(second)
        if end:
            finished.line(end)
        else:
            finished.end()

    repo = init_repo(MemoryStorage("follow"))
    seen: list[int] = []
    worker = threading.Thread(target=pg_dump)
    worker.start()
    with BackupWriter(repo, "20260101T000000Z-00000001") as writer:
        size = _store(writer, path, 0, seen.append, follow=(7, said))
        manifest = writer.commit(kind="full", source="t", started_at=datetime.now(UTC))
    worker.join()
    assert size == len(first) + len(second)
    assert seen[-1] == size
    assert not path.exists()  # deleted once stored
    return first + second, read_stream(repo, manifest, "dump/7.dat"), said


def test_a_table_file_is_stored_whole_while_pg_dump_writes_it(tmp_path: Path) -> None:
    whole, stored, said = _store_growing(
        tmp_path, end=b"pg_dump: finished item 7 TABLE DATA facturas"
    )
    assert said.waiting.is_set()  # the reader did reach the file's end before pg_dump did
    assert stored == whole
    assert said.done == {}  # taken: not stored a second time
    assert not said.ended


def test_a_table_file_being_written_when_pg_dump_ends_is_read_to_its_end(
    tmp_path: Path,
) -> None:
    whole, stored, said = _store_growing(tmp_path, end=b"")
    assert stored == whole
    assert said.ended


def test_finished_files_are_taken_in_order_and_the_end_after_them() -> None:
    finished = _Finished()
    said = _Said(finished)
    for line in (
        b"pg_dump: finished item 9 TABLE DATA a",
        b"pg_dump: finished item 4 TABLE DATA b",
    ):
        finished.line(line)
    finished.end()
    said.take(0)
    assert said.ended
    assert [said.next_done(), said.next_done(), said.next_done()] == [9, 4, None]


def test_the_largest_table_file_is_the_one_followed(tmp_path: Path) -> None:
    assert _largest_table_file(tmp_path) is None
    (tmp_path / "12.dat").write_bytes(b"x" * 10)
    (tmp_path / "3.dat").write_bytes(b"x" * 30)
    (tmp_path / "toc.dat").write_bytes(b"x" * 100)  # not a table's data
    (tmp_path / "blob_5.dat").write_bytes(b"x" * 100)
    assert _largest_table_file(tmp_path) == (3, tmp_path / "3.dat")

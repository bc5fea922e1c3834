"""The spool of ``restore --jobs`` (operations/restore_parallel.py) writes the chunks it is
given a batch at a time, yet a worker waiting for bytes gets them at once: it never waits
for a batch to fill (the reader may be slow to bring the next chunk, or hold it)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from respaldo.operations.restore_parallel import FEED, Spool


def test_chunks_are_written_a_batch_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "dump"
    spool = Spool(path)
    chunks = [os.urandom(20_000) for _ in range(200)]
    for chunk in chunks[:10]:
        spool.append([chunk], len(chunk))
    assert path.stat().st_size == 0  # nobody waits: the batch is not full yet
    for at in range(10, len(chunks), 5):  # the reader's windows: lists of chunks
        spool.append(chunks[at : at + 5], 5 * 20_000)
    assert 0 < len(chunks) * 20_000 - path.stat().st_size < FEED
    spool.finish()
    assert path.read_bytes() == b"".join(chunks)


def test_a_waiting_reader_gets_bytes_still_in_the_batch(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "dump")
    spool.append([b"a" * 100], 100)  # far less than a batch, and no more comes for now
    got: list[bytes] = []

    def read() -> None:
        with spool.reader() as source:
            got.append(source.read(100))

    waiter = threading.Thread(target=read)
    waiter.start()
    waiter.join(60)
    assert got == [b"a" * 100]
    # While nobody waits, chunks wait for their batch; a reader that comes takes them.
    spool.append([b"b" * 50], 50)
    with spool.reader() as source:
        source.seek(100)
        assert source.read(50) == b"b" * 50
    spool.finish()
    assert (tmp_path / "dump").read_bytes() == b"a" * 100 + b"b" * 50

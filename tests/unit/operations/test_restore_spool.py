"""The spool of ``restore --jobs`` (operations/restore_parallel.py) writes the chunks it is
given a batch at a time, yet a worker waiting for bytes gets them at once: it never waits
for a batch to fill (the reader may be slow to bring the next chunk, or hold it). Once a
worker has failed it takes nothing more."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from respaldo.errors import RestoreError
from respaldo.operations.restore_feed import Aborted
from respaldo.operations.restore_parallel import (
    FEED,
    Plan,
    Spool,
    _feed_while_loading,
    _run_workers,
)


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


def test_once_a_worker_failed_the_spool_refuses_what_the_reader_brings(tmp_path: Path) -> None:
    # The worker's failure closed the spool's file (abort): the reader's next chunks are
    # refused with Aborted, never written into a closed file (or into whatever file
    # took its descriptor), and the restore fails with the worker's error.
    spool = Spool(tmp_path / "dump")
    got: list[bytes] = []

    def worker() -> None:
        with spool.reader() as source:
            got.append(source.read(100))
        raise RestoreError("pg_restore failed: relation does not exist")

    def load() -> Plan | None:
        # As _load: the workers run, the first failure aborts the spool.
        _run_workers(spool, [worker])
        return None

    def steps() -> Iterator[None]:
        spool.append([b"a" * 100], 100)
        yield
        futures.wait([loading])  # the worker has failed, and aborted the spool
        assert spool.aborted
        spool.append([b"b" * FEED], FEED)  # a whole batch: it would be written now
        yield

    with ThreadPoolExecutor(1) as pool:
        loading = pool.submit(load)
        with pytest.raises(RestoreError, match="pg_restore failed"):
            _feed_while_loading(spool, loading, steps())
    assert got == [b"a" * 100]
    assert (tmp_path / "dump").read_bytes() == b"a" * 100
    with pytest.raises(Aborted):
        spool.append([b"c"], 1)  # not even into the batch
    with pytest.raises(Aborted):
        spool.finish()

"""The feed of a directory-format restore (operations/restore_feed.py): a worker reads its
own files and writes their chunks into its pg_restore as they arrive, ends a data block
only once the file is complete and checked, and is never held up by another worker; the
files no worker loads are written whole, under their names only once checked."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

import pytest

from respaldo.errors import IntegrityError, PostgresError, QueryFailed, RestoreError
from respaldo.operations.restore_feed import FEED, Aborted, Arrivals, FileFeed, write_all
from respaldo.operations.restore_parallel import Plan, _feed_while_loading

INT_SIZE = 4


def integer(value: int) -> bytes:
    return b"\x00" + value.to_bytes(INT_SIZE, "little")


def parse_block(raw: bytes | bytearray) -> tuple[bytes, bool]:
    """The data of the block parts in ``raw`` and whether the block was ended."""
    data: list[bytes] = []
    at = 0
    while at < len(raw):
        size = int.from_bytes(raw[at + 1 : at + 1 + INT_SIZE], "little")
        at += 1 + INT_SIZE
        if size == 0:
            assert at == len(raw), "bytes after the block's end"
            return b"".join(data), True
        data.append(bytes(raw[at : at + size]))
        at += size
    return b"".join(data), False


class Pipe:
    """A pipe a worker writes into and a thread drains; ``hold`` keeps it from draining
    (the pg_restore behind it is slow) until released."""

    def __init__(self, *, hold: bool = False) -> None:
        r, w = os.pipe()
        self.out: IO[bytes] = os.fdopen(w, "wb")
        self._r = r
        self.received = bytearray()
        self.first = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self._drain = threading.Thread(target=self._run)
        self._drain.start()

    def _run(self) -> None:
        self.release.wait()
        while data := os.read(self._r, 1 << 16):
            self.received += data
            self.first.set()
        os.close(self._r)

    def close(self) -> bytes:
        self.out.close()
        self.release.set()
        self._drain.join()
        return bytes(self.received)


def chunks(n: int, seed: int) -> list[bytes]:
    return [bytes([seed]) * 100 + os.urandom(20_000) for _ in range(n)]


def windows(data: list[bytes], size: int = 3) -> Iterator[list[bytes]]:
    """``data`` as the reader yields it: lists of chunks (a window's)."""
    for at in range(0, len(data), size):
        yield data[at : at + size]


def worker(
    feed: FileFeed,
    files: dict[str, Iterable[list[bytes]]],
    pipe: Pipe,
    errors: list[BaseException],
) -> None:
    try:
        for name, batches in files.items():
            feed.stream_block(name, batches, pipe.out, integer)
    except BaseException as exc:
        errors.append(exc)
    finally:
        pipe.close()


def start(
    feed: FileFeed, files: dict[str, Iterable[list[bytes]]], pipe: Pipe
) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []
    thread = threading.Thread(target=worker, args=(feed, files, pipe, errors))
    thread.start()
    return thread, errors


def test_a_worker_writes_its_file_into_its_pg_restore_as_the_chunks_arrive(
    tmp_path: Path,
) -> None:
    feed = FileFeed(tmp_path)
    feed.route({"a.dat": 0})
    pipe = Pipe()
    data = chunks(100, 1)
    reached = threading.Event()

    def arriving() -> Iterator[list[bytes]]:
        yield from windows(data[:-1])
        # The worker's pg_restore had the first chunks long before the file was complete.
        reached.set()
        assert pipe.first.wait(60)
        yield [data[-1]]

    thread, errors = start(feed, {"a.dat": arriving()}, pipe)
    told: list[int] = []
    assert feed.wait_streamed(told.append, 10) == 10 + len(b"".join(data))
    feed.finish()
    thread.join()
    assert errors == [] and reached.is_set()
    assert parse_block(pipe.received) == (b"".join(data), True)
    assert all(10 < done <= 10 + len(b"".join(data)) for done in told)
    assert list(tmp_path.iterdir()) == []  # nothing went to disk
    assert feed.tally == {"whole": 0, "streamed": len(b"".join(data))}


def test_a_worker_whose_pg_restore_is_slow_does_not_hold_up_another(tmp_path: Path) -> None:
    # Each worker reads its own files: worker 0's pg_restore takes nothing while worker 1
    # streams its file whole (a single reader handing on files in their stored order
    # had to spill a.dat to disk to get to b.dat).
    feed = FileFeed(tmp_path)
    feed.route({"a.dat": 0, "b.dat": 1})
    slow, other = Pipe(hold=True), Pipe()
    a, b = chunks(200, 3), chunks(30, 4)
    slow_thread, slow_errors = start(feed, {"a.dat": windows(a)}, slow)
    other_thread, other_errors = start(feed, {"b.dat": windows(b)}, other)
    other_thread.join()
    assert other_errors == []
    assert parse_block(other.received) == (b"".join(b), True)
    assert slow.received == bytearray()
    slow.release.set()
    assert feed.wait_streamed(lambda done: None, 0) == len(b"".join(a + b))
    slow_thread.join()
    assert slow_errors == []
    assert parse_block(slow.received) == (b"".join(a), True)
    assert list(tmp_path.iterdir()) == []


def failing(data: list[bytes]) -> Iterator[list[bytes]]:
    yield from windows(data)
    raise IntegrityError("stream 'dump/3.dat' does not match its checksum")


def test_a_file_that_fails_is_never_ended(tmp_path: Path) -> None:
    feed = FileFeed(tmp_path)
    feed.route({"a.dat": 0})
    pipe = Pipe()
    data = chunks(40, 5)
    thread, errors = start(feed, {"a.dat": failing(data)}, pipe)
    thread.join()
    assert [type(e) for e in errors] == [IntegrityError]
    got, ended = parse_block(pipe.received)
    assert not ended  # pg_restore never saw the end of the table's data
    assert got == b"".join(data)


def test_a_worker_stops_reading_once_the_restore_is_aborted(tmp_path: Path) -> None:
    feed = FileFeed(tmp_path)
    feed.route({"a.dat": 0, "b.dat": 1})
    pipe = Pipe()
    data = chunks(40, 6)
    read: list[int] = []

    def arriving() -> Iterator[list[bytes]]:
        for n, window in enumerate(windows(data)):
            read.append(n)
            if n == 2:
                feed.abort()  # the other worker's pg_restore failed
            yield window

    thread, errors = start(feed, {"a.dat": arriving()}, pipe)
    thread.join()
    assert [type(e) for e in errors] == [Aborted]
    assert read == [0, 1, 2]  # not the rest of the file
    assert not parse_block(pipe.received)[1]


def test_the_reader_waiting_for_the_workers_is_woken_by_an_abort(tmp_path: Path) -> None:
    feed = FileFeed(tmp_path)
    feed.route({"a.dat": 0})
    failures: list[BaseException] = []

    def wait() -> None:
        try:
            feed.wait_streamed(lambda done: None, 0)
        except BaseException as exc:
            failures.append(exc)

    waiting = threading.Thread(target=wait)
    waiting.start()
    feed.abort()  # a worker's pg_restore failed
    waiting.join()
    assert [type(e) for e in failures] == [Aborted]


def test_the_reader_waits_for_the_plan_before_the_files_after_the_toc(tmp_path: Path) -> None:
    feed = FileFeed(tmp_path)
    routed = threading.Event()

    def plan() -> None:
        routed.set()
        feed.route({"a.dat": 0})

    planning = threading.Timer(0, plan)
    planning.start()
    feed.wait_routed()
    assert routed.is_set() and feed.routed("a.dat") and not feed.routed("blob_1.dat")
    planning.join()
    aborted = FileFeed(tmp_path)
    aborted.abort()  # the plan failed
    with pytest.raises(Aborted):
        aborted.wait_routed()


def test_files_not_routed_are_written_whole_under_their_name(tmp_path: Path) -> None:
    feed = FileFeed(tmp_path)
    data = chunks(5, 7)
    feed.read_file("toc.dat", windows(data), lambda done: None, 0)
    assert feed.wait_file("toc.dat").read_bytes() == b"".join(data)
    feed.route({"a.dat": 0})
    # No worker loads it: whole, for the last pg_restore.
    feed.read_file("blobs.toc", windows(data), lambda done: None, 0)
    assert (tmp_path / "blobs.toc").read_bytes() == b"".join(data)


def test_a_file_whose_checksum_fails_never_gets_its_name(tmp_path: Path) -> None:
    feed = FileFeed(tmp_path)
    with pytest.raises(IntegrityError):
        feed.read_file("blobs.toc", failing(chunks(5, 8)), lambda done: None, 0)
    assert not (tmp_path / "blobs.toc").exists()


def test_a_worker_that_fails_while_the_reader_waits_is_the_error_told(tmp_path: Path) -> None:
    # Nobody streams a.dat (its worker's pg_restore failed): the reader, waiting for the
    # workers' files, is woken by the abort, and the restore fails with the worker's
    # error, not with the abandoned read.
    feed = FileFeed(tmp_path)
    feed.route({"a.dat": 0})

    def load() -> Plan | None:
        feed.abort()  # as _run_workers does on a worker's failure
        raise RestoreError("pg_restore failed: relation does not exist")

    def steps() -> Iterator[None]:
        feed.wait_streamed(lambda done: None, 0)
        yield

    with ThreadPoolExecutor(1) as pool:
        loading = pool.submit(load)
        with pytest.raises(RestoreError, match="pg_restore failed"):
            _feed_while_loading(feed, loading, steps())


def test_a_part_of_a_block_is_at_most_a_feed(tmp_path: Path) -> None:
    # pg_restore holds one part of a data block in memory: a window of chunks (up to
    # 2 MiB and more) goes in several.
    feed = FileFeed(tmp_path)
    feed.route({"a.dat": 0})
    pipe = Pipe()
    data = chunks(160, 9)  # about 3.2 MiB
    thread, errors = start(feed, {"a.dat": windows(data, 80)}, pipe)
    thread.join()
    assert errors == []
    raw = pipe.received
    sizes = []
    at = 0
    while at < len(raw):
        size = int.from_bytes(raw[at + 1 : at + 1 + INT_SIZE], "little")
        sizes.append(size)
        at += 1 + INT_SIZE + size
    assert sizes[-1] == 0 and len(sizes) >= 5
    assert max(sizes) <= FEED
    assert parse_block(raw) == (b"".join(data), True)


def test_a_worker_that_fails_aborts_the_others_at_once() -> None:
    # Worker B's pg_restore fails at once while worker A still loads: the reader must stop
    # now, not read and spill the rest of the dump for a worker that is gone (the failures
    # were looked at in the workers' order, so B's waited for A's end).
    from respaldo.operations.restore_parallel import _run_workers

    arrivals = Arrivals()
    aborted = threading.Event()
    seen: list[bool] = []

    def a() -> None:
        with arrivals.stopped_by_abort(aborted.set):
            # Generous: the bound matters only where the abort never comes (the old order).
            seen.append(aborted.wait(timeout=120))
        raise Aborted

    def b() -> None:
        raise RestoreError("B's pg_restore failed")

    with pytest.raises(RestoreError, match="B's pg_restore failed"):
        _run_workers(arrivals, [a, b])
    assert seen == [True]


def test_what_the_abort_made_of_another_worker_is_not_the_failure_told() -> None:
    # Worker A counts its rows when B's pg_restore is killed: the abort cancels A's count,
    # which fails as a query cancelled. A comes first in the workers' order, but B's kill
    # is the failure to tell (A's error was what was told).
    from respaldo.operations.restore_parallel import _run_workers

    arrivals = Arrivals()
    aborted = threading.Event()

    def a() -> None:
        with arrivals.stopped_by_abort(aborted.set):
            assert aborted.wait(timeout=120)  # a hang detector only
        raise QueryFailed("counting the restored rows failed: canceling statement")

    def b() -> None:
        raise PostgresError("pg_restore", -9, "")

    with pytest.raises(PostgresError, match="killed by signal 9"):
        _run_workers(arrivals, [a, b])


def test_a_batch_is_written_at_most_a_feed_a_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Writing the page cache 2 MiB a call cost about twice the system CPU of 1 MiB
    # calls: a reader's window of chunks (up to 2 MiB and more) goes in several.
    calls: list[int] = []
    real_writev = os.writev

    def writev(fd: int, parts: list[bytes]) -> int:
        calls.append(sum(map(len, parts)))
        return real_writev(fd, parts)

    monkeypatch.setattr(os, "writev", writev)
    parts = chunks(160, 9)  # about 3.2 MiB
    path = tmp_path / "spool"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        write_all(fd, list(parts))
    finally:
        os.close(fd)
    assert path.read_bytes() == b"".join(parts)
    assert len(calls) >= 3
    assert max(calls) <= FEED

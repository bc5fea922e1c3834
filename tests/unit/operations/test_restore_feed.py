"""The read-ahead of a directory-format restore (operations/restore_feed.py): a worker gets
its file's chunks from memory as they arrive, ends the data block only once the file is
complete and checked, and a worker that falls behind is spilled to disk while another
waits, so that the reader never waits on one worker while the other starves."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

import pytest

from respaldo.errors import IntegrityError, RestoreError
from respaldo.operations.restore_feed import BATCH, FEED, Aborted, FileFeed, write_all
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


def worker(feed: FileFeed, names: list[str], pipe: Pipe, errors: list[BaseException]) -> None:
    try:
        for name in names:
            feed.send_block(name, pipe.out, integer)
    except BaseException as exc:
        errors.append(exc)
    finally:
        pipe.close()


def start(
    feed: FileFeed, names: list[str], pipe: Pipe
) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []
    thread = threading.Thread(target=worker, args=(feed, names, pipe, errors))
    thread.start()
    return thread, errors


def test_a_worker_gets_its_file_from_memory_as_it_arrives(tmp_path: Path) -> None:
    feed = FileFeed(tmp_path, read_ahead=1 << 20)
    feed.route({"a.dat": 0})
    pipe = Pipe()
    thread, errors = start(feed, ["a.dat"], pipe)
    data = chunks(100, 1)

    def arriving() -> Iterator[list[bytes]]:
        for chunk in data[:-1]:
            yield [chunk]
            # Nothing of it is written to disk while the worker keeps up.
            assert list(tmp_path.iterdir()) == []
        # The worker had the first chunks long before the file was complete.
        assert pipe.first.wait(60)
        yield [data[-1]]

    told: list[int] = []
    assert feed.read_file("a.dat", arriving(), told.append, 10) == 10 + len(b"".join(data))
    assert told[-1] == 10 + len(b"".join(data))
    feed.finish()
    thread.join()
    assert errors == []
    assert parse_block(pipe.received) == (b"".join(data), True)
    assert list(tmp_path.iterdir()) == []


def test_a_busy_worker_makes_the_reader_wait_not_spill(tmp_path: Path) -> None:
    # Nobody else waits: the reader waits for the worker rather than write to disk.
    feed = FileFeed(tmp_path, read_ahead=2 * BATCH)
    feed.route({"a.dat": 0})
    pipe = Pipe(hold=True)
    thread, errors = start(feed, ["a.dat"], pipe)
    data = chunks(200, 2)  # 4 MiB: eight times what may be held
    reading = threading.Thread(target=lambda: _read(feed, "a.dat", data))
    reading.start()
    pipe.release.set()
    reading.join()
    feed.finish()
    thread.join()
    assert errors == []
    assert parse_block(pipe.received) == (b"".join(data), True)
    assert list(tmp_path.iterdir()) == []


def windows(data: list[bytes], size: int = 3) -> Iterator[list[bytes]]:
    """``data`` as the reader yields it: lists of chunks (a window's)."""
    for at in range(0, len(data), size):
        yield data[at : at + size]


def _read(feed: FileFeed, name: str, data: list[bytes]) -> None:
    feed.read_file(name, windows(data), lambda done: None, 0)


def test_a_worker_that_falls_behind_is_spilled_while_another_waits(tmp_path: Path) -> None:
    feed = FileFeed(tmp_path, read_ahead=2 * BATCH)
    feed.route({"a.dat": 0, "b.dat": 1})
    slow, other = Pipe(hold=True), Pipe()
    slow_thread, slow_errors = start(feed, ["a.dat"], slow)
    other_thread, other_errors = start(feed, ["b.dat"], other)
    a, b = chunks(200, 3), chunks(30, 4)
    # Worker 0 takes nothing (its pg_restore is stuck) while worker 1 waits for b.dat,
    # which comes after 4 MiB of a.dat: the reader goes on, a.dat's rest on disk.
    _read(feed, "a.dat", a)
    assert (tmp_path / "a.dat.part").stat().st_size > 0
    _read(feed, "b.dat", b)
    feed.finish()
    other_thread.join()
    assert other_errors == []
    assert parse_block(other.received) == (b"".join(b), True)
    slow.release.set()
    slow_thread.join()
    assert slow_errors == []
    assert parse_block(slow.received) == (b"".join(a), True)
    assert list(tmp_path.iterdir()) == []  # the spill file is gone once loaded


def failing(data: list[bytes]) -> Iterator[list[bytes]]:
    yield from windows(data)
    raise IntegrityError("stream 'dump/3.dat' does not match its checksum")


def test_a_file_that_fails_is_never_ended_and_its_worker_is_aborted(tmp_path: Path) -> None:
    feed = FileFeed(tmp_path)
    feed.route({"a.dat": 0})
    pipe = Pipe()
    thread, errors = start(feed, ["a.dat"], pipe)
    data = chunks(40, 5)
    with pytest.raises(IntegrityError):
        feed.read_file("a.dat", failing(data), lambda done: None, 0)
    feed.abort()  # as _feed_while_loading does on any failure
    thread.join()
    assert [type(e) for e in errors] == [Aborted]
    got, ended = parse_block(pipe.received)
    assert not ended  # pg_restore never saw the end of the table's data
    assert b"".join(data).startswith(got)


def test_a_reader_waiting_for_a_worker_is_woken_by_an_abort(tmp_path: Path) -> None:
    feed = FileFeed(tmp_path, read_ahead=2 * BATCH)
    feed.route({"a.dat": 0})
    pipe = Pipe(hold=True)  # the worker never takes more than the pipe holds
    thread, _ = start(feed, ["a.dat"], pipe)
    failures: list[BaseException] = []

    def read() -> None:
        try:
            _read(feed, "a.dat", chunks(200, 6))
        except BaseException as exc:
            failures.append(exc)

    reading = threading.Thread(target=read)
    reading.start()
    feed.abort()  # a worker's pg_restore failed
    reading.join()
    pipe.release.set()
    thread.join()
    # It could not have read on: the worker takes no more than its pipe holds.
    assert [type(e) for e in failures] == [Aborted]


def test_files_not_routed_are_written_whole_under_their_name(tmp_path: Path) -> None:
    feed = FileFeed(tmp_path)
    data = chunks(5, 7)
    _read(feed, "toc.dat", data)
    assert feed.wait_file("toc.dat").read_bytes() == b"".join(data)
    feed.route({"a.dat": 0})
    _read(feed, "blobs.toc", data)  # no worker loads it: whole, for the last pg_restore
    assert (tmp_path / "blobs.toc").read_bytes() == b"".join(data)


def test_a_worker_waiting_for_the_end_makes_the_reader_spill_not_wait(tmp_path: Path) -> None:
    # Worker 1 has loaded its tables and waits for the whole dump to build its indexes;
    # worker 0 is stuck: the reader goes on to the end rather than leave worker 1 idle.
    feed = FileFeed(tmp_path, read_ahead=2 * BATCH)
    feed.route({"a.dat": 0})
    slow = Pipe(hold=True)
    slow_thread, slow_errors = start(feed, ["a.dat"], slow)
    ended = threading.Event()

    def index_builder() -> None:
        feed.wait_done()
        ended.set()

    waiting = threading.Thread(target=index_builder)
    waiting.start()
    a = chunks(200, 8)
    _read(feed, "a.dat", a)
    assert (tmp_path / "a.dat.part").stat().st_size > 0
    feed.finish()
    waiting.join()
    assert ended.is_set() and slow.received == bytearray()
    slow.release.set()
    slow_thread.join()
    assert slow_errors == []
    assert parse_block(slow.received) == (b"".join(a), True)


def test_a_worker_that_fails_while_the_reader_waits_is_the_error_told(tmp_path: Path) -> None:
    # Nobody takes a.dat (its worker's pg_restore failed): the reader, waiting for room
    # or not yet begun, is woken by the abort, and the restore fails with the worker's
    # error, not with the abandoned read.
    feed = FileFeed(tmp_path, read_ahead=2 * BATCH)
    feed.route({"a.dat": 0})

    def load() -> Plan | None:
        feed.abort()  # as _run_workers does on a worker's failure
        raise RestoreError("pg_restore failed: relation does not exist")

    def steps() -> Iterator[None]:
        _read(feed, "a.dat", chunks(200, 9))
        yield

    with ThreadPoolExecutor(1) as pool:
        loading = pool.submit(load)
        with pytest.raises(RestoreError, match="pg_restore failed"):
            _feed_while_loading(feed, loading, steps())


def test_a_worker_that_fails_aborts_the_others_at_once() -> None:
    # Worker B's pg_restore fails at once while worker A still loads: the reader must stop
    # now, not read and spill the rest of the dump for a worker that is gone (the failures
    # were looked at in the workers' order, so B's waited for A's end).
    from respaldo.operations.restore_parallel import _run_workers

    aborted = threading.Event()
    seen: list[bool] = []

    def a() -> None:
        # Generous: the bound matters only where the abort never comes (the old order).
        seen.append(aborted.wait(timeout=120))
        raise Aborted

    def b() -> None:
        raise RestoreError("B's pg_restore failed")

    with pytest.raises(RestoreError, match="B's pg_restore failed"):
        _run_workers(aborted.set, [a, b])
    assert seen == [True]


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

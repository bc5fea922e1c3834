"""The spool of a custom-format ``restore --jobs`` (operations/restore_parallel.py) hands
the workers their data blocks from memory once it knows which worker loads which: the
file holds only what pg_restore reads itself (the table of contents, the blocks no worker
loads) and what a worker that fell behind was not given in memory while another had
nothing to load. Each block still reaches its worker whole, in order, its header checked
before any of it is written, and memory stays bounded: the reader waits for a busy worker
while the other has work."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from respaldo.errors import RestoreError
from respaldo.operations.restore_feed import Aborted
from respaldo.operations.restore_parallel import (
    FEED,
    LANE,
    Plan,
    Spool,
    _Block,
    _feed_while_loading,
    _send_block,
)
from respaldo.postgres.archive_offsets import BLOCK_DATA, ArchiveToc

INT_SIZE = 4
TOC_END = 1000
TOC = ArchiveToc(entries=[], end=TOC_END, int_size=INT_SIZE, off_size=8)
CHUNK = 20_000


class Pipe:
    """A pipe a worker writes into and a thread drains once ``release`` is set (at once
    unless ``hold``: the pg_restore behind it is slow); :meth:`wait_for` waits for bytes
    drained."""

    def __init__(self, *, hold: bool = False) -> None:
        r, w = os.pipe()
        self.out = os.fdopen(w, "wb")
        self._r = r
        self.received = bytearray()
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self._changed = threading.Condition()
        self._drain = threading.Thread(target=self._run)
        self._drain.start()

    def _run(self) -> None:
        self.release.wait()
        while data := os.read(self._r, 1 << 16):
            with self._changed:
                self.received += data
                self._changed.notify_all()
        os.close(self._r)
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, size: int) -> bool:
        with self._changed:
            return self._changed.wait_for(
                lambda: len(self.received) >= size or not self._drain.is_alive(), timeout=120
            )

    def close(self) -> bytes:
        self.out.close()
        self.release.set()
        self._drain.join()
        return bytes(self.received)


class ReaderWaits(threading.Condition):
    """The spool's condition, telling when the reader (``reader``'s thread) waits on it:
    for a worker to take its bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.reader: threading.Thread | None = None
        self.waits = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        if threading.current_thread() is self.reader:
            self.waits.set()
        return super().wait(timeout)


def block(dump_id: int, payload: bytes) -> bytes:
    """A custom-format data block: its header, one part, the zero length that ends it."""
    header = bytes([BLOCK_DATA, 0]) + dump_id.to_bytes(INT_SIZE, "little")
    return (
        header
        + b"\x00"
        + len(payload).to_bytes(INT_SIZE, "little")
        + payload
        + b"\x00"
        + bytes(INT_SIZE)
    )


class Dump:
    """A dump of a table of contents, then ``sizes`` blocks (ids 1, 2, …), and a last
    block (id 99) no worker loads; cut into chunks as the reader yields them."""

    def __init__(self, sizes: list[int]) -> None:
        self.raw = b"T" * TOC_END
        self.blocks: list[_Block] = []
        for n, size in enumerate(sizes, 1):
            start = len(self.raw)
            self.raw += block(n, os.urandom(size))
            self.blocks.append(_Block(n, start, len(self.raw)))
        self.rest_at = len(self.raw)
        self.raw += block(99, b"large objects")

    def windows(self, chunk: int = CHUNK, per_window: int = 4) -> Iterator[list[bytes]]:
        chunks = [self.raw[at : at + chunk] for at in range(0, len(self.raw), chunk)]
        for at in range(0, len(chunks), per_window):
            yield chunks[at : at + per_window]


def route(spool: Spool, dump: Dump, owners: list[int]) -> None:
    spool.route([(b.start, b.end, w) for b, w in zip(dump.blocks, owners, strict=True)])


def feed(spool: Spool, worker: int, blocks: list[_Block], pipe: Pipe) -> None:
    with spool.reader() as source:
        for b in blocks:
            _send_block(spool, worker, source.fileno(), pipe.out, TOC, b)


def run_workers(
    spool: Spool, dump: Dump, owners: list[int], pipes: list[Pipe]
) -> list[BaseException]:
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            mine = [b for b, w in zip(dump.blocks, owners, strict=True) if w == worker]
            feed(spool, worker, mine, pipes[worker])
        except BaseException as exc:
            errors.append(exc)
            spool.abort()

    threads = [threading.Thread(target=work, args=(w,)) for w in range(len(pipes))]
    for thread in threads:
        thread.start()
    try:
        for window in dump.windows():
            spool.append(window, sum(map(len, window)))
        spool.finish()
    except Aborted:
        pass
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.parametrize(
    ("sizes", "chunk"),
    [
        ([300_000, 200_000, 250_000, 100_000], CHUNK),
        # Chunks that hold several blocks, and blocks shorter than their header.
        ([30_000, 2, 9_000, 0, 20_000], 17_000),
    ],
)
def test_the_workers_blocks_go_from_memory_and_only_the_rest_to_the_file(
    tmp_path: Path, sizes: list[int], chunk: int
) -> None:
    dump = Dump(sizes)
    owners = [n % 2 for n in range(len(sizes))]
    spool = Spool(tmp_path / "dump")
    windows = list(dump.windows(chunk, per_window=1))
    for window in windows[:1]:  # the table of contents, before the plan
        spool.append(window, sum(map(len, window)))
    rest = windows[1:]
    route(spool, dump, owners)
    pipes = [Pipe(), Pipe()]
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            mine = [b for b, w in zip(dump.blocks, owners, strict=True) if w == worker]
            feed(spool, worker, mine, pipes[worker])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in (0, 1)]
    for thread in threads:
        thread.start()
    for window in rest:
        spool.append(window, sum(map(len, window)))
    spool.finish()
    for thread in threads:
        thread.join()
    assert errors == []
    for worker, pipe in enumerate(pipes):
        mine = [b for b, w in zip(dump.blocks, owners, strict=True) if w == worker]
        assert pipe.close() == b"".join(dump.raw[b.start : b.end] for b in mine)
    # The file is as long as the dump; what the last step reads is there, and of the
    # workers' blocks only what had been read before the plan (the first window).
    written = (tmp_path / "dump").read_bytes()
    assert len(written) == len(dump.raw)
    assert written[:TOC_END] == dump.raw[:TOC_END]
    assert written[dump.rest_at :] == dump.raw[dump.rest_at :]
    first = chunk
    after = sum(max(0, b.end - max(b.start, first)) for b in dump.blocks)
    assert spool.tally["memory"] + spool.tally["spilled"] == after
    assert (spool.tally["memory"] > 0) == (after > 0)  # a worker's first bytes: memory


def test_a_worker_behind_while_the_other_waits_gets_its_bytes_through_the_file(
    tmp_path: Path,
) -> None:
    # Worker 0's pg_restore takes nothing for now; worker 1's next block comes after a
    # long block of worker 0's. Holding that block in memory would take 6 MiB;
    # waiting for worker 0 would leave worker 1 idle: the reader writes it to the file.
    dump = Dump([50_000, 6 * FEED, 300_000])
    owners = [1, 0, 1]
    spool = Spool(tmp_path / "dump")
    route(spool, dump, owners)
    pipes = [Pipe(hold=True), Pipe()]
    done: list[list[BaseException]] = []
    running = threading.Thread(target=lambda: done.append(run_workers(spool, dump, owners, pipes)))
    running.start()
    # Worker 1 gets its last block while worker 0 is held: only possible if the reader
    # went on past worker 0's block without waiting for it.
    first, last = dump.blocks[0], dump.blocks[2]
    assert pipes[1].wait_for(first.end - first.start + last.end - last.start)
    assert spool.tally["spilled"] > 0
    pipes[0].release.set()
    running.join()
    assert done == [[]]
    assert pipes[0].close() == dump.raw[dump.blocks[1].start : dump.blocks[1].end]
    assert pipes[1].close() == (dump.raw[first.start : first.end] + dump.raw[last.start : last.end])


def test_the_reader_waits_for_a_busy_worker_while_the_other_has_work(tmp_path: Path) -> None:
    # Both workers' pg_restores take nothing for now, and each has bytes to load: the
    # reader holds at most LANE bytes for a worker and waits, writing none to the file.
    # Worker 1's first block fits its share (a longer one might not, while worker 0
    # still waits for its first bytes: then the reader would write the rest out).
    dump = Dump([FEED // 2, 6 * FEED, 100_000])
    owners = [1, 0, 1]
    spool = Spool(tmp_path / "dump")
    watched = ReaderWaits()
    spool._changed = watched
    route(spool, dump, owners)
    pipes = [Pipe(hold=True), Pipe(hold=True)]
    done: list[list[BaseException]] = []
    running = threading.Thread(target=lambda: done.append(run_workers(spool, dump, owners, pipes)))
    watched.reader = running
    running.start()
    assert watched.waits.wait(120)
    with watched:
        held = [lane.held for lane in spool._lanes]
        assert spool.tally["spilled"] == 0
    assert 0 < held[0] <= LANE and held[1] <= LANE
    for pipe in pipes:
        pipe.release.set()
    running.join()
    assert done == [[]]
    for worker, pipe in enumerate(pipes):
        mine = [b for b, w in zip(dump.blocks, owners, strict=True) if w == worker]
        assert pipe.close() == b"".join(dump.raw[b.start : b.end] for b in mine)


def test_a_block_without_its_own_header_is_never_fed(tmp_path: Path) -> None:
    dump = Dump([100_000])
    spool = Spool(tmp_path / "dump")
    wrong = _Block(7, dump.blocks[0].start, dump.blocks[0].end)  # noted as entry 7's
    spool.route([(wrong.start, wrong.end, 0)])
    for window in dump.windows():
        spool.append(window, sum(map(len, window)))
    spool.finish()
    pipe = Pipe()
    with (
        spool.reader() as source,
        pytest.raises(RestoreError, match="data block of entry 7 is not where"),
    ):
        _send_block(spool, 0, source.fileno(), pipe.out, TOC, wrong)
    assert pipe.close() == b""  # not a byte of it


def test_a_block_that_does_not_end_where_noted_fails(tmp_path: Path) -> None:
    dump = Dump([100_000, 50_000])
    spool = Spool(tmp_path / "dump")
    first = dump.blocks[0]
    short = _Block(first.dump_id, first.start, first.end - 3)  # ends inside its end mark
    spool.route([(short.start, short.end, 0)])
    for window in dump.windows():
        spool.append(window, sum(map(len, window)))
    spool.finish()
    pipe = Pipe()
    with (
        spool.reader() as source,
        pytest.raises(RestoreError, match="data block of entry 1 is not where"),
    ):
        _send_block(spool, 0, source.fileno(), pipe.out, TOC, short)
    pipe.close()


def test_the_reader_waiting_for_a_worker_is_woken_when_the_loading_fails(
    tmp_path: Path,
) -> None:
    # Nobody takes worker 0's bytes (its pg_restore failed before it started): the
    # reader, waiting for room, is woken by the abort, and the loading's error is told.
    dump = Dump([6 * FEED])
    spool = Spool(tmp_path / "dump")
    watched = ReaderWaits()
    spool._changed = watched
    watched.reader = threading.current_thread()
    route(spool, dump, [0])

    def load() -> Plan | None:
        assert watched.waits.wait(120)  # the worker's share is full: the reader waits
        spool.abort()  # as _load does when it fails
        raise RestoreError("pg_restore failed: the pre-data section")

    def steps() -> Iterator[None]:
        for window in dump.windows():
            spool.append(window, sum(map(len, window)))
            yield

    with ThreadPoolExecutor(1) as pool:
        loading = pool.submit(load)
        with pytest.raises(RestoreError, match="the pre-data section"):
            _feed_while_loading(spool, loading, steps())
    assert watched.waits.is_set()

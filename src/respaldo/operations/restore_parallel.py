"""``restore --jobs N`` of a custom-format dump: the tables' data loads while the dump
still arrives.

The dump is read from the repository once, in order (every chunk authenticated and its
id checked as it is read; the stream's SHA-256 at its end), into a :class:`Spool`.
Meanwhile, as soon as its table of contents is there, one pg_restore creates the pre-data
section (the empty tables, types, functions) in the staging database, and then ``N``
pg_restore processes each load the data of some of the tables (``--use-list``, the tables
split by the sizes of their data blocks as the backup noted them and their rows
(:data:`ROW_BYTES`), heaviest first to the least loaded), each fed its blocks as they
arrive: from memory, or, for a worker that fell behind while another had nothing to
load, from the private spool file, which otherwise holds only what pg_restore reads
itself (the table of contents, large objects). A worker that is done counts its
tables' rows against the backup's (:class:`RowCheck`) and builds the indexes, primary
keys and foreign keys that need only its own tables (:func:`early_entries`), as
``pg_restore --jobs`` does while other tables still load; once the whole stream has
been read and its checksum matched and every worker is done, the spool gets its data
offsets and one ``pg_restore --jobs N`` restores the rest (sequence values, large
objects, foreign keys across workers, triggers…) from it, with what the last worker's
step had not begun once the checksum matched and no other step ran. From the pre-data
section to the end of that run the staging database's tables have autovacuum off
(:func:`_pause_autovacuum`).

Why this keeps "nothing unverified reaches the target": every byte handed to a
pg_restore is of a chunk already authenticated and checked against its id; only the
stream's completeness (its SHA-256) is known later. Until then, data and the workers'
own indexes and keys go into the staging database only (respaldo's own scratch
database, not the target), and the rest of the post-data section, the last row-count
check and the rename start only once the checksum has matched. If it does not match,
or a chunk, a count or a worker's pg_restore fails, every other pg_restore is killed at
once (:func:`_data_worker`), and the caller drops the staging database: the target is
as it was. See docs/disaster-recovery.md.

Where the data blocks are comes from the backup's notes (``dump_blocks``), used only
where they fit the archive: every entry with data must have one, in the table of
contents' order, the first right after it; and each block is checked as it is fed (its
header names its entry; the block before it ends with a zero length). An archive whose
table of contents this module does not read (:mod:`respaldo.postgres.archive_offsets`),
or without fitting notes, is restored as before: all of it spooled and checked first,
then ``pg_restore --jobs N`` of the data and post-data from the spool.
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import IO, Any

from respaldo import cancellation, phrases
from respaldo.errors import PostgresError, RestoreError
from respaldo.operations.pardump import TOC_FILE, dump_files
from respaldo.operations.restore_feed import FEED as FEED
from respaldo.operations.restore_feed import Aborted as _Aborted
from respaldo.operations.restore_feed import Arrivals as _Arrivals
from respaldo.operations.restore_feed import FileFeed, send_range
from respaldo.operations.restore_feed import write_all as _write_all
from respaldo.phrases import N_, Phrase
from respaldo.postgres import (
    ConnInfo,
    count_rows,
    hash_partition_leaves,
    pause_autovacuum,
    pg_restore,
    resume_autovacuum,
)
from respaldo.postgres.archive_offsets import (
    BLOCK_BLOBS,
    BLOCK_DATA,
    OFFSET_NOT_SET,
    SECTION_POST_DATA,
    SECTION_PRE_DATA,
    ArchiveToc,
    TocEntry,
    custom_from_directory,
    read_toc,
    set_offsets,
    write_offsets,
)
from respaldo.postgres.commands import RunningCommand, widen_pipe
from respaldo.postgres.counts import count_key, counts_format, find_recorded
from respaldo.repository import Manifest

log = logging.getLogger(__name__)


LANE = 2 * FEED
"""The most bytes of a worker's blocks the reader holds in memory for it, but always one
window's part (up to about 2 MiB) while it holds none; the worker holds what it took
besides. Beyond that the reader waits for the worker, or, while another worker has
nothing to load, writes them to the spool (:class:`Spool`)."""

Parts = list[bytes | memoryview]
Item = tuple[int, Parts | None, int]
"""What a worker is handed: ``(offset, parts, length)``, its bytes in memory (a window's
chunks, or the part of them in one block), or ``(offset, None, length)`` in the file."""


@dataclass
class _Lane:
    """What the reader has routed to one worker and the worker has not taken yet, in
    the stream's order (:data:`Item`)."""

    items: deque[Item] = field(default_factory=deque)
    held: int = 0
    """Bytes of ``items`` in memory."""
    spilling: bool = False
    """The reader writes this worker's bytes to the spool until it has taken them all."""
    spilled: list[tuple[int, int]] = field(default_factory=list)
    """Ranges in the reader's batch, routed here once the batch is written."""
    hungry: bool = False
    """The worker waits for bytes and none are there (cleared as they are given: a
    worker not yet woken to take them is not short of any)."""


class Spool(_Arrivals):
    """The dump, written to ``path`` as it is read; readers wait for the bytes they need.

    Appended chunks are written a batch at a time (``writev`` of up to FEED bytes), and
    only then do readers hear of them: per chunk (about 20 KiB), the write, the wake-up
    of every waiting worker and its ``sendfile`` cost more than the bytes. A reader that
    waits for bytes still in the batch writes the batch itself first, and while one
    waits every chunk is written at once: no reader waits for a batch to fill.

    Once :meth:`route` has said which worker loads which data block, the bytes of those
    blocks go to their worker from memory (:meth:`take`), not through the file: at most
    LANE bytes a worker. When a worker's share is full, the reader waits for it, unless
    another worker has nothing to load: then the bytes are written into the file at
    their offset, and the worker reads them from there (its queue says where), until it
    has caught up. The file then holds the table of contents, the blocks no worker loads
    (large objects) and what was spilled; the last step's pg_restore reads only those
    (their offsets set, :func:`write_offsets`). Writing the whole dump into the page cache
    for the workers to ``sendfile`` from cost 0.3-1.2 system CPU-s per GiB, by the
    machine's state; a copy into a pipe about 0.3 (docs/benchmarks.md, session 16)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._fh = path.open("wb", buffering=0)
        self._size = 0
        """Every byte before this one that goes into the file is there."""
        self._at = 0
        """The bytes of the stream appended so far."""
        self._batch: list[bytes | memoryview] = []
        self._batch_at = 0
        self._batched = 0
        self._waiting = 0
        self._routes: list[tuple[int, int, int]] = []
        """``(start, end, worker)`` of the data blocks the workers load, ascending."""
        self._route = 0
        """The first of ``_routes`` that does not end before ``_at``."""
        self._lanes: list[_Lane] = []
        self.tally = {"file": 0, "memory": 0, "spilled": 0}
        """Bytes written into the file for pg_restore's own reads, handed to the workers
        from memory, and written into the file for a worker that fell behind."""
        self._writing = threading.Lock()
        """Held to change the batch or to write into the spool (lock order: this one,
        then the condition)."""

    def route(self, blocks: list[tuple[int, int, int]]) -> None:
        """From now on the bytes of each ``(start, end, worker)`` block go to that worker
        (:meth:`take`); what of them was read already is in the file, and the worker's
        queue says so."""
        with self._writing:
            self._write_batch()
            with self._arriving():
                self._lanes = [_Lane() for _ in range(max((w for *_, w in blocks), default=-1) + 1)]
                for start, end, worker in sorted(blocks):
                    if start < self._at:
                        length = min(end, self._at) - start
                        self._lanes[worker].items.append((start, None, length))
                self._routes = sorted(blocks)
                self._route = 0

    def append(self, parts: list[bytes], size: int) -> None:
        """Add ``parts`` (``size`` bytes in all: a window of chunks) to the stream.
        Raises _Aborted once a worker has failed (its error is the one to tell)."""
        with self._writing:
            if self._fh.closed:
                raise _Aborted
            if self._route >= len(self._routes):
                self._to_file(parts, size)
                self._at += size
            else:
                with self._changed:
                    self._split(parts, size)
            if (
                self._batched >= FEED
                or self._waiting
                or any(lane.hungry and lane.spilled for lane in self._lanes)
            ):
                self._write_batch()
            elif not self._batched:
                self._visible()

    def _to_file(self, parts: Sequence[bytes | memoryview], size: int) -> None:
        """Add ``parts``, which go into the file at ``_at``, to the batch."""
        if self._batched and self._batch_at + self._batched != self._at:
            self._write_batch()  # the batch is written where it starts: one run each
        if not self._batched:
            self._batch_at = self._at
        self._batch.extend(parts)
        self._batched += size
        self.tally["file"] += size

    def _split(self, parts: list[bytes], size: int) -> None:
        """Route ``parts`` (``size`` bytes at ``_at``), a run at a time: to the file, or
        to the worker whose block holds the run (per window, not per chunk: a chunk's
        routing and hand-over cost more than its bytes); called with both locks held."""
        end = self._at + size
        i = skip = 0  # the next part, and how much of it went already
        while self._at < end:
            while self._route < len(self._routes) and self._routes[self._route][1] <= self._at:
                self._route += 1
            if self._route < len(self._routes) and self._routes[self._route][0] <= self._at:
                _, stop, worker = self._routes[self._route]
                upto = min(end, stop)
            else:
                worker = -1
                upto = (
                    min(end, self._routes[self._route][0])
                    if self._route < len(self._routes)
                    else end
                )
            run: Parts = []
            need = upto - self._at
            while need:
                part = parts[i]
                left = len(part) - skip
                if left <= need:
                    run.append(memoryview(part)[skip:] if skip else part)
                    need -= left
                    i += 1
                    skip = 0
                else:
                    run.append(memoryview(part)[skip : skip + need])
                    skip += need
                    need = 0
            if worker < 0:
                self._to_file(run, upto - self._at)
            else:
                self._give(self._lanes[worker], run, upto - self._at)
            self._at = upto

    def _give(self, lane: _Lane, run: Parts, size: int) -> None:
        """Hand ``run`` (``size`` bytes at ``_at``) to ``lane``'s worker from memory, or
        write it into the file for the worker (see the class's docstring)."""
        if lane.spilled and not lane.spilling:
            self._write_batch()  # what was spilled goes before what comes from memory
        while not lane.spilling:
            if self._aborted:
                raise _Aborted
            if not lane.held or lane.held + size <= LANE:
                lane.items.append((self._at, run, size))
                lane.held += size
                self.tally["memory"] += size
                if lane.hungry:
                    lane.hungry = False  # it has bytes, even before it runs to take them
                    self._changed.notify_all()
                return
            if any(other.hungry for other in self._lanes if other is not lane):
                lane.spilling = True  # until it has taken what it has: no small writes
                break
            # Whoever waits for the file's bytes gets them while the reader waits.
            self._write_batch()
            self._changed.wait()
        self._to_file(run, size)
        self.tally["file"] -= size
        self.tally["spilled"] += size
        if lane.spilled and lane.spilled[-1][1] == self._at:
            lane.spilled[-1] = (lane.spilled[-1][0], self._at + size)
        else:
            lane.spilled.append((self._at, self._at + size))

    def _write_batch(self) -> None:
        """Write the batch and tell the waiters; called with ``_writing`` held."""
        if self._batched:
            fd = self._fh.fileno()
            os.lseek(fd, self._batch_at, os.SEEK_SET)
            _write_all(fd, self._batch)
            self._batch, self._batched = [], 0
        self._visible()

    def _visible(self) -> None:
        """The batch is empty: every byte read so far that goes into the file is there,
        and the spilled bytes go to their workers."""
        with self._arriving():
            self._size = self._at
            for lane in self._lanes:
                for start, end in lane.spilled:
                    lane.items.append((start, None, end - start))
                    lane.hungry = False
                lane.spilled.clear()

    def take(self, worker: int, end: int) -> list[Item]:
        """The next bytes of ``worker``'s blocks, up to ``end`` and about FEED of them in
        memory; waits while there are none. Raises _Aborted, or RestoreError if the stream
        ended without them."""
        lane = self._lanes[worker]
        with self._changed:
            while not lane.items:
                if self._aborted:
                    raise _Aborted
                if self._done:
                    raise RestoreError(
                        f"the dump ends at byte {self._size}, before the data block the "
                        f"backup noted up to byte {end}",
                        hint="restore it with --jobs 1",
                    )
                if not lane.hungry:
                    lane.hungry = True
                    self._changed.notify_all()  # the reader may spill for this worker
                self._changed.wait()
            lane.hungry = False
            taken: list[Item] = []
            size = 0
            while lane.items and lane.items[0][0] < end and size < FEED:
                offset, data, length = lane.items.popleft()
                if data is None and offset + length > end:
                    # Spilled runs span the worker's blocks: one block at a time.
                    lane.items.appendleft((end, None, offset + length - end))
                    length = end - offset
                taken.append((offset, data, length))
                if data is not None:
                    lane.held -= length
                    size += length
            if not lane.items and not lane.spilled:
                lane.spilling = False  # caught up: from memory again
            self._changed.notify_all()  # the reader may wait for room
            return taken

    def finish(self) -> None:
        """The whole stream is there, its checksum checked. Raises _Aborted once a
        worker has failed."""
        with self._writing:
            if self._fh.closed:
                raise _Aborted
            self._write_batch()
            # As long as the dump: the workers' blocks are holes, which nothing reads.
            self._fh.truncate(self._at)
            self._fh.close()
        self._mark_done()

    def abort(self) -> None:
        super().abort()
        # Not while the reader writes into it: the file's descriptor, closed in the
        # middle of a write, may be another file's by then.
        with self._writing, contextlib.suppress(OSError):
            self._fh.close()

    def wait_for(self, end: int) -> int:
        """Block until ``end`` bytes are there (or the stream is complete, shorter);
        returns how many are. Raises _Aborted."""
        with self._changed:
            if self._size >= end or self._done or self._aborted:
                self._wait(lambda: self._size >= end)
                return self._size
        with self._writing:
            self._waiting += 1
            if not self._fh.closed:
                self._write_batch()
        try:
            with self._changed:
                self._wait(lambda: self._size >= end)
                return self._size
        finally:
            with self._writing:
                self._waiting -= 1

    def reader(self) -> _SpoolReader:
        return _SpoolReader(self)


class _SpoolReader:
    """A read-only file on the spool whose reads wait for the bytes to arrive."""

    def __init__(self, spool: Spool) -> None:
        self._spool = spool
        self._fd = os.open(spool.path, os.O_RDONLY)
        self._pos = 0

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> _SpoolReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, size: int, /) -> bytes:
        available = self._spool.wait_for(self._pos + size)
        data = os.pread(self._fd, max(0, min(size, available - self._pos)), self._pos)
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET, /) -> int:
        self._pos = offset if whence == os.SEEK_SET else self._pos + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def fileno(self) -> int:
        return self._fd

    def send(self, out: IO[bytes], start: int, end: int) -> None:
        """Write bytes ``start`` to ``end`` of the spool to ``out`` (a pipe) as they
        arrive, by ``sendfile``: the kernel copies them, not this process. Raises
        RestoreError if the stream ends before ``end``, BrokenPipeError if the reader
        has gone."""
        out.flush()
        at = start
        while at < end:
            available = self._spool.wait_for(at + 1)
            if available <= at:
                raise RestoreError(
                    f"the dump ends at byte {available}, before the data block the backup "
                    f"noted up to byte {end}",
                    hint="restore it with --jobs 1",
                )
            at += send_range(out, self._fd, at, min(end, available) - at)


@dataclass
class Plan:
    """Which pg_restore loads which data block (``starts``: dump id -> block start)."""

    toc: ArchiveToc
    starts: dict[int, int]
    ends: dict[int, int]
    workers: list[list[int]] = field(default_factory=list)
    """Per worker, the dump ids of the TABLE DATA entries it loads, in archive order."""
    early: list[int] = field(default_factory=list)
    """Indexes and constraints restored by the workers (:func:`early_entries`)."""
    paused: list[tuple[str, str]] = field(default_factory=list)
    """The tables whose autovacuum is off until the restore's last step has ended
    (:func:`_pause_autovacuum`)."""
    jobs: int = 1
    """``restore --jobs``: the sessions the workers (loading, then each one's post-data
    step) may hold on the target server together (:meth:`sessions`)."""
    _busy: int | None = field(default=None, repr=False, compare=False)
    _ended: int = field(default=0, repr=False, compare=False)
    """Workers whose post-data step has ended."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def loaded(self) -> None:
        """A worker's loading is done: its session is given back (once a worker)."""
        with self._lock:
            self._busy = (len(self.workers) if self._busy is None else self._busy) - 1

    @contextlib.contextmanager
    def sessions(self, wanted: int) -> Iterator[int]:
        """For a worker whose loading is done (:meth:`loaded`): the sessions a part of
        its post-data step may open, at most ``wanted``, at least one, and no more than
        ``jobs`` less those the other workers hold (one each while they load, what their
        steps took). Given back when the block ends. Without this each step took
        ``jobs``: up to ``jobs`` squared sessions at once, each index build with its own
        ``maintenance_work_mem``, on a server that ``--jobs`` was to spare."""
        with self._lock:
            busy = len(self.workers) if self._busy is None else self._busy
            taken = max(1, min(wanted, self.jobs - busy))
            self._busy = busy + taken
        try:
            yield taken
        finally:
            with self._lock:
                assert self._busy is not None
                self._busy -= taken

    def step_ended(self) -> None:
        """A worker's post-data step has ended (once a worker)."""
        with self._lock:
            self._ended += 1

    def last_step(self) -> bool:
        """Whether every other worker has loaded its tables and ended its step."""
        with self._lock:
            return self._ended >= len(self.workers) - 1

    def rest(self) -> list[int]:
        """Every entry no worker restored (pg_restore's sections then choose)."""
        loaded = {i for ids in self.workers for i in ids} | set(self.early)
        return [e.dump_id for e in self.toc.entries if e.dump_id not in loaded]


EARLY_KINDS = frozenset({"INDEX", "CONSTRAINT", "FK CONSTRAINT", "INDEX ATTACH"})


def early_entries(toc: ArchiveToc, data_ids: list[int]) -> list[int]:
    """The indexes and constraints (primary keys, unique ones, foreign keys, partitions'
    index attachments) that need nothing but the tables whose data ``data_ids`` are,
    pre-data definitions and one another: a worker that has loaded those tables builds
    them while the others still load theirs, as ``pg_restore --jobs`` does. A foreign key
    between this worker's tables is checked here, not after every worker (at 1 GB the
    foreign keys were half of what waited for the last worker: docs/benchmarks.md); one
    that needs another worker's table waits for the end, as does everything that needs a
    post-data entry not in this list. A partitioned table (it has no data of its own)
    counts as loaded once every partition attached to it is (:func:`_loaded_tables`).
    In archive order (pg_dump's order puts what an entry needs before it, and
    ``pg_restore --use-list`` restores in the list's order). Pure."""
    by_id = {e.dump_id: e for e in toc.entries}
    loaded = _loaded_tables(toc, by_id, data_ids)
    early: list[int] = []
    chosen: set[int] = set()
    for entry in toc.entries:
        if entry.section != SECTION_POST_DATA or entry.kind not in EARLY_KINDS:
            continue
        # Ids the table of contents does not hold (pg_dump's section boundaries) need
        # nothing.
        needs = [by_id[d] for d in entry.depends if d in by_id]
        tables = [d for d in needs if d.kind == "TABLE"]
        if tables and all(
            d.dump_id in loaded
            if d.kind == "TABLE"
            else d.section == SECTION_PRE_DATA or d.dump_id in chosen
            for d in needs
        ):
            early.append(entry.dump_id)
            chosen.add(entry.dump_id)
    return early


def _loaded_tables(toc: ArchiveToc, by_id: dict[int, TocEntry], data_ids: list[int]) -> set[int]:
    """The tables whose data ``data_ids`` are, and the partitioned tables all of whose
    partitions are among them (at any depth). A table without data of its own that is not
    partitioned (its data left out of the dump) is never loaded: what needs it waits for
    the end, as before. A partition is a table attached to its parent by a ``TABLE
    ATTACH`` entry, whose TABLE entry depends on the parent. Pure."""
    loaded = {
        d for i in data_ids for d in by_id[i].depends if d in by_id and by_id[d].kind == "TABLE"
    }
    with_data = {
        d
        for e in toc.entries
        if e.kind == "TABLE DATA"
        for d in e.depends
        if d in by_id and by_id[d].kind == "TABLE"
    }
    partitions: dict[int, set[int]] = {}
    for entry in toc.entries:
        if entry.kind != "TABLE ATTACH":
            continue
        tables = [d for d in entry.depends if d in by_id and by_id[d].kind == "TABLE"]
        for child in tables:
            for parent in tables:
                if parent != child and parent in by_id[child].depends:
                    partitions.setdefault(parent, set()).add(child)
    grown = True
    while grown:
        grown = False
        for parent, children in partitions.items():
            if parent not in loaded and parent not in with_data and children <= loaded:
                loaded.add(parent)
                grown = True
    return loaded


CheckRows = Callable[[list[TocEntry]], int]
"""Counts a worker's loaded tables against the backup's, raising if one differs;
returns how many it counted (:class:`RowCheck`)."""


def _post_data_early(
    spool: _Arrivals,
    source: Path,
    plan: Plan,
    data_ids: list[int],
    conninfo: ConnInfo,
    no_owner: bool,
    bindir: Path | None,
    check_rows: CheckRows | None,
) -> None:
    """After a worker: its tables' row counts checked (``check_rows``), then the indexes
    and constraints of its tables (:func:`early_entries`) built at once, by ``pg_restore
    --jobs`` with the sessions the others leave (:meth:`Plan.sessions`), as ``pg_restore
    --jobs`` builds them while other tables still load. This no longer waits for the
    whole dump's checksum: they are built in the staging database, which is not the
    target, from a table of contents and data of chunks each already authenticated and
    checked against its id; the rest of the post-data section, the last row counts and
    the rename still wait for the checksum, and a dump that fails it kills this step
    (:meth:`~respaldo.operations.restore_feed.Arrivals.stopped_by_abort`) and the staging
    database is dropped. Waiting put every worker's builds after the read, the server
    idle for them meanwhile (docs/benchmarks.md, session 11)."""
    counted = 0
    if check_rows is not None:
        by_id = {e.dump_id: e for e in plan.toc.entries}
        # In this worker's own session's stead: the sessions stay within --jobs.
        counted = check_rows([by_id[i] for i in data_ids if i in by_id])
    ids = early_entries(plan.toc, data_ids)
    plan.loaded()
    # In the -v log: when each worker's step starts, against the checksum's match.
    log.info(
        "a worker has loaded %d tables (%d row counts checked, any other at the end); "
        "%d of their indexes and constraints follow",
        len(data_ids),
        counted,
        len(ids),
    )
    part_size = max(EARLY_PART, -(-len(ids) // EARLY_PARTS))
    done = 0
    while done < len(ids):
        if spool.matched and plan.last_step():
            # Nothing else runs and the rest may start: what is left of this list goes
            # to the last step's pg_restore --jobs with it. Run here first, the list and
            # the rest were two runs one after the other: each one's last entry left the
            # other sessions idle, the rest's start waited for the list's slowest entry,
            # and another pg_restore read the table of contents (docs/benchmarks.md,
            # session 15).
            log.info("the other %d of them with the rest", len(ids) - done)
            break
        with plan.sessions(len(ids) - done) as jobs:
            # Given fewer sessions than it could use (other workers load, or their
            # steps hold the rest), only a part of the list now, then ask again:
            # pg_restore's --jobs is fixed for its run, and the whole list on one
            # session went on alone long after the other step had ended
            # (docs/benchmarks.md, session 14).
            whole = jobs >= min(len(ids) - done, plan.jobs)
            part = ids[done:] if whole else ids[done : done + part_size]
            log.info("%d of them now, %d sessions", len(part), jobs)
            name = f"{data_ids[0]}-{done}" if done else f"{data_ids[0]}"
            _restore_early(spool, source, part, name, conninfo, no_owner, bindir, jobs)
        plan.early.extend(part)
        done += len(part)
    plan.step_ended()


EARLY_PARTS = 4
"""The parts a worker's post-data step is cut into while it has fewer sessions than it
could use: each part is one more pg_restore run (a connection, the table of contents
read again), so a few."""
EARLY_PART = 4
"""The fewest entries a part holds."""


def _restore_early(
    spool: _Arrivals,
    source: Path,
    ids: list[int],
    name: str,
    conninfo: ConnInfo,
    no_owner: bool,
    bindir: Path | None,
    jobs: int,
) -> None:
    """``pg_restore --jobs jobs`` of the entries ``ids`` (in this order: what an entry
    needs is before it) from ``source``, stopped if the read is abandoned."""
    listed = source.with_name(f"early-{name}.list")
    listed.write_text("".join(f"{i};\n" for i in ids), encoding="utf-8")
    try:
        restore = pg_restore(
            conninfo,
            source=source,
            jobs=jobs,
            no_owner=no_owner,
            use_list=listed,
            bindir=bindir,
        )
        # Around the wait for pg_restore (leaving ``restore`` is that wait), not
        # inside it: the stop was gone before the index builds ran, and a dump that
        # failed its checksum waited for them. ``cancel``: only a signal, from the
        # aborting thread; this one reaps the child.
        with spool.stopped_by_abort(restore.cancel), restore:
            pass
    except PostgresError:
        if spool.aborted:
            raise _Aborted from None  # killed: the reader's failure is the one to tell
        raise


ROW_BYTES = 250
"""What loading one row costs the server, in bytes of COPY data: a worker's share is
weighed as its blocks' bytes plus this per row. By bytes alone, at 1 GB the table of
photos (558 MB of hex ``bytea`` in 2,750 rows) went to one worker and the 22 other
tables (390 MB, 3.8 million rows) to the other, whose COPY cost the server 6.4 CPU-s
against 2.7 for the photos: every other step waited for it. Measured on those two
workers: about 4.8 ns a byte and 1.2 µs a row (docs/benchmarks.md)."""


def rows_of(meta: dict[str, Any]) -> Callable[[TocEntry], int]:
    """The rows of a TABLE DATA entry's table as the backup's manifest (``meta``)
    recorded them; 0 when it did not (an older backup, a name not found). Pure."""
    recorded = meta.get("row_counts")
    fmt = counts_format(meta)

    def rows(entry: TocEntry) -> int:
        if not isinstance(recorded, dict) or not entry.tag:
            return 0
        key = find_recorded(recorded, count_key(entry.namespace, entry.tag, fmt))
        value = recorded.get(key) if key is not None else None
        return value if isinstance(value, int) and value > 0 else 0

    return rows


def count_difference(table: str, counted: int | None, recorded: int) -> str:
    """One line of :func:`counts_differ`: a table counted ``counted`` rows (None: not
    found) where the backup recorded ``recorded``. Both messages are phrases of
    respaldo.reasons: the drill's stored check and the alert say it in Spanish."""
    if counted is None:
        return Phrase(
            N_("{table}: missing rows, {recorded} expected"), table=table, recorded=recorded
        )
    # Agreeing ("1 rows, 2 expected" before); the parameter hides the function's name.
    return phrases.counted(
        counted,
        N_("{table}: {count} row, {recorded} expected"),
        N_("{table}: {count} rows, {recorded} expected"),
        table=table,
        recorded=recorded,
    )


def counts_differ(wrong: list[str], hint: str | None = None) -> RestoreError:
    """The error of a restore whose row counts differ from the backup's (``wrong``: one
    line per table)."""
    shown = "; ".join(wrong[:5]) + (f"; and {len(wrong) - 5} more" if len(wrong) > 5 else "")
    return RestoreError(
        f"restored row counts differ from the backup's: {shown}",
        hint=hint or "the backup may be damaged; try another backup and run 'respaldo verify'",
    )


class RowCheck:
    """A worker's tables' row counts, checked against those the backup's snapshot
    recorded (``meta``) as soon as the worker has loaded them, in its own session's stead
    (:func:`_post_data_early`); ``checked`` holds their keys, which the restore's last
    check then does not count again.

    A count taken then is the count the last check would take: nothing after a table's
    data (indexes, constraints, triggers, policies) adds or removes its rows, and each
    is counted ``FROM ONLY`` (format 2: the rows its own data block holds). A backup of
    format 1 counted a table with its inheritance children, which another worker may
    still be loading: those are all left to the last check. pg_restore's COPY reports
    how many rows it copied, but pg_restore prints no count, and the server's
    statistics (``n_tup_ins``) are sent late and may be off: a ``count(*)`` is the one
    trustworthy count."""

    def __init__(self, meta: dict[str, Any], conninfo: ConnInfo) -> None:
        recorded = meta.get("row_counts")
        self._recorded: dict[str, int] = recorded if isinstance(recorded, dict) else {}
        self._fmt = counts_format(meta)
        self._conninfo = conninfo
        self._lock = threading.Lock()
        self._rerouted: dict[str, str] | None = None
        self.checked: set[str] = set()

    def __call__(self, entries: list[TocEntry]) -> int:
        """Count the tables of ``entries`` (TABLE DATA) whose counts the backup recorded
        under their exact names; raise RestoreError if one differs. Returns how many were
        counted (the others are left to the last check)."""
        if self._fmt < 2:
            return 0
        with self._lock:
            if self._rerouted is None:
                # Leaves of hash-partitioned tables: another worker's rows may still land
                # in them (restore.rerouted); their tree's total is checked at the end.
                self._rerouted = hash_partition_leaves(self._conninfo, fmt=self._fmt)
            rerouted = self._rerouted
        tables: dict[str, tuple[str, str]] = {}
        for entry in entries:
            key = count_key(entry.namespace, entry.tag, self._fmt)
            if (
                entry.kind == "TABLE DATA"
                and entry.tag
                and key in self._recorded
                and key not in rerouted
            ):
                tables[key] = (entry.namespace, entry.tag)
        if not tables:
            return 0
        counts = count_rows(self._conninfo, list(tables.values()), fmt=self._fmt)
        wrong = [
            count_difference(key, counts.get(key), self._recorded[key])
            for key in sorted(tables)
            if counts.get(key) != self._recorded[key]
        ]
        if wrong:
            raise counts_differ(wrong)
        with self._lock:
            self.checked.update(tables)
        return len(tables)


def _split(weights: dict[int, int], jobs: int) -> list[list[int]]:
    """Dump ids split among ``jobs`` workers: the heaviest first, each to the worker
    with the least weight so far. Pure."""
    load: list[tuple[int, int]] = [(0, w) for w in range(jobs)]
    chosen: list[list[int]] = [[] for _ in range(jobs)]
    for dump_id in sorted(weights, key=lambda i: -weights[i]):
        total, worker = heapq.heappop(load)
        chosen[worker].append(dump_id)
        heapq.heappush(load, (total + weights[dump_id], worker))
    return chosen


def plan_blocks(
    toc: ArchiveToc,
    noted: object,
    size: int,
    jobs: int,
    rows: Callable[[TocEntry], int] | None = None,
) -> Plan | None:
    """Split the TABLE DATA blocks of the archive ``toc`` describes among ``jobs``
    workers, by the block starts the backup ``noted`` and the ``rows`` of each table
    (:data:`ROW_BYTES`); None if the notes do not fit the archive (see the module's
    docstring). Pure."""
    if not isinstance(noted, dict):
        return None
    try:
        hints = {int(k): int(v) for k, v in noted.items()}
    except (TypeError, ValueError):
        return None
    with_data = [e for e in toc.entries if e.state == OFFSET_NOT_SET]
    if not with_data or any(e.dump_id not in hints for e in with_data):
        return None
    starts = [hints[e.dump_id] for e in with_data]
    if starts[0] != toc.end or any(a >= b for a, b in pairwise(starts)):
        return None
    if starts[-1] >= size:
        return None
    ends = [*starts[1:], size]
    plan = Plan(
        toc,
        {e.dump_id: s for e, s in zip(with_data, starts, strict=True)},
        {e.dump_id: end for e, end in zip(with_data, ends, strict=True)},
        jobs=jobs,
    )
    weights = {
        e.dump_id: plan.ends[e.dump_id]
        - plan.starts[e.dump_id]
        + (ROW_BYTES * rows(e) if rows is not None else 0)
        for e in with_data
        if e.kind == "TABLE DATA"
    }
    chosen = _split(weights, jobs)
    order = {e.dump_id: n for n, e in enumerate(toc.entries)}
    plan.workers = [sorted(ids, key=order.__getitem__) for ids in chosen if ids]
    return plan


def restore_arriving(
    chunks: Iterator[list[bytes]],
    size: int,
    noted: object,
    conninfo: ConnInfo,
    *,
    directory: Path,
    jobs: int,
    no_owner: bool,
    bindir: Path | None,
    progress: Callable[[int], None],
    rows: Callable[[TocEntry], int] | None = None,
    check_rows: CheckRows | None = None,
) -> int:
    """Restore the custom-format dump ``chunks`` yields, a list of chunks at a time
    (``size`` bytes; it raises
    IntegrityError at the end if its checksum differs) into ``conninfo``'s database with
    ``jobs`` workers, spooling it in ``directory``; returns the bytes read. Raises what
    ``chunks`` raises, PostgresError, RestoreError; on any failure every pg_restore is
    killed before this returns, and the database is the caller's to drop."""
    spool = Spool(directory / "dump.pgcustom")
    done = 0

    def appended() -> Iterator[None]:
        nonlocal done
        for batch in chunks:
            count = sum(map(len, batch))
            spool.append(batch, count)
            done += count
            progress(done)
            yield

    with ThreadPoolExecutor(1, thread_name_prefix="restore-load") as pool:
        loading = pool.submit(
            contextvars.copy_context().run,  # the job's cancellation: see _stopped_with
            _load,
            spool,
            size,
            noted,
            conninfo,
            jobs,
            no_owner,
            bindir,
            rows,
            check_rows,
        )
        try:
            plan = _feed_while_loading(spool, loading, appended())
        finally:
            close = getattr(chunks, "close", None)
            if callable(close):
                close()  # its fetch threads, when it was left early
    # In the -v log: how much of the dump went through the file.
    log.info(
        "dump: %(memory)d bytes to the workers from memory, %(spilled)d through the spool "
        "for a worker behind, %(file)d into the spool for pg_restore's own reads",
        spool.tally,
    )
    # The whole stream is there and matched its checksum: what is left may start.
    if plan is not None:
        write_offsets(spool.path, plan.toc, plan.starts)
        rest = directory / "rest.list"
        rest.write_text("".join(f"{i};\n" for i in plan.rest()), encoding="utf-8")
    else:
        rest = None
        if not set_offsets(spool.path):
            log.info("the spooled dump's data offsets could not be set: pg_restore scans it")
    with pg_restore(
        conninfo,
        source=spool.path,
        jobs=jobs,
        no_owner=no_owner,
        sections=("data", "post-data"),
        use_list=rest,
        bindir=bindir,
    ):
        pass
    if plan is not None:
        resume_autovacuum(conninfo, plan.paused)
    return done


def _feed_while_loading(
    spool: Spool | FileFeed, loading: Future[Plan | None], steps: Iterator[None]
) -> Plan | None:
    """Take ``steps`` (each adds to ``spool``) to their end and finish the spool, or
    until the loading pg_restore failed (its error is raised here); return the loading's
    plan. On any failure the spool is aborted, so that no worker waits for more, and the
    loading is reaped before this raises."""
    try:
        for _ in steps:
            if loading.done() and loading.exception() is not None:
                break  # a pg_restore failed: its error is raised below
        else:
            spool.finish()
            # In the -v log: what the workers' post-data steps waited for.
            log.info("the whole dump has been read and matched its checksum")
        return loading.result()
    except _Aborted:
        # A worker failed while the reader waited for it to take what was read: its
        # error, not the abandoned read, is the one to tell.
        spool.abort()
        loading.result()
        raise
    except BaseException:
        spool.abort()
        _reap(loading)
        raise


@contextlib.contextmanager
def _stopped_with(spool: _Arrivals) -> Iterator[None]:
    """Inside the block (the loading thread and, their context copied, its workers'), a
    cancellation token of the restore's own, linked to the job's: cancelling the job
    (``respaldo jobs cancel``, the service stopping) or abandoning the restore
    (``spool.abort``: a worker failed, the read did, Ctrl-C) kills every pg_restore the
    block started and cancels every query it runs. These threads did not have the job's
    token (a thread starts with an empty context): a cancelled job, or a Ctrl-C, waited
    for the pre-data pg_restore or a worker that waited on a lock, for as long as the
    lock was held; and nothing cancelled a worker's row count or its hash-partition
    lookup, so a failed restore waited for them too."""
    with cancellation.linked() as token, spool.stopped_by_abort(lambda: token.cancel("aborted")):
        yield


def _reap(loading: Future[Plan | None]) -> None:
    with contextlib.suppress(BaseException):
        loading.result()


def _load(
    spool: Spool,
    size: int,
    noted: object,
    conninfo: ConnInfo,
    jobs: int,
    no_owner: bool,
    bindir: Path | None,
    rows: Callable[[TocEntry], int] | None,
    check_rows: CheckRows | None,
) -> Plan | None:
    try:
        with _stopped_with(spool):
            return _plan_and_feed(
                spool, size, noted, conninfo, jobs, no_owner, bindir, rows, check_rows
            )
    except BaseException:
        spool.abort()  # the reader may wait for a worker to take its bytes
        raise


def _plan_and_feed(
    spool: Spool,
    size: int,
    noted: object,
    conninfo: ConnInfo,
    jobs: int,
    no_owner: bool,
    bindir: Path | None,
    rows: Callable[[TocEntry], int] | None,
    check_rows: CheckRows | None,
) -> Plan | None:
    """Pre-data from the table of contents, then the tables' data by ``jobs`` workers as
    it arrives; returns the plan followed (None: the data is left for the end)."""
    with spool.reader() as head:
        toc = read_toc(head)
    plan = plan_blocks(toc, noted, size, jobs, rows) if toc is not None else None
    if plan is not None:
        # Their blocks go to the workers from memory from now on.
        spool.route(
            [
                (plan.starts[i], plan.ends[i], worker)
                for worker, ids in enumerate(plan.workers)
                for i in ids
            ]
        )
    with (
        spool.reader() as source,
        pg_restore(conninfo, no_owner=no_owner, sections=("pre-data",), bindir=bindir) as pre,
    ):
        # Exactly the table of contents when it is known; else until pg_restore has read
        # what it needs and closes the pipe.
        end = toc.end if toc is not None else size
        with contextlib.suppress(BrokenPipeError):
            source.send(pre.stdin, 0, end)
    if plan is None:
        return None
    _pause_autovacuum(plan, conninfo)
    _run_workers(
        spool,
        [
            partial(_feed, spool, plan, worker, conninfo, no_owner, bindir, check_rows)
            for worker in range(len(plan.workers))
        ],
    )
    return plan


def _feed(
    spool: Spool,
    plan: Plan,
    worker: int,
    conninfo: ConnInfo,
    no_owner: bool,
    bindir: Path | None,
    check_rows: CheckRows | None,
) -> None:
    """One worker: pg_restore of its entries' data, fed the table of contents from the
    spool and then only those blocks, as the reader hands them over (:meth:`Spool.take`),
    each checked to start with its own header before any of it is fed."""
    ids = plan.workers[worker]
    listed = spool.path.with_name(f"worker-{ids[0]}.list")
    listed.write_text("".join(f"{i};\n" for i in ids), encoding="utf-8")
    with (
        spool.reader() as source,
        _data_worker(spool, conninfo, no_owner=no_owner, use_list=listed, bindir=bindir) as restore,
    ):
        widen_pipe(restore.stdin.fileno())  # fewer, longer writes: fewer wake-ups
        source.send(restore.stdin, 0, plan.toc.end)
        for dump_id in ids:
            block = _Block(dump_id, plan.starts[dump_id], plan.ends[dump_id])
            _send_block(spool, worker, source.fileno(), restore.stdin, plan.toc, block)
    _post_data_early(spool, spool.path, plan, ids, conninfo, no_owner, bindir, check_rows)


@contextlib.contextmanager
def _data_worker(
    spool: _Arrivals,
    conninfo: ConnInfo,
    *,
    no_owner: bool,
    use_list: Path,
    bindir: Path | None,
) -> Iterator[RunningCommand]:
    """A data worker's pg_restore of the entries ``use_list`` names, from its stdin,
    killed if the restore is abandoned (another worker failed, the read did) while the
    block runs or its pg_restore is waited for; then this raises _Aborted, not what the
    kill made of the worker (a broken pipe, "killed by signal 9"): the first failure is
    the one to tell. Unkilled, a worker whose session waited (a lock held by a session
    that never commits, a stalled server) kept the failed restore waiting with it, for
    as long as that lasted, the staging database left meanwhile."""
    try:
        restore = pg_restore(conninfo, no_owner=no_owner, use_list=use_list, bindir=bindir)
        # ``cancel``: only a signal, from the aborting thread; this one reaps the child.
        with spool.stopped_by_abort(restore.cancel), restore:
            yield restore
    except (PostgresError, OSError):
        if spool.aborted:
            raise _Aborted from None
        raise


@dataclass(frozen=True)
class _Block:
    """The data block of entry ``dump_id``: bytes ``start`` to ``end`` of the dump."""

    dump_id: int
    start: int
    end: int


def _send_block(
    spool: Spool, worker: int, spooled: int, out: IO[bytes], toc: ArchiveToc, block: _Block
) -> None:
    """Write ``block`` into ``out`` (a pg_restore's stdin) as the reader hands it to
    ``worker``: from memory, or what was spilled, from the spool's file ``spooled`` (by
    ``sendfile``). Raises RestoreError unless the block starts with its own header
    (checked before any of it is written) and ends with a zero length (a large objects'
    block: a zero oid), checked once it is all written: a block that is not exactly this
    entry's fails the restore, whose staging database is then dropped."""
    head_size = 2 + toc.int_size
    tail_size = 1 + toc.int_size
    head = tail = b""
    checked = False
    queued: list[Item] = []
    out.flush()
    at = block.start
    while at < block.end:
        for item in spool.take(worker, block.end):
            offset, data, length = item
            if offset != at or offset + length > block.end:
                raise _misplaced(block)
            if not checked:
                want = min(length, head_size - len(head))
                head += _first(data, want) if data is not None else os.pread(spooled, want, offset)
                if len(head) == head_size or offset + length == block.end:
                    if not _fits_head(head, toc, block.dump_id):
                        raise _misplaced(block)
                    checked = True
            keep = min(length, tail_size)
            last = (
                _last(data, keep)
                if data is not None
                else os.pread(spooled, keep, offset + length - keep)
            )
            tail = (tail + last)[-tail_size:]
            queued.append(item)
            at = offset + length
        if checked:
            _write_items(out, spooled, queued)
            queued = []
    if tail != bytes(tail_size):
        raise _misplaced(block)


def _write_items(out: IO[bytes], spooled: int, items: list[Item]) -> None:
    """Write ``items`` into ``out`` in order: those in memory a run at a time, those in
    the spool's file ``spooled`` by ``sendfile``."""
    run: Parts = []
    for offset, data, length in items:
        if data is not None:
            run += data
            continue
        _write_all(out.fileno(), run)
        run = []
        send_range(out, spooled, offset, length)
    _write_all(out.fileno(), run)


def _first(parts: Parts, size: int) -> bytes:
    """The first ``size`` bytes of ``parts`` (fewer if they hold fewer)."""
    out = b""
    for part in parts:
        if len(out) >= size:
            break
        out += bytes(part[: size - len(out)])
    return out


def _last(parts: Parts, size: int) -> bytes:
    """The last ``size`` bytes of ``parts`` (fewer if they hold fewer)."""
    out = b""
    for part in reversed(parts):
        if len(out) >= size:
            break
        out = bytes(part[max(0, len(part) - (size - len(out))) :]) + out
    return out


def _fits_head(head: bytes, toc: ArchiveToc, dump_id: int) -> bool:
    """Whether ``head`` is the header of a data block of entry ``dump_id``."""
    return (
        len(head) == 2 + toc.int_size
        and head[0] in (BLOCK_DATA, BLOCK_BLOBS)
        and head[1] == 0
        and int.from_bytes(head[2:], "little") == dump_id
    )


def _misplaced(block: _Block) -> RestoreError:
    return RestoreError(
        f"the dump's data block of entry {block.dump_id} is not where the backup noted it "
        f"(byte {block.start})",
        hint="nothing was changed; restore it with --jobs 1, which does not use the notes",
    )


PROGRESS_STEP = 1 << 20
"""Bytes between two progress reports: per chunk (about 20 KiB), the callback (a
progress bar, a job's cancellation check) cost about 0.35 CPU-s per GiB."""


def stepped(report: Callable[[int], None], total: int) -> Callable[[int], None]:
    """``report`` (bytes done), passed on at most once per PROGRESS_STEP bytes and when
    ``total`` is reached: the readers call it once per chunk."""
    told = -PROGRESS_STEP

    def progress(done: int) -> None:
        nonlocal told
        if done - told >= PROGRESS_STEP or (done >= total and done != told):
            told = done
            report(done)

    return progress


# --- directory-format dumps (``backup --jobs N``, operations/pardump.py) ---------------


def restore_directory_arriving(
    stream: Callable[[Manifest, str], Iterator[list[bytes]]],
    manifest: Manifest,
    conninfo: ConnInfo,
    *,
    directory: Path,
    jobs: int,
    no_owner: bool,
    bindir: Path | None,
    progress: Callable[[int], None],
    check_rows: CheckRows | None = None,
) -> int:
    """Restore a directory-format backup into ``conninfo``'s database with ``jobs``
    workers while its files arrive; returns the bytes of the files.

    ``toc.dat`` is read first, into ``directory``, its SHA-256 checked. Once it is there,
    one pg_restore creates the pre-data section; then ``jobs`` pg_restore processes load
    the tables' data, each fed a custom-format archive made of the table of contents
    and, as block after block, the data files of its tables, which its worker reads
    itself as their chunks arrive (:class:`FileFeed`), each block ended only once its
    file is complete and checked. Meanwhile the other files (large objects) are written
    into ``directory``, each checked. When every file is there, ``pg_restore --jobs``
    restores the rest (sequence values, large objects) and the post-data section from
    the directory. A ``toc.dat`` that cannot be converted (compressed, or a version not
    read here) leaves the data to that last step too (every file is then written into
    ``directory``). Raises what ``stream`` raises, PostgresError, RestoreError; every
    pg_restore is killed before this returns on failure."""
    files = dump_files(manifest)
    order = sorted(files, key=lambda f: f[1] != TOC_FILE)  # toc.dat first, else as stored
    sizes = {file_name: manifest.stream(name).size for name, file_name in files}
    streams = {file_name: name for name, file_name in files}
    spool = FileFeed(directory)
    done = 0

    def added() -> Iterator[None]:
        nonlocal done
        for name, file_name in order:
            if file_name != TOC_FILE and spool.routed(file_name):
                continue  # its worker reads it
            done = spool.read_file(file_name, stream(manifest, name), progress, done)
            if file_name == TOC_FILE:
                spool.wait_routed()  # which files the workers read
            yield
        done = spool.wait_streamed(progress, done)
        yield

    def read(file_name: str) -> Iterator[list[bytes]]:
        return stream(manifest, streams[file_name])

    with ThreadPoolExecutor(1, thread_name_prefix="restore-load") as pool:
        loading = pool.submit(
            contextvars.copy_context().run,  # the job's cancellation: see _stopped_with
            _load_directory,
            spool,
            read,
            order,
            sizes,
            rows_of(manifest.meta),
            conninfo,
            jobs,
            no_owner,
            bindir,
            check_rows,
        )
        plan = _feed_while_loading(spool, loading, added())
    log.info(
        "dump files: %(whole)d bytes written whole, %(streamed)d read by the workers",
        spool.tally,
    )
    rest = None
    if plan is not None:
        rest = directory.with_name("rest.list")
        rest.write_text("".join(f"{i};\n" for i in plan.rest()), encoding="utf-8")
    with pg_restore(
        conninfo,
        source=directory,
        jobs=jobs,
        no_owner=no_owner,
        sections=("data", "post-data"),
        use_list=rest,
        bindir=bindir,
    ):
        pass
    if plan is not None:
        resume_autovacuum(conninfo, plan.paused)
    return done


ReadFile = Callable[[str], Iterator[list[bytes]]]
"""A dump file's chunks by its name, a window at a time, its checksum checked at the end."""


def _load_directory(
    spool: FileFeed,
    read: ReadFile,
    order: list[tuple[str, str]],
    sizes: dict[str, int],
    rows: Callable[[TocEntry], int],
    conninfo: ConnInfo,
    jobs: int,
    no_owner: bool,
    bindir: Path | None,
    check_rows: CheckRows | None,
) -> Plan | None:
    try:
        with _stopped_with(spool):
            return _plan_and_load(
                spool, read, order, sizes, rows, conninfo, jobs, no_owner, bindir, check_rows
            )
    except BaseException:
        spool.abort()  # the reader may wait for the workers' files
        raise


def _plan_and_load(
    spool: FileFeed,
    read: ReadFile,
    order: list[tuple[str, str]],
    sizes: dict[str, int],
    rows: Callable[[TocEntry], int],
    conninfo: ConnInfo,
    jobs: int,
    no_owner: bool,
    bindir: Path | None,
    check_rows: CheckRows | None,
) -> Plan | None:
    toc_path = spool.wait_file(TOC_FILE)
    converted = custom_from_directory(toc_path.read_bytes())
    plan = head = workers = None
    if converted is not None:
        head, toc = converted
        arrival = {file_name: n for n, (_, file_name) in enumerate(order)}
        tables = [
            e
            for e in toc.entries
            if e.kind == "TABLE DATA" and e.file is not None and e.file in sizes
        ]
        by_id = {e.dump_id: e for e in tables}
        weights = {e.dump_id: sizes[e.file or ""] + ROW_BYTES * rows(e) for e in tables}
        chosen = [[by_id[i] for i in ids] for ids in _split(weights, jobs)]
        # Each worker's tables in the order their files are stored.
        workers = [sorted(c, key=lambda e: arrival[e.file or ""]) for c in chosen if c]
        plan = Plan(toc, {}, {}, [[e.dump_id for e in w] for w in workers], jobs=jobs)
        # The workers read these files; the reader goes on with the others.
        spool.route({e.file or "": n for n, w in enumerate(workers) for e in w})
    else:
        spool.route({})  # no workers: every file whole, for the last pg_restore
    # pg_restore reads only toc.dat for the pre-data section.
    with pg_restore(
        conninfo, source=spool.directory, sections=("pre-data",), no_owner=no_owner, bindir=bindir
    ):
        pass
    if plan is None or head is None or workers is None:
        return None
    _pause_autovacuum(plan, conninfo)
    _run_workers(
        spool,
        [
            partial(_feed_files, spool, read, head, plan, w, conninfo, no_owner, bindir, check_rows)
            for w in workers
        ],
    )
    return plan


def _pause_autovacuum(plan: Plan, conninfo: ConnInfo) -> None:
    """Autovacuum off for the staging database's tables from their pre-data to the end
    of the last step (:func:`~respaldo.postgres.server.pause_autovacuum`), which turns it
    back on (``RESET``) before the row counts and the rename: the database handed over
    is as the dump made it, and as ``pg_restore`` leaves it, not yet vacuumed.

    Between its load and its worker's post-data step, a table was the launcher's to find:
    the index build that came cancelled the vacuum (about two a restore at 1 GB, their
    work thrown away, each after the build waited 100 ms; none under ``pg_restore
    --jobs``, which indexes a table at once), and the analyses that ran took the two
    cores the restore needed (docs/benchmarks.md, session 17). Not with an event trigger
    in the dump: the last step creates it, and the ``ALTER TABLE`` that turns autovacuum
    back on would fire it."""
    if any(e.kind == "EVENT TRIGGER" for e in plan.toc.entries):
        return
    plan.paused = pause_autovacuum(conninfo)
    log.info("autovacuum paused for %d tables until the last step", len(plan.paused))


def _run_workers(spool: _Arrivals, work: list[Callable[[], None]]) -> None:
    """Run each of ``work`` in a thread of its own, in this thread's context (the
    restore's cancellation, :func:`_stopped_with`); the first failure aborts the others
    (``spool.abort``: their pg_restore is killed, their queries cancelled) and is raised
    once they have all ended, not what the abort made of them: a worker failing once the
    restore was abandoned raises :class:`_Aborted` (its row count cancelled, its
    pg_restore killed), so the failure told is the one that came first, whichever
    worker's it was."""

    def aborting(w: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                w()
            except _Aborted:
                spool.abort()
                raise
            except BaseException as exc:
                if spool.aborted:
                    raise _Aborted from exc  # what the abort made of this worker
                # At once, not when the loop below reaches this worker: the reader would
                # go on reading (and spilling) the whole dump for a worker that is gone.
                spool.abort()
                raise

        return run

    with ThreadPoolExecutor(len(work), thread_name_prefix="restore-worker") as pool:
        running = [pool.submit(contextvars.copy_context().run, aborting(w)) for w in work]
        failure: BaseException | None = None
        for future in running:
            try:
                future.result()
            except BaseException as exc:
                spool.abort()
                if failure is None or isinstance(failure, _Aborted):
                    failure = exc
        if failure is not None:
            raise failure


def _feed_files(
    spool: FileFeed,
    read: ReadFile,
    head: bytes,
    plan: Plan,
    entries: list[TocEntry],
    conninfo: ConnInfo,
    no_owner: bool,
    bindir: Path | None,
    check_rows: CheckRows | None,
) -> None:
    """One worker: pg_restore of ``entries``' data from a custom-format archive made on
    the fly: ``head`` (the converted table of contents), then one data block per entry,
    its file read here and written as length-prefixed parts (:meth:`FileFeed.stream_block`)."""
    listed = spool.directory.with_name(f"worker-{entries[0].dump_id}.list")
    listed.write_text("".join(f"{e.dump_id};\n" for e in entries), encoding="utf-8")

    def integer(value: int) -> bytes:
        return b"\x00" + value.to_bytes(plan.toc.int_size, "little")

    with _data_worker(
        spool, conninfo, no_owner=no_owner, use_list=listed, bindir=bindir
    ) as restore:
        widen_pipe(restore.stdin.fileno())  # fewer, longer writes: fewer wake-ups
        restore.stdin.write(head)
        for entry in entries:
            name = entry.file or ""
            restore.stdin.write(bytes([BLOCK_DATA]) + integer(entry.dump_id))
            batches = read(name)
            try:
                spool.stream_block(name, batches, restore.stdin, integer)
            finally:
                close = getattr(batches, "close", None)
                if callable(close):
                    close()  # its fetch threads, when it was left early
    data_ids = [e.dump_id for e in entries]
    _post_data_early(spool, spool.directory, plan, data_ids, conninfo, no_owner, bindir, check_rows)

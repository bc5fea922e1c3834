"""Feeding pg_restore workers while a dump arrives (``restore --jobs N``): what the
custom-format and the directory-format paths share, and the directory-format feed.

A directory-format backup (``backup --jobs N``) holds one stream per table file. Once
the table of contents is read and the workers are planned, each worker reads its own
tables' files itself, one after the other in the order stored, and writes their chunks
(each already decrypted, authenticated and checked against its id) straight into its
pg_restore (:meth:`FileFeed.stream_block`). No worker waits for a file that the other
worker's tables hold up, and nothing is held in memory for a worker or spilled to disk
(a single reader handing files to the workers had to spill a busy worker's file when
the other starved: writing the plaintext into the page cache, reading it back and
deleting it cost about 0.5 CPU-s per GiB, a tenth of the whole restore's CPU).

A worker ends a file's data block (pg_restore then ends that table's ``COPY``) only once
the file is complete and its own SHA-256 matched: until then its rows are in an open
``COPY`` in the staging database, which a failure aborts (every pg_restore is killed).
Files no worker loads (large objects, the table of contents), and every file when the
table of contents cannot be converted (no workers are planned), are written whole into
the spool directory by the reader, under their own names once checked, as pg_restore
reads them.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO

from respaldo.errors import RestoreError

FEED = 1 << 20
"""The most bytes handed to a pg_restore in one write."""
IOV_PARTS = 512
"""The most parts one ``writev`` takes (the system's limit is 1024)."""


class Aborted(Exception):
    """The spool was abandoned (the read failed, or another worker did)."""


class Arrivals:
    """What has arrived of a dump being read, for threads that wait on it: the reader
    records progress, then marks it done (checksum matched) or aborted; a waiter wakes on
    each change and gets :class:`Aborted` once the read is abandoned."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._done = False
        self._aborted = False
        self._stops: list[Callable[[], None]] = []

    @contextlib.contextmanager
    def _arriving(self) -> Iterator[None]:
        """Change what has arrived, then wake the waiters."""
        with self._changed:
            yield
            self._changed.notify_all()

    def _mark_done(self) -> None:
        with self._arriving():
            self._done = True

    def abort(self) -> None:
        """Wake every waiter with :class:`Aborted`, and stop what :meth:`stopped_by_abort`
        runs."""
        with self._arriving():
            self._aborted = True
            stops, self._stops = self._stops, []
        for stop in stops:
            stop()

    @property
    def aborted(self) -> bool:
        with self._changed:
            return self._aborted

    @property
    def matched(self) -> bool:
        """Whether the whole dump is there and matched its checksum."""
        with self._changed:
            return self._done

    @contextlib.contextmanager
    def stopped_by_abort(self, stop: Callable[[], None]) -> Iterator[None]:
        """Call ``stop`` (kill a pg_restore) if the read is abandoned while the block
        runs, or at once if it already was: a worker's post-data step runs while the
        dump still arrives, and a dump that fails its checksum ends it there rather than
        after its index builds."""
        with self._changed:
            aborted = self._aborted
            if not aborted:
                self._stops.append(stop)
        if aborted:
            stop()
        try:
            yield
        finally:
            with self._changed:
                if stop in self._stops:
                    self._stops.remove(stop)

    def _wait(self, ready: Callable[[], bool]) -> None:
        """Block until ``ready()`` or the whole dump is there; called with the condition
        held. Raises Aborted."""
        while not self._aborted and not self._done and not ready():
            self._changed.wait()
        if self._aborted:
            raise Aborted

    def wait_done(self) -> None:
        """Block until the whole dump is there and matched its checksum. Raises
        Aborted (the read failed)."""
        with self._changed:
            self._wait(lambda: False)


def send_range(out: IO[bytes], fd: int, offset: int, count: int) -> int:
    """``sendfile`` of ``count`` bytes of file ``fd`` from ``offset`` into ``out`` (flushed
    by the caller); returns ``count``. Raises RestoreError if the file is shorter."""
    sent = 0
    while sent < count:
        n = os.sendfile(out.fileno(), fd, offset + sent, count - sent)
        if n == 0:
            raise RestoreError(
                f"the spooled dump ends at byte {offset + sent}, before {offset + count}",
                hint="nothing was changed; restore again",
            )
        sent += n
    return sent


def write_all(fd: int, parts: Sequence[bytes | memoryview]) -> None:
    """``writev`` of ``parts`` into the file or pipe ``fd``, whole, at most FEED bytes
    (and IOV_PARTS parts) a call: writing the page cache 2 MiB a call cost twice the
    system CPU of 1 MiB ones (0.5-0.7 against 0.27-0.29 s per GiB, measured). Raises
    BrokenPipeError if the reader has gone."""
    pending: list[bytes | memoryview] = list(parts)
    at, count = 0, len(pending)
    while at < count:
        end, size = at + 1, len(pending[at])
        while end < count and end - at < IOV_PARTS and size + len(pending[end]) <= FEED:
            size += len(pending[end])
            end += 1
        written = os.writev(fd, pending[at:end])
        while at < end and written >= len(pending[at]):
            written -= len(pending[at])
            at += 1
        if written:
            pending[at] = memoryview(pending[at])[written:]  # the rest, not a copy


class FileFeed(Arrivals):
    """The files of a directory-format dump as they are read: whole files written into
    ``directory`` by the reader (each one's SHA-256 checked before it gets its name),
    and, once :meth:`route` has said which worker loads which file, those files read by
    their worker itself and streamed into its pg_restore (:meth:`stream_block`; see the
    module's docstring).

    The reader calls :meth:`read_file` per file it writes whole, :meth:`wait_streamed`
    once it has read those, then :meth:`finish`; a worker calls :meth:`stream_block` per
    file, in its order."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory
        self._complete: set[str] = set()
        self._owners: dict[str, int] = {}
        self._routed = False
        self._streamed: set[str] = set()
        self._streamed_bytes = 0
        self.tally = {"whole": 0, "streamed": 0}
        """Bytes written whole into the directory, and read by the workers themselves."""

    # --- the reader's side --------------------------------------------------------

    def route(self, owners: dict[str, int]) -> None:
        """The files that ``owners`` names are read by that worker, not by the reader (an
        empty ``owners``: the reader writes every file whole)."""
        with self._arriving():
            self._owners = dict(owners)
            self._routed = True

    def wait_routed(self) -> None:
        """Block until :meth:`route` has been called. The reader calls it once the table
        of contents is read, before the files it plans: a file begun before would be
        written whole into the directory, and its worker would wait for its end. The
        workers are planned a few milliseconds after the table of contents is there, and
        the reader lost that race: at 1 GB the next file was the biggest table's (558
        MB), written to disk while its worker waited (docs/benchmarks.md, session 15).
        Raises Aborted."""
        with self._changed:
            self._wait(lambda: self._routed)

    def routed(self, name: str) -> bool:
        """Whether a worker reads file ``name`` (the reader leaves it)."""
        with self._changed:
            return name in self._owners

    def add(self, name: str) -> None:
        """File ``name`` is complete in the directory and its stream's checksum matched."""
        with self._arriving():
            self._complete.add(name)

    def read_file(
        self,
        name: str,
        batches: Iterable[list[bytes]],
        progress: Callable[[int], None],
        done: int,
    ) -> int:
        """Write file ``name`` whole into the directory from its chunks, a list at a time
        (``iter_stream_batches``), to their end (the iterator raises if the file's
        checksum does not match: the file then never gets its name); ``progress`` gets
        the bytes read so far, counted from ``done``, which this returns. Raises what
        ``batches`` raises."""
        first = done
        part = self.directory / (name + ".part")
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for chunks in batches:
                done += sum(map(len, chunks))
                write_all(fd, chunks)
                progress(done)
        finally:
            os.close(fd)
        # Complete and checked: only now under the name pg_restore opens.
        part.rename(self.directory / name)
        self.add(name)
        self.tally["whole"] += done - first
        return done

    def wait_streamed(self, progress: Callable[[int], None], done: int) -> int:
        """Block until every routed file has been streamed whole by its worker (each
        one's checksum matched), telling ``progress`` the bytes read so far: ``done`` (the
        reader's own) and the workers'; returns that total. Raises Aborted."""
        told = done
        while True:
            with self._changed:
                if self._aborted:
                    raise Aborted
                total = done + self._streamed_bytes
                if self._owners.keys() <= self._streamed:
                    return total
                if total == told:
                    self._changed.wait()
                    continue
            progress(total)  # not holding the lock: it may take its time
            told = total

    def finish(self) -> None:
        """Every file is there, each one's checksum checked."""
        self._mark_done()

    # --- a worker's side ----------------------------------------------------------

    def wait_file(self, name: str) -> Path:
        """Block until file ``name`` is complete in the directory. Raises Aborted, or
        RestoreError if the dump ended without it."""
        with self._changed:
            self._wait(lambda: name in self._complete)
            if name not in self._complete:
                raise _missing(name)
        return self.directory / name

    def stream_block(
        self,
        name: str,
        batches: Iterable[list[bytes]],
        out: IO[bytes],
        integer: Callable[[int], bytes],
    ) -> None:
        """Write file ``name``'s chunks, read by this worker (``iter_stream_batches``),
        into ``out`` (a pg_restore's stdin) as the parts of a custom-format data block,
        each ``integer(length)`` and at most FEED bytes (pg_restore holds one in memory),
        then the block's end (``integer(0)``) once the iterator has ended: the file is
        complete and its SHA-256 matched. Until then its rows are in an open ``COPY``,
        which a failure aborts. Raises what ``batches`` raises, Aborted (the restore
        failed elsewhere), BrokenPipeError."""
        out.flush()
        fd = out.fileno()
        size = 0
        for chunks in batches:
            if self.aborted:
                raise Aborted
            part: list[bytes] = []
            part_size = 0
            for data in chunks:
                if part and part_size + len(data) > FEED:
                    write_all(fd, [integer(part_size), *part])
                    part, part_size = [], 0
                part.append(data)
                part_size += len(data)
            if part:
                write_all(fd, [integer(part_size), *part])
            count = sum(map(len, chunks))
            size += count
            with self._arriving():
                self._streamed_bytes += count
        write_all(fd, [integer(0)])
        with self._arriving():
            self._streamed.add(name)
            self.tally["streamed"] += size


def _missing(name: str) -> RestoreError:
    return RestoreError(
        f"the dump has no file {name}, which its table of contents names",
        hint="the backup is incomplete; restore another backup",
    )

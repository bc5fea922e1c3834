"""Feeding pg_restore workers while a dump arrives (``restore --jobs N``): what the
custom-format and the directory-format paths share, and the directory-format read-ahead.

A directory-format backup (``backup --jobs N``) holds one stream per table file. They
are read one after the other, in the order stored; each file that a worker loads goes
to it through a :class:`FileFeed`: its chunks (each already decrypted, authenticated and
checked against its id) are held in memory, up to ``read_ahead`` bytes per worker, and
handed to that worker's pg_restore as they come. Only when a worker falls behind, while
another waits for a file still to be read (or for the dump's end, to build its indexes),
do its chunks go to a spill file on disk (and from there, by ``sendfile``, to its
pg_restore) so that the reader never waits on a slow worker while another starves.
When every worker is busy the reader waits instead: writing the plaintext into the page
cache, reading it back and deleting it cost about 0.5 CPU-s per GiB, a tenth of the
whole restore's CPU.

A worker ends a file's data block (pg_restore then ends that table's ``COPY``) only once
the file is complete and its own SHA-256 matched: until then its rows are in an open
``COPY`` in the staging database, which a failure aborts (every pg_restore is killed).
Files no worker loads (large objects, the table of contents), and every file when the
table of contents cannot be converted (no workers are planned), are written whole into
the spool directory, under their own names once checked, as pg_restore reads them.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from respaldo.errors import RestoreError

FEED = 1 << 20
"""The most bytes handed to a pg_restore in one write."""
IOV_PARTS = 512
"""The most parts one ``writev`` takes (the system's limit is 1024)."""
READ_AHEAD = 2 << 20
"""Bytes of a directory-format dump held in memory per worker before the reader waits
(or spills, when another worker waits for a file not read yet)."""
BATCH = 256 << 10
"""Bytes of chunks the reader gathers before it hands them on: per chunk (about 20
KiB), the lock, the worker's wake-up and its short writes into pg_restore cost more than
the bytes."""


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


def write_all(fd: int, parts: list[bytes]) -> None:
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


@dataclass
class _Stream:
    """A file being read for worker ``owner``: its parts in order, each the bytes of a
    chunk held in memory or a ``(start, end)`` range of the spill file ``path``."""

    owner: int
    path: Path
    parts: deque[tuple[list[bytes], int] | tuple[int, int]] = field(default_factory=deque)
    """A batch of chunks in memory and its size, or a range of the spill file."""
    complete: bool = False
    """The whole file is in ``parts`` and its SHA-256 matched."""
    pending: list[bytes] = field(default_factory=list)
    """Chunks to spill, written a batch at a time (reader only)."""
    pending_size: int = 0
    spilled: int = 0
    """Bytes written to the spill file so far (reader only)."""
    spill_fd: int | None = None


class FileFeed(Arrivals):
    """The files of a directory-format dump as they are read: whole files written into
    ``directory`` (each one's SHA-256 checked before it gets its name), or, once
    :meth:`route` has said which worker loads which file, streamed to that worker with
    ``read_ahead`` bytes per worker held in memory (see the module's docstring).

    The reader calls :meth:`read_file` per file and :meth:`finish` at the end; a worker
    calls :meth:`send_block` per file, in the order the files are read."""

    def __init__(self, directory: Path, *, read_ahead: int = READ_AHEAD) -> None:
        super().__init__()
        self.directory = directory
        self._read_ahead = max(read_ahead, 2 * BATCH)
        self._complete: set[str] = set()
        self._streams: dict[str, _Stream] = {}
        self._owners: dict[str, int] = {}
        self._in_memory: dict[int, int] = {}
        """Per worker, bytes held in memory (also those being written to its pipe)."""
        self.tally = {"whole": 0, "memory": 0, "spilled": 0}
        """Bytes written whole into the directory, handed on from memory, spilled."""
        self._waiting: dict[object, Callable[[], bool]] = {}
        """Per waiting worker, whether what it waits for is there: one for which it is
        not is hungry (a count of waiters would still count one that its bytes have
        reached but that has not run yet)."""

    # --- the reader's side --------------------------------------------------------

    def route(self, owners: dict[str, int]) -> None:
        """Files begun from now on that ``owners`` names are streamed to that worker."""
        with self._changed:
            self._owners = dict(owners)
            self._in_memory = dict.fromkeys(owners.values(), 0)

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
        """Take file ``name``'s chunks, a list at a time (``iter_stream_batches``), to
        their end (the iterator raises if the file's checksum does not match: the file is
        then left unfinished, and :meth:`abort` wakes its worker); ``progress`` gets the
        bytes read so far, counted from ``done``, which this returns. Raises what
        ``batches`` raises, Aborted once the feed is abandoned."""
        with self._changed:
            owner = self._owners.get(name)
            stream = None
            if owner is not None:
                stream = _Stream(owner, self.directory / (name + ".part"))
                self._streams[name] = stream
                self._changed.notify_all()
        if stream is None:
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
        try:
            batch: list[bytes] = []
            size = 0
            for chunks in batches:
                # Handed on BATCH bytes at a time, not a whole window: a worker's
                # read-ahead stays within READ_AHEAD plus one batch.
                for data in chunks:
                    batch.append(data)
                    size += len(data)
                    if size >= BATCH:
                        self._arrive(stream, batch, size)
                        done += size
                        batch, size = [], 0
                progress(done + size)
            done += size
            if batch:
                self._arrive(stream, batch, size)
            self._spill(stream)
            with self._arriving():
                stream.complete = True
        finally:
            if stream.spill_fd is not None:
                os.close(stream.spill_fd)
        return done

    def finish(self) -> None:
        """Every file is there, each one's checksum checked."""
        self._mark_done()

    def _arrive(self, stream: _Stream, batch: list[bytes], size: int) -> None:
        """Hold ``batch`` in memory for its worker, or spill it (another worker waits for
        a file not read yet), or wait until its worker has taken some."""
        owner = stream.owner
        with self._changed:
            while True:
                if self._aborted:
                    raise Aborted
                to_memory = self._in_memory[owner] < self._read_ahead
                if to_memory and not stream.pending:
                    self._hold(stream, batch, size)
                    return
                if to_memory or self._hungry():
                    break
                self._changed.wait()
        if to_memory:
            # Back to memory: what waits to be spilled goes first, in order.
            self._spill(stream)
            with self._changed:
                self._hold(stream, batch, size)
            return
        stream.pending += batch
        stream.pending_size += size
        if stream.pending_size >= FEED:
            self._spill(stream)

    def _hold(self, stream: _Stream, batch: list[bytes], size: int) -> None:
        """Add ``batch`` to ``stream``'s parts in memory; called with the condition held."""
        stream.parts.append((batch, size))
        self._in_memory[stream.owner] += size
        self.tally["memory"] += size
        self._changed.notify_all()

    def _spill(self, stream: _Stream) -> None:
        """Write the chunks waiting to be spilled to the spill file, then hand them on."""
        if not stream.pending:
            return
        if stream.spill_fd is None:
            stream.spill_fd = os.open(stream.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        write_all(stream.spill_fd, stream.pending)
        self.tally["spilled"] += stream.pending_size
        start, stream.spilled = stream.spilled, stream.spilled + stream.pending_size
        stream.pending, stream.pending_size = [], 0
        with self._arriving():
            stream.parts.append((start, stream.spilled))

    # --- a worker's side ----------------------------------------------------------

    def wait_file(self, name: str) -> Path:
        """Block until file ``name`` is complete in the directory. Raises Aborted, or
        RestoreError if the dump ended without it."""
        with self._changed:
            self._wait(lambda: name in self._complete)
            if name not in self._complete:
                raise _missing(name)
        return self.directory / name

    def wait_done(self) -> None:
        """Block until the whole dump is there and matched its checksum; meanwhile this
        worker, which has loaded its tables and waits to build their indexes, counts as
        waiting for bytes not read yet: the reader then spills rather than wait for
        another worker, so that this one does not sit idle until that one is done.
        Raises Aborted."""

        def done() -> bool:
            return self._done

        with self._changed, self._waiting_for(done):
            self._wait(lambda: False)

    def send_block(self, name: str, out: IO[bytes], integer: Callable[[int], bytes]) -> None:
        """Write file ``name``'s bytes into ``out`` (a pg_restore's stdin) as the parts of
        a custom-format data block, each ``integer(length)`` and at most FEED bytes, then
        the block's end (``integer(0)``) once the file is complete and checked. Raises
        Aborted, RestoreError (the dump ended without it), BrokenPipeError."""

        def there() -> bool:
            return name in self._complete or name in self._streams

        with self._changed:
            with self._waiting_for(there):
                self._wait(there)
            stream = self._streams.pop(name, None)
            if stream is None and name not in self._complete:
                raise _missing(name)
        out.flush()
        if stream is None:
            path = self.directory / name
            with path.open("rb") as fh:
                _send_file(out, fh.fileno(), 0, os.fstat(fh.fileno()).st_size, integer)
            path.unlink()  # loaded: the spool keeps only what is still to come
        else:
            self._send_stream(stream, out, integer)
        write_all(out.fileno(), [integer(0)])

    def _send_stream(
        self, stream: _Stream, out: IO[bytes], integer: Callable[[int], bytes]
    ) -> None:
        fd = None
        try:
            while True:
                with self._changed:
                    part = self._next_part(stream)
                if part is None:
                    return
                batch, size = part
                if isinstance(batch, list):
                    write_all(out.fileno(), [integer(size), *batch])
                    with self._arriving():  # room again for the reader
                        self._in_memory[stream.owner] -= size
                    continue
                if fd is None:
                    fd = os.open(stream.path, os.O_RDONLY)
                _send_file(out, fd, batch, size, integer)  # a range: start, end
        finally:
            if fd is not None:
                os.close(fd)
                stream.path.unlink()

    def _hungry(self) -> bool:
        """Whether a worker waits for bytes not read yet; called with the condition held."""
        return any(not there() for there in self._waiting.values())

    @contextlib.contextmanager
    def _waiting_for(self, there: Callable[[], bool]) -> Iterator[None]:
        """A worker waits until ``there()``; called with the condition held."""
        token = object()
        self._waiting[token] = there
        self._changed.notify_all()  # a reader waiting for room may spill instead
        try:
            yield
        finally:
            del self._waiting[token]

    def _next_part(self, stream: _Stream) -> tuple[list[bytes], int] | tuple[int, int] | None:
        """The next of ``stream``'s parts to write: batches held in memory (up to FEED
        bytes, at least one) and their size, a ``(start, end)`` range of its spill file, or
        None at its end; waits (as a hungry worker) until there is one. Called with the
        condition held."""

        def ready() -> bool:
            return stream.complete or bool(stream.parts)

        if not ready():
            with self._waiting_for(ready):
                while not self._aborted and not ready():
                    self._changed.wait()
        if self._aborted:
            raise Aborted
        if not stream.parts:
            return None
        first = stream.parts.popleft()
        batch, size = first
        if not isinstance(batch, list):
            return first
        taken = batch  # popped: nobody else holds it
        while stream.parts:
            more, more_size = stream.parts[0]
            if not isinstance(more, list) or size + more_size > FEED:
                break
            stream.parts.popleft()
            taken += more
            size += more_size
        return taken, size


def _send_file(
    out: IO[bytes], fd: int, start: int, end: int, integer: Callable[[int], bytes]
) -> None:
    """Bytes ``start`` to ``end`` of file ``fd`` as parts of at most FEED bytes (pg_restore
    holds one in memory), each a length and the bytes, which the kernel copies."""
    for at in range(start, end, FEED):
        count = min(FEED, end - at)
        write_all(out.fileno(), [integer(count)])
        send_range(out, fd, at, count)


def _missing(name: str) -> RestoreError:
    return RestoreError(
        f"the dump has no file {name}, which its table of contents names",
        hint="the backup is incomplete; restore another backup",
    )

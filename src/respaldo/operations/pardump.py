"""Parallel logical backups: ``pg_dump --format=directory --jobs N``, one stream per file.

With ``dump_jobs`` (or ``backup --jobs``) above 1, the dump is written by pg_dump's
parallel workers into a private spool directory (0700, :mod:`respaldo.privatedir`) inside
the backup's exported snapshot, so that every table's data is of one consistent state
and its row counts are the snapshot's. Each table's file is stored as a stream of its own,
``dump/<dump id>.dat``, as soon as pg_dump reports it complete (``--verbose``'s
``finished item``: its leader says so only after the worker has closed the file) and is
deleted once stored, so the spool holds only the files not stored yet. When no file is
complete, the one pg_dump has written most of is stored while it is being written
(:class:`_Growing`): pg_dump dumps the largest tables first, and without that the writer
sat idle until the first table was done, then had the largest one left to store after
pg_dump had ended. What pg_dump writes last (``toc.dat``, the large objects) is stored
after it has exited. A stream per file keeps deduplication: an unchanged table's file
cuts into the same chunks as the day before, wherever it was in the dump.

The manifest says ``"dump_format": "directory"``; restore writes the streams back into a
private directory, each one's SHA-256 checked as it is read, and loads each table's data
as soon as its file is complete (operations/restore_parallel.py); ``restore --table``
writes only the files it needs and runs ``pg_restore`` on them (:func:`restore_directory`).
Readers of the table of contents alone (``ls``, ``restore --table``, the database's
properties) get a directory holding just ``toc.dat`` (:func:`table_of_contents`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import queue
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from respaldo.errors import InvalidInput
from respaldo.postgres import ConnInfo, pg_restore
from respaldo.postgres.commands import pg_dump_directory
from respaldo.postgres.dbprops import Archive
from respaldo.postgres.toolsets import Tools
from respaldo.privatedir import private_directory
from respaldo.repository import BackupWriter, Manifest

log = logging.getLogger(__name__)

DIRECTORY_FORMAT = "directory"
"""The manifest's ``meta["dump_format"]`` of a parallel dump (absent: one ``dump`` stream
in pg_dump's custom format)."""
FILE_PREFIX = "dump/"
"""Streams of a directory-format dump are ``dump/<file name>``."""
TOC_FILE = "toc.dat"
MAX_JOBS = 64
# How long the reader of a file pg_dump is still writing waits, at the file's current end,
# for pg_dump to say something before it reads again (and, before pg_dump has created any
# table file, before it looks again): pg_dump says nothing while it writes a table, so new
# bytes can only be looked for. A wait costs the writer at most this much idle time; a
# table file is written at tens of MiB a second or more.
FOLLOW_WAIT = 0.05

# pg_dump's leader, when a worker has dumped (and closed) the data of one table.
_FINISHED = re.compile(rb"^pg_dump: finished item (\d+) TABLE DATA ")
# A table's data file: <dump id>.dat.
_DATA_FILE = re.compile(r"^(\d+)\.dat$")
# What pg_dump --verbose says besides its errors: its messages without a level.
_LEVEL = re.compile(rb"^pg_dump: (error|warning|detail|hint): ")


def check_jobs(jobs: int) -> int:
    """``jobs`` if it is a number of pg_dump workers respaldo runs; else InvalidInput."""
    if not 1 <= jobs <= MAX_JOBS:
        raise InvalidInput(
            "jobs",
            f"must be between 1 and {MAX_JOBS}, not {jobs}",
            hint="1 dumps with one pg_dump (custom format); N > 1 runs N workers, about "
            "one per core the database server and respaldo can spare",
        )
    return jobs


def is_directory_dump(manifest: Manifest) -> bool:
    return manifest.meta.get("dump_format") == DIRECTORY_FORMAT


class _Finished:
    """pg_dump's stderr, line by line: the dump ids of finished table files go into a
    queue (``None`` at the end); its ordinary chatter is left out of error messages."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[int | None] = queue.SimpleQueue()

    def line(self, line: bytes) -> bool:
        match = _FINISHED.match(line)
        if match:
            self.queue.put(int(match.group(1)))
            return False
        return not line.startswith(b"pg_dump: ") or _LEVEL.match(line) is not None

    def end(self) -> None:
        self.queue.put(None)


class _Said:
    """What pg_dump has said so far, taken from :class:`_Finished`'s queue: the dump ids
    of table files it has finished and that are not stored yet (in that order), and
    whether it has ended (stderr closed: every finished file was said before)."""

    def __init__(self, finished: _Finished) -> None:
        self._queue = finished.queue
        self.done: dict[int, None] = {}
        self.ended = False

    def take(self, wait: float | None) -> None:
        """Take what pg_dump said; if nothing, wait up to ``wait`` seconds (None: until
        it says something) for the next line it says."""
        while not self.ended:
            try:
                item = self._queue.get(block=wait != 0, timeout=wait)
            except queue.Empty:
                return
            if item is None:
                self.ended = True
            else:
                self.done[item] = None
            wait = 0

    def next_done(self) -> int | None:
        """The first finished file not stored yet (removed from ``done``), or None."""
        for dump_id in self.done:
            del self.done[dump_id]
            return dump_id
        return None


class _Growing:
    """A table file that pg_dump may still be writing, read to its end: at the file's
    current end, a read waits (:data:`FOLLOW_WAIT` at a time) until there are more bytes,
    and returns 0 only once pg_dump has said the file is finished (or has ended: a
    pg_dump that failed fails the backup when it is waited for) and every byte is read.

    pg_dump says a file is finished only after its worker has closed it, so the read
    after that is the last one. Not thread-safe; one file at a time."""

    def __init__(self, fh: io.FileIO, dump_id: int, said: _Said) -> None:
        self._fh = fh
        self._id = dump_id
        self._said = said
        self._closed_by_pg_dump = False

    def readinto(self, buffer: memoryview) -> int:
        while True:
            got = self._fh.readinto(buffer) or 0
            if got or self._closed_by_pg_dump:
                return got
            if self._id in self._said.done or self._said.ended:
                self._closed_by_pg_dump = True  # one more read takes what it wrote last
                self._said.done.pop(self._id, None)
            else:
                self._said.take(FOLLOW_WAIT)

    def read(self, size: int = -1, /) -> bytes:
        buffer = bytearray(size if size >= 0 else 1 << 20)
        got = self.readinto(memoryview(buffer))
        return bytes(buffer[:got])


def _largest_table_file(directory: Path) -> tuple[int, Path] | None:
    """The table file in ``directory`` with the most bytes (the one pg_dump has been
    writing longest: it dumps the largest tables first), or None."""
    best: tuple[int, int, Path] | None = None
    with os.scandir(directory) as entries:
        for entry in entries:
            match = _DATA_FILE.match(entry.name)
            if match is None:
                continue
            try:
                size = entry.stat().st_size
            except FileNotFoundError:
                continue
            if best is None or size > best[0]:
                best = (size, int(match.group(1)), Path(entry.path))
    return None if best is None else (best[1], best[2])


def dump_directory(
    conninfo: ConnInfo,
    writer: BackupWriter,
    *,
    jobs: int,
    snapshot: str,
    tools: Tools,
    progress: Callable[[int], None],
    spool: Path | None = None,
    encoding: str | None = None,
    application_name: str | None = None,
    load_via_partition_root: bool = False,
    lock_wait_timeout_ms: int | None = None,
) -> int:
    """Dump ``conninfo``'s database with ``jobs`` pg_dump workers inside ``snapshot`` and
    store every file as a stream of ``writer``; returns the streams' total size.
    ``encoding``, ``application_name``, ``load_via_partition_root``,
    ``lock_wait_timeout_ms``: see :func:`respaldo.postgres.commands.pg_dump`.

    Finished table files are stored first, in the order pg_dump finished them; when
    none is waiting, the largest table file is stored as pg_dump writes it. ``spool`` is
    the parent of the private directory pg_dump writes into (default: the system's
    temporary directory); it is removed, with whatever is left in it, however this ends.
    Raises PostgresError (pg_dump failed: its own message), the writer's errors.
    """
    total = 0
    finished = _Finished()
    said = _Said(finished)
    with private_directory("dump", spool) as tmp:
        out = tmp / "dump"
        with pg_dump_directory(
            conninfo,
            out,
            jobs=jobs,
            snapshot=snapshot,
            progress=finished,
            bindir=tools.bindir,
            encoding=encoding,
            application_name=application_name,
            load_via_partition_root=load_via_partition_root,
            lock_wait_timeout_ms=lock_wait_timeout_ms,
        ):
            while True:
                said.take(0)
                dump_id = said.next_done()
                if dump_id is not None:
                    total += _store(writer, out / f"{dump_id}.dat", total, progress)
                    continue
                if said.ended:
                    break
                growing = _largest_table_file(out) if out.is_dir() else None
                if growing is None:  # pg_dump is still reading the catalog: look again
                    said.take(FOLLOW_WAIT)
                    continue
                total += _store(writer, growing[1], total, progress, follow=(growing[0], said))
        # pg_dump has exited successfully: every file left is complete. The table of
        # contents last, so that its stream names the dump's files all stored.
        rest = sorted(p for p in out.iterdir() if p.name != TOC_FILE)
        for path in [*rest, out / TOC_FILE]:
            total += _store(writer, path, total, progress)
    return total


def _store(
    writer: BackupWriter,
    path: Path,
    before: int,
    progress: Callable[[int], None],
    follow: tuple[int, _Said] | None = None,
) -> int:
    """Store one file of the spool as stream ``dump/<name>``, then delete it. Progress
    counts the bytes of every file so far (``before`` those of the earlier ones). With
    ``follow`` (its dump id, what pg_dump said), the file may still be growing: it is
    read until pg_dump has finished it (:class:`_Growing`)."""
    with path.open("rb", buffering=0) as fh:
        source: io.FileIO | _Growing = fh if follow is None else _Growing(fh, *follow)
        info = writer.write_stream(FILE_PREFIX + path.name, source, lambda n: progress(before + n))
    path.unlink()
    return info.size


def dump_files(manifest: Manifest) -> list[tuple[str, str]]:
    """(stream name, file name) of every file of a directory-format dump."""
    return [
        (s.name, s.name[len(FILE_PREFIX) :])
        for s in manifest.streams
        if s.name.startswith(FILE_PREFIX)
    ]


def write_files(
    stream: Callable[[Manifest, str], Iterator[bytes]],
    manifest: Manifest,
    directory: Path,
    *,
    only: set[str] | None = None,
    entries: set[int] | None = None,
    blobs: bool = True,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the dump's files (or those named in ``only``) into ``directory``; returns
    the bytes written. With ``entries`` (dump ids), a table's data file is written only
    if its entry is one of them (pg_restore ``--use-list`` opens no other), and the large
    objects' files only if ``blobs``. ``stream``
    yields a stream's verified chunks and raises at its end if its SHA-256 differs
    (IntegrityError), so nothing unverified is left unnoticed."""
    done = 0
    for name, file_name in dump_files(manifest):
        if only is not None and file_name not in only:
            continue
        data_file = _DATA_FILE.match(file_name)
        if entries is not None and data_file and int(data_file.group(1)) not in entries:
            continue
        if not blobs and file_name.startswith("blob"):
            continue
        with (directory / file_name).open("wb") as fh:
            for data in stream(manifest, name):
                fh.write(data)
                done += len(data)
                if progress is not None:
                    progress(done)
    return done


@contextlib.contextmanager
def table_of_contents(
    stream: Callable[[Manifest, str], Iterator[bytes]],
    manifest: Manifest,
    work_dir: Path | None = None,
) -> Iterator[Callable[[], Archive]]:
    """What the readers of a dump's table of contents read (see
    :data:`respaldo.postgres.dbprops.Archive`): the ``dump`` stream of a custom-format
    backup, or a private directory holding the ``toc.dat`` of a directory-format one."""
    if not is_directory_dump(manifest):
        yield lambda: stream(manifest, "dump")
        return
    with private_directory("toc", work_dir) as tmp:
        write_files(stream, manifest, tmp, only={TOC_FILE})
        yield lambda: tmp


def restore_directory(
    stream: Callable[[Manifest, str], Iterator[bytes]],
    manifest: Manifest,
    conninfo: ConnInfo,
    *,
    jobs: int,
    no_owner: bool,
    work_dir: Path | None,
    tools: Tools,
    use_list: str | None = None,
    entries: set[int] | None = None,
    blobs: bool = True,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Restore a directory-format backup into ``conninfo``'s database: its files are
    written (and checked) into a private directory in ``work_dir``, then ``pg_restore
    --jobs`` restores from it (only the entries of ``use_list``, when given, and then of
    the tables' data files only those of ``entries``, the dump ids in it; the large
    objects' files only if ``blobs``). The directory
    is removed however this ends. Returns the bytes of the files."""
    with private_directory("spool", work_dir) as tmp:
        out = tmp / "dump"
        out.mkdir()
        done = write_files(stream, manifest, out, entries=entries, blobs=blobs, progress=progress)
        listed = None
        if use_list is not None:
            listed = tmp / "use.list"
            listed.write_text(use_list, encoding="utf-8")
        with pg_restore(
            conninfo,
            source=out,
            jobs=jobs,
            no_owner=no_owner,
            use_list=listed,
            bindir=tools.bindir,
        ):
            pass
    return done

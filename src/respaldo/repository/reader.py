"""Reading streams back: fetch, authenticate, check ids, and check the stream's SHA-256.

Reads are planned a *window* at a time: the next chunks of the stream, up to
``WINDOW_BYTES`` of sealed data, are grouped by pack and sorted by offset, and chunks of
one pack that lie close together are read as one range of up to ``RUN_MAX`` bytes, gaps
of up to ``GAP_MAX`` bytes included. A first backup's chunks sit in stream order, so a
window is a handful of long ranges; after days of work a stream alternates between old
packs and the few new chunks of the day, and grouping by pack keeps that from turning
into one request per change (which is what makes restores from S3 slow over a WAN: each
request costs a round trip). A chunk that occurs twice in a window is read once. A small
pool fetches the ranges of the next window while the consumer works through this one;
memory stays bounded by two windows, each of at most ``WINDOW_BYTES`` sealed and
``WINDOW_PLAIN_BYTES`` of plaintext. Results carry their sealed bytes only for a reader
that copies them (``keep_sealed``). The first window of a read is small
(``FIRST_WINDOW_BYTES``) and each next one twice the last, up to ``WINDOW_BYTES``: a
reader that needs only the start of a stream (pg_restore reading a dump's table of
contents, which restore and ``ls`` do) gets it without a whole window being fetched,
decrypted and decompressed first.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise
from typing import BinaryIO

from respaldo.errors import IntegrityError, ObjectNotFound, StorageError
from respaldo.repository.crypto import SealError
from respaldo.repository.index import Location
from respaldo.repository.manifest import Manifest, StreamInfo, decode_list
from respaldo.repository.packs import pack_name
from respaldo.repository.repo import Repository

log = logging.getLogger(__name__)

RUN_MAX = 8 * 1024 * 1024
"""The largest range read in one request."""
GAP_MAX = 256 * 1024
"""Bytes of other chunks read (and thrown away) rather than making a second request: on S3
a request costs a round trip (tens of milliseconds), in which this much data arrives."""
WINDOW_BYTES = 16 * 1024 * 1024
"""Sealed bytes of stream planned together."""
WINDOW_PLAIN_BYTES = 2 * 1024 * 1024
"""Plaintext bytes of stream planned together. A window holds its chunks' plaintext
until the consumer has taken them, and a dump's chunks compress 3-4 times: bounded by
sealed bytes alone, two windows held over 100 MiB (a restore peaked at 345 MiB RSS).
Reading a 172 MiB dump from a local repository, the reader's own peak was 25 MiB at
4 MiB windows and 16 MiB at 2 MiB, at the same speed (about 1 s, far ahead of what
pg_restore takes in). Over S3 such a window is about one request."""
FIRST_WINDOW_BYTES = 1024 * 1024
"""The first window's size: windows grow from it to WINDOW_BYTES, doubling."""
WINDOWS_AHEAD = 2
FETCH_THREADS = 4


@dataclass(slots=True)
class ChunkResult:
    """One chunk as read: its data, or what went wrong and where. Not changed once made
    (not frozen: a frozen dataclass took 2 µs to make, one per chunk read)."""

    chunk_id: bytes
    data: bytes | None
    """The plaintext; None if the chunk could not be read. Empty in a result that keeps
    the sealed bytes instead (``keep_sealed``: the plaintext was checked and dropped)."""
    problem: str | None = None
    obj: str = ""
    sealed: bytes | None = None
    repository: str = ""
    damaged: bool = False
    """The copy read is bad for certain (authentication failed, pack truncated or
    missing), not merely unreadable for now: verification quarantines it."""
    size: int = 0
    """The plaintext's length (also where ``data`` was dropped)."""


@dataclass
class _Run:
    """One ranged read of a pack and the chunks inside it."""

    pack_id: str
    start: int
    end: int
    chunks: list[tuple[bytes, int, int]]  # (id, offset in pack, sealed length)


@dataclass
class _Window:
    """Consecutive entries of a stream, planned and fetched together."""

    ids: list[bytes]
    missing: set[bytes]  # ids the index does not know
    runs: list[_Run]


def _windows(repo: Repository, entries: Iterable[tuple[bytes, int]]) -> Iterator[_Window]:
    ids: list[bytes] = []
    located: dict[bytes, Location] = {}
    missing: set[bytes] = set()
    size = plain = 0
    limit = min(FIRST_WINDOW_BYTES, WINDOW_BYTES)
    for cid, length in entries:
        ids.append(cid)
        if cid not in located and cid not in missing:
            loc = _locate(repo, cid)
            if loc is None:
                missing.add(cid)
            else:
                located[cid] = loc
                size += loc.length
                plain += length
        if size >= limit or plain >= WINDOW_PLAIN_BYTES:
            yield _Window(ids, missing, _runs(located))
            ids, located, missing, size, plain = [], {}, set(), 0, 0
            limit = min(2 * limit, WINDOW_BYTES)
    if ids:
        yield _Window(ids, missing, _runs(located))


def _locate(repo: Repository, chunk_id: bytes) -> Location | None:
    found = repo.index.get(chunk_id)
    return found if found is not None else repo.locate_outside_index(chunk_id)


def _runs(located: dict[bytes, Location]) -> list[_Run]:
    """Ranges that cover every located chunk: per pack, by offset, small gaps bridged."""
    runs: list[_Run] = []
    ordered = sorted(located.items(), key=lambda item: (item[1].pack_id, item[1].offset))
    run: _Run | None = None
    for cid, loc in ordered:
        end = loc.offset + loc.length
        if (
            run is not None
            and run.pack_id == loc.pack_id
            and run.end <= loc.offset <= run.end + GAP_MAX
            and end - run.start <= RUN_MAX
        ):
            run.end = end
            run.chunks.append((cid, loc.offset, loc.length))
            continue
        run = _Run(loc.pack_id, loc.offset, end, [(cid, loc.offset, loc.length)])
        runs.append(run)
    return runs


def _fetch_run(repo: Repository, run: _Run, keep_sealed: bool = True) -> list[ChunkResult]:
    """Read one range and open its chunks; each result keeps its plaintext, or with
    ``keep_sealed`` (for copying them as they are) its sealed bytes and the plaintext's
    length only: the plaintext is opened and checked against the chunk's id all the same
    (a damaged chunk is never copied), then dropped, so that a copy does not hold each
    window twice.

    A chunk that fails authentication, or that the range came back too short for, is
    read once more before its result says *damaged*: the bytes may have been spoiled on
    their way (a bit flipped on a connection without TLS, a gateway that cut the answer
    short) while the copy in the store is whole, and a copy called damaged is
    quarantined by verification, out of every index for good (:mod:`.quarantine`). Only
    a copy that fails twice is damaged for certain."""
    results = _read_run(repo, run, keep_sealed)
    again = [c for c, r in zip(run.chunks, results, strict=True) if r.damaged and r.obj]
    if not again or results[0].problem == "pack is missing":
        return results
    start = min(offset for _, offset, _ in again)
    end = max(offset + length for _, offset, length in again)
    retry = _Run(run.pack_id, start, end, again)
    second = {r.chunk_id: r for r in _read_run(repo, retry, keep_sealed)}
    healed = sum(1 for r in second.values() if r.data is not None)
    if healed:
        log.warning(
            "%s in %s gave %d chunks that failed authentication or came short, and read "
            "whole a second time: the store (or the way to it) returned bad bytes",
            pack_name(run.pack_id),
            repo.storage.location,
            healed,
        )
    return [second.get(r.chunk_id, r) if r.damaged else r for r in results]


def _read_run(repo: Repository, run: _Run, keep_sealed: bool) -> list[ChunkResult]:
    """One read of a run's range, its chunks opened (see :func:`_fetch_run`)."""
    name = pack_name(run.pack_id)
    try:
        blob = repo.storage.get(name, run.start, run.end - run.start)
    except ObjectNotFound:
        return [
            ChunkResult(cid, None, "pack is missing", name, damaged=True)
            for cid, _, _ in run.chunks
        ]
    except StorageError as exc:
        return [
            ChunkResult(cid, None, f"cannot read pack: {exc}", name) for cid, _, _ in run.chunks
        ]
    results = []
    view = memoryview(blob)  # slices without copies: the range is freed with its results
    # Looked up once a run, not once a chunk (the location is a URI made on each call).
    open_chunk, location, base = repo.sealer.open_chunk, repo.storage.location, run.start
    for cid, offset, length in run.chunks:
        part = view[offset - base : offset - base + length]
        if len(part) != length:
            results.append(ChunkResult(cid, None, "pack is truncated", name, damaged=True))
            continue
        try:
            data = open_chunk(cid, part)
        except SealError as exc:
            results.append(ChunkResult(cid, None, str(exc), name, damaged=True))
            continue
        if keep_sealed:
            results.append(ChunkResult(cid, b"", None, name, bytes(part), location, size=len(data)))
        else:
            results.append(ChunkResult(cid, data, None, name, None, location, size=len(data)))
    return results


def _not_indexed(repo: Repository, cid: bytes) -> ChunkResult:
    """The result for a chunk the index does not hold: quarantined, or unknown."""
    copies = repo.quarantine.copies_of(cid)
    if not copies:
        damage = repo.index_damage()
        problem = f"chunk is not in the index ({damage})" if damage else "chunk is not in the index"
        return ChunkResult(cid, None, problem, "")
    first = min(copies, key=lambda c: c.found)
    return ChunkResult(
        cid,
        None,
        f"chunk is damaged ({first.problem}; quarantined {first.found:%Y-%m-%d %H:%M} UTC) "
        "and no good copy is indexed",
        pack_name(first.pack_id),
    )


OnFallback = Callable[[ChunkResult, ChunkResult], None]
"""Called with (the failed result, the good one from another repository)."""


def fetch_chunks(
    repo: Repository,
    entries: Iterable[tuple[bytes, int]],
    *,
    fallbacks: Sequence[Repository] = (),
    on_fallback: OnFallback | None = None,
    other_copies: bool = True,
    keep_sealed: bool = False,
) -> Iterator[ChunkResult]:
    """Yield every entry's chunk, in order, with errors as results rather than raised
    (:func:`fetch_windows`, one result at a time)."""
    for results in fetch_windows(
        repo,
        entries,
        fallbacks=fallbacks,
        on_fallback=on_fallback,
        other_copies=other_copies,
        keep_sealed=keep_sealed,
    ):
        yield from results


def fetch_windows(
    repo: Repository,
    entries: Iterable[tuple[bytes, int]],
    *,
    fallbacks: Sequence[Repository] = (),
    on_fallback: OnFallback | None = None,
    other_copies: bool = True,
    keep_sealed: bool = False,
) -> Iterator[list[ChunkResult]]:
    """Yield every entry's chunk, in order, a window's results at a time (a list of at
    most about WINDOW_PLAIN_BYTES of plaintext), with errors as results rather than
    raised. A reader that takes a window at a time does its own work per window, not per
    chunk (about 20 KiB: per chunk, a generator step, a lock, a call cost more than
    the bytes).

    A result carries its sealed bytes instead of its plaintext if ``keep_sealed`` (copy
    stores them as they are; ``size`` says the plaintext's length, and ``data`` is empty);
    the other readers need the plaintext alone. Never holding both keeps a reader's
    memory at about two windows (WINDOW_PLAIN_BYTES of plaintext, or their sealed bytes).

    While a quarantine record is unreadable (:mod:`.quarantine`), a copy found damaged
    is replaced by another copy of the chunk in ``repo`` if there is a good one (unless
    not ``other_copies``: verification wants to see the damaged copy). A chunk still
    missing or damaged is looked for in each of ``fallbacks`` (mirrors of ``repo``: same
    keys, same chunk ids) in turn; ``on_fallback`` hears of every chunk read that way.
    """
    with ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="fetch") as pool:
        queue: deque[tuple[_Window, list[Future[list[ChunkResult]]]]] = deque()
        for window in _windows(repo, entries):
            futures = [pool.submit(_fetch_run, repo, run, keep_sealed) for run in window.runs]
            queue.append((window, futures))
            while len(queue) > WINDOWS_AHEAD - 1:
                yield _in_order(
                    repo, *queue.popleft(), fallbacks, on_fallback, other_copies, keep_sealed
                )
        while queue:
            yield _in_order(
                repo, *queue.popleft(), fallbacks, on_fallback, other_copies, keep_sealed
            )


def _in_order(
    repo: Repository,
    window: _Window,
    futures: list[Future[list[ChunkResult]]],
    fallbacks: Sequence[Repository],
    on_fallback: OnFallback | None,
    other_copies: bool,
    keep_sealed: bool,
) -> list[ChunkResult]:
    results = [_not_indexed(repo, cid) for cid in window.missing]
    for future in futures:
        results.extend(future.result())
    if other_copies and repo.quarantine.unreadable:
        results = _other_copies(repo, results, keep_sealed)
    repaired = _repair(results, fallbacks, on_fallback, keep_sealed)
    found = {result.chunk_id: result for result in repaired}
    return [found[cid] for cid in window.ids]


def _other_copies(
    repo: Repository, results: list[ChunkResult], keep_sealed: bool
) -> list[ChunkResult]:
    """Replace results damaged for certain by another good copy in ``repo`` itself."""
    failed = {r.chunk_id: r for r in results if r.data is None and r.damaged}
    if not failed:
        return results
    fixed: dict[bytes, ChunkResult] = {}
    for cid, locations in repo.all_copies(failed).items():
        for loc in locations:
            if cid in fixed or pack_name(loc.pack_id) == failed[cid].obj:
                continue
            run = _Run(loc.pack_id, loc.offset, loc.offset + loc.length, [])
            run.chunks.append((cid, loc.offset, loc.length))
            [alternative] = _fetch_run(repo, run, keep_sealed)
            if alternative.data is not None:
                fixed[cid] = alternative
    return [fixed.get(r.chunk_id, r) if r.data is None else r for r in results]


def _repair(
    results: list[ChunkResult],
    fallbacks: Sequence[Repository],
    on_fallback: OnFallback | None,
    keep_sealed: bool,
) -> list[ChunkResult]:
    """Replace failed results with good ones from the fallbacks, read in planned ranges
    (a pack lost here is a few requests to a mirror, not one per chunk)."""
    failed = [r for r in results if r.data is None]
    if not fallbacks or not failed:
        return results
    fixed: dict[bytes, ChunkResult] = {}
    for other in fallbacks:
        located = {}
        for result in failed:
            loc = _locate(other, result.chunk_id)
            if result.chunk_id not in fixed and loc is not None:
                located[result.chunk_id] = loc
        for run in _runs(located):
            for alternative in _fetch_run(other, run, keep_sealed):
                if alternative.data is not None:
                    fixed[alternative.chunk_id] = alternative
    repaired = []
    for result in results:
        good = fixed.get(result.chunk_id) if result.data is None else None
        if good is not None:
            if on_fallback is not None:
                on_fallback(result, good)
            result = good
        repaired.append(result)
    return repaired


def read_list(
    repo: Repository,
    list_id: str,
    fallbacks: Sequence[Repository] = (),
    on_fallback: OnFallback | None = None,
    other_copies: bool = True,
) -> list[tuple[bytes, int]]:
    """The entries of one list chunk. Errors come back as a failed ChunkResult."""
    (result,) = list(
        fetch_chunks(
            repo,
            [(bytes.fromhex(list_id), 0)],
            fallbacks=fallbacks,
            on_fallback=on_fallback,
            other_copies=other_copies,
        )
    )
    if result.data is None:
        raise _ChunkFailure(result)
    try:
        return decode_list(result.data)
    except ValueError as exc:
        raise _ChunkFailure(ChunkResult(result.chunk_id, None, str(exc), result.obj)) from None


class _ChunkFailure(Exception):
    def __init__(self, result: ChunkResult) -> None:
        super().__init__(result.problem)
        self.result = result


def _integrity(manifest: Manifest, stream: StreamInfo, result: ChunkResult) -> IntegrityError:
    return IntegrityError(
        f"chunk {result.chunk_id.hex()[:16]} of stream {stream.name!r}: {result.problem}",
        obj=result.obj,
        backup=manifest.backup_id,
        hint="run 'respaldo verify' and 'respaldo repair' (which takes good copies from "
        "mirrors), restore from another repository, or run 'respaldo index rebuild' if "
        "the index is at fault",
    )


def iter_stream(
    repo: Repository,
    manifest: Manifest,
    stream_name: str,
    *,
    fallbacks: Sequence[Repository] = (),
    on_fallback: OnFallback | None = None,
) -> Iterator[bytes]:
    """Yield a stream's plaintext, verified chunk by chunk; the SHA-256 is checked last
    (:func:`iter_stream_batches`, one chunk at a time).

    Raises IntegrityError naming the backup and the object at the first problem. Callers
    that must not act on unverified data (restore into a database) need the whole stream
    to have been read before they commit to it (restore writes into a staging database and
    renames it only after the iterator has ended without error).
    """
    for batch in iter_stream_batches(
        repo, manifest, stream_name, fallbacks=fallbacks, on_fallback=on_fallback
    ):
        yield from batch


def iter_stream_batches(
    repo: Repository,
    manifest: Manifest,
    stream_name: str,
    *,
    fallbacks: Sequence[Repository] = (),
    on_fallback: OnFallback | None = None,
) -> Iterator[list[bytes]]:
    """Yield a stream's plaintext a window of chunks at a time (a list of at most about
    WINDOW_PLAIN_BYTES, in order), each chunk authenticated and checked against its id
    before its window is yielded; the stream's size and SHA-256 are checked after the
    last window, before this returns.

    Raises IntegrityError naming the backup and the object at the first problem (a
    window holding a bad chunk is not yielded at all). The same guarantee as
    :func:`iter_stream`: only the end proves the stream complete and in order.
    """
    stream = manifest.stream(stream_name)
    sha = hashlib.sha256()
    update = sha.update
    size = 0

    def entries() -> Iterator[tuple[bytes, int]]:
        # One read across the stream's lists: no pool and no small first window again
        # at each list's start.
        for list_id in stream.lists:
            try:
                listed = read_list(repo, list_id, fallbacks, on_fallback)
            except _ChunkFailure as failure:
                raise _integrity(manifest, stream, failure.result) from None
            yield from listed

    for results in fetch_windows(repo, entries(), fallbacks=fallbacks, on_fallback=on_fallback):
        batch: list[bytes] = []
        append = batch.append
        for result in results:
            data = result.data
            if data is None:
                raise _integrity(manifest, stream, result)
            update(data)
            size += len(data)
            append(data)
        yield batch
    if size != stream.size or sha.hexdigest() != stream.sha256:
        raise IntegrityError(
            f"stream {stream_name!r} does not match its checksum "
            f"({size} bytes read, {stream.size} expected)",
            backup=manifest.backup_id,
        )


def copy_stream(repo: Repository, manifest: Manifest, stream_name: str, out: BinaryIO) -> int:
    """Write a stream to ``out``; returns the byte count. Raises IntegrityError.

    The checksum is known only at the end: on IntegrityError, discard what was written.
    """
    total = 0
    for data in iter_stream(repo, manifest, stream_name):
        out.write(data)
        total += len(data)
    return total


def iter_ranges(
    repo: Repository,
    manifest: Manifest,
    stream_name: str,
    ranges: Sequence[tuple[int, int]],
    *,
    fallbacks: Sequence[Repository] = (),
    on_fallback: OnFallback | None = None,
) -> Iterator[bytes]:
    """Yield the bytes of ``ranges`` (``(start, end)`` offsets, ascending, not overlapping)
    of a stream, reading only the chunks that hold them, each verified.

    The stream's SHA-256 is not checked: not all of it is read. Raises IntegrityError as
    :func:`iter_stream`, ValueError for ranges out of order.
    """
    if any(a > b for a, b in ranges) or any(b > c for (_, b), (c, _) in pairwise(ranges)):
        raise ValueError("ranges must be ascending and must not overlap")
    stream = manifest.stream(stream_name)
    needed: list[tuple[bytes, int, int]] = []  # chunk id, length, offset in the stream
    offset = r = 0
    for list_id in stream.lists:
        try:
            entries = read_list(repo, list_id, fallbacks, on_fallback)
        except _ChunkFailure as failure:
            raise _integrity(manifest, stream, failure.result) from None
        for cid, length in entries:
            while r < len(ranges) and ranges[r][1] <= offset:
                r += 1
            if r < len(ranges) and ranges[r][0] < offset + length:
                needed.append((cid, length, offset))
            offset += length
    results = fetch_chunks(
        repo,
        [(cid, length) for cid, length, _ in needed],
        fallbacks=fallbacks,
        on_fallback=on_fallback,
    )
    r = 0
    for (_, length, start), result in zip(needed, results, strict=True):
        if result.data is None or len(result.data) != length:
            raise _integrity(manifest, stream, result)
        end = start + length
        while r < len(ranges) and ranges[r][1] <= start:
            r += 1
        i = r
        while i < len(ranges) and ranges[i][0] < end:
            a, b = max(ranges[i][0], start), min(ranges[i][1], end)
            if a < b:
                yield result.data[a - start : b - start]
            i += 1

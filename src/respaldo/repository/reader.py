"""Reading streams back: fetch, authenticate, check ids, and check the stream's SHA-256.

Consecutive chunks of a stream usually sit next to each other in one pack (they were
packed in order), so reads are merged into ranges of up to ``RUN_MAX`` bytes: one request
per few MiB instead of one per 16 KiB chunk, which is what makes S3 restores fast. A small
pool fetches a few ranges ahead of the consumer; memory stays bounded by that window.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

from respaldo.errors import IntegrityError, ObjectNotFound, StorageError
from respaldo.repository.crypto import SealError
from respaldo.repository.manifest import Manifest, StreamInfo, decode_list
from respaldo.repository.packs import pack_name
from respaldo.repository.repo import Repository

RUN_MAX = 8 * 1024 * 1024
WINDOW = 4


@dataclass(frozen=True, slots=True)
class ChunkResult:
    """One chunk as read: its data, or what went wrong and where."""

    chunk_id: bytes
    data: bytes | None
    problem: str | None = None
    obj: str = ""
    sealed: bytes | None = None
    repository: str = ""


@dataclass
class _Run:
    pack_id: str
    start: int
    end: int
    chunks: list[tuple[bytes, int, int]]  # (id, offset in pack, sealed length)


def _plan(repo: Repository, entries: Iterable[tuple[bytes, int]]) -> Iterator[_Run | ChunkResult]:
    run: _Run | None = None
    for cid, _length in entries:
        loc = repo.index.get(cid)
        if loc is None:
            if run is not None:
                yield run
                run = None
            yield ChunkResult(cid, None, "chunk is not in the index", "")
            continue
        if (
            run is not None
            and run.pack_id == loc.pack_id
            and run.end == loc.offset
            and run.end - run.start + loc.length <= RUN_MAX
        ):
            run.end += loc.length
            run.chunks.append((cid, loc.offset, loc.length))
            continue
        if run is not None:
            yield run
        run = _Run(
            loc.pack_id, loc.offset, loc.offset + loc.length, [(cid, loc.offset, loc.length)]
        )
    if run is not None:
        yield run


def _fetch_run(repo: Repository, run: _Run) -> list[ChunkResult]:
    name = pack_name(run.pack_id)
    try:
        blob = repo.storage.get(name, run.start, run.end - run.start)
    except ObjectNotFound:
        return [ChunkResult(cid, None, "pack is missing", name) for cid, _, _ in run.chunks]
    except StorageError as exc:
        return [
            ChunkResult(cid, None, f"cannot read pack: {exc}", name) for cid, _, _ in run.chunks
        ]
    results = []
    for cid, offset, length in run.chunks:
        part = blob[offset - run.start : offset - run.start + length]
        if len(part) != length:
            results.append(ChunkResult(cid, None, "pack is truncated", name))
            continue
        try:
            data = repo.sealer.open_chunk(cid, part)
            results.append(ChunkResult(cid, data, None, name, part, repo.storage.location))
        except SealError as exc:
            results.append(ChunkResult(cid, None, str(exc), name))
    return results


OnFallback = Callable[[ChunkResult, ChunkResult], None]
"""Called with (the failed result, the good one from another repository)."""


def fetch_chunks(
    repo: Repository,
    entries: Iterable[tuple[bytes, int]],
    *,
    window: int = WINDOW,
    fallbacks: Sequence[Repository] = (),
    on_fallback: OnFallback | None = None,
) -> Iterator[ChunkResult]:
    """Yield every entry's chunk, in order, with errors as results rather than raised.

    A chunk that is missing or damaged in ``repo`` is looked for in each of
    ``fallbacks`` (mirrors of ``repo``: same keys, same chunk ids) in turn;
    ``on_fallback`` hears of every chunk read that way.
    """
    with ThreadPoolExecutor(max(1, min(window, 8)), thread_name_prefix="fetch") as pool:
        queue: deque[Future[list[ChunkResult]] | ChunkResult] = deque()
        for item in _plan(repo, entries):
            queue.append(pool.submit(_fetch_run, repo, item) if isinstance(item, _Run) else item)
            while len(queue) > window:
                yield from _repair(_resolve(queue.popleft()), fallbacks, on_fallback)
        while queue:
            yield from _repair(_resolve(queue.popleft()), fallbacks, on_fallback)


def _repair(
    results: list[ChunkResult], fallbacks: Sequence[Repository], on_fallback: OnFallback | None
) -> list[ChunkResult]:
    if not fallbacks or all(r.data is not None for r in results):
        return results
    repaired = []
    for result in results:
        if result.data is None:
            for other in fallbacks:
                (alternative,) = _fetch_one(other, result.chunk_id)
                if alternative.data is not None:
                    if on_fallback is not None:
                        on_fallback(result, alternative)
                    result = alternative
                    break
        repaired.append(result)
    return repaired


def _fetch_one(repo: Repository, cid: bytes) -> list[ChunkResult]:
    loc = repo.index.get(cid)
    if loc is None:
        return [
            ChunkResult(cid, None, "chunk is not in the index", "", None, repo.storage.location)
        ]
    run = _Run(loc.pack_id, loc.offset, loc.offset + loc.length, [(cid, loc.offset, loc.length)])
    return _fetch_run(repo, run)


def _resolve(item: Future[list[ChunkResult]] | ChunkResult) -> list[ChunkResult]:
    return [item] if isinstance(item, ChunkResult) else item.result()


def read_list(
    repo: Repository,
    list_id: str,
    fallbacks: Sequence[Repository] = (),
    on_fallback: OnFallback | None = None,
) -> list[tuple[bytes, int]]:
    """The entries of one list chunk. Errors come back as a failed ChunkResult."""
    (result,) = list(
        fetch_chunks(
            repo,
            [(bytes.fromhex(list_id), 0)],
            window=1,
            fallbacks=fallbacks,
            on_fallback=on_fallback,
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
        hint="restore from another repository, or run 'respaldo index rebuild' if the "
        "index is at fault",
    )


def iter_stream(
    repo: Repository,
    manifest: Manifest,
    stream_name: str,
    *,
    fallbacks: Sequence[Repository] = (),
    on_fallback: OnFallback | None = None,
) -> Iterator[bytes]:
    """Yield a stream's plaintext, verified chunk by chunk; the SHA-256 is checked last.

    Raises IntegrityError naming the backup and the object at the first problem. Callers
    that must not act on unverified data (restore into a database) need the whole stream
    to have been read before they commit to it (restore writes into a staging database and
    renames it only after the iterator has ended without error).
    """
    stream = manifest.stream(stream_name)
    sha = hashlib.sha256()
    size = 0
    for list_id in stream.lists:
        try:
            entries = read_list(repo, list_id, fallbacks, on_fallback)
        except _ChunkFailure as failure:
            raise _integrity(manifest, stream, failure.result) from None
        for result in fetch_chunks(repo, entries, fallbacks=fallbacks, on_fallback=on_fallback):
            if result.data is None:
                raise _integrity(manifest, stream, result)
            sha.update(result.data)
            size += len(result.data)
            yield result.data
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

"""Reading streams back: fetch, authenticate, check ids, and check the stream's SHA-256.

Consecutive chunks of a stream usually sit next to each other in one pack (they were
packed in order), so reads are merged into ranges of up to ``RUN_MAX`` bytes: one request
per few MiB instead of one per 16 KiB chunk, which is what makes S3 restores fast. A small
pool fetches a few ranges ahead of the consumer; memory stays bounded by that window.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable, Iterator
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
            results.append(ChunkResult(cid, repo.sealer.open_chunk(cid, part), None, name))
        except SealError as exc:
            results.append(ChunkResult(cid, None, str(exc), name))
    return results


def fetch_chunks(
    repo: Repository, entries: Iterable[tuple[bytes, int]], *, window: int = WINDOW
) -> Iterator[ChunkResult]:
    """Yield every entry's chunk, in order, with errors as results rather than raised."""
    with ThreadPoolExecutor(max(1, min(window, 8)), thread_name_prefix="fetch") as pool:
        queue: deque[Future[list[ChunkResult]] | ChunkResult] = deque()
        for item in _plan(repo, entries):
            queue.append(pool.submit(_fetch_run, repo, item) if isinstance(item, _Run) else item)
            while len(queue) > window:
                yield from _resolve(queue.popleft())
        while queue:
            yield from _resolve(queue.popleft())


def _resolve(item: Future[list[ChunkResult]] | ChunkResult) -> list[ChunkResult]:
    return [item] if isinstance(item, ChunkResult) else item.result()


def read_list(repo: Repository, list_id: str) -> list[tuple[bytes, int]]:
    """The entries of one list chunk. Errors come back as a failed ChunkResult."""
    (result,) = list(fetch_chunks(repo, [(bytes.fromhex(list_id), 0)], window=1))
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


def iter_stream(repo: Repository, manifest: Manifest, stream_name: str) -> Iterator[bytes]:
    """Yield a stream's plaintext, verified chunk by chunk; the SHA-256 is checked last.

    Raises IntegrityError naming the backup and the object at the first problem. Callers
    that must not act on unverified data (restore into a database) need the whole stream
    to have been read before they commit to it: see :func:`copy_stream`.
    """
    stream = manifest.stream(stream_name)
    sha = hashlib.sha256()
    size = 0
    for list_id in stream.lists:
        try:
            entries = read_list(repo, list_id)
        except _ChunkFailure as failure:
            raise _integrity(manifest, stream, failure.result) from None
        for result in fetch_chunks(repo, entries):
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
    """Write a verified stream to ``out``; returns the byte count. Raises IntegrityError."""
    total = 0
    for data in iter_stream(repo, manifest, stream_name):
        out.write(data)
        total += len(data)
    return total

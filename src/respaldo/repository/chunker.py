"""Content-defined chunking with FastCDC (the 2020 paper), from a compiled implementation.

pyfastcdc silently falls back to pure Python when its Cython extension does not load,
and that is about 200 times slower: a backup that should take minutes would take hours.
So we import the compiled module directly and fail loudly if it is missing.

The gear table is seeded from the repository's key material: cut points then depend on a
secret, so chunk sizes do not reveal known content (a fingerprinting attack on CDC).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from respaldo.domain import chunker_sizes_problem
from respaldo.errors import ChunkerUnavailable


class Readable(Protocol):
    """A binary source: a file, a pipe, BytesIO. :class:`BlockCutter` uses ``readinto``
    when the object has it (straight into its block), else ``read``."""

    def read(self, size: int = ..., /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class ChunkerParams:
    """Chunk size bounds in bytes; stored in the repository's ``config``.

    FastCDC's expected chunk size is about ``avg_size + min_size`` (cut-point skipping).
    """

    min_size: int
    avg_size: int
    max_size: int
    normalization: int = 1

    def __post_init__(self) -> None:
        # The chunker's own bounds: sizes it refuses would fail every backup, not init.
        problem = chunker_sizes_problem(self.min_size, self.avg_size, self.max_size)
        if problem is not None:
            raise ValueError(problem)
        if not 0 <= self.normalization <= 3:
            raise ValueError(f"chunker normalization {self.normalization} is not 0 to 3")

    def to_json(self) -> dict[str, int | str]:
        return {
            "algorithm": "fastcdc2020",
            "min_size": self.min_size,
            "avg_size": self.avg_size,
            "max_size": self.max_size,
            "normalization": self.normalization,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChunkerParams:
        if data.get("algorithm") != "fastcdc2020":
            raise ValueError(f"unknown chunker {data.get('algorithm')!r}")
        return cls(
            int(data["min_size"]),
            int(data["avg_size"]),
            int(data["max_size"]),
            int(data.get("normalization", 1)),
        )


def load_fastcdc() -> Any:
    """Return the compiled FastCDC class, or raise ChunkerUnavailable."""
    try:
        from pyfastcdc.cy import FastCDC
    except ImportError as exc:
        raise ChunkerUnavailable(
            "the compiled FastCDC chunker (pyfastcdc.cy) could not be loaded",
            hint="reinstall pyfastcdc from a wheel or with a C compiler present "
            "(the pure-Python fallback is far too slow for backups)",
        ) from exc
    return FastCDC


# What a block reads past its chunks: the chunks it cuts are whole, so the next block starts
# with the bytes after its last cut (fewer than ``max_size``).
BLOCK_SIZE = 1 << 20
# What one read() of a source without readinto asks for: each returns a new bytes object,
# and a 1 MiB one costs page faults on every read (BlockStarts' scan of an 844 MiB dump took
# 0.97 CPU-s with 1 MiB reads against 0.24 with 128 KiB ones, measured); smaller ones
# come from memory that malloc reuses.
READ_PIECE = 128 * 1024
# Buffers kept for reuse: a fresh 1 MiB buffer costs 256 page faults to fill.
FREE_BUFFERS = 8


@dataclass(slots=True)
class Block:
    """Whole chunks of a stream, back to back: ``view`` holds them, ``ends[i]`` is the
    offset just past chunk ``i`` in it. ``view`` is a window on a buffer that the
    :class:`BlockCutter` reuses once :meth:`BlockCutter.release` is called."""

    buffer: bytearray
    view: memoryview
    ends: list[int]

    def chunks(self) -> Iterator[memoryview]:
        start = 0
        view = self.view
        for end in self.ends:
            yield view[start:end]
            start = end


class BlockCutter:
    """Reads a stream in blocks of about ``block_size`` bytes and cuts each into chunks.

    The cut points are those of pyfastcdc's ``cut_stream`` (and of ``cut_buf`` over the
    whole stream): FastCDC decides a cut from at most ``max_size`` bytes after the
    chunk's start, so a chunk is cut only when that many bytes (or the end of the
    stream) are in the buffer; the bytes after the block's last cut start the next
    block. One large read per block instead of one or more per chunk, and no copy of
    each chunk: the chunks are memoryviews of the block (tests/unit/repository/
    test_chunk_golden.py pins the cut points). Not thread-safe: one stream at a time,
    blocks released from the same thread.
    """

    def __init__(self, params: ChunkerParams, seed: int, block_size: int = BLOCK_SIZE) -> None:
        self._fastcdc = load_fastcdc()(
            params.avg_size,
            min_size=params.min_size,
            max_size=params.max_size,
            normalized_chunking=params.normalization,
            seed=seed,
        )
        self._max = params.max_size
        self._capacity = max(1, block_size) + params.max_size
        self._free: list[bytearray] = []

    def release(self, block: Block) -> None:
        """Hand ``block``'s buffer back for reuse: nothing may read its chunks after."""
        block.view.release()
        if len(self._free) < FREE_BUFFERS:
            self._free.append(block.buffer)

    def blocks(self, reader: Readable) -> Iterator[Block]:
        """Yield the stream's blocks in order, until ``reader`` is at its end."""
        readinto = getattr(reader, "readinto", None)
        capacity = self._capacity
        carry = b""
        eof = False
        while not eof:
            buffer = self._free.pop() if self._free else bytearray(capacity)
            window = memoryview(buffer)
            filled = len(carry)
            window[:filled] = carry
            while filled < capacity:
                if readinto is not None:
                    got = readinto(window[filled:]) or 0
                else:
                    data = reader.read(min(READ_PIECE, capacity - filled))
                    got = len(data)
                    window[filled : filled + got] = data
                if got == 0:
                    eof = True
                    break
                filled += got
            # Not at the end, the buffer is full: it holds at least one whole chunk.
            ends = self._cut(window[:filled], eof)
            if not ends:  # an empty stream, or one that ended where the last block did
                window.release()
                self._free.append(buffer)
                return
            used = ends[-1]
            carry = bytes(window[used:filled])
            yield Block(buffer, window[:used], ends)
            window.release()

    def _cut(self, data: memoryview, eof: bool) -> list[int]:
        """Offsets just past each chunk that ``data`` holds whole (all of them at the end
        of the stream; else each one that starts at least ``max_size`` before the end)."""
        ends = []
        limit = len(data) - self._max
        for chunk in self._fastcdc.cut_buf(data):
            if not eof and chunk.offset > limit:
                break
            ends.append(chunk.offset + chunk.length)
        return ends


def iter_chunks(reader: Readable, params: ChunkerParams, seed: int) -> Iterator[bytes]:
    """Yield the stream's chunks as independent ``bytes`` objects, in order.

    Memory stays bounded: the chunker holds a few blocks whatever the stream's length.
    """
    cutter = BlockCutter(params, seed)
    for block in cutter.blocks(reader):
        chunks = [bytes(c) for c in block.chunks()]
        cutter.release(block)
        yield from chunks

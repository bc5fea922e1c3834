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
    """A binary source: a file, a pipe, BytesIO. pyfastcdc uses ``readinto`` when the
    object has it (no copy), else ``read``."""

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


def iter_chunks(reader: Readable, params: ChunkerParams, seed: int) -> Iterator[bytes]:
    """Yield the stream's chunks as independent ``bytes`` objects, in order.

    Memory stays bounded: the chunker holds at most a few
    ``max_size`` buffers whatever the stream's length.
    """
    fastcdc = load_fastcdc()(
        params.avg_size,
        min_size=params.min_size,
        max_size=params.max_size,
        normalized_chunking=params.normalization,
        seed=seed,
    )
    for chunk in fastcdc.cut_stream(reader):
        # The chunk's memoryview is reused for the next one: copy before handing it on.
        yield bytes(chunk.data)

"""The index: which pack holds each chunk, and where in it.

``index/<index id>`` is a sealed blob (associated data ``respaldo/index``) whose plaintext
is ``b"RIDX" | version (u8 = 1)`` followed by groups
``pack id (32 raw bytes) | entry count (u32) | count × pack entry (44 bytes, as in packs)``.
The index id is the SHA-256 (hex) of the sealed object. Index files are written after the
packs they describe and never modified; garbage collection writes new ones and deletes
old ones. Several index files may describe the same chunk (two writers that stored it at
once); any of them is valid.

In memory the index is a dict from chunk id to a compact tuple. Index files are cached
locally, still sealed, so that opening a repository costs a listing, not a download.
"""

from __future__ import annotations

import hashlib
import struct
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from respaldo.repository.crypto import AAD_INDEX, Sealer
from respaldo.repository.packs import ENTRY, PackEntry

MAGIC = b"RIDX\x01"
GROUP = struct.Struct("<32sI")
INDEX_PREFIX = "index/"


@dataclass(frozen=True, slots=True)
class Location:
    pack_id: str
    offset: int
    length: int
    raw_length: int


def encode_index(groups: Iterable[tuple[str, list[PackEntry]]]) -> bytes:
    parts = [MAGIC]
    for pack_id, entries in groups:
        parts.append(GROUP.pack(bytes.fromhex(pack_id), len(entries)))
        parts.extend(ENTRY.pack(e.chunk_id, e.offset, e.length, e.raw_length) for e in entries)
    return b"".join(parts)


def decode_index(data: bytes) -> Iterator[tuple[str, list[PackEntry]]]:
    if not data.startswith(MAGIC):
        raise ValueError("not an index (bad magic)")
    pos = len(MAGIC)
    while pos < len(data):
        if pos + GROUP.size > len(data):
            raise ValueError("index is truncated")
        raw_pack, count = GROUP.unpack_from(data, pos)
        pos += GROUP.size
        end = pos + count * ENTRY.size
        if end > len(data):
            raise ValueError("index is truncated")
        entries = [PackEntry(*f) for f in ENTRY.iter_unpack(data[pos:end])]
        pos = end
        yield raw_pack.hex(), entries


def seal_index(sealer: Sealer, groups: Iterable[tuple[str, list[PackEntry]]]) -> tuple[str, bytes]:
    """Return (object name, sealed bytes) for an index file describing ``groups``."""
    blob = sealer.seal(encode_index(groups), AAD_INDEX)
    return f"{INDEX_PREFIX}{hashlib.sha256(blob).hexdigest()}", blob


class ChunkIndex:
    """Thread-safe map chunk id -> Location, with pack ids interned."""

    def __init__(self) -> None:
        self._map: dict[bytes, tuple[int, int, int, int]] = {}
        self._packs: list[str] = []
        self._pack_no: dict[str, int] = {}
        self._lock = threading.Lock()

    def add_pack(self, pack_id: str, entries: Iterable[PackEntry]) -> None:
        with self._lock:
            no = self._pack_no.get(pack_id)
            if no is None:
                no = len(self._packs)
                self._packs.append(pack_id)
                self._pack_no[pack_id] = no
            for e in entries:
                # First writer wins: a chunk stored twice may point at either pack.
                self._map.setdefault(e.chunk_id, (no, e.offset, e.length, e.raw_length))

    def __contains__(self, chunk_id: object) -> bool:
        return chunk_id in self._map

    def __len__(self) -> int:
        return len(self._map)

    def get(self, chunk_id: bytes) -> Location | None:
        found = self._map.get(chunk_id)
        if found is None:
            return None
        no, offset, length, raw = found
        return Location(self._packs[no], offset, length, raw)

    def packs(self) -> set[str]:
        with self._lock:
            used = {no for no, _, _, _ in self._map.values()}
            return {self._packs[no] for no in used}

    def by_pack(self) -> dict[str, list[PackEntry]]:
        with self._lock:
            groups: dict[str, list[PackEntry]] = {}
            for chunk_id, (no, offset, length, raw) in self._map.items():
                groups.setdefault(self._packs[no], []).append(
                    PackEntry(chunk_id, offset, length, raw)
                )
        for entries in groups.values():
            entries.sort(key=lambda e: e.offset)
        return groups

"""The index: which pack holds each chunk, and where in it.

``index/<index id>`` is a sealed blob (associated data ``respaldo/index``) whose plaintext
is ``b"RIDX" | version (u8 = 1)`` followed by groups
``pack id (32 raw bytes) | entry count (u32) | count × pack entry (44 bytes, as in packs)``.
The index id is the SHA-256 (hex) of the sealed object. Index files are written after the
packs they describe and never modified; garbage collection writes new ones and deletes
old ones. Several index files may describe the same chunk (two writers that stored it at
once); any of them is valid.

In memory the index is compact (about 56 bytes a chunk instead of ~190 for a dict of
tuples): the entries of the loaded index files sit in one numpy structured array in the
on-disk entry layout, sorted by the first 8 bytes of the chunk id, beside that 8-byte
key and a pack number; a lookup is a binary search. Chunks added while a backup runs go
to a small dict first and are merged into the arrays in batches. The arrays live in
:mod:`respaldo.repository.index_arrays`, imported (with numpy) only by a process that
loads a non-empty index. Index files are cached
locally, still sealed, so that opening a repository costs a listing, not a download.
"""

from __future__ import annotations

import hashlib
import struct
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from respaldo.repository.crypto import AAD_INDEX, Sealer
from respaldo.repository.packs import ENTRY, PackEntry

if TYPE_CHECKING:
    from respaldo.repository.index_arrays import SortedEntries

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


def _groups(data: bytes) -> Iterator[tuple[str, int, int]]:
    """(pack id, entry count, offset of the first entry) of each group; ValueError if the
    file is malformed (checked before each group is yielded)."""
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
        yield raw_pack.hex(), count, pos
        pos = end


def decode_index(data: bytes) -> Iterator[tuple[str, list[PackEntry]]]:
    for pack_id, count, pos in _groups(data):
        chunk = data[pos : pos + count * ENTRY.size]
        yield pack_id, [PackEntry(*f) for f in ENTRY.iter_unpack(chunk)]


def check_index(data: bytes) -> None:
    """Raise ValueError unless ``data`` is a well-formed index file."""
    for _ in _groups(data):
        pass


def seal_index(sealer: Sealer, groups: Iterable[tuple[str, list[PackEntry]]]) -> tuple[str, bytes]:
    """Return (object name, sealed bytes) for an index file describing ``groups``."""
    blob = sealer.seal(encode_index(groups), AAD_INDEX)
    return f"{INDEX_PREFIX}{hashlib.sha256(blob).hexdigest()}", blob


def _without(data: bytes, pos: int, count: int, bad: Collection[bytes]) -> bytes:
    """The ``count`` entries at ``pos`` of an index file, less those of chunks in ``bad``."""
    entries = (
        data[at : at + ENTRY.size] for at in range(pos, pos + count * ENTRY.size, ENTRY.size)
    )
    return b"".join(e for e in entries if e[:32] not in bad)


DELTA_MERGE = 65_536
"""Chunks added (by a backup) before they are merged into the sorted arrays."""


class ChunkIndex:
    """Thread-safe map chunk id -> Location, with pack ids interned.

    Reads (``get``, ``in``) take no lock: they see the arrays and the dict of new chunks
    as they were at some instant, and a chunk is in one or the other (or, for a moment
    during a merge, both) from the time ``add_pack`` returns. A chunk stored twice keeps
    the first location it was given (loaded files in order, then additions in order).
    """

    def __init__(self) -> None:
        # None until there is something to hold: numpy is imported only then.
        self._base: SortedEntries | None = None
        self._delta: dict[bytes, tuple[int, int, int, int]] = {}
        self._packs: list[str] = []
        self._pack_no: dict[str, int] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_files(
        cls, plaintexts: Iterable[bytes], exclude: Mapping[str, Collection[bytes]] | None = None
    ) -> ChunkIndex:
        """Build an index from decrypted index files, in order, without a Python object
        per entry (their groups are read as numpy views). Raises ValueError for a
        malformed file.

        ``exclude`` maps pack ids to chunk ids whose copies in that pack are left out
        (quarantined copies, :mod:`.quarantine`): another copy of the same chunk, in
        another pack, then takes its place, and a chunk with no other copy is absent."""
        index = cls()
        exclude = exclude or {}
        groups = []
        for data in plaintexts:
            for pack_id, count, pos in _groups(data):
                bad = exclude.get(pack_id)
                if bad:
                    kept = _without(data, pos, count, bad)
                    if kept:
                        groups.append((kept, 0, len(kept) // ENTRY.size, index._intern(pack_id)))
                elif count:
                    groups.append((data, pos, count, index._intern(pack_id)))
        if groups:
            from respaldo.repository import index_arrays

            index._base = index_arrays.from_groups(groups)
        return index

    def _intern(self, pack_id: str) -> int:
        no = self._pack_no.get(pack_id)
        if no is None:
            no = len(self._packs)
            self._packs.append(pack_id)
            self._pack_no[pack_id] = no
        return no

    def add_pack(self, pack_id: str, entries: Iterable[PackEntry]) -> None:
        with self._lock:
            no = self._intern(pack_id)
            for e in entries:
                # First writer wins: a chunk stored twice may point at either pack.
                if e.chunk_id not in self._delta and self._find(e.chunk_id) is None:
                    self._delta[e.chunk_id] = (no, e.offset, e.length, e.raw_length)
            if len(self._delta) >= DELTA_MERGE:
                self._merge()

    def _merge(self) -> None:
        """Move the dict of new chunks into the arrays (with the lock held)."""
        from respaldo.repository import index_arrays

        base = self._base if self._base is not None else index_arrays.empty()
        self._base = base.merged(self._delta)
        self._delta = {}

    def _find(self, chunk_id: bytes) -> tuple[int, int, int, int] | None:
        base = self._base
        return base.find(chunk_id) if base is not None else None

    def _lookup(self, chunk_id: bytes) -> tuple[int, int, int, int] | None:
        found = self._delta.get(chunk_id)
        return found if found is not None else self._find(chunk_id)

    def __contains__(self, chunk_id: object) -> bool:
        return isinstance(chunk_id, bytes) and self._lookup(chunk_id) is not None

    def __len__(self) -> int:
        base = self._base
        return (len(base) if base is not None else 0) + len(self._delta)

    def get(self, chunk_id: bytes) -> Location | None:
        found = self._lookup(chunk_id)
        if found is None:
            return None
        no, offset, length, raw = found
        return Location(self._packs[no], offset, length, raw)

    def packs(self) -> set[str]:
        with self._lock:
            used = self._base.pack_numbers() if self._base is not None else set()
            used.update(no for no, _, _, _ in self._delta.values())
            return {self._packs[no] for no in used}

    def by_pack(self) -> dict[str, list[PackEntry]]:
        with self._lock:
            base, delta = self._base, dict(self._delta)
        groups: dict[str, list[PackEntry]] = {}
        for no, chunk_id, offset, length, raw in base.rows() if base is not None else ():
            groups.setdefault(self._packs[no], []).append(PackEntry(chunk_id, offset, length, raw))
        for chunk_id, (no, offset, length, raw) in delta.items():
            groups.setdefault(self._packs[no], []).append(PackEntry(chunk_id, offset, length, raw))
        for entries in groups.values():
            entries.sort(key=lambda e: e.offset)
        return groups

"""The chunk index's sorted arrays (numpy), apart so that numpy is imported only by
processes that load an index: ``wal-push`` runs once per WAL segment and never does.

See :mod:`respaldo.repository.index` for the layout and why.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from respaldo.repository.packs import ENTRY

_LOCATION = struct.Struct("<III")
_DIRECTORY_BITS_MAX = 16

# The pack entry as numpy sees it: the same 44 bytes as ``packs.ENTRY`` ("<32sIII").
_ENTRY_FIELDS = [("id", "V32"), ("offset", "<u4"), ("length", "<u4"), ("raw", "<u4")]
_ROWS_BLOCK = 65_536  # rows converted to Python objects at a time by SortedEntries.rows

Location = tuple[int, int, int, int]
"""(pack number, offset, sealed length, raw length)."""


class SortedEntries:
    """Pack entries sorted by the first 8 bytes of their chunk ids, with a pack number
    each. Never changed in place: merging makes a new one, so that readers in other
    threads always see a consistent set.

    Lookups go through memoryviews and a directory of where each value of the keys' top
    bits starts (up to 16 bits, about 8 keys a slot): Python reads a memoryview item
    several times faster than a numpy scalar, and the directory leaves a binary search of
    a few steps (1.7 µs a hit instead of 2.9 at a million chunks).
    """

    __slots__ = (
        "directory",
        "entries",
        "entry_view",
        "key_view",
        "keys",
        "pack_nos",
        "pack_view",
        "shift",
    )

    def __init__(
        self,
        keys: npt.NDArray[np.uint64],
        entries: npt.NDArray[np.void],
        pack_nos: npt.NDArray[np.uint32],
    ) -> None:
        self.keys = np.ascontiguousarray(keys)  # first 8 bytes of each id, big-endian: sorted
        self.entries = np.ascontiguousarray(entries)  # the pack entries in the same order
        self.pack_nos = np.ascontiguousarray(pack_nos)
        bits = min(_DIRECTORY_BITS_MAX, max(0, len(self.keys).bit_length() - 3))
        self.shift = 64 - bits
        starts = np.arange(2**bits + 1, dtype=np.uint64) << np.uint64(self.shift % 64)
        directory = np.searchsorted(self.keys, starts).astype(np.int64)
        directory[0], directory[-1] = 0, len(self.keys)  # the last start wrapped past 2^64
        self.directory = directory.data.cast("B").cast("q")
        self.key_view = self.keys.data.cast("B").cast("Q")
        self.entry_view = self.entries.data.cast("B")
        self.pack_view = self.pack_nos.data.cast("B").cast("I")

    def __len__(self) -> int:
        return len(self.keys)

    def find(self, chunk_id: bytes) -> Location | None:
        key = int.from_bytes(chunk_id[:8], "big")
        top = key >> self.shift
        keys = self.key_view
        i = bisect.bisect_left(keys, key, self.directory[top], self.directory[top + 1])
        while i < len(keys) and keys[i] == key:
            at = i * ENTRY.size
            if self.entry_view[at : at + 32] == chunk_id:
                return (self.pack_view[i], *_LOCATION.unpack_from(self.entry_view, at + 32))
            i += 1
        return None

    def pack_numbers(self) -> set[int]:
        return {int(no) for no in np.unique(self.pack_nos)}

    def rows(self) -> Iterator[tuple[int, bytes, int, int, int]]:
        """(pack number, chunk id, offset, sealed length, raw length) of every entry.

        Converted a block at a time: a caller that keeps a few rows holds memory for
        one block of Python objects, not for every entry of the repository."""
        for first in range(0, len(self.keys), _ROWS_BLOCK):
            last = first + _ROWS_BLOCK
            for no, (chunk_id, offset, length, raw) in zip(
                self.pack_nos[first:last].tolist(), self.entries[first:last].tolist(), strict=True
            ):
                yield no, bytes(chunk_id), offset, length, raw

    def merged(self, added: dict[bytes, Location]) -> SortedEntries:
        """A new set with ``added`` (none of them here already), after equal keys."""
        ids = list(added)
        values = np.array(list(added.values()), dtype=np.uint32).reshape(-1, 4)
        entries = np.empty(len(ids), _entry_dtype())
        entries["id"] = np.frombuffer(b"".join(ids), dtype="V32")
        entries["offset"], entries["length"], entries["raw"] = (
            values[:, 1],
            values[:, 2],
            values[:, 3],
        )
        keys = _keys_of(entries)
        order = np.argsort(keys, kind="stable")
        keys, entries, nos = keys[order], entries[order], values[order, 0]
        # After existing entries of the same key: the arrays' own chunks came first.
        at = np.searchsorted(self.keys, keys, side="right")
        return SortedEntries(
            np.insert(self.keys, at, keys),
            np.insert(self.entries, at, entries),
            np.insert(self.pack_nos, at, nos),
        )


def empty() -> SortedEntries:
    return SortedEntries(
        np.empty(0, np.uint64), np.empty(0, _entry_dtype()), np.empty(0, np.uint32)
    )


def from_groups(groups: list[tuple[bytes, int, int, int]]) -> SortedEntries:
    """Sorted entries from index file groups ``(file plaintext, offset of the first entry,
    entry count, pack number)``, in order; of a chunk described more than once, the first
    entry is kept. No Python object per entry: the groups are read as numpy views."""
    dtype = _entry_dtype()
    entries = np.concatenate(
        [np.frombuffer(data, dtype, count, pos) for data, pos, count, _ in groups]
        or [np.empty(0, dtype)]
    )
    pack_nos = np.concatenate(
        [np.full(count, no, np.uint32) for _, _, count, no in groups] or [np.empty(0, np.uint32)]
    )
    return _dedupe(entries, pack_nos)


def _entry_dtype() -> np.dtype[np.void]:
    dtype = np.dtype(_ENTRY_FIELDS)
    assert dtype.itemsize == ENTRY.size
    return dtype


def _keys_of(entries: npt.NDArray[np.void]) -> npt.NDArray[np.uint64]:
    raw = entries.view(np.uint8).reshape(len(entries), ENTRY.size)
    return np.ascontiguousarray(raw[:, :8]).view(">u8").ravel().astype(np.uint64)


def _dedupe(entries: npt.NDArray[np.void], pack_nos: npt.NDArray[np.uint32]) -> SortedEntries:
    """Sort loaded entries by key, keeping only the first entry of each chunk id."""
    keys = _keys_of(entries)
    order = np.argsort(keys, kind="stable")  # stable: file order among equal keys
    keys, entries, pack_nos = keys[order], entries[order], pack_nos[order]
    same = keys[1:] == keys[:-1]
    if same.any():
        # A run of one key is a chunk described by several files (or, once in 2^64, two
        # ids that share 8 bytes): keep the first entry of each id in the run.
        follows_same = np.concatenate(([False], same[:-1]))
        drop = []
        for start in np.flatnonzero(same & ~follows_same).tolist():
            end = start + 1
            while end < len(keys) and keys[end] == keys[start]:
                end += 1
            seen: set[bytes] = set()
            for i in range(start, end):
                chunk_id = entries[i]["id"].tobytes()
                if chunk_id in seen:
                    drop.append(i)
                seen.add(chunk_id)
        if drop:
            keep = np.ones(len(keys), dtype=bool)
            keep[drop] = False
            keys, entries, pack_nos = keys[keep], entries[keep], pack_nos[keep]
    return SortedEntries(keys, np.ascontiguousarray(entries), np.ascontiguousarray(pack_nos))

"""Packs: many sealed chunks in one object, with a sealed header at the end.

Layout of ``packs/<first two hex digits>/<pack id>``::

    sealed chunk 0 | sealed chunk 1 | … | sealed header | header length (u32, little endian)

The header, sealed with associated data ``respaldo/pack-header``, is a sequence of
44-byte entries ``chunk id (32) | offset (u32) | sealed length (u32) | plain length (u32)``,
one per chunk, offsets from the start of the pack. It lets the index be rebuilt from packs
alone. The pack id is the SHA-256 (hex) of the whole pack object, so a pack's integrity
can be checked without the key.
"""

from __future__ import annotations

import hashlib
import logging
import struct
from dataclasses import dataclass

from respaldo.errors import IntegrityError, ObjectNotFound, StorageError
from respaldo.repository.crypto import AAD_PACK_HEADER, ID_SIZE, Sealer, SealError
from respaldo.storage.base import Storage

log = logging.getLogger(__name__)

ENTRY = struct.Struct("<32sIII")
TRAILER = struct.Struct("<I")
PACK_PREFIX = "packs/"


@dataclass(frozen=True, slots=True)
class PackEntry:
    chunk_id: bytes
    offset: int
    length: int
    raw_length: int


def pack_name(pack_id: str) -> str:
    return f"{PACK_PREFIX}{pack_id[:2]}/{pack_id}"


def pack_id_from_name(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def encode_entries(entries: list[PackEntry]) -> bytes:
    return b"".join(ENTRY.pack(e.chunk_id, e.offset, e.length, e.raw_length) for e in entries)


def decode_entries(data: bytes) -> list[PackEntry]:
    if len(data) % ENTRY.size:
        raise ValueError("pack header length is not a multiple of the entry size")
    return [PackEntry(*fields) for fields in ENTRY.iter_unpack(data)]


PackRow = tuple[bytes, int, int, int]
"""A pack entry's fields (chunk id, offset, sealed length, plain length), as a tuple: the
writer's hot loop adds one per chunk, and a tuple is cheaper to make than a PackEntry."""


class PackBuilder:
    """Accumulates sealed chunks until the pack is big enough to upload."""

    def __init__(self, target_size: int) -> None:
        self.target_size = target_size
        self._parts: list[bytes] = []
        self._rows: list[PackRow] = []
        self._size = 0

    def add(self, chunk_id: bytes, sealed: bytes, raw_length: int) -> None:
        assert len(chunk_id) == ID_SIZE
        self._rows.append((chunk_id, self._size, len(sealed), raw_length))
        self._parts.append(sealed)
        self._size += len(sealed)

    @property
    def full(self) -> bool:
        return self._size >= self.target_size

    def __len__(self) -> int:
        return len(self._rows)

    def take(self, sealer: Sealer) -> tuple[bytes, list[PackRow]]:
        """Return (pack bytes, rows) and reset the builder. The pack's id is
        :func:`pack_id_of` its bytes: hashing them is left to the caller (the writer
        does it on an upload thread)."""
        header = sealer.seal(b"".join(ENTRY.pack(*row) for row in self._rows), AAD_PACK_HEADER)
        self._parts.append(header)
        self._parts.append(TRAILER.pack(len(header)))
        data = b"".join(self._parts)
        rows = self._rows
        self._parts, self._rows, self._size = [], [], 0
        return data, rows

    def finish(self, sealer: Sealer) -> tuple[str, bytes, list[PackEntry]]:
        """Return (pack id, pack bytes, entries) and reset the builder."""
        data, rows = self.take(sealer)
        return pack_id_of(data), data, entries_of(rows)


def pack_id_of(data: bytes) -> str:
    """A pack's id: the SHA-256 (hex) of the whole pack object."""
    return hashlib.sha256(data).hexdigest()


def encode_rows(rows: list[PackRow]) -> bytes:
    """``rows`` as an index file holds their entries (:data:`ENTRY` records, in order)."""
    out = bytearray(len(rows) * ENTRY.size)
    for i, row in enumerate(rows):
        ENTRY.pack_into(out, i * ENTRY.size, *row)
    return bytes(out)


def entries_of(rows: list[PackRow]) -> list[PackEntry]:
    return [PackEntry(*row) for row in rows]


def split_trailer(tail: bytes) -> int:
    """The sealed header's length from the pack's last four bytes."""
    if len(tail) != TRAILER.size:
        raise ValueError("pack is too short to hold a trailer")
    return int(TRAILER.unpack(tail)[0])


def read_header(
    storage: Storage, sealer: Sealer, name: str, *, unreadable_is_damage: bool = True
) -> list[PackEntry]:
    """Read and authenticate the header of pack ``name``. Raises IntegrityError (also for a
    pack that cannot be read: to a caller scanning packs, both mean "not usable"). With
    ``unreadable_is_damage`` False, a read the store fails (a timeout, a refusal) raises
    its StorageError instead, for a caller that must not call a pack damaged on that; a
    missing pack is still an IntegrityError.

    A header that fails is read a second time before it counts as damaged: its bytes may
    have been spoiled on the way from the store (see :mod:`.authentic`), and an index
    rebuild leaves a pack with a damaged header out, all its chunks with it."""
    try:
        return _read_header(storage, sealer, name, unreadable_is_damage)
    except IntegrityError as first:
        try:
            entries = _read_header(storage, sealer, name, unreadable_is_damage)
        except IntegrityError:
            raise first from None
    log.warning(
        "the header of %s in %s failed, and read well a second time: the store (or the "
        "way to it) returned bad bytes",
        name,
        storage.location,
    )
    return entries


def _read_header(
    storage: Storage, sealer: Sealer, name: str, unreadable_is_damage: bool
) -> list[PackEntry]:
    try:
        size = storage.stat(name).size
        if size < TRAILER.size:
            raise IntegrityError("pack is too short", obj=name)
        header_len = split_trailer(storage.get(name, size - TRAILER.size, TRAILER.size))
        if header_len > size - TRAILER.size:
            raise IntegrityError("pack trailer is damaged", obj=name)
        blob = storage.get(name, size - TRAILER.size - header_len, header_len)
        return decode_entries(sealer.open(blob, AAD_PACK_HEADER))
    except (SealError, ValueError) as exc:
        raise IntegrityError(f"pack header is damaged: {exc}", obj=name) from None
    except StorageError as exc:
        if not unreadable_is_damage and not isinstance(exc, ObjectNotFound):
            raise
        raise IntegrityError(f"cannot read pack: {exc}", obj=name) from None

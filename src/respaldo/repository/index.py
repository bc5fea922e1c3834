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

With a cache directory, nothing goes to memory: the index files are merged into a
sorted file on local disk (:mod:`respaldo.repository.index_cache`), the files it does not
cover yet into small side runs of the same format, and each index file a backup writes
into a side run of its own (:meth:`ChunkIndex.add_file`), so that a process's memory
does not grow with the repository or with what a backup adds. One Bloom filter of
fixed size over every side run (SIDE_FILTER_BYTES) spares most lookups a look at each.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from respaldo.repository.crypto import AAD_INDEX, ID_SIZE, Sealer
from respaldo.repository.packs import ENTRY, PackEntry

if TYPE_CHECKING:
    from respaldo.repository.index_arrays import SortedEntries
    from respaldo.repository.index_cache import CacheRun

log = logging.getLogger(__name__)

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
    # Packed into one buffer of the file's size, then copied out once: a bytes object
    # per entry, joined, held 3.5 MiB (tracemalloc) for the 0.75 MiB of an index flush
    # of a backup (16,384 entries), at the moment of its peak; this way 1.5.
    groups = list(groups)
    size = len(MAGIC) + sum(GROUP.size + len(entries) * ENTRY.size for _, entries in groups)
    out = bytearray(size)
    out[: len(MAGIC)] = MAGIC
    pos = len(MAGIC)
    pack_group, pack_entry, step = GROUP.pack_into, ENTRY.pack_into, ENTRY.size
    for pack_id, entries in groups:
        pack_group(out, pos, bytes.fromhex(pack_id), len(entries))
        pos += GROUP.size
        for e in entries:
            pack_entry(out, pos, e.chunk_id, e.offset, e.length, e.raw_length)
            pos += step
    return bytes(out)


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


def encode_index_groups(groups: Iterable[tuple[str, bytes]]) -> bytes:
    """An index file's plaintext from groups whose entries are encoded already (each a run
    of :data:`ENTRY` records, :func:`respaldo.repository.packs.encode_rows`)."""
    parts = [MAGIC]
    for pack_id, entries in groups:
        if len(entries) % ENTRY.size:
            raise ValueError("a group's entries are not whole records")
        parts += (GROUP.pack(bytes.fromhex(pack_id), len(entries) // ENTRY.size), entries)
    return b"".join(parts)


def chunk_ids(data: bytes) -> Iterator[bytes]:
    """The chunk id of every entry of an index file's plaintext, in order."""
    for _, count, pos in _groups(data):
        for at in range(pos, pos + count * ENTRY.size, ENTRY.size):
            yield data[at : at + ID_SIZE]


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
    return seal_encoded_index(sealer, encode_index(groups))


def seal_encoded_index(sealer: Sealer, plaintext: bytes) -> tuple[str, bytes]:
    """Return (object name, sealed bytes) for the index file of ``plaintext`` (what
    :func:`encode_index` made)."""
    blob = sealer.seal(plaintext, AAD_INDEX)
    return f"{INDEX_PREFIX}{hashlib.sha256(blob).hexdigest()}", blob


def _without(data: bytes, pos: int, count: int, bad: Collection[bytes]) -> bytes:
    """The ``count`` entries at ``pos`` of an index file, less those of chunks in ``bad``."""
    entries = (
        data[at : at + ENTRY.size] for at in range(pos, pos + count * ENTRY.size, ENTRY.size)
    )
    return b"".join(e for e in entries if e[:32] not in bad)


class CacheCorrupt(Exception):
    """The local index cache (:mod:`.index_cache`) is not what it claims: it must be
    dropped and rebuilt, never used."""


Selector = Callable[[str, bytes], bool]
"""``where(pack_id, chunk_id)``: whether a listing (:meth:`ChunkIndex.by_pack`) keeps an entry."""


class _Damaged(Exception):
    """A run of the cache (``run``) found damaged (``exc``) while it was listed."""

    def __init__(self, run: CacheRun, exc: CacheCorrupt) -> None:
        super().__init__(str(exc))
        self.run, self.exc = run, exc


DELTA_MERGE = 65_536
"""Chunks added (by a backup) before they are merged into the sorted arrays."""
SIDE_FILTER_BYTES = 2**20
"""The filter over all side runs: 8 Mi bits, 2 hashes (a chunk no side run holds looks
at them once in about 70 lookups with 500,000 entries in side runs, a 10 GB backup's)."""
_SIDE_MASK = SIDE_FILTER_BYTES * 8 - 1

SIDES_RUNNING_MAX = 64
"""Side runs a process adds before it merges them into one (streaming, on disk): a
backup of more than ~20 GB of new data keeps its open files and per-run lookups bounded."""

AddSide = Callable[[str, int, bytes], "CacheRun | None"]
"""Writes a side run covering one index file (name, stored size, plaintext); None if it
cannot."""
MergeSides = Callable[[tuple["CacheRun", ...]], "CacheRun | None"]
"""Writes one side run with every record of the given ones (and removes them); None if
it cannot."""


class ChunkIndex:
    """Thread-safe map chunk id -> Location, with pack ids interned.

    It has up to three parts: the local cache of every index file on disk
    (:mod:`.index_cache`, with the chunks of the quarantined copies to pass over), sorted
    arrays in memory (index files the cache does not cover, or all of them when there is
    no cache) and a dict of the chunks added since. Lookups try them from the smallest.

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
        self._lock = threading.RLock()
        self._run: CacheRun | None = None
        self._sides: tuple[CacheRun, ...] = ()
        self._side_filter: bytearray | None = None
        self._add_side: AddSide | None = None
        self._merge_sides: MergeSides | None = None
        self._exclude: Mapping[str, Collection[bytes]] = {}
        self._rebuild: Callable[[CacheRun], CacheRun] | None = None

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

    def attach_cache(
        self,
        run: CacheRun | None,
        exclude: Mapping[str, Collection[bytes]],
        rebuild: Callable[[CacheRun], CacheRun],
        sides: Iterable[CacheRun] = (),
        add_side: AddSide | None = None,
        merge_sides: MergeSides | None = None,
    ) -> None:
        """Answer also from the cache ``run`` and its side runs ``sides`` (oldest first),
        passing over copies in ``exclude``; ``rebuild`` gives a sound cache (without
        side runs) for one found damaged; ``add_side`` writes the side run of an index
        file :meth:`add_file` is given, ``merge_sides`` merges them when there are more
        than SIDES_RUNNING_MAX."""
        self._run, self._exclude, self._rebuild = run, exclude, rebuild
        self._add_side, self._merge_sides = add_side, merge_sides
        for side in sides:
            self._attach_side(side)

    def _attach_side(self, side: CacheRun) -> None:
        """Make ``side``'s chunks findable: the filter first, then the run (lookups read
        ``_sides`` without the lock and must never see a run the filter does not know).
        Raises CacheCorrupt if the run is damaged."""
        if self._side_filter is None:
            self._side_filter = bytearray(SIDE_FILTER_BYTES)
        bloom = self._side_filter
        for _, rest, *_ in side.iter_records():
            word = int.from_bytes(rest[:8], "little")
            bit = word & _SIDE_MASK
            bloom[bit >> 3] |= 1 << (bit & 7)
            bit = (word >> 32) & _SIDE_MASK
            bloom[bit >> 3] |= 1 << (bit & 7)
        self._sides = (*self._sides, side)

    def add_file(self, name: str, size: int, plaintext: bytes) -> None:
        """Add the chunks of an index file this process wrote and stored (``size``: the
        stored object's; ``plaintext``: what was sealed). With a cache, they go to a side
        run on disk, not to memory: a backup's memory does not grow with the chunks it
        stores."""
        add_side = self._add_side
        if add_side is not None:
            with self._lock:
                side = add_side(name, size, plaintext)
                if side is not None:
                    try:
                        self._attach_side(side)
                    except CacheCorrupt as exc:  # a disk that does not keep what it got
                        log.warning("a new side run of the chunk index cache is damaged (%s)", exc)
                    else:
                        if len(self._sides) > SIDES_RUNNING_MAX and self._merge_sides:
                            merged = self._merge_sides(self._sides)
                            if merged is not None:
                                # The same records: the side filter holds them already.
                                self._sides = (merged,)
                        return
        for pack_id, entries in decode_index(plaintext):
            self.add_pack(pack_id, entries)

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
                if e.chunk_id not in self._delta and self.get(e.chunk_id) is None:
                    self._delta[e.chunk_id] = (no, e.offset, e.length, e.raw_length)
            if len(self._delta) >= DELTA_MERGE:
                self._merge()

    def _merge(self) -> None:
        """Move the dict of new chunks into the arrays (with the lock held)."""
        from respaldo.repository import index_arrays

        base = self._base if self._base is not None else index_arrays.empty()
        self._base = base.merged(self._delta)
        self._delta = {}

    def _run_rows(self, run: CacheRun) -> Iterator[tuple[str, PackEntry]]:
        """(pack id, entry) of each chunk of the cache but those held in memory, once:
        copies of one chunk are neighbours there, the first not excluded is kept."""
        last: bytes | None = None
        for group, chunk_id, offset, length, raw in run.rows():
            pack_id = run.pack_id(group)
            if chunk_id == last or chunk_id in self._exclude.get(pack_id, ()):
                continue
            last = chunk_id
            if self._lookup(chunk_id) is None:  # else listed from memory
                yield pack_id, PackEntry(chunk_id, offset, length, raw)

    def _find(self, chunk_id: bytes) -> tuple[int, int, int, int] | None:
        base = self._base
        return base.find(chunk_id) if base is not None else None

    def _lookup(self, chunk_id: bytes) -> tuple[int, int, int, int] | None:
        found = self._delta.get(chunk_id)
        return found if found is not None else self._find(chunk_id)

    def __contains__(self, chunk_id: object) -> bool:
        return isinstance(chunk_id, bytes) and self.get(chunk_id) is not None

    def __len__(self) -> int:
        """The chunks held (one described both by the cache and by a file it does not
        cover yet counts twice)."""
        base, run = self._base, self._run
        return (
            (len(base) if base is not None else 0)
            + len(self._delta)
            + (run.unique if run is not None else 0)
            + sum(side.unique for side in self._sides)
        )

    def get(self, chunk_id: bytes) -> Location | None:
        # ``_lookup`` and the cache's part written out: this is every backup's and every
        # restore's lookup, and each call costs a few hundred nanoseconds.
        found = self._delta.get(chunk_id)
        if found is None:
            base = self._base
            if base is not None:
                found = base.find(chunk_id)
        if found is not None:
            no, offset, length, raw = found
            return Location(self._packs[no], offset, length, raw)
        run = self._run
        if run is not None:
            if self._exclude:
                location = self._run_first(run, chunk_id)
                if location is not None:
                    return location
            else:
                # ``_run_first`` written out for the usual case (nothing quarantined):
                # a call fewer on every hit and miss of the cache.
                try:
                    location = run.first(chunk_id)
                except CacheCorrupt as exc:
                    location = self._run_get(self._recover(run, exc), chunk_id)
                if location is not None:
                    return location
        return self._from_sides(chunk_id)

    def get_many(self, chunk_ids: Sequence[bytes]) -> list[Location | None]:
        """``[self.get(c) for c in chunk_ids]``, in one call: what a backup asks for the
        chunks of each block of its stream. With the cache alone (nothing in memory, no
        quarantined copies to pass over) the cache answers for all of them at once
        (:meth:`CacheRun.first_many`); otherwise, or if the cache is found damaged, one
        by one (``get`` rebuilds it).

        As lock-free as ``get``: a chunk added before the call began is found; one added
        meanwhile by another thread may or may not be."""
        run = self._run
        if run is None or self._exclude or self._delta or self._base is not None:
            return [self.get(chunk_id) for chunk_id in chunk_ids]
        try:
            out = run.first_many(chunk_ids)
        except CacheCorrupt:
            return [self.get(chunk_id) for chunk_id in chunk_ids]
        if self._sides:
            for n, location in enumerate(out):
                if location is None:
                    out[n] = self._from_sides(chunk_ids[n])
        return out

    def _from_sides(self, chunk_id: bytes) -> Location | None:
        """``chunk_id``'s location in the side runs (their filter first), or None."""
        sides, bloom = self._sides, self._side_filter
        if not sides or bloom is None:
            return None
        word = int.from_bytes(chunk_id[8:16], "little")
        bit = word & _SIDE_MASK
        if not bloom[bit >> 3] >> (bit & 7) & 1:
            return None
        bit = (word >> 32) & _SIDE_MASK
        if not bloom[bit >> 3] >> (bit & 7) & 1:
            return None
        for side in sides:
            location = self._run_first(side, chunk_id)
            if location is not None:
                return location
        return None

    def _run_first(self, run: CacheRun, chunk_id: bytes) -> Location | None:
        """What :meth:`_run_get` answers, by the short path (one read) unless there are
        quarantined copies to pass over."""
        if self._exclude:
            return self._run_get(run, chunk_id)
        try:
            return run.first(chunk_id)
        except CacheCorrupt as exc:
            return self._run_get(self._recover(run, exc), chunk_id)

    def _run_get(self, run: CacheRun, chunk_id: bytes) -> Location | None:
        try:
            for group, offset, length, raw in run.find(chunk_id):
                pack_id = run.pack_id(group)
                if self._exclude and chunk_id in self._exclude.get(pack_id, ()):
                    continue
                return Location(pack_id, offset, length, raw)
            return None
        except CacheCorrupt as exc:
            return self._run_get(self._recover(run, exc), chunk_id)

    def confirm_miss(self, chunk_id: bytes) -> Location | None:
        """For a reader that did not find ``chunk_id``: check that the part of the cache
        where it would be is sound (a writer's miss costs a duplicate at worst, but a
        reader's is an error), rebuilding the cache if not; returns where the chunk is
        after all, or None if the miss is certain."""
        for run in (self._run, *self._sides):
            if run is None:
                continue
            try:
                # A chunk whose every copy is quarantined is a certain miss, not a
                # damaged cache: rebuilding would find the same copies, once per miss.
                run.check_miss(chunk_id, self._passed_over(chunk_id))
            except CacheCorrupt as exc:
                return self._run_get(self._recover(run, exc), chunk_id)
        return None

    def _passed_over(self, chunk_id: bytes) -> Callable[[str], bool]:
        """Whether a pack's copy of ``chunk_id`` is one lookups pass over (quarantined)."""
        exclude = self._exclude
        return lambda pack_id: chunk_id in exclude.get(pack_id, ())

    def _recover(self, bad: CacheRun, exc: CacheCorrupt) -> CacheRun:
        """Replace the damaged cache ``bad`` by a rebuilt one (once, whichever thread
        finds it first)."""
        with self._lock:
            if self._run is bad or bad in self._sides:
                log.warning("the local chunk index cache is damaged (%s); rebuilding it", exc)
                if self._rebuild is None:
                    raise exc
                # The rebuilt cache covers every index file, the side runs' too.
                self._run = self._rebuild(bad)
                self._sides, self._side_filter = (), None
            assert self._run is not None
            return self._run

    def packs(self) -> set[str]:
        with self._lock:
            used = self._base.pack_numbers() if self._base is not None else set()
            used.update(no for no, _, _, _ in self._delta.values())
            packs = {self._packs[no] for no in used}
            runs = (self._run, *self._sides)
        for run in runs:
            if run is not None:
                packs.update(run.pack_id(g) for g in range(len(run.groups) // 36))
        return packs

    def by_pack(self, where: Selector | None = None) -> dict[str, list[PackEntry]]:
        """Every chunk once (the first copy not quarantined), grouped by pack; with
        ``where``, only those for which ``where(pack_id, chunk_id)`` holds (the same
        entries as the whole listing, filtered).

        Memory: the entries returned; the rows passed over are never held (a rolling
        verify asks for a slice of a range of packs at a time, :func:`pack_counts`)."""
        groups: dict[str, list[PackEntry]] = {}
        for pack_id, chunk_id, offset, length, raw in self._memory_rows(where):
            groups.setdefault(pack_id, []).append(PackEntry(chunk_id, offset, length, raw))
        runs = self._runs()
        while runs:
            try:
                for pack_id, entry in self._cache_rows(runs):
                    if where is None or where(pack_id, entry.chunk_id):
                        groups.setdefault(pack_id, []).append(entry)
                break
            except _Damaged as damaged:
                for entries in groups.values():  # start the cache's part again
                    entries[:] = [e for e in entries if self._lookup(e.chunk_id) is not None]
                runs = [self._recover(damaged.run, damaged.exc)]
        for entries in groups.values():
            entries.sort(key=lambda e: e.offset)
        return {pack_id: entries for pack_id, entries in groups.items() if entries}

    def pack_counts(self, where: Selector | None = None) -> dict[str, int]:
        """How many entries :meth:`by_pack` (``where``) would list in each pack, without
        making them: one counter per pack (a pack holds about a thousand chunks)."""
        counts: dict[str, int] = {}
        for pack_id, *_ in self._memory_rows(where):
            counts[pack_id] = counts.get(pack_id, 0) + 1
        runs = self._runs()
        while runs:
            in_runs: dict[str, int] = {}
            try:
                for pack_id, entry in self._cache_rows(runs):
                    if where is None or where(pack_id, entry.chunk_id):
                        in_runs[pack_id] = in_runs.get(pack_id, 0) + 1
            except _Damaged as damaged:  # count the cache's part again, once rebuilt
                runs = [self._recover(damaged.run, damaged.exc)]
                continue
            for pack_id, count in in_runs.items():
                counts[pack_id] = counts.get(pack_id, 0) + count
            break
        return counts

    def _runs(self) -> list[CacheRun]:
        """The cache's runs, main first, then the side runs oldest first."""
        with self._lock:
            return [run for run in (self._run, *self._sides) if run is not None]

    def _cache_rows(self, runs: list[CacheRun]) -> Iterator[tuple[str, PackEntry]]:
        """(pack id, entry) of each chunk of ``runs`` but those held in memory, once: a
        chunk several runs hold (two writers stored it) is listed from the first (found
        by a lookup, not a set of every id: memory stays flat). Raises _Damaged."""
        for k, run in enumerate(runs):
            try:
                for pack_id, entry in self._run_rows(run):
                    if k and any(self._holds(r, entry.chunk_id) for r in runs[:k]):
                        continue
                    yield pack_id, entry
            except CacheCorrupt as exc:
                raise _Damaged(run, exc) from exc

    def _holds(self, run: CacheRun, chunk_id: bytes) -> bool:
        """Whether ``run`` has a copy of ``chunk_id`` that is not quarantined."""
        try:
            found = run.find(chunk_id)
        except CacheCorrupt as exc:
            raise _Damaged(run, exc) from exc
        return any(chunk_id not in self._exclude.get(run.pack_id(g), ()) for g, *_ in found)

    def _memory_rows(self, where: Selector | None) -> Iterator[tuple[str, bytes, int, int, int]]:
        """(pack id, chunk id, offset, length, raw) of the entries held in memory (the
        arrays, then the additions) for which ``where`` holds."""
        with self._lock:
            base, delta = self._base, dict(self._delta)
        for no, chunk_id, offset, length, raw in base.rows() if base is not None else ():
            pack_id = self._packs[no]
            if where is None or where(pack_id, chunk_id):
                yield pack_id, chunk_id, offset, length, raw
        for chunk_id, (no, offset, length, raw) in delta.items():
            pack_id = self._packs[no]
            if where is None or where(pack_id, chunk_id):
                yield pack_id, chunk_id, offset, length, raw

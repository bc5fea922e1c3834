"""Before a backup's manifest is written: are the packs it references still there?

A backup deduplicates against chunks the index says are stored. The index cannot tell
that a pack has gone since (deleted by hand, a disk fault, a bucket lifecycle rule that
expires objects, a mirror's disk put back from an old image) or was cut short: such a
backup's manifest pointed at missing data, and it was recorded ``completed``, counted by
retention as the newest good backup, and found unrestorable only by the next ``verify``
or by the restore that needed it.

So every writer notes, for each pack its backup references, how many bytes of it the
backup needs (the end of the last chunk it uses there; for the packs it wrote itself,
their exact size), and before the manifest checks them by stat or listing, no data read:
one stat per pack for a backup of a few packs or on a local disk, else one listing of
``packs/`` (on S3 a LIST of a thousand objects a page, not a HEAD per pack). A pack
missing or too short is asked once more by stat (a listing may lag a put on some
stores), then its copies that are gone are quarantined (:mod:`.quarantine`), so that the
next backup stores that data anew, and the backup fails: it never exists. The error
(:class:`LostPacks`) names the chunks quarantined: the earlier backups that use them are
damaged too, and the caller that keeps a catalog marks them
(:mod:`respaldo.operations.lost_packs`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable

from respaldo.errors import IntegrityError, ObjectNotFound, StorageError
from respaldo.repository.damage import confirm_damage
from respaldo.repository.index import Location
from respaldo.repository.packs import PACK_PREFIX, pack_id_from_name, pack_name
from respaldo.repository.quarantine import DamagedCopy, write_record
from respaldo.repository.repo import Repository
from respaldo.storage.base import Storage

log = logging.getLogger(__name__)

STAT_AT_MOST = 32
"""Up to this many packs, one stat each; beyond, on a remote store, one listing of
``packs/`` (S3 answers a thousand objects a request: cheaper than a HEAD per pack once a
backup references more than a few dozen)."""

NAMED_AT_MOST = 3
"""Packs named in the error; the rest are counted."""


class LostPacks(IntegrityError):
    """A backup (or copy) failed because packs it references are missing or truncated;
    ``chunks``: the ids of the chunk copies this check quarantined (empty when recording
    them failed). ``then`` is the hint's first part, what to do about this backup: the
    rest says what it means for the earlier ones, which a caller with a catalog can say
    better (it names them)."""

    def __init__(self, message: str, *, backup: str, then: str, chunks: frozenset[bytes]) -> None:
        super().__init__(message, backup=backup, hint=f"{then}; {EARLIER_DAMAGED}")
        self.then = then
        self.chunks = chunks


EARLIER_DAMAGED = (
    "any earlier backup that uses them is damaged: 'respaldo verify --all' names them, "
    "'respaldo repair' takes good copies from a mirror"
)


class PackUse:
    """The packs a backup references: how many bytes of each it needs at least (the end
    of the last chunk it uses there), or exactly (a pack it wrote). Thread-safe: the
    sealing threads note what they deduplicated, the upload threads what they stored."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._least: dict[str, int] = {}
        self._exact: dict[str, int] = {}

    def used(self, locations: Iterable[Location]) -> None:
        """Note chunk copies the backup references (found in the index)."""
        with self._lock:
            least = self._least
            for loc in locations:
                end = loc.offset + loc.length
                if least.get(loc.pack_id, 0) < end:
                    least[loc.pack_id] = end

    def wrote(self, pack_id: str, size: int) -> None:
        """Note a pack this backup stored, of ``size`` bytes."""
        with self._lock:
            self._exact[pack_id] = size

    def wrong(self, sizes: dict[str, int]) -> dict[str, int | None]:
        """The packs that ``sizes`` (pack id -> size, as stored) lacks or gives a size
        they cannot have: pack id -> its size (None: missing)."""
        with self._lock:
            least, exact = dict(self._least), dict(self._exact)
        bad: dict[str, int | None] = {}
        for pack_id, need in least.items():
            have = sizes.get(pack_id)
            if have is None or have < need:
                bad[pack_id] = have
        for pack_id, size in exact.items():
            have = sizes.get(pack_id)
            if have != size:
                bad[pack_id] = have
        return bad

    def packs(self) -> set[str]:
        with self._lock:
            return self._least.keys() | self._exact.keys()


def check_packs(repo: Repository, use: PackUse, backup_id: str, *, copy: bool = False) -> None:
    """Raise :class:`LostPacks` if a pack ``use`` names is missing from ``repo`` or shorter
    than the backup needs, after quarantining the chunk copies it lost (``copy``: the
    backup is being copied into ``repo``, a mirror). Raises the storage error of a stat
    or listing that fails (nothing is then known missing)."""
    storage = repo.storage
    packs = use.packs()
    listed = _by_listing(storage, len(packs))
    if listed:
        sizes = {pack_id_from_name(info.name): info.size for info in storage.list(PACK_PREFIX)}
    else:
        sizes = _stat_sizes(storage, packs)
    bad = use.wrong(sizes)
    if bad and listed:
        # Some stores' listings lag their puts: what the listing lacks is asked again.
        again = sizes | _stat_sizes(storage, bad)
        bad = {p: s for p, s in use.wrong(again).items() if p in bad}
    if not bad:
        return
    raise _lost(repo, backup_id, bad, copy)


def _by_listing(storage: Storage, count: int) -> bool:
    """Whether to list ``packs/`` rather than stat ``count`` packs. Never on a local
    directory (or in memory): its listing stats every pack in it, so it costs about what
    a stat of each pack does when the backup references all of them (20,000 packs:
    215 ms listed, 238 ms by stat, bench/pack_check_bench.py), and more when it
    references fewer (a small database's backup in a large repository)."""
    return count > STAT_AT_MOST and not storage.location.startswith(("file:", "memory:"))


def _stat_sizes(storage: Storage, packs: Iterable[str]) -> dict[str, int]:
    """Pack id -> size of those of ``packs`` that exist, one stat each."""
    sizes: dict[str, int] = {}
    for pack_id in packs:
        with contextlib.suppress(ObjectNotFound):
            sizes[pack_id] = storage.stat(pack_name(pack_id)).size
    return sizes


def _lost(repo: Repository, backup_id: str, bad: dict[str, int | None], copy: bool) -> LostPacks:
    """Quarantine the copies the packs ``bad`` lost; the error that fails the backup."""
    names = [pack_name(p) for p in sorted(bad)]
    said = ", ".join(
        f"{name} ({'missing' if bad[pack_id_from_name(name)] is None else 'truncated'})"
        for name in names[:NAMED_AT_MOST]
    )
    if len(names) > NAMED_AT_MOST:
        said += f" and {len(names) - NAMED_AT_MOST} more"
    quarantined: list[DamagedCopy] = []
    try:
        quarantined = _quarantine(repo, bad)
    except StorageError as exc:
        log.warning("cannot quarantine the chunk copies of the lost packs: %s", exc)
        then = (
            f"recording them as lost failed ({exc}): run 'respaldo verify --all', which "
            "records them, then the backup again"
        )
    else:
        then = (
            f"their {len(quarantined)} chunk copies are quarantined now, so the "
            f"{'copy sends' if copy else 'backup stores'} that data anew: run it again"
        )
    done = "copy not written" if copy else "backup not recorded"
    packs = (
        "1 pack it references is" if len(names) == 1 else f"{len(names)} packs it references are"
    )
    return LostPacks(
        f"{done}: {packs} missing or truncated in {repo.storage.location}: {said}",
        backup=backup_id,
        then=then,
        chunks=frozenset(c.chunk_id for c in quarantined),
    )


def _quarantine(repo: Repository, bad: dict[str, int | None]) -> list[DamagedCopy]:
    """Record as damaged every copy the index places (wholly or in part) beyond the end
    of a pack in ``bad``: all of a missing pack's, those past the cut of a short one (the
    copies before it are intact and may still serve older backups). Returns them."""
    found = []
    for pack_id, entries in repo.index.by_pack(lambda pack_id, _: pack_id in bad).items():
        size = bad[pack_id] or 0
        problem = "pack is missing" if bad[pack_id] is None else "pack is truncated"
        found += [
            DamagedCopy.of(e.chunk_id, pack_name(pack_id), problem)
            for e in entries
            if e.offset + e.length > size and (e.chunk_id, pack_id) not in repo.quarantine.damaged
        ]
    confirmed, _ = confirm_damage(repo.storage, repo.sealer, found)
    if confirmed:
        write_record(repo.storage, repo.sealer, damaged=confirmed)
    return confirmed

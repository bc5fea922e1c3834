"""Telling a damaged chunk copy from a wrong index entry before quarantining it.

A read that fails authentication where the index places a chunk says that something is
wrong, not what: the copy's bytes, or the index (an index file is authentic, which does
not make it right: a writer's or a cache's bug). A quarantine record names a copy by
chunk and pack, not by offset, so recording as damaged a copy whose read the index sent
to another chunk's bytes of the same pack condemns the good copy itself: every index
leaves it out from then on ('index rebuild' included), and 'repair' declares the
backups that need it lost while every byte is intact. So each copy found damaged is read
once more where the pack's authenticated header places it; intact there, the index was
wrong and the copy is not recorded.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from respaldo.errors import IntegrityError
from respaldo.repository.crypto import Sealer, SealError
from respaldo.repository.packs import pack_name, read_header
from respaldo.repository.quarantine import DamagedCopy
from respaldo.storage.base import Storage

MISPLACED_HINT = "run 'respaldo index rebuild' (the index is made again from the pack headers)"


def confirm_damage(
    storage: Storage, sealer: Sealer, copies: Sequence[DamagedCopy]
) -> tuple[list[DamagedCopy], list[DamagedCopy]]:
    """Split ``copies`` (found damaged where the index placed them) into those damaged
    for certain (failing where their pack's header places them too, or whose pack is
    missing or header damaged: nothing says otherwise) and the *misplaced*: the header
    places the chunk elsewhere in the pack, where it authenticates, or does not list it
    at all (the index named a copy that does not exist). Raises the storage error of a
    read that fails, the header's too (nothing is split then: the caller records nothing)."""
    by_pack: dict[str, list[DamagedCopy]] = defaultdict(list)
    for copy in copies:
        by_pack[copy.pack_id].append(copy)
    confirmed: list[DamagedCopy] = []
    misplaced: list[DamagedCopy] = []
    for pack_id, group in by_pack.items():
        name = pack_name(pack_id)
        try:
            # A store that fails the header's read (a timeout) raises, as below.
            entries = read_header(storage, sealer, name, unreadable_is_damage=False)
        except IntegrityError:
            confirmed += group  # a missing pack, a damaged header: damage all the same
            continue
        header = {e.chunk_id: e for e in entries}
        for copy in group:
            entry = header.get(copy.chunk_id)
            if entry is None:
                misplaced.append(copy)
                continue
            # A store that fails this read (a timeout) says nothing of the copy: that is
            # raised, never taken as damage that would condemn a copy maybe good.
            blob = storage.get(name, entry.offset, entry.length)
            try:
                if len(blob) != entry.length:
                    raise SealError("pack is truncated")
                sealer.open_chunk(copy.chunk_id, blob)
            except SealError:
                confirmed.append(copy)
            else:
                misplaced.append(copy)
    return confirmed, misplaced


def misplaced_problem(copy: DamagedCopy) -> str:
    return (
        f"the index places chunk {copy.chunk_id.hex()[:16]} wrongly in "
        f"{pack_name(copy.pack_id)}: the pack's header places it elsewhere, where it is "
        f"intact (or not in that pack at all); not quarantined, {MISPLACED_HINT}"
    )

"""Quarantine: chunk copies found damaged, which nothing may use again.

When verification reads a chunk whose copy fails authentication (or whose pack is
truncated or missing), that *copy* — the chunk id together with the pack holding it — is
recorded here. Every process that opens the repository reads these records with the
index and leaves quarantined copies out of it (:meth:`Quarantine.excluded`), so:

- a backup never deduplicates against a damaged copy: the chunk is not in the index, so
  the next backup that meets the same data stores it anew, in a new pack;
- a reader takes another copy of the chunk (a later backup's, or one in another pack)
  when there is one, and otherwise says the chunk is damaged and points at ``repair``;
- ``index rebuild``, which describes every pack from its header, cannot bring the
  damaged copy back: the records are separate objects that it does not touch;
- copying to a mirror reads through the same index, so a known-bad chunk is never sent.

Records are keyed by (chunk, pack) and not by chunk alone: a good copy of the same chunk
in another pack stays usable. ``respaldo repair`` (:mod:`.repair`) writes a fresh copy
taken from a mirror, or, when no good copy exists anywhere, records the chunk as *lost*
with the backups that reference it.

Layout: ``quarantine/<SHA-256 of the sealed object>``, sealed with associated data
``respaldo/quarantine``, holding JSON (see docs/repository-format.md). Objects are
immutable and never deleted by garbage collection (a record whose pack is gone is
harmless, and a few hundred bytes); writers add new ones without a lock.

A record that cannot be read (corrupt, tampered with) puts the repository in the state
*quarantine damaged* (:attr:`Quarantine.unreadable`): the copies it named are back in the
index and nothing tells which they are, since a record's name is only the hash of its
sealed bytes and names no pack or chunk. So, conservatively, while any record is
unreadable: a backup deduplicates against no chunk copy stored before it started (any of
them may be one the record named; it stores everything anew), garbage collection refuses
to run (it might keep a damaged copy and drop the good one), ``verify --all`` reads every
copy in every pack and quarantines anew the damaged ones it finds, a reader that meets a
damaged copy takes another copy of the chunk if one is good, and ``repair`` re-reads
every copy the same way, records what it finds and then deletes the unreadable records
(the only deletion of a record), which ends the state.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from respaldo.errors import ObjectNotFound, RepositoryError
from respaldo.repository.authentic import read_opened
from respaldo.repository.crypto import Sealer, SealError
from respaldo.repository.packs import pack_id_from_name
from respaldo.storage.base import Storage

log = logging.getLogger(__name__)

QUARANTINE_PREFIX = "quarantine/"
AAD_QUARANTINE = b"respaldo/quarantine"
RECORD_VERSION = 1


@dataclass(frozen=True)
class DamagedCopy:
    """The copy of ``chunk_id`` in pack ``pack_id`` is bad (``problem`` says how)."""

    chunk_id: bytes
    pack_id: str
    problem: str
    found: datetime

    @classmethod
    def of(cls, chunk_id: bytes, pack_object: str, problem: str) -> DamagedCopy:
        """From a pack's object name, as read results carry it, found now."""
        return cls(chunk_id, pack_id_from_name(pack_object), problem, datetime.now(UTC))


@dataclass(frozen=True)
class LostChunk:
    """No good copy of ``chunk_id`` was found anywhere; these backups reference it."""

    chunk_id: bytes
    backups: tuple[str, ...]
    recorded: datetime


@dataclass
class Quarantine:
    """Every record of a repository, merged."""

    damaged: dict[tuple[bytes, str], DamagedCopy] = field(default_factory=dict)
    lost: dict[bytes, LostChunk] = field(default_factory=dict)
    names: frozenset[str] = frozenset()
    problems: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    """Names of the records that could not be read: the state *quarantine damaged*."""

    @classmethod
    def load(cls, storage: Storage, sealer: Sealer) -> Quarantine:
        """Read every record. A record that cannot be read is named in ``unreadable``
        and ``problems``; see the module docstring for what that state means."""
        quarantine = cls()
        names = [info.name for info in storage.list(QUARANTINE_PREFIX)]
        for name in sorted(names):
            try:
                doc = read_opened(
                    storage, name, lambda blob: json.loads(sealer.open(blob, AAD_QUARANTINE))
                )
                quarantine._add(doc)
            except ObjectNotFound:
                continue
            except (SealError, ValueError, KeyError, TypeError) as exc:
                log.warning("quarantine record %s is damaged: %s", name, exc)
                quarantine.problems.append(
                    f"quarantine record {name} is damaged: {exc}; the damaged chunk copies "
                    "it named are usable again until 'respaldo verify --all' finds them "
                    "and 'respaldo repair' replaces the record"
                )
                quarantine.unreadable.append(name)
        quarantine.names = frozenset(names)
        return quarantine

    def _add(self, doc: dict[str, object]) -> None:
        if doc.get("version") != RECORD_VERSION:
            raise ValueError(f"unknown record version {doc.get('version')!r}")
        damaged = doc.get("damaged", [])
        lost = doc.get("lost", [])
        assert isinstance(damaged, list) and isinstance(lost, list)
        for item in damaged:
            copy = DamagedCopy(
                bytes.fromhex(item["chunk"]),
                str(item["pack"]),
                str(item["problem"]),
                datetime.fromisoformat(item["found"]),
            )
            self.damaged.setdefault((copy.chunk_id, copy.pack_id), copy)
        for item in lost:
            chunk_id = bytes.fromhex(item["chunk"])
            backups = tuple(str(b) for b in item["backups"])
            recorded = datetime.fromisoformat(item["recorded"])
            before = self.lost.get(chunk_id)
            if before is not None:
                backups = tuple(sorted({*before.backups, *backups}))
                recorded = min(recorded, before.recorded)
            self.lost[chunk_id] = LostChunk(chunk_id, backups, recorded)

    def refuse_if_damaged(self, action: str) -> None:
        """Raise RepositoryError if any record is unreadable (``action`` is what is
        refused, e.g. "collect garbage")."""
        if self.unreadable:
            raise RepositoryError(
                f"quarantine record {self.unreadable[0]} is unreadable"
                + (f" (and {len(self.unreadable) - 1} more)" if len(self.unreadable) > 1 else "")
                + f"; refusing to {action}",
                hint="run 'respaldo verify --all', then 'respaldo repair' to rewrite the record",
            )

    def excluded(self) -> dict[str, set[bytes]]:
        """Pack id -> the chunk ids whose copies in that pack must not be used."""
        out: dict[str, set[bytes]] = {}
        for chunk_id, pack_id in self.damaged:
            out.setdefault(pack_id, set()).add(chunk_id)
        return out

    def chunk_ids(self) -> set[bytes]:
        """Chunks of which at least one copy is damaged."""
        return {chunk_id for chunk_id, _ in self.damaged}

    def copies_of(self, chunk_id: bytes) -> list[DamagedCopy]:
        return [c for (cid, _), c in self.damaged.items() if cid == chunk_id]

    def is_bad_copy(self, chunk_id: bytes, pack_id: str) -> bool:
        return (chunk_id, pack_id) in self.damaged

    def __len__(self) -> int:
        return len(self.damaged)


def encode_record(damaged: Iterable[DamagedCopy] = (), lost: Iterable[LostChunk] = ()) -> bytes:
    doc = {
        "version": RECORD_VERSION,
        "created": datetime.now(UTC).isoformat(),
        "damaged": [
            {
                "chunk": c.chunk_id.hex(),
                "pack": c.pack_id,
                "problem": c.problem,
                "found": c.found.isoformat(),
            }
            for c in damaged
        ],
        "lost": [
            {
                "chunk": c.chunk_id.hex(),
                "backups": list(c.backups),
                "recorded": c.recorded.isoformat(),
            }
            for c in lost
        ],
    }
    return json.dumps(doc, indent=1).encode()


def write_record(
    storage: Storage,
    sealer: Sealer,
    damaged: Iterable[DamagedCopy] = (),
    lost: Iterable[LostChunk] = (),
) -> str:
    """Store one new record; returns its object name."""
    blob = sealer.seal(encode_record(damaged, lost), AAD_QUARANTINE)
    name = f"{QUARANTINE_PREFIX}{hashlib.sha256(blob).hexdigest()}"
    storage.put(name, blob)
    return name

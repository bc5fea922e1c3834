"""Repairing quarantined chunks: a good copy from a mirror, or an honest account of loss.

For every chunk with a quarantined copy (:mod:`.quarantine`), in this order:

1. the index holds a good copy already (a later backup stored the data anew, or another
   pack held it all along): nothing to do;
2. a mirror (same repository id and keys) holds a copy that authenticates: its sealed
   bytes are copied as they are into a new pack, and an index file describing it is
   written (packs first, then the index, as a backup does: a crash leaves at most an
   unindexed pack, which garbage collection removes);
3. otherwise the chunk is *lost*: every backup that references it is named, and a
   quarantine record lists the chunk with those backups, so that restore refuses them
   up front (instead of failing halfway) and ``respaldo list`` can say so.

Before all that, while a quarantine record is unreadable (the state *quarantine damaged*,
:mod:`.quarantine`), repair reads every copy of every chunk in every indexed pack, records
the damaged copies it finds in a new record, and only then, if that reading was complete
(every index file read, every copy good or damaged for certain), deletes the unreadable
records: what they said is said again by the new one, and the state is cleared.

The damaged copy itself needs no removal: the quarantine record already keeps it out of
every process's index (it is the tombstone that ``index rebuild`` respects), and garbage
collection drops its bytes when it next repacks or deletes that pack.

Compared with restic: ``restic repair packs`` salvages what still decrypts and
``repair snapshots --forget`` rewrites snapshots without the lost data; here the backup
stays as it was (a later good copy, say from a mirror configured later, makes it whole
again, and ``repair`` run again finds it), and what it lost is recorded and shown.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from respaldo.errors import BackupNotFound, IntegrityError, ObjectNotFound
from respaldo.repository.damage import confirm_damage, misplaced_problem
from respaldo.repository.index import seal_index
from respaldo.repository.packs import PackBuilder, PackEntry, pack_name
from respaldo.repository.quarantine import LostChunk, write_record
from respaldo.repository.reader import ChunkResult, _ChunkFailure, _fetch_run, _runs, read_list
from respaldo.repository.repo import Repository
from respaldo.repository.verify import scan_every_copy


@dataclass(frozen=True)
class LostBackup:
    """A backup that references chunks with no good copy anywhere."""

    backup_id: str
    source: str
    kind: str
    completed_at: datetime
    chunks_lost: int
    streams: tuple[str, ...]


@dataclass
class RepairReport:
    dry_run: bool
    quarantined: int = 0  # chunks with a damaged copy
    already_good: int = 0
    repaired: dict[str, int] = field(default_factory=dict)  # mirror location -> chunks
    lost_chunks: list[bytes] = field(default_factory=list)
    lost_backups: list[LostBackup] = field(default_factory=list)
    packs_written: int = 0
    bytes_written: int = 0
    problems: list[str] = field(default_factory=list)
    records_replaced: list[str] = field(default_factory=list)  # unreadable, deleted
    damaged_found: int = 0  # damaged copies the full re-read recorded anew

    @property
    def repaired_total(self) -> int:
        return sum(self.repaired.values())


def repair_repository(
    repo: Repository, mirrors: Sequence[Repository], *, dry_run: bool = False
) -> RepairReport:
    """Repair every quarantined chunk of ``repo`` from ``mirrors``; see the module
    docstring. With ``dry_run`` nothing is written (mirrors are still read, so that the
    report says exactly what a repair would do). The caller holds shared leases on every
    repository when not in a dry run (packs read or written must not be collected)."""
    report = RepairReport(dry_run=dry_run)
    repo.load_index()
    if repo.quarantine.unreadable:
        _replace_unreadable_records(repo, report)
    damaged = repo.quarantine.chunk_ids()
    report.quarantined = len(damaged)
    wanted = sorted(without_good_copy(repo, damaged))
    report.already_good = len(damaged) - len(wanted)
    usable = []
    for mirror in mirrors:
        if mirror.id != repo.id:
            report.problems.append(
                f"{mirror.storage.location} is not a mirror of {repo.storage.location}: skipped"
            )
        else:
            usable.append(mirror)
    found = _copy_from_mirrors(repo, usable, wanted, report)
    lost = [cid for cid in wanted if cid not in found]
    report.lost_chunks = lost
    if lost:
        report.lost_backups, by_chunk = _backups_referencing(
            repo, set(lost), repo.backup_ids(), report.problems
        )
        if not dry_run:
            _record_lost(repo, by_chunk)
    return report


def _replace_unreadable_records(repo: Repository, report: RepairReport) -> None:
    """Re-read every chunk copy, record the damaged ones, then delete the unreadable
    records (not in a dry run); the index is reloaded without the copies found."""
    scan, certain = scan_every_copy(repo)
    found = [c for key, c in scan.damaged.items() if key not in repo.quarantine.damaged]
    # A copy failing only where a wrong index entry placed it is no damage (damage.py).
    new, misplaced = confirm_damage(repo.storage, repo.sealer, found)
    report.problems += [misplaced_problem(copy) for copy in misplaced]
    report.damaged_found = len(new)
    if not certain:
        report.problems.append(
            f"{len(repo.quarantine.unreadable)} unreadable quarantine records kept: not "
            "every chunk copy could be read for certain ("
            + "; ".join(str(p) for p in scan.problems[:3])
            + "); run 'respaldo index rebuild' if an index file is damaged, then repair again"
        )
        return
    if report.dry_run:
        report.records_replaced = list(repo.quarantine.unreadable)
        return
    if new:
        write_record(repo.storage, repo.sealer, damaged=new)
    # Only once the new record is stored: a crash in between leaves both, still safe.
    for name in repo.quarantine.unreadable:
        with contextlib.suppress(ObjectNotFound):  # another repair removed it
            repo.storage.delete(name)
        report.records_replaced.append(name)
    repo.load_index()


def _copy_from_mirrors(
    repo: Repository, mirrors: Sequence[Repository], wanted: list[bytes], report: RepairReport
) -> set[bytes]:
    """Fetch good copies of ``wanted`` from the mirrors, in planned ranges, and (unless
    a dry run) store them in new packs; returns the chunk ids found."""
    found: set[bytes] = set()
    builder = PackBuilder(repo.pack_size)
    groups: list[tuple[str, list[PackEntry]]] = []

    def flush() -> None:
        pack_id, data, entries = builder.finish(repo.sealer)
        repo.storage.put(pack_name(pack_id), data)
        groups.append((pack_id, entries))
        report.packs_written += 1
        report.bytes_written += len(data)

    for mirror in mirrors:
        located = {}
        for cid in wanted:
            location = mirror.index.get(cid)
            if cid not in found and location is not None:
                located[cid] = location
        for run in _runs(located):
            for result in _fetch_run(mirror, run):
                if not _good(result):
                    report.problems.append(
                        f"the copy of chunk {result.chunk_id.hex()[:16]} in "
                        f"{mirror.storage.location} is unusable too ({result.problem})"
                    )
                    continue
                assert result.data is not None and result.sealed is not None
                found.add(result.chunk_id)
                where = mirror.storage.location
                report.repaired[where] = report.repaired.get(where, 0) + 1
                if not report.dry_run:
                    builder.add(result.chunk_id, result.sealed, result.size)
                    if builder.full:
                        flush()
    if report.dry_run:
        return found
    if len(builder):
        flush()
    if groups:
        name, blob = seal_index(repo.sealer, groups)
        repo.storage.put(name, blob)
        report.bytes_written += len(blob)
        repo.index_files.add(name)
        for pack_id, entries in groups:
            repo.index.add_pack(pack_id, entries)
    return found


def _good(result: ChunkResult) -> bool:
    return result.data is not None and result.sealed is not None


def _backups_referencing(
    repo: Repository, lost: set[bytes], backup_ids: Iterable[str], problems: list[str]
) -> tuple[list[LostBackup], dict[bytes, set[str]]]:
    """Every backup of ``backup_ids`` that references a chunk of ``lost``, with how many
    and where; and for each lost chunk, the backups that reference it. Each manifest and
    each of its chunk lists is read once, a list at a time (a backup's lists are never
    held whole). What cannot be read is said in ``problems``."""
    out = []
    by_chunk: dict[bytes, set[str]] = {cid: set() for cid in lost}
    for backup_id in backup_ids:
        try:
            manifest = repo.load_manifest(backup_id)
        except IntegrityError as exc:
            problems.append(f"backup {backup_id}: {exc.message}")
            continue
        except BackupNotFound:
            # Listed a moment ago and gone now: a prune deleted it (its manifests go
            # before the collection the caller's lease holds off). It loses nothing any
            # more; stopping here named none of the backups after it that do.
            continue
        hits: set[bytes] = set()
        streams = []
        for stream in manifest.streams:
            hit = _lost_in(repo, stream.lists, lost)
            if hit:
                hits |= hit
                streams.append(stream.name)
        for cid in hits:
            by_chunk[cid].add(backup_id)
        if hits:
            out.append(
                LostBackup(
                    backup_id,
                    manifest.source,
                    manifest.kind,
                    manifest.completed_at,
                    len(hits),
                    tuple(streams),
                )
            )
    return out, by_chunk


def _lost_in(repo: Repository, lists: list[str], lost: set[bytes]) -> set[bytes]:
    """The chunks of ``lost`` that a stream (its list chunks) references."""
    hit: set[bytes] = set()
    for list_id in lists:
        cid = bytes.fromhex(list_id)
        if cid in lost:
            hit.add(cid)  # the list itself: every chunk it names is out of reach
            continue
        try:
            entries = read_list(repo, list_id)
        except _ChunkFailure:
            # Unreadable for another reason (verify reports it): not counted as lost
            # here, since it is not a quarantined chunk.
            continue
        hit.update(c for c, _ in entries if c in lost)
    return hit


def _record_lost(repo: Repository, by_chunk: dict[bytes, set[str]]) -> None:
    """One record naming each lost chunk and the backups that reference it (only what
    earlier records do not say already: running repair again writes nothing new)."""
    now = datetime.now(UTC)
    records = []
    for cid, ids in sorted(by_chunk.items()):
        known = repo.quarantine.lost.get(cid)
        if known is not None and ids <= set(known.backups):
            continue
        records.append(LostChunk(cid, tuple(sorted(ids)), now))
    if records:
        write_record(repo.storage, repo.sealer, lost=records)
        repo.load_index()


def without_good_copy(
    repo: Repository, chunk_ids: Iterable[bytes], elsewhere: Sequence[Repository] = ()
) -> set[bytes]:
    """The chunks of ``chunk_ids`` that have no good copy indexed in ``repo`` (its index
    leaves quarantined copies out) nor in any of ``elsewhere`` (mirrors: same chunk ids,
    and restore reads from them, :func:`lost_chunks_of`)."""
    return {
        cid
        for cid in chunk_ids
        if cid not in repo.index and not any(cid in other.index for other in elsewhere)
    }


def record_lost_backups(
    repo: Repository,
    chunk_ids: Collection[bytes],
    elsewhere: Sequence[Repository],
    backup_ids: Iterable[str],
    problems: list[str],
) -> list[LostBackup]:
    """The backups of ``backup_ids`` that reference a chunk of ``chunk_ids`` with no good
    copy in ``repo`` or ``elsewhere`` (:func:`without_good_copy`), recorded as lost in
    ``repo`` as :func:`repair_repository` records them (so that restore refuses them up
    front and ``catalog rebuild`` marks them again). For a backup failed by the check of
    its packs (:mod:`.pack_check`), whose quarantined copies ``chunk_ids`` are: the
    earlier backups that use them cannot restore either. ``repo``'s index must have been
    loaded since they were quarantined. What cannot be read is said in ``problems``."""
    backups, by_chunk = lost_backups(repo, chunk_ids, elsewhere, backup_ids, problems)
    if by_chunk:
        _record_lost(repo, by_chunk)
    return backups


def lost_backups(
    repo: Repository,
    chunk_ids: Collection[bytes],
    elsewhere: Sequence[Repository],
    backup_ids: Iterable[str],
    problems: list[str],
) -> tuple[list[LostBackup], dict[bytes, set[str]]]:
    """:func:`record_lost_backups` without recording anything: the backups, and for each
    chunk of ``chunk_ids`` with no good copy, the backups that reference it (none when
    every chunk has one). For a mirror's copies, which its other repositories can still
    mend: a lost record says no good copy exists anywhere ('repair' gives up on it,
    garbage collection stops calling it repairable)."""
    lost = without_good_copy(repo, chunk_ids, elsewhere)
    if not lost:
        return [], {}
    return _backups_referencing(repo, lost, backup_ids, problems)


def lost_chunks_of(
    repo: Repository, backup_id: str, elsewhere: Sequence[Repository] = ()
) -> list[LostChunk]:
    """The chunks of ``backup_id`` that ``repair`` recorded as lost and that still have
    no good copy in ``repo`` or in any of ``elsewhere`` (a copy stored since, by a later
    backup or a mirror configured later, makes the backup whole again)."""
    mine = [lost for lost in repo.quarantine.lost.values() if backup_id in lost.backups]
    still = without_good_copy(repo, (lost.chunk_id for lost in mine), elsewhere)
    return [lost for lost in mine if lost.chunk_id in still]

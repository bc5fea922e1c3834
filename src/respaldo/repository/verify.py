"""Integrity checks: read back what backups reference and report every problem.

Unlike restore, which stops at the first bad chunk, verification keeps going and lists
everything that is missing or corrupt, with the backup and object it concerns.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from respaldo.errors import BackupNotFound, IntegrityError, ObjectNotFound
from respaldo.repository.crypto import AAD_INDEX, SealError
from respaldo.repository.damage import confirm_damage, misplaced_problem
from respaldo.repository.index import INDEX_PREFIX, Location, decode_index
from respaldo.repository.manifest import Manifest
from respaldo.repository.packs import (
    PACK_PREFIX,
    PackEntry,
    pack_id_from_name,
    pack_name,
    read_header,
)
from respaldo.repository.quarantine import DamagedCopy, write_record
from respaldo.repository.reader import (
    ChunkResult,
    _ChunkFailure,
    _fetch_run,
    _runs,
    fetch_chunks,
    read_list,
)
from respaldo.repository.repo import Repository
from respaldo.repository.wal import list_wal, read_wal_object
from respaldo.storage.base import Storage


@dataclass(frozen=True)
class Problem:
    message: str
    obj: str = ""
    backup: str = ""

    def __str__(self) -> str:
        where = " ".join(
            p
            for p in (
                f"backup {self.backup}" if self.backup else "",
                f"object {self.obj}" if self.obj else "",
            )
            if p
        )
        return f"{self.message} [{where}]" if where else self.message


CopyKey = tuple[bytes, str]
"""(chunk id, pack id): one stored copy of a chunk."""


@dataclass
class VerifyReport:
    backups: int = 0
    chunks: int = 0
    bytes: int = 0
    packs: int = 0
    unreferenced_packs: int = 0
    damaged_index_files: int = 0
    wal_files: int = 0
    problems: list[Problem] = field(default_factory=list)
    damaged: dict[CopyKey, DamagedCopy] = field(default_factory=dict)
    """Chunk copies found bad for certain, for :func:`quarantine_damaged` to record."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def note(self, result: ChunkResult) -> None:
        """Remember a failed read's copy if it is damaged for certain (not a read that
        failed for now: a timeout must not quarantine a good copy)."""
        if result.damaged and result.obj:
            copy = DamagedCopy.of(result.chunk_id, result.obj, result.problem or "damaged")
            self.damaged.setdefault((copy.chunk_id, copy.pack_id), copy)


Progress = Callable[[int], None]
Seen = Callable[[Manifest], None]
"""Told each manifest verified, as it is loaded (a caller's checks across backups)."""


def verify_backups(
    repo: Repository,
    backup_ids: Iterable[str],
    progress: Progress | None = None,
    seen: Seen | None = None,
) -> VerifyReport:
    """Read every chunk of the given backups, check ids and stream checksums."""
    report = VerifyReport()
    for backup_id in backup_ids:
        _verify_one(repo, backup_id, report, progress, seen=seen)
    return report


def _verify_one(
    repo: Repository,
    backup_id: str,
    report: VerifyReport,
    progress: Progress | None,
    *,
    listed: bool = False,
    seen: Seen | None = None,
) -> None:
    try:
        manifest = repo.load_manifest(backup_id)
    except IntegrityError as exc:
        report.backups += 1
        report.problems.append(Problem(exc.message, exc.obj, backup_id))
        return
    except BackupNotFound:
        if listed:
            # Listed a moment ago and gone now: a prune deleted it while we read the
            # others (manifests go before the collection our lease holds off). It is no
            # longer a backup of this repository; failing here left every backup after
            # it unverified. (One the catalog still records is reported by the caller.)
            return
        raise
    report.backups += 1
    if seen is not None:
        seen(manifest)
    for stream in manifest.streams:
        sha = hashlib.sha256()
        size = 0
        damaged = False
        for list_id in stream.lists:
            try:
                entries = read_list(repo, list_id, other_copies=False)
            except _ChunkFailure as failure:
                r = failure.result
                report.problems.append(
                    Problem(f"chunk list of stream {stream.name!r}: {r.problem}", r.obj, backup_id)
                )
                report.note(r)
                damaged = True
                continue
            for result in fetch_chunks(repo, entries, other_copies=False):
                report.chunks += 1
                if result.data is None:
                    damaged = True
                    report.note(result)
                    report.problems.append(
                        Problem(
                            f"chunk {result.chunk_id.hex()[:16]} of stream {stream.name!r}: "
                            f"{result.problem}",
                            result.obj,
                            backup_id,
                        )
                    )
                    continue
                sha.update(result.data)
                size += len(result.data)
                report.bytes += len(result.data)
                if progress is not None:
                    progress(len(result.data))
        if not damaged and (size != stream.size or sha.hexdigest() != stream.sha256):
            report.problems.append(
                Problem(f"stream {stream.name!r} does not match its SHA-256", "", backup_id)
            )


def verify_repository(
    repo: Repository, progress: Progress | None = None, seen: Seen | None = None
) -> VerifyReport:
    """Check index files, every pack header against the index, and every backup."""
    report = VerifyReport()
    storage = repo.storage
    report.problems += [Problem(text) for text in repo.quarantine.problems]
    indexed = _read_index_files(repo, report)
    stored_packs = {pack_id_from_name(i.name): i.name for i in storage.list(PACK_PREFIX)}
    for pack_id, entries_by_id in indexed.items():
        name = stored_packs.get(pack_id)
        if name is None:
            report.problems.append(
                Problem("pack listed in the index is missing", f"packs/{pack_id[:2]}/{pack_id}")
            )
            # Every copy it held, not only those the backups' reads below reach: it may
            # hold a backup's chunk list, whose entries no read can name, and a repair
            # must take them all back (else garbage collection refuses, finding chunks
            # that backups reference in no pack).
            _note_missing_pack(report, pack_id, entries_by_id)
            continue
        report.packs += 1
        try:
            header = read_pack_header(repo, storage, name)
        except IntegrityError as exc:
            report.problems.append(Problem(exc.message, name))
            continue
        from_header = {e.chunk_id: (e.offset, e.length, e.raw_length) for e in header}
        for cid, where in entries_by_id.items():
            if from_header.get(cid) != where:
                report.problems.append(
                    Problem(f"index and pack header disagree on chunk {cid.hex()[:16]}", name)
                )
                break
    report.unreferenced_packs = len(set(stored_packs) - set(indexed))
    if repo.quarantine.unreadable:
        _check_every_copy(repo, report, indexed)
    for backup_id in repo.backup_ids():
        _verify_one(repo, backup_id, report, progress, listed=True, seen=seen)
    # Archived WAL too: a damaged segment is otherwise found only by the recovery that
    # needs it, when the backups it was meant to roll forward may be all there is.
    for name in list_wal(repo):
        try:
            read_wal_object(repo, name)
        except IntegrityError as exc:
            report.problems.append(Problem(exc.message.removesuffix(f" [object {name}]"), name))
        except ObjectNotFound:
            continue  # expired by a concurrent prune
        else:
            report.wal_files += 1
    return report


def verify_presence(repo: Repository) -> VerifyReport:
    """Check that every pack the index names is in the repository: one listing of
    ``packs/`` and the index (from the local cache), no data read.

    For mirrors, whose data the daily slice does not read (reading all of an offsite
    bucket each week costs its egress): a pack lost there (objects deleted by someone
    holding the bucket's keys, a disk put back from an old image) went unnoticed while
    later copies deduplicated against it and "completed", until a restore from the mirror
    failed. A copy damaged in place is not found this way: ``verify --all --repository``
    reads it."""
    report = VerifyReport()
    # The index before the listing: a writer stores a pack before the index file naming
    # it, so every pack named here is listed unless it is lost. Listed first, a pack that
    # a copy running beside this check stored after the listing (its index file then
    # added to this process's index) was taken for a lost one: the daily verify failed
    # and alerted, its hint sending the operator to repair a mirror that was whole.
    indexed = repo.index.packs()
    stored = {pack_id_from_name(info.name) for info in repo.storage.list(PACK_PREFIX)}
    report.packs = len(indexed)
    report.damaged_index_files = len(repo.damaged_index_files)  # those its load left out
    missing = indexed - stored
    for pack_id in sorted(missing):
        report.problems.append(Problem("pack listed in the index is missing", pack_name(pack_id)))
    if missing:
        # Every copy in them is damaged for certain: once quarantined, no copy to this
        # repository deduplicates against them any more, and 'repair' takes good copies
        # from the others (all of them at once, the chunk lists' entries included).
        for pack_id, entries in repo.index.by_pack(lambda pack_id, _: pack_id in missing).items():
            _note_missing_pack(report, pack_id, [entry.chunk_id for entry in entries])
    return report


def _note_missing_pack(report: VerifyReport, pack_id: str, chunk_ids: Iterable[bytes]) -> None:
    """Note every copy a missing pack held as damaged, for :func:`quarantine_damaged`."""
    for chunk_id in chunk_ids:
        copy = DamagedCopy.of(chunk_id, pack_name(pack_id), "pack is missing")
        report.damaged.setdefault((copy.chunk_id, copy.pack_id), copy)


Indexed = dict[str, dict[bytes, tuple[int, int, int]]]
"""Pack id -> chunk id -> (offset, length, raw length), as the index files say."""


def _read_index_files(repo: Repository, report: VerifyReport) -> Indexed:
    indexed: Indexed = {}
    for info in repo.storage.list(INDEX_PREFIX):
        try:
            data = repo.sealer.open(repo.storage.get(info.name), AAD_INDEX)
            for pack_id, entries in decode_index(data):
                slot = indexed.setdefault(pack_id, {})
                for e in entries:
                    slot[e.chunk_id] = (e.offset, e.length, e.raw_length)
        except (SealError, ValueError) as exc:
            report.damaged_index_files += 1
            report.problems.append(Problem(f"index file is damaged: {exc}", info.name))
        except ObjectNotFound:
            continue  # removed by a concurrent rebuild
    return indexed


def scan_every_copy(repo: Repository) -> tuple[VerifyReport, bool]:
    """Read every copy of every chunk in every indexed pack (for ``repair`` of an
    unreadable quarantine record). Returns the report, whose ``damaged`` are the copies
    found damaged for certain, and whether the scan was complete: every index file read
    and every copy either good or damaged for certain (no read that merely failed)."""
    report = VerifyReport()
    indexed = _read_index_files(repo, report)
    _check_every_copy(repo, report, indexed)
    certain = report.damaged_index_files == 0 and len(report.problems) == len(report.damaged)
    return report, certain


def _check_every_copy(
    repo: Repository,
    report: VerifyReport,
    indexed: Indexed,
) -> None:
    """Read every copy of every chunk in every indexed pack, not only the copy the index
    chose: while a quarantine record is unreadable, the damaged copies it named are back
    in the index, and one may sit beside a good copy that the backups' reads would take.
    Damaged copies found are noted, so that :func:`quarantine_damaged` records them anew."""
    for pack_id, entries_by_id in sorted(indexed.items()):
        # A missing pack too: its copies read as "pack is missing", damaged for certain.
        located = {
            cid: Location(pack_id, offset, length, raw)
            for cid, (offset, length, raw) in entries_by_id.items()
        }
        for run in _runs(located):
            for result in _fetch_run(repo, run):
                if result.data is None:
                    report.note(result)
                    report.problems.append(
                        Problem(f"chunk {result.chunk_id.hex()[:16]}: {result.problem}", result.obj)
                    )


def quarantine_damaged(repo: Repository, report: VerifyReport) -> int:
    """Record the damaged copies ``report`` found (those not quarantined already) so
    that no backup deduplicates against them, and reload the index; returns how many
    were new. Raises the storage error of a store that cannot be written (a read-only
    medium): the damage is still reported, and the next verify finds it again."""
    found = [c for key, c in report.damaged.items() if key not in repo.quarantine.damaged]
    new, misplaced = confirm_damage(repo.storage, repo.sealer, found)
    for copy in misplaced:
        report.problems.append(Problem(misplaced_problem(copy), pack_name(copy.pack_id)))
    if not new:
        return 0
    write_record(repo.storage, repo.sealer, damaged=new)
    repo.load_index()
    return len(new)


def read_pack_header(repo: Repository, storage: Storage, name: str) -> list[PackEntry]:
    """Read and authenticate a pack's header. Raises IntegrityError."""
    return read_header(storage, repo.sealer, name)


def parse_subset(text: str) -> tuple[int, int]:
    """Parse ``"n/t"`` (1 <= n <= t) for :func:`verify_subset`. Raises ValueError."""
    try:
        n_text, t_text = text.split("/")
        n, t = int(n_text), int(t_text)
    except ValueError:
        raise ValueError(f"subset must look like 3/7, not {text!r}") from None
    if not 1 <= n <= t:
        raise ValueError(f"subset {text!r}: need 1 <= n <= t")
    return n, t


def in_subset(chunk_id: bytes, n: int, t: int) -> bool:
    """Whether a chunk belongs to slice ``n`` of ``t``: slices 1..t partition all chunks."""
    return int.from_bytes(chunk_id[:8], "big") % t == n - 1


def verify_subset(
    repo: Repository, n: int, t: int, progress: Progress | None = None
) -> VerifyReport:
    """Read and check slice ``n`` of ``t`` of every indexed chunk.

    The slice depends only on chunk ids, so running 1/t … t/t (say one a night) reads
    every chunk once: a cheap rolling integrity check of a large repository. Each chunk
    is authenticated and checked against its id; stream checksums need whole backups
    (see :func:`verify_backups`).
    """
    report = VerifyReport()
    # The chunks of a damaged index file are not in the index to slice: say so.
    for name in sorted(repo.damaged_index_files):
        report.problems.append(
            Problem("index file is damaged (the chunks it describes are not sliced)", name)
        )

    def in_slice(_pack_id: str, chunk_id: bytes) -> bool:
        return in_subset(chunk_id, n, t)

    # The slice's entries, a range of packs at a time (in pack order, as one listing
    # would give them): memory holds one counter per pack and at most SUBSET_BATCH
    # entries (or one pack's), whatever the size of the repository.
    for first, last in _pack_ranges(repo.index.pack_counts(in_slice), SUBSET_BATCH):

        def in_range(pack_id: str, chunk_id: bytes, first: str = first, last: str = last) -> bool:
            return first <= pack_id <= last and in_subset(chunk_id, n, t)

        for _pack_id, entries in sorted(repo.index.by_pack(in_range).items()):
            _verify_pack(repo, [(e.chunk_id, e.raw_length) for e in entries], report, progress)
    return report


SUBSET_BATCH = 100_000
"""Entries of a rolling verify's slice listed at a time (about 15 MB of them)."""


def _pack_ranges(counts: dict[str, int], batch: int) -> list[tuple[str, str]]:
    """(first, last) pack ids of consecutive packs, in order, each range holding at most
    ``batch`` entries by ``counts`` (or a single pack holding more)."""
    ranges: list[tuple[str, str]] = []
    first: str | None = None
    held = 0
    previous = ""
    for pack_id in sorted(counts):
        if first is not None and held + counts[pack_id] > batch:
            ranges.append((first, previous))
            first, held = None, 0
        if first is None:
            first = pack_id
        held += counts[pack_id]
        previous = pack_id
    if first is not None:
        ranges.append((first, previous))
    return ranges


def _verify_pack(
    repo: Repository,
    chosen: list[tuple[bytes, int]],
    report: VerifyReport,
    progress: Progress | None,
) -> None:
    """Read and check the ``chosen`` chunks of one pack into ``report``."""
    if chosen:
        report.packs += 1
        for result in fetch_chunks(repo, chosen, other_copies=False):
            report.chunks += 1
            if result.data is None:
                report.note(result)
                report.problems.append(
                    Problem(f"chunk {result.chunk_id.hex()[:16]}: {result.problem}", result.obj)
                )
                continue
            report.bytes += len(result.data)
            if progress is not None:
                progress(len(result.data))

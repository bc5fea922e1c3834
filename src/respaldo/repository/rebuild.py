"""Rebuilding the index from the packs' own headers.

Used when index files are lost or damaged. New index files are written first; only then
are the old ones (as listed at the start) deleted, so a crash at any point leaves at
least one complete description of every pack. Packs whose header is damaged are
reported and left alone: their chunks stay unreachable until repaired or collected.
Quarantine records (:mod:`.quarantine`) are not touched: the new index files describe
the packs as their headers do, and every load of the index still leaves the quarantined
copies out, so a rebuild never brings a damaged copy back.
When not one pack header opens (the config is not the one the packs were written with),
nothing is written or deleted.

A rebuild holds the repository's exclusive lock (:mod:`.locks`), as garbage collection
does, from before it lists anything until its last deletion: a collection that ran
between the reading of the headers and the writing of the new index files would delete
dead packs that the new files then describe, and the next backup would deduplicate
against chunks that are gone. Backups wait for it (or fail with ``RepositoryLocked``)
for the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from respaldo.errors import IntegrityError, ObjectNotFound
from respaldo.repository.config_file import RESTORE_HINT
from respaldo.repository.index import INDEX_PREFIX, seal_index
from respaldo.repository.locks import Lease, LockKind
from respaldo.repository.packs import PACK_PREFIX, PackEntry, pack_id_from_name
from respaldo.repository.repo import Repository
from respaldo.repository.verify import Problem, read_pack_header

PACKS_PER_INDEX_FILE = 1024


@dataclass
class RebuildReport:
    packs: int = 0
    chunks: int = 0
    index_files_written: int = 0
    index_files_removed: int = 0
    quarantined: int = 0  # damaged chunk copies left out of the new index (quarantine.py)
    problems: list[Problem] = field(default_factory=list)


def rebuild_index(repo: Repository, *, wait: float | None = None) -> RebuildReport:
    """Replace every index file with ones made from the pack headers, under the exclusive
    lock (``wait``, by default ``repo.lock_wait``: how long to wait for running backups
    and collections). Raises RepositoryLocked, LeaseLost (nothing more was written or
    deleted), IntegrityError (no header opens) and storage errors."""
    lease = Lease.acquire(
        repo.storage,
        LockKind.EXCLUSIVE,
        "index rebuild",
        stale_after=repo.lock_stale_after,
        wait=repo.lock_wait if wait is None else wait,
    )
    with lease:
        return _rebuild(repo, lease)


def _rebuild(repo: Repository, lease: Lease) -> RebuildReport:
    report = RebuildReport()
    storage = repo.storage
    old = [info.name for info in storage.list(INDEX_PREFIX)]
    groups: list[tuple[str, list[PackEntry]]] = []
    written: set[str] = set()

    def flush() -> None:
        if groups:
            name, blob = seal_index(repo.sealer, groups)
            lease.check()
            storage.put(name, blob)
            written.add(name)
            report.index_files_written += 1
            groups.clear()

    for info in storage.list(PACK_PREFIX):
        try:
            entries = read_pack_header(repo, storage, info.name)
        except IntegrityError as exc:
            report.problems.append(Problem(exc.message, info.name))
            continue
        groups.append((pack_id_from_name(info.name), entries))
        report.packs += 1
        report.chunks += len(entries)
        if len(groups) >= PACKS_PER_INDEX_FILE:
            flush()
    flush()
    if report.problems and not report.packs:
        # Not one pack opens: these are not this config's keys (a config recreated over
        # the old data) far more likely than every pack damaged. Either way the old index
        # files may be the only description left: keep them.
        raise IntegrityError(
            f"no pack header in {storage.location} opens with this repository's keys "
            f"({len(report.problems)} tried); refusing to replace the index",
            hint="is config the one these packs were written with? If it was recreated, "
            + RESTORE_HINT,
        )
    for name in old:
        if name in written:
            continue
        lease.check()
        try:
            storage.delete(name)
            report.index_files_removed += 1
        except ObjectNotFound:
            pass
    repo.load_index()
    report.quarantined = len(repo.quarantine)
    return report

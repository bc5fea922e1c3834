"""Garbage collection: remove the chunks that no backup references any more.

*Mark*: every chunk named by a remaining manifest is live: its streams' list chunks and
every data chunk those lists name. *Sweep*, per pack:

- a pack that no index file describes (left by a writer that died) or that holds no
  live chunk is deleted;
- a pack whose dead share (sealed bytes of chunks nothing references, over all its
  chunks' sealed bytes) reaches ``repack_threshold`` is *repacked*: its live chunks are
  copied, still sealed, into new packs (each one authenticated and checked against its
  id on the way: a damaged chunk is never copied, its pack is kept and reported, and the
  damaged copy is quarantined so that no backup deduplicates against it any more);
- several small packs (below ``small_pack_fraction`` of the pack size: every backup's
  last pack is one) are repacked together, when that reclaims space (merging alone
  rewrites the whole index, which can cost more than the packs' headers save);
- a chunk stored in several packs lives in the one whose share of live chunks is
  highest (after an interrupted collection: the new pack).

Order of writes, which makes a crash (kill -9) at any point harmless:

0. the packs that no index file describes are deleted (no backup can use them: nothing
deduplicates against a pack before an index file describes it, and no writer runs while
collection holds its lock), first, so that on a disk a failed backup filled, the writes
that follow find the room its packs took; 1. new packs; 2. new index files, describing
exactly the packs that remain (all their chunks) and the new ones; 3. every index file
that existed before is deleted; 4. the packs that are no longer needed are deleted;
5. in a local store, the temporary files
(``.tmp-*``) of writes killed before their rename: at once when their process is gone
from this machine, else once older than a lease lives (``lock_stale_after``).

After a crash in 0 or 1 unindexed packs are left, and the next collection deletes them;
after 2 or 3 chunks are described twice, which is allowed; in 4 no index file
mentions a deleted pack any more. At every point every backup restores and
:func:`~respaldo.repository.verify.verify_repository` passes, and the next collection
computes everything afresh and finishes the work.

Collection holds the repository's exclusive lock (:mod:`.locks`) from before it reads
anything until it has deleted its last object: it refuses to start while a backup
holds a shared lease, and backups refuse to start while it runs. It refuses to delete
anything when the mark is incomplete (a damaged manifest or list chunk, a live chunk
the index does not find), because it would not know what is live. ``wal/`` objects are
not chunks and are never touched here.

Quarantined copies of chunks (:mod:`.quarantine`) count as dead: a chunk also stored
anew lives in its good copy, and one with no good copy is reported (``respaldo repair``
deals with it) rather than stopping the collection. Quarantine records are never deleted
here; while one is unreadable, collection refuses to run (it cannot tell damaged copies
from good ones).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime

from respaldo.errors import BackupNotFound, IntegrityError, ObjectNotFound, RepositoryError
from respaldo.phrases import counted
from respaldo.repository.crypto import OVERHEAD, SealError
from respaldo.repository.damage import confirm_damage, misplaced_problem
from respaldo.repository.index import GROUP, INDEX_PREFIX, MAGIC, decode_index, seal_index
from respaldo.repository.locks import Lease, LockKind, read_locks
from respaldo.repository.manifest import MANIFEST_PREFIX
from respaldo.repository.packs import (
    ENTRY,
    PACK_PREFIX,
    TRAILER,
    PackBuilder,
    PackEntry,
    pack_id_from_name,
    pack_name,
)
from respaldo.repository.quarantine import DamagedCopy, write_record
from respaldo.repository.reader import _ChunkFailure, read_list
from respaldo.repository.repo import Repository
from respaldo.repository.wal import WAL_PREFIX
from respaldo.storage.base import Storage
from respaldo.storage.local import remove_stale_temporaries

log = logging.getLogger(__name__)

PACKS_PER_INDEX_FILE = 1024
# Rewrite the index when there are more files than this even if no pack changes: every
# backup adds one, and opening a repository reads them all.
INDEX_FILES_MAX = 64

Step = Callable[[str], None]
"""Told, in words, each step a collection takes (for logs and progress)."""


@dataclass
class GcReport:
    """What a collection found and did (or, with ``dry_run``, would do).

    Byte counts are object sizes in the store. In a dry run, ``bytes_written`` is an
    estimate (new packs hold exactly the live chunks, plus headers).
    """

    dry_run: bool
    backups: int = 0
    live_chunks: int = 0
    packs: int = 0
    packs_deleted: int = 0
    packs_repacked: int = 0
    packs_written: int = 0
    packs_unindexed: int = 0
    chunks_dropped: int = 0
    index_files_removed: int = 0
    index_files_written: int = 0
    temporaries_removed: int = 0
    damaged: int = 0
    """Live chunk copies found damaged while repacking (and quarantined): news, unlike
    the damage verification recorded before."""
    unrepaired: int = 0
    """Live chunks whose every copy is quarantined, and that 'repair' has not recorded
    lost: the backups referencing them cannot be restored from this repository until
    'repair' copies them from another."""
    bytes_before: int = 0
    bytes_deleted: int = 0
    bytes_written: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def bytes_reclaimed(self) -> int:
        return self.bytes_deleted - self.bytes_written

    @property
    def bytes_after(self) -> int:
        return self.bytes_before - self.bytes_reclaimed

    @property
    def changed(self) -> bool:
        return bool(self.bytes_deleted or self.bytes_written)


@dataclass
class _Pack:
    pack_id: str
    name: str
    size: int  # object size in the store
    entries: dict[bytes, PackEntry] = field(default_factory=dict)
    live: dict[bytes, PackEntry] = field(default_factory=dict)

    @property
    def sealed_total(self) -> int:
        return sum(e.length for e in self.entries.values())

    @property
    def live_bytes(self) -> int:
        return sum(e.length for e in self.live.values())

    @property
    def dead_share(self) -> float:
        total = self.sealed_total
        return 1.0 - self.live_bytes / total if total else 1.0


@dataclass
class _Plan:
    index_files: dict[str, int]  # name -> size
    unindexed: dict[str, int]  # pack name -> size, packs no index file describes
    delete: list[_Pack] = field(default_factory=list)
    repack: list[_Pack] = field(default_factory=list)
    keep: list[_Pack] = field(default_factory=list)
    dangling: int = 0  # index entries naming packs that do not exist
    index_entries: int = 0  # entries the index files hold, all of them (as stored)


def collect_garbage(
    repo: Repository,
    *,
    dry_run: bool = False,
    repack_threshold: float = 0.5,
    small_pack_fraction: float = 0.25,
    assume_deleted: Collection[str] = (),
    wait: float | None = None,
    step: Step | None = None,
) -> GcReport:
    """Collect the garbage of ``repo``; see the module docstring for what and in which order.

    ``dry_run`` reads only (and takes no lock): the report says what would be deleted and
    reclaimed, counting the backups in ``assume_deleted`` as gone already (to preview a
    prune before it deletes their manifests). ``wait`` (default: ``repo.lock_wait``) is
    how long to wait for running backups. Idempotent; safe to interrupt at any point.

    Raises RepositoryLocked (backups are running), LeaseLost (our lock was taken away:
    nothing more was deleted), IntegrityError when the mark cannot be complete (nothing
    is deleted then), and storage errors.
    """
    if assume_deleted and not dry_run:
        raise ValueError("assume_deleted only makes sense in a dry run")
    say: Step = step or (lambda message: log.info("%s", message))
    report = GcReport(dry_run=dry_run)
    lease: Lease | None = None
    if not dry_run:
        lease = Lease.acquire(
            repo.storage,
            LockKind.EXCLUSIVE,
            "garbage collection",
            stale_after=repo.lock_stale_after,
            wait=repo.lock_wait if wait is None else wait,
        )
    try:
        plan = _plan(repo, report, set(assume_deleted), repack_threshold, small_pack_fraction)
        if dry_run and plan.unindexed and _writers_running(repo):
            # Without the lock, packs no index describes may be those of running backups.
            report.problems.append(
                counted(
                    len(plan.unindexed),
                    "backups are running: {count} pack not yet indexed is not counted (it "
                    "may be theirs)",
                    "backups are running: {count} packs not yet indexed are not counted "
                    "(they may be theirs)",
                )
            )
            plan.unindexed = {}
        # Each count with its noun agreeing ("1 backups reference 1 chunks in 1 packs").
        say(
            counted(report.backups, "{count} backup references", "{count} backups reference")
            + " "
            + counted(report.live_chunks, "{count} chunk", "{count} chunks")
            + " in "
            + counted(report.packs, "{count} pack", "{count} packs")
            + "; "
            + counted(len(plan.delete), "{count} pack to delete", "{count} packs to delete")
            + f", {len(plan.repack)} to repack"
        )
        if dry_run:
            _estimate(repo, plan, report)
        else:
            assert lease is not None
            _execute(repo, plan, report, lease, say)
    finally:
        if lease is not None:
            lease.release()
    return report


# --- mark and plan -----------------------------------------------------------------------


def _plan(
    repo: Repository,
    report: GcReport,
    assume_deleted: set[str],
    repack_threshold: float,
    small_pack_fraction: float,
) -> _Plan:
    storage = repo.storage
    # Packs before index files: writers store a pack before the index file describing
    # it, so every pack listed here whose writer finished has its index file listed too.
    stored = {pack_id_from_name(i.name): (i.name, i.size) for i in storage.list(PACK_PREFIX)}
    index_files = {info.name: info.size for info in storage.list(INDEX_PREFIX)}
    repo.load_index()
    # An unreadable quarantine record hides which copies are damaged: with two copies of
    # a chunk, collection could keep the damaged one and delete the good one.
    repo.quarantine.refuse_if_damaged("collect garbage")
    packs: dict[str, _Pack] = {}
    dangling = index_entries = 0
    for name in sorted(index_files):
        try:
            groups = list(decode_index(repo._read_index_file(name)))
        except ObjectNotFound:
            # Someone else rewrote the index (an index rebuild): its packs would look
            # unindexed to us, and be deleted. Start again instead.
            raise RepositoryError(
                f"index file {name} disappeared during garbage collection",
                hint="was 'respaldo index rebuild' running? run prune again",
            ) from None
        for pack_id, entries in groups:
            index_entries += len(entries)
            where = stored.get(pack_id)
            if where is None:
                dangling += len(entries)
                continue
            pack = packs.setdefault(pack_id, _Pack(pack_id, where[0], where[1]))
            for e in entries:
                pack.entries.setdefault(e.chunk_id, e)
    unindexed = {name: size for pid, (name, size) in stored.items() if pid not in packs}
    report.packs = len(stored)
    report.packs_unindexed = len(unindexed)
    report.bytes_before = sum(size for _, size in stored.values()) + sum(index_files.values())

    live = _mark(repo, report, assume_deleted)
    holders: dict[bytes, list[_Pack]] = defaultdict(list)
    for pack in packs.values():
        for cid in pack.entries:
            # A quarantined copy holds nothing: it is dead, dropped when its pack is
            # repacked or deleted, and never chosen over (and so never costs) a good one.
            if cid in live and not repo.quarantine.is_bad_copy(cid, pack.pack_id):
                holders[cid].append(pack)
    damaged = repo.quarantine.chunk_ids()
    unrepaired = sum(1 for cid in live if cid not in holders and cid in damaged)
    # Those 'repair' can still mend: a chunk it recorded lost has no good copy anywhere.
    lost = repo.quarantine.lost
    report.unrepaired = sum(
        1 for cid in live if cid not in holders and cid in damaged and cid not in lost
    )
    if unrepaired:
        # Known damage, not an incomplete mark: what is live is known; these chunks
        # simply have no good copy (their quarantine records stay, for 'repair').
        report.problems.append(
            counted(
                unrepaired,
                "{count} chunk that backups reference has only damaged copies: run "
                "'respaldo repair'",
                "{count} chunks that backups reference have only damaged copies: run "
                "'respaldo repair'",
            )
        )
    missing = [cid for cid in live if cid not in holders and cid not in damaged]
    if missing:
        raise IntegrityError(
            counted(
                len(missing),
                "{count} chunk that backups reference is in no pack the index describes "
                "({chunk}); refusing to collect garbage",
                "{count} chunks that backups reference are in no pack the index describes "
                "(e.g. {chunk}); refusing to collect garbage",
                chunk=missing[0].hex()[:16],
            ),
            hint="run 'respaldo verify --all' and 'respaldo index rebuild' first",
        )
    share = {
        p.pack_id: sum(1 for cid in p.entries if cid in live) / len(p.entries)
        for p in packs.values()
        if p.entries
    }
    for cid, candidates in holders.items():
        best = max(candidates, key=lambda p: (share[p.pack_id], p.pack_id))
        best.live[cid] = best.entries[cid]

    plan = _Plan(index_files, unindexed, dangling=dangling, index_entries=index_entries)
    small: list[_Pack] = []
    for pack in sorted(packs.values(), key=lambda p: p.pack_id):
        if not pack.live:
            plan.delete.append(pack)
        elif pack.dead_share >= repack_threshold:
            plan.repack.append(pack)
        elif pack.size < small_pack_fraction * repo.pack_size:
            small.append(pack)
        else:
            plan.keep.append(pack)
    # Merging costs a copy of the small packs; worth it for two or more, or when new
    # packs are being written anyway (otherwise their last one is another small pack).
    if len(small) >= 2 or (small and plan.repack):
        merge_only = not (plan.repack or _index_changes(plan))
        plan.repack.extend(small)
        # Merging alone rewrites the whole index too. Its files are compressed, and what
        # two small packs' headers save can be less than a larger index costs: a dry run
        # said "3 repacked into 1 ... would reclaim about -8.3 KiB". Merge when it pays,
        # by more than the estimate can miss: how well a rewritten index compresses
        # (measured: a few hundred bytes either way on a 50 KiB index).
        if merge_only and not _pays(repo, plan):
            plan.repack = []
            plan.keep.extend(small)
    else:
        plan.keep.extend(small)
    return plan


def _mark(repo: Repository, report: GcReport, assume_deleted: set[str]) -> set[bytes]:
    live: set[bytes] = set()
    for backup_id in repo.backup_ids():
        if backup_id in assume_deleted:
            continue
        try:
            manifest = repo.load_manifest(backup_id)
        except BackupNotFound:
            continue  # deleted since we listed (by a prune: deleting manifests needs no lock)
        except IntegrityError as exc:
            raise IntegrityError(
                f"refusing to collect garbage: {exc.message}",
                obj=exc.obj,
                backup=backup_id,
                hint="the chunks a damaged manifest references cannot be known; delete "
                "the backup or restore its manifest from a mirror first",
            ) from None
        report.backups += 1
        for stream in manifest.streams:
            for list_id in stream.lists:
                cid = bytes.fromhex(list_id)
                live.add(cid)
                try:
                    entries = read_list(repo, list_id)
                except _ChunkFailure as failure:
                    raise IntegrityError(
                        f"refusing to collect garbage: chunk list of stream {stream.name!r} "
                        f"is unreadable ({failure.result.problem})",
                        obj=failure.result.obj,
                        backup=backup_id,
                        hint="run 'respaldo verify --all'; delete or repair that backup first",
                    ) from None
                live.update(chunk_id for chunk_id, _ in entries)
    report.live_chunks = len(live)
    return live


def _estimate(repo: Repository, plan: _Plan, report: GcReport) -> None:
    """Fill a dry run's report from the plan without writing anything."""
    report.packs_deleted = len(plan.delete) + len(plan.unindexed)
    report.packs_repacked = len(plan.repack)
    report.chunks_dropped = sum(len(p.entries) - len(p.live) for p in plan.delete + plan.repack)
    guess = _guess(repo, plan)
    report.packs_written = guess.packs_written
    report.bytes_deleted = guess.bytes_deleted + sum(plan.unindexed.values())
    report.bytes_written = guess.bytes_written
    if _index_changes(plan):
        report.index_files_removed = len(plan.index_files)
        report.index_files_written = guess.index_files_written


@dataclass(frozen=True)
class _Guess:
    packs_written: int
    index_files_written: int
    bytes_deleted: int
    bytes_written: int


def _guess(repo: Repository, plan: _Plan) -> _Guess:
    """What carrying out ``plan`` would delete and write (packs no index describes
    aside). Pack headers and index files are stored compressed, so their sizes are
    estimated from those in the store (bytes per entry), not from the entries' size."""
    live_bytes = sum(p.live_bytes for p in plan.repack)
    live_chunks = sum(len(p.live) for p in plan.repack)
    new_packs = -(-live_bytes // repo.pack_size) if live_bytes else 0
    fixed = OVERHEAD + TRAILER.size
    headers = sum(p.size - p.sealed_total - fixed for p in plan.repack)
    entries = sum(len(p.entries) for p in plan.repack)
    per_entry = headers / entries if entries and headers > 0 else ENTRY.size
    deleted = sum(p.size for p in plan.delete + plan.repack)
    written = round(live_bytes + new_packs * fixed + live_chunks * per_entry) if new_packs else 0
    files = 0
    if _index_changes(plan):
        kept_entries = sum(len(p.entries) for p in plan.keep) + live_chunks
        files = -(-(len(plan.keep) + new_packs) // PACKS_PER_INDEX_FILE)
        fixed = OVERHEAD + len(MAGIC)
        stored = sum(plan.index_files.values()) - len(plan.index_files) * fixed
        per_entry = stored / plan.index_entries if plan.index_entries and stored > 0 else 0
        per_entry = per_entry or ENTRY.size + GROUP.size
        deleted += sum(plan.index_files.values())
        written += round(max(files, 1) * fixed + kept_entries * per_entry)
    return _Guess(new_packs, files, deleted, written)


def _pays(repo: Repository, plan: _Plan) -> bool:
    """Whether carrying out ``plan`` is expected to reclaim space, by more than a 32nd of
    the index it rewrites (what compressing that index differently can cost)."""
    guess = _guess(repo, plan)
    margin = sum(plan.index_files.values()) // 32
    return guess.bytes_deleted - guess.bytes_written > margin


def _index_changes(plan: _Plan) -> bool:
    return bool(
        plan.delete or plan.repack or plan.dangling or len(plan.index_files) > INDEX_FILES_MAX
    )


# --- sweep -------------------------------------------------------------------------------


def _execute(repo: Repository, plan: _Plan, report: GcReport, lease: Lease, say: Step) -> None:
    storage = repo.storage
    # 0. Packs no index file describes, before anything is written: on a disk that a
    # failed backup filled they are the room the writes below need.
    for name, size in sorted(plan.unindexed.items()):
        lease.check()
        if _delete(storage, name):
            report.packs_deleted += 1
            report.bytes_deleted += size
    if plan.unindexed:
        say(
            counted(
                len(plan.unindexed),
                "deleted {count} pack no index file describes",
                "deleted {count} packs no index file describes",
            )
        )
    new_groups = _repack(repo, plan, report, lease, say)  # 1. new packs

    if _index_changes(plan):
        # 2. index files describing exactly what remains.
        groups = [
            (p.pack_id, sorted(p.entries.values(), key=lambda e: e.offset))
            for p in sorted(plan.keep, key=lambda p: p.pack_id)
        ]
        groups += new_groups
        written: set[str] = set()
        for start in range(0, len(groups), PACKS_PER_INDEX_FILE):
            name, blob = seal_index(repo.sealer, groups[start : start + PACKS_PER_INDEX_FILE])
            lease.check()
            storage.put(name, blob)
            written.add(name)
            report.index_files_written += 1
            report.bytes_written += len(blob)
        say(counted(len(written), "wrote {count} index file", "wrote {count} index files"))
        # 3. the old index files.
        for name, size in sorted(plan.index_files.items()):
            if name in written:
                continue
            lease.check()
            if _delete(storage, name):
                report.index_files_removed += 1
                report.bytes_deleted += size
        say(
            counted(
                report.index_files_removed,
                "removed {count} old index file",
                "removed {count} old index files",
            )
        )
    # 4. packs nothing needs any more.
    # (name, size, chunks dropped, counts as deleted rather than repacked)
    doomed = [(p.name, p.size, len(p.entries), True) for p in plan.delete]
    doomed += [(p.name, p.size, len(p.entries) - len(p.live), False) for p in plan.repack]
    for name, size, dropped, deleted in doomed:
        lease.check()
        if _delete(storage, name):
            report.packs_deleted += deleted
            report.bytes_deleted += size
            report.chunks_dropped += dropped
    say(counted(len(doomed), "deleted {count} pack", "deleted {count} packs"))
    # 5. Temporary files of puts killed half-way (a local store's): their process is gone,
    # or they were not written to for longer than a lease lives.
    for prefix in (PACK_PREFIX, INDEX_PREFIX, MANIFEST_PREFIX, WAL_PREFIX):
        lease.check()
        removed = remove_stale_temporaries(storage, prefix, repo.lock_stale_after)
        report.temporaries_removed += len(removed)
    if report.temporaries_removed:
        say(f"removed {report.temporaries_removed} temporary files of interrupted writes")
    repo.load_index()


def _repack(
    repo: Repository, plan: _Plan, report: GcReport, lease: Lease, say: Step
) -> list[tuple[str, list[PackEntry]]]:
    """Copy the live chunks of the packs to repack into new packs; returns their index
    groups. A pack with a damaged live chunk is moved from ``repack`` to ``keep``."""
    builder = PackBuilder(repo.pack_size)
    groups: list[tuple[str, list[PackEntry]]] = []

    def flush() -> None:
        pack_id, data, entries = builder.finish(repo.sealer)
        lease.check()
        repo.storage.put(pack_name(pack_id), data)
        groups.append((pack_id, entries))
        report.packs_written += 1
        report.bytes_written += len(data)

    done: list[_Pack] = []
    for pack in plan.repack:
        try:
            sealed, damaged = _read_live(repo, pack)
        except RepositoryError as exc:
            report.problems.append(f"{pack.name} kept as it is: {exc}")
            plan.keep.append(pack)
            continue
        if damaged:
            _quarantine(repo, pack, damaged, report, lease)
            plan.keep.append(pack)
            continue
        for cid, blob, raw_length in sealed:
            builder.add(cid, blob, raw_length)
            if builder.full:
                flush()
        done.append(pack)
    if len(builder):
        flush()
    plan.repack = done
    report.packs_repacked = len(done)
    if done:
        say(
            counted(
                len(done),
                "repacked {count} pack into {groups}",
                "repacked {count} packs into {groups}",
                groups=len(groups),
            )
        )
    return groups


def _read_live(
    repo: Repository, pack: _Pack
) -> tuple[list[tuple[bytes, bytes, int]], list[DamagedCopy]]:
    """(chunk id, sealed bytes, plaintext length) of every live chunk of a pack, each one
    authenticated, and the copies among them that are damaged or truncated. Raises the
    storage error of a pack that cannot be read (not known damage).

    A pack with chunks that fail is read a second time, and only the chunks that fail
    again are damaged (quarantined): bytes spoiled on their way from the store are no
    damage of the copy (see :func:`respaldo.repository.reader._fetch_run`)."""
    entries = sorted(pack.live.values(), key=lambda e: e.offset)
    out, failed = _open_live(repo, repo.storage.get(pack.name), entries)
    if failed:
        again, still = _open_live(repo, repo.storage.get(pack.name), [e for e, _ in failed])
        if again:
            log.warning(
                "%s gave %d chunks that failed authentication or came short, and read "
                "whole a second time: the store (or the way to it) returned bad bytes",
                pack.name,
                len(again),
            )
        out = sorted(out + again, key=lambda item: pack.live[item[0]].offset)
        failed = still
    damaged = [
        DamagedCopy.of(e.chunk_id, pack.name, f"found by garbage collection: {exc}")
        for e, exc in failed
    ]
    return out, damaged


def _open_live(
    repo: Repository, data: bytes, entries: list[PackEntry]
) -> tuple[list[tuple[bytes, bytes, int]], list[tuple[PackEntry, SealError]]]:
    """The ``entries`` of a pack's bytes ``data`` that authenticate (chunk id, sealed
    bytes, plaintext length), and those that do not, with why."""
    out = []
    failed = []
    for e in entries:
        blob = data[e.offset : e.offset + e.length]
        try:
            if len(blob) != e.length:
                raise SealError("pack is truncated")
            repo.sealer.open_chunk(e.chunk_id, blob)
        except SealError as exc:
            failed.append((e, exc))
            continue
        out.append((e.chunk_id, blob, e.raw_length))
    return out, failed


def _quarantine(
    repo: Repository, pack: _Pack, damaged: list[DamagedCopy], report: GcReport, lease: Lease
) -> None:
    """Record the damaged copies of a pack that is kept as it is: backups must not
    deduplicate against them (the next one stores the chunk anew), and verification,
    restores and ``repair`` then know them."""
    found = [c for c in damaged if (c.chunk_id, c.pack_id) not in repo.quarantine.damaged]
    # A copy that fails where the index places it may be intact where the pack's header
    # does: then the index is wrong, and the copy must not be condemned (damage.py).
    new, misplaced = confirm_damage(repo.storage, repo.sealer, found)
    lease.check()
    if new:
        write_record(repo.storage, repo.sealer, damaged=new)
    report.damaged += len(new)
    report.problems += [f"{pack.name} kept as it is: {misplaced_problem(c)}" for c in misplaced]
    if len(misplaced) < len(damaged):
        bad = next(c for c in damaged if c not in misplaced)
        report.problems.append(
            f"{pack.name} kept as it is: {len(damaged) - len(misplaced)} live chunks in it "
            f"are damaged (e.g. {bad.chunk_id.hex()[:16]}: {bad.problem}); quarantined"
        )


def _writers_running(repo: Repository) -> bool:
    now = datetime.now(UTC)
    locks, _ = read_locks(repo.storage)
    return any(lock.stale_reason(now, repo.lock_stale_after) is None for lock in locks)


def _delete(storage: Storage, name: str) -> bool:
    try:
        storage.delete(name)
    except ObjectNotFound:
        return False
    return True

"""Writing backups: chunk, deduplicate, seal and pack streams, then commit a manifest.

The pipeline overlaps its stages on two cores. The calling thread reads the source
(typically a pg_dump pipe or a file) in blocks of about 1 MiB and cuts each block into
chunks (:class:`~.chunker.BlockCutter`: one read and no copy per chunk); a thread of its
own feeds the stream's SHA-256, block after block, and a block's buffer is reused only
once hashed; a pool of ``workers`` threads takes a block at a time, computes its
chunks' ids, looks them up and seals the new ones; the calling thread takes the blocks
back in order and packs their new chunks; a second pool hashes and uploads finished packs.
hashlib, blake3, zstd and AES-GCM release the GIL on buffers of this size, so the heavy
stages run in parallel; what holds the GIL is a few lines of Python per chunk. (Before,
the calling thread also hashed every chunk and every pack, one chunk at a time: it was
the bottleneck while the sealing threads waited.) Every queue between stages is bounded,
so memory stays at about ``2 × workers + 1`` blocks + a few 1 MiB pieces of the packs
on their way to the store (:mod:`.pack_spool`), whatever the stream's size, plus the
entries of the chunks stored but not yet in an index file (``INDEX_FLUSH_ENTRIES`` at
most, and the pack that crosses it); those in an index file go to the local index
cache's side runs, on disk (:meth:`.ChunkIndex.add_file`).

Order of writes: packs, then index files describing them, then the manifest. A writer
that dies before the manifest leaves only unreferenced packs (and maybe index files),
which no backup uses and garbage collection removes. From its start to its end a writer
holds a shared lease (:mod:`.locks`), so that garbage collection never removes chunks
that its manifest is about to reference: the lease is refreshed just before the manifest
is written and checked just after (a manifest that landed when the lease may have gone
stale is deleted again, and the backup fails).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from respaldo import __version__, cancellation
from respaldo.errors import LeaseLost, ObjectNotFound, RepositoryError, RespaldoError, StorageError
from respaldo.repository.chunker import BLOCK_SIZE, Block, BlockCutter, Readable
from respaldo.repository.index import chunk_ids, encode_index_groups, seal_encoded_index
from respaldo.repository.locks import shared_lease
from respaldo.repository.manifest import (
    LIST_ENTRIES_MAX,
    Manifest,
    StreamInfo,
    encode_list,
    manifest_aad,
    manifest_name,
)
from respaldo.repository.pack_check import PackUse, check_packs
from respaldo.repository.pack_spool import PackSpooler, SpooledPack
from respaldo.repository.packs import ENTRY, encode_rows
from respaldo.repository.quarantine import QUARANTINE_PREFIX, Quarantine
from respaldo.repository.reader import _ChunkFailure, read_list
from respaldo.repository.repo import Repository
from respaldo.storage.base import validate_name

log = logging.getLogger(__name__)

# An index file is written once this many new chunks wait for one, so that a writer holds
# about 5 MiB of their entries (~300 bytes each) whatever the backup's size. Counted in
# packs (64 of them), that was ~100,000 entries of the sample ERP dump (12 MiB packs of
# ~7.5 KiB sealed chunks), ~30 MiB, of which a first backup of 1 GB (51,500 chunks) held
# half and one of 4 GB or more all: peak memory grew with the database. A first backup of
# 10 GB writes about 35 index files this way.
INDEX_FLUSH_ENTRIES = 16384
# Two uploads in flight: one (measured in pairs on a first backup of 1 GB) held no less
# at the peak, the packs freed being handed back (allocator.py), for 3-5% more CPU.
UPLOADS_IN_FLIGHT = 2
# Progress is reported every this many bytes, not every chunk: a callback per 16 KiB chunk
# cost 5% of a backup's main thread (measured with py-spy).
PROGRESS_EVERY = 1 << 20


# What a worker returns for a block: the chunk ids, and per chunk a sealed length, None or
# the sealed chunk (BackupWriter._process).
_Done = tuple[list[bytes], list[int | bytes | None]]
_ABSENT: Any = object()
_T = TypeVar("_T")


@dataclass
class WriteStats:
    """What a backup cost. ``stored_bytes`` is what dedup did not save."""

    size_bytes: int = 0  # plaintext bytes of all streams
    size_compressed: int = 0  # sealed bytes of every chunk the backup references
    stored_bytes: int = 0  # bytes of packs this writer uploaded
    chunks: int = 0
    new_chunks: int = 0
    packs: int = 0
    # Chunks stored anew because the copy the repository had is quarantined (damaged).
    damaged_rewritten: int = 0
    # References to copies that verification quarantined while this backup ran: the
    # backup deduplicated against them before anyone knew. Zero unless that race happened;
    # then the backup is not known-good, and 'respaldo repair' or a new backup fixes it.
    unconfirmed_chunks: int = 0


def _outcome(future: Future[_T], backup_id: str, stage: str) -> _T:
    """A worker's result; what it raised, as a RespaldoError (a storage error is one
    already; anything else, say MemoryError, gets the stage and the backup named)."""
    try:
        return future.result()
    except RespaldoError:
        raise
    except Exception as exc:
        raise RepositoryError(
            f"backup {backup_id} failed while {stage}: {type(exc).__name__}: {exc}",
            hint="nothing of this backup was recorded (what it stored is unreferenced "
            "and 'respaldo prune' removes it); run it again, and report the error if it "
            "comes back",
        ) from exc


class BackupWriter:
    """Writes the streams of one backup. Not thread-safe: one writer, one thread.

    Use as a context manager, or call :meth:`abort` on failure to stop the pools.
    """

    def __init__(self, repo: Repository, backup_id: str) -> None:
        validate_name(manifest_name(backup_id))
        self.repo = repo
        self.backup_id = backup_id
        self.stats = WriteStats()
        # First, before anything is stored or deduplicated against: garbage collection
        # must not run while this backup may reference chunks no manifest holds yet.
        self._lease = shared_lease(repo, f"backup {backup_id}")
        self._streams: list[StreamInfo] = []
        # The store gets each pack's chunks as they come (pack_spool.py), not a 12 MiB
        # pack built in memory.
        self._packer = PackSpooler(repo.storage, repo.pack_size)
        self._seal_pool = ThreadPoolExecutor(repo.workers, thread_name_prefix="seal")
        self._upload_pool = ThreadPoolExecutor(UPLOADS_IN_FLIGHT, thread_name_prefix="upload")
        # A pool task per block, not per chunk: a task per 16 KiB chunk cost more in
        # hand-offs than it gained (a pool of 2 sealed 1.14x faster than one thread; with
        # tasks of 32 chunks 1.75x, measured). Blocks stay well below a pack, so that
        # packs keep flowing out during a stream.
        self._cutter = BlockCutter(
            repo.chunker, repo.keys.chunker_seed, max(1, min(BLOCK_SIZE, repo.pack_size // 8))
        )
        # The stream's SHA-256 on a thread of its own (one, so the blocks go in order):
        # it was a quarter of the calling thread's time (40 ms of a 70 MiB base backup).
        self._hash_pool = ThreadPoolExecutor(1, thread_name_prefix="stream-hash")
        self._inflight: deque[tuple[Block, Future[_Done], Future[None]]] = deque()
        self._uploads: deque[Future[int]] = deque()
        self._max_inflight = repo.workers * 2
        # The stream being written: its (chunk id, length) entries not yet in a list
        # chunk, and the list chunks so far.
        self._entries: list[tuple[bytes, int]] = []
        self._lists: list[str] = []
        self._lock = threading.Lock()
        # Chunk id -> sealed length (None while sealing) for chunks stored by this writer
        # but not yet in the repository index. A chunk joins the shared index only once an
        # index file describing its pack is in storage: a writer that fails before that
        # must not leave chunks that another writer of this process deduplicates against
        # but that no index file (after a restart, no reader) can find.
        self._pending: dict[bytes, int | None] = {}
        self._deferred: Counter[bytes] = Counter()
        self._unindexed: list[tuple[str, bytes]] = []
        self._unindexed_entries = 0
        self._closed = False
        self._damaged_ids = repo.quarantine.chunk_ids()
        # While a quarantine record is unreadable, any copy stored before now may be one
        # it named as damaged (its name says nothing of its packs): deduplicate against
        # none of them, only against what this backup stores (quarantine.py).
        self._suspect_packs = repo.index.packs() if repo.quarantine.unreadable else set()
        # The packs this backup references, checked before its manifest (pack_check.py).
        self.packs_used = PackUse()
        self._stored_anew: set[bytes] = set()

    def __enter__(self) -> BackupWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self._closed:
            self.abort()

    # --- streams ---------------------------------------------------------------------

    def write_stream(
        self, name: str, reader: Readable, progress: Callable[[int], None] | None = None
    ) -> StreamInfo:
        """Read ``reader`` to its end and store it as stream ``name`` of this backup."""
        if any(s.name == name for s in self._streams):
            raise RepositoryError(f"stream {name!r} written twice in backup {self.backup_id}")
        sha = hashlib.sha256()
        size = 0
        reported = 0
        count = 0
        self._entries, self._lists = [], []
        for block in self._cutter.blocks(reader):
            hashed = self._hash_pool.submit(sha.update, block.view)
            size += len(block.view)
            count += len(block.ends)
            self._inflight.append((block, self._seal_pool.submit(self._process, block), hashed))
            while len(self._inflight) > self._max_inflight:
                self._drain_one()
            if progress is not None and size - reported >= PROGRESS_EVERY:
                reported = size
                progress(size)
        # The stream's entries are complete once every block of it is back.
        while self._inflight:
            self._drain_one()
        if progress is not None:
            progress(size)
        if self._entries:
            self._lists.append(self._store_list(self._entries))
        info = StreamInfo(
            name=name, size=size, sha256=sha.hexdigest(), chunks=count, lists=self._lists
        )
        self._entries, self._lists = [], []
        self._streams.append(info)
        self.stats.size_bytes += size
        return info

    # --- a block on a worker thread ----------------------------------------------------

    def _process(self, block: Block) -> _Done:
        """Chunk ids of ``block``, and for each chunk what the writer knows of it: the
        sealed length of a copy the repository or this writer has (int), a copy this
        writer is still sealing (None), or the sealed chunk, new (bytes). Runs on a
        worker thread: touches only the lock-free index reads and, under the lock, the
        writer's pending chunks."""
        sealer = self.repo.sealer
        chunk_id = sealer.chunk_id
        chunks = list(block.chunks())
        ids = [chunk_id(c) for c in chunks]
        # Pending before index: an index write adds to the index first and leaves
        # pending second, so this order never misses a chunk that is on its way.
        with self._lock:
            found: list[int | bytes | None] = [self._pending.get(cid, _ABSENT) for cid in ids]
            for cid, known in zip(ids, found, strict=True):
                if known is None:  # being sealed for another block: counted when it is
                    self._deferred[cid] += 1
        index = self.repo.index
        # The block's lookups in one call: the cache answers them with the loop's work
        # done once (ChunkIndex.get_many).
        asked = [i for i, known in enumerate(found) if known is _ABSENT]
        used = []
        for i, location in zip(asked, index.get_many([ids[i] for i in asked]), strict=True):
            if location is not None and location.pack_id not in self._suspect_packs:
                found[i] = location.length
                used.append(location)
        claimed = []
        with self._lock:
            for i, cid in enumerate(ids):
                if found[i] is not _ABSENT:
                    continue
                # A suspect copy counts only if this backup stored it anew.
                if self._suspect_packs and cid in self._stored_anew:
                    location = index.get(cid)
                    if location is not None:
                        found[i] = location.length
                        used.append(location)
                        continue
                if cid in self._pending:  # another block (or this one) took it meanwhile
                    sealed_len = self._pending[cid]
                    found[i] = sealed_len
                    if sealed_len is None:
                        self._deferred[cid] += 1
                    continue
                self._pending[cid] = None
                if self._suspect_packs:
                    self._stored_anew.add(cid)
                claimed.append(i)
        self.packs_used.used(used)
        # One call for the block's new chunks, not one per chunk (crypto.seal_chunks).
        sealed = sealer.seal_chunks([ids[i] for i in claimed], [chunks[i] for i in claimed])
        for i, blob in zip(claimed, sealed, strict=True):
            found[i] = blob
        for c in chunks:
            c.release()
        return ids, found

    def _drain_one(self) -> None:
        """Take the oldest block back (in stream order): its entries, its new chunks into
        packs. Raises what the block's task raised."""
        block, future, hashed = self._inflight.popleft()
        ids, found = _outcome(future, self.backup_id, "hashing and sealing chunks")
        _outcome(hashed, self.backup_id, "hashing the stream")  # before the block is reused
        self._cutter.release(block)
        stats = self.stats
        start = 0
        for cid, end, known in zip(ids, block.ends, found, strict=True):
            raw_len = end - start
            start = end
            stats.chunks += 1
            self._entries.append((cid, raw_len))
            if type(known) is int:
                stats.size_compressed += known
            elif known is not None:  # sealed here: new
                assert isinstance(known, bytes)
                self._add_new(cid, known, raw_len)
            # None: another block is sealing it; counted when that one is drained.
            if len(self._entries) == LIST_ENTRIES_MAX:
                self._lists.append(self._store_list(self._entries))
                self._entries = []

    def _add_new(self, cid: bytes, sealed: bytes, raw_len: int) -> None:
        with self._lock:
            self._pending[cid] = len(sealed)
            extra = self._deferred.pop(cid, 0)
        self.stats.new_chunks += 1
        if cid in self._damaged_ids:
            self.stats.damaged_rewritten += 1
        self.stats.size_compressed += len(sealed) * (1 + extra)
        self._packer.add(cid, sealed, raw_len)
        if self._packer.full:
            self._flush_pack()

    # --- chunks stored from this thread ------------------------------------------------

    def _store_list(self, entries: list[tuple[bytes, int]]) -> str:
        data = encode_list(entries)
        cid = self.repo.sealer.chunk_id(data)
        self._store_chunk(cid, data)
        return cid.hex()

    def _store_chunk(self, cid: bytes, data: bytes) -> None:
        """Store one chunk from the calling thread, sealing it here (list chunks: one
        per 16,384 chunks of a stream)."""
        self.stats.chunks += 1
        with self._lock:
            if cid in self._pending:
                sealed_len = self._pending[cid]
                if sealed_len is None:
                    self._deferred[cid] += 1
                else:
                    self.stats.size_compressed += sealed_len
                return
        location = self.repo.index.get(cid)
        if location is not None and (
            location.pack_id not in self._suspect_packs or cid in self._stored_anew
        ):
            self.stats.size_compressed += location.length
            self.packs_used.used([location])
            return
        with self._lock:
            self._pending[cid] = None
            if self._suspect_packs:
                self._stored_anew.add(cid)
        self._add_new(cid, self.repo.sealer.seal_chunk(cid, data), len(data))

    def _flush_pack(self) -> None:
        self._lease.check()
        self.stats.packs += 1
        spooled = self._packer.take(self.repo.sealer)
        self._uploads.append(self._upload_pool.submit(self._commit_spooled, spooled))
        while len(self._uploads) > UPLOADS_IN_FLIGHT:
            self._collect_upload()
        with self._lock:
            due = self._unindexed_entries >= INDEX_FLUSH_ENTRIES
        if due:
            self._write_index()

    def _collect_upload(self) -> None:
        future = self._uploads.popleft()
        self.stats.stored_bytes += _outcome(future, self.backup_id, "storing a pack")

    def _commit_spooled(self, pack: SpooledPack) -> int:
        """Name one pack whose chunks are in its file already (on an upload thread)."""
        pack_id, size = pack.complete()
        self.packs_used.wrote(pack_id, size)
        self._stored(pack_id, encode_rows(pack.rows))
        return size

    def _stored(self, pack_id: str, entries: bytes) -> None:
        # Kept as the index file will hold them, 48 bytes an entry: as PackEntry objects
        # (and their ints) about 2.4 MiB waited for each index flush, at a backup's peak.
        with self._lock:
            self._unindexed.append((pack_id, entries))
            self._unindexed_entries += len(entries) // ENTRY.size

    def _write_index(self) -> None:
        with self._lock:
            groups, self._unindexed = self._unindexed, []
            self._unindexed_entries = 0
        if not groups:
            return
        # Encoded once for the file and the cache's side run, and the sealed file let go
        # before the side run is written: an index flush is a spike on a backup's peak.
        plaintext = encode_index_groups(groups)
        del groups
        name, blob = seal_encoded_index(self.repo.sealer, plaintext)
        self.repo.storage.put(name, blob)
        size = len(blob)
        del blob
        self.repo.index_files.add(name)
        self.stats.stored_bytes += size
        # With a local cache, to a side run on disk: nothing this backup stores stays in
        # memory once an index file describes it (index.py).
        self.repo.index.add_file(name, size, plaintext)
        with self._lock:
            for chunk_id in chunk_ids(plaintext):
                self._pending.pop(chunk_id, None)

    # --- commit ----------------------------------------------------------------------

    def commit(
        self,
        *,
        kind: str,
        source: str,
        started_at: datetime,
        meta: dict[str, Any] | None = None,
    ) -> Manifest:
        """Flush packs and index, then write the manifest: from here on the backup exists.

        Raises RepositoryError if a manifest with this id exists already (nothing is
        overwritten), or the storage error that stopped an upload.
        """
        try:
            self._flush_all()
            check_packs(self.repo, self.packs_used, self.backup_id)
            self._confirm_chunks()
            manifest = Manifest(
                backup_id=self.backup_id,
                kind=kind,
                source=source,
                started_at=started_at,
                completed_at=datetime.now(UTC),
                tool_version=__version__,
                streams=list(self._streams),
                meta=dict(meta or {}),
            )
            blob = self.repo.sealer.seal(manifest.to_bytes(), manifest_aad(self.backup_id))
            # From here the backup may exist: a signal is held until its record says so
            # (operations/recorded.py), not raised between the manifest and the record.
            cancellation.no_return()
            self._put_manifest(blob)
            return manifest
        finally:
            self._shutdown()

    def _confirm_chunks(self) -> None:
        """Count this backup's references to copies quarantined since the index was
        loaded (verification ran meanwhile): the one race in which a backup can have
        deduplicated against a damaged copy. Costs one listing when nothing changed."""
        repo = self.repo
        names = {info.name for info in repo.storage.list(QUARANTINE_PREFIX)}
        if names <= repo.quarantine.names:
            return
        fresh = Quarantine.load(repo.storage, repo.sealer)
        # Copies this writer's index still points at (and so may have used).
        suspect = set()
        for chunk_id, pack_id in fresh.damaged.keys() - repo.quarantine.damaged.keys():
            location = repo.index.get(chunk_id)
            if location is not None and location.pack_id == pack_id:
                suspect.add(chunk_id)
        if suspect:
            for stream in self._streams:
                for list_id in stream.lists:
                    try:
                        entries = read_list(repo, list_id)
                    except _ChunkFailure:  # the list chunk itself was a damaged copy
                        self.stats.unconfirmed_chunks += 1
                        continue
                    listed = [bytes.fromhex(list_id), *(c for c, _ in entries)]
                    self.stats.unconfirmed_chunks += sum(1 for c in listed if c in suspect)
            log.warning(
                "backup %s references %d chunks found damaged while it ran",
                self.backup_id,
                self.stats.unconfirmed_chunks,
            )
        repo.load_index()

    def commit_sealed_manifest(self, blob: bytes | None) -> None:
        """Flush, then store an already sealed manifest (copying between mirrors); None:
        the manifest is there already (a copy refilling the chunks it lost)."""
        try:
            self._flush_all()
            check_packs(self.repo, self.packs_used, self.backup_id, copy=True)
            if blob is not None:
                self._put_manifest(blob)
        finally:
            self._shutdown()

    def store_sealed(self, cid: bytes, sealed: bytes, raw_length: int) -> bool:
        """Add a chunk that is sealed already (under this repository's keys) unless the
        repository or this writer has it. Returns whether it was new."""
        self.stats.chunks += 1
        with self._lock:
            if cid in self._pending:
                return False
        location = self.repo.index.get(cid)
        if location is not None:
            self.packs_used.used([location])
            return False
        with self._lock:
            self._pending[cid] = len(sealed)
        self.stats.new_chunks += 1
        self.stats.size_compressed += len(sealed)
        self._packer.add(cid, sealed, raw_length)
        if self._packer.full:
            self._flush_pack()
        return True

    def _flush_all(self) -> None:
        while self._inflight:
            self._drain_one()
        if len(self._packer):
            self._flush_pack()
        while self._uploads:
            self._collect_upload()
        self._write_index()

    def _put_manifest(self, blob: bytes) -> None:
        # A lease renewed just now cannot go stale before the manifest is stored: no
        # garbage collection has run, or can run, while this backup's chunks are unowned.
        self._lease.refresh()
        name = manifest_name(self.backup_id)
        try:
            self.repo.storage.stat(name)
        except ObjectNotFound:
            pass
        else:
            raise RepositoryError(f"backup {self.backup_id} exists already")
        self.repo.storage.put(name, blob)
        try:
            # A put held up (a slow store retrying it) past the point where others may
            # judge the lease stale may have landed after a collection marked without it
            # and deleted chunks it references: withdrawn, the backup did not happen.
            self._lease.check()
        except LeaseLost:
            try:
                self.repo.storage.delete(name)
            except StorageError as exc:
                log.error(
                    "cannot withdraw %s, written after its lease could have gone stale "
                    "(%s): run 'respaldo verify %s' before trusting it",
                    name,
                    exc,
                    self.backup_id,
                )
            raise
        self.stats.stored_bytes += len(blob)

    def abort(self) -> None:
        """Stop the pools without writing a manifest; uploaded packs become garbage."""
        for _, future, hashed in self._inflight:
            future.cancel()
            hashed.cancel()
        self._inflight.clear()
        self._shutdown()

    def _shutdown(self) -> None:
        self._closed = True
        self._seal_pool.shutdown(wait=True, cancel_futures=True)
        self._hash_pool.shutdown(wait=True, cancel_futures=True)
        self._upload_pool.shutdown(wait=True, cancel_futures=True)
        self._packer.close()  # after the uploads: discards what none of them stored
        self._lease.release()

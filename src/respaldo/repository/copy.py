"""Copying backups between mirror repositories (same id and keys, other storage).

Only the sealed chunks the destination lacks are transferred, untouched (no decryption
or re-encryption), each one authenticated on the way so that a damaged chunk is never
propagated. Order of writes in the destination: packs, index, then the manifest (copied
as is), so a copy interrupted at any point leaves no backup half there; running it again
moves only what is still missing.

A backup deleted from the source while it is copied (prune expired it: deleting
manifests takes no lock) must not come back to life in the destination, where no
catalog record would name it any more. Prune deletes the source's manifest before the
destination's, so the source's is looked at again *after* the destination's is
written: gone, the copy is deleted again. (Looked at before instead, prune could delete
both between that look and the write.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from respaldo.errors import BackupNotFound, IntegrityError, ObjectNotFound, RepositoryError
from respaldo.repository.authentic import read_opened
from respaldo.repository.crypto import SealError
from respaldo.repository.locks import reading_lease
from respaldo.repository.manifest import Manifest, manifest_aad, manifest_name
from respaldo.repository.reader import _ChunkFailure, fetch_chunks, read_list
from respaldo.repository.repo import Repository, require_mirror
from respaldo.repository.writer import BackupWriter


@dataclass
class CopyStats:
    chunks: int = 0
    new_chunks: int = 0
    bytes_uploaded: int = 0
    already_there: bool = False


def copy_backup(
    source: Repository,
    destination: Repository,
    backup_id: str,
    progress: Callable[[int], None] | None = None,
    *,
    refill: bool = False,
) -> CopyStats:
    """Make backup ``backup_id`` of ``source`` exist in ``destination`` too.

    Idempotent: a backup whose manifest is in the destination already is left alone,
    also when another copier stores it while this one runs; with ``refill`` (the
    caller's catalog does not hold the copy as whole: a pack of the destination went
    missing, or verify found chunks there damaged) every chunk its lists name that the
    destination's index lacks is copied again, its manifest kept (no data is read for
    the chunks there: the lists and one index look-up each).
    Raises RepositoryError if the two are not mirrors, IntegrityError if the source's
    data is damaged (nothing is then written to the destination's manifests),
    BackupNotFound if the backup is not (or no longer) in the source, and the storage
    errors of either side.
    """
    require_mirror(source, destination)
    stats = CopyStats()
    name = manifest_name(backup_id)
    there = copied(destination, backup_id)
    if there and not refill:
        stats.already_there = True
        return stats
    # The source's packs must not be collected (or repacked) while they are read; a
    # read-only source is read without a lease (and a warning).
    with reading_lease(source, f"copy of {backup_id}"):
        return _copy(source, destination, backup_id, name, stats, progress, refill=there)


def copied(destination: Repository, backup_id: str) -> bool:
    """Whether ``destination`` holds backup ``backup_id``'s manifest: a copy writes it
    last, once every chunk it names is stored (:func:`copy_backup` takes it so too).
    Raises the destination's storage errors."""
    try:
        destination.storage.stat(manifest_name(backup_id))
    except ObjectNotFound:
        return False
    return True


def _copy(
    source: Repository,
    destination: Repository,
    backup_id: str,
    name: str,
    stats: CopyStats,
    progress: Callable[[int], None] | None,
    *,
    refill: bool,
) -> CopyStats:
    aad = manifest_aad(backup_id)
    try:
        blob, manifest = read_opened(
            source.storage,
            name,
            lambda blob: (blob, Manifest.from_bytes(source.sealer.open(blob, aad))),
        )
    except (SealError, ValueError, KeyError) as exc:
        raise IntegrityError(f"manifest is damaged: {exc}", obj=name, backup=backup_id) from None
    with BackupWriter(destination, backup_id) as writer:
        for stream in manifest.streams:
            for list_id in stream.lists:
                try:
                    entries = read_list(source, list_id)
                except _ChunkFailure as failure:
                    raise _damaged(backup_id, failure.result.problem, failure.result.obj) from None
                wanted = [(bytes.fromhex(list_id), 0), *entries]
                stats.chunks += len(wanted)
                there = destination.index.get_many([cid for cid, _ in wanted])
                # What the mirror has is referenced there: checked before the manifest.
                writer.packs_used.used(loc for loc in there if loc is not None)
                missing = [e for e, loc in zip(wanted, there, strict=True) if loc is None]
                for result in fetch_chunks(source, missing, keep_sealed=True):
                    if result.data is None or result.sealed is None:
                        raise _damaged(backup_id, result.problem, result.obj)
                    if writer.store_sealed(result.chunk_id, result.sealed, result.size):
                        stats.new_chunks += 1
                        stats.bytes_uploaded += len(result.sealed)
                    if progress is not None:
                        progress(result.size)
        if refill:
            # Its manifest stands; the chunks it lost are there again once checked.
            writer.commit_sealed_manifest(None)
            stats.already_there = stats.new_chunks == 0
            return stats
        try:
            writer.commit_sealed_manifest(blob)
        except RepositoryError:
            # Another copier stored the manifest since the look above (two jobs ending at
            # once each copy every backup the mirror lacks; another process's copy): it
            # writes it last, once every chunk it names is there, so the copy exists.
            # What this one stored besides is unreferenced, for garbage collection.
            if not copied(destination, backup_id):
                raise
            stats.already_there = True
            return stats
    try:
        source.storage.stat(name)
    except ObjectNotFound:
        with contextlib.suppress(ObjectNotFound):
            destination.storage.delete(name)
        raise BackupNotFound(
            f"backup {backup_id} was deleted from {source.storage.location} while it was "
            "copied (expired by a prune); its copy was deleted again",
            hint="nothing to do: the backup is gone on purpose",
        ) from None
    return stats


def _damaged(backup_id: str, problem: str | None, obj: str) -> IntegrityError:
    return IntegrityError(
        f"cannot copy: source chunk is damaged ({problem})",
        obj=obj,
        backup=backup_id,
        hint="run 'respaldo verify' on the source repository, then 'respaldo repair' "
        "(a damaged chunk is quarantined and never copied)",
    )

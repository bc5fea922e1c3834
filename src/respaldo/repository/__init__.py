"""The repository: where every backup's bytes live, deduplicated, compressed, encrypted.

Words used here:

- *stream*: a byte sequence of a backup (a pg_dump output, a globals dump, a tar).
- *chunk*: a piece of a stream cut by content-defined chunking (FastCDC); its *id* is the
  keyed BLAKE3 hash of its plaintext, so equal data is stored once.
- *sealed blob*: zstd-compressed (when that helps), AES-256-GCM-encrypted data bound to
  its role by associated data (:mod:`.crypto`).
- *pack*: an object of many sealed chunks plus a sealed header listing them (:mod:`.packs`).
- *index*: chunk id -> (pack, offset, length), in immutable sealed index files (:mod:`.index`).
- *manifest*: the sealed document that makes a backup exist (:mod:`.manifest`).
- *key file*: the master key wrapped by a passphrase-derived key (:mod:`.keys`).
- *lease*: a lock object under ``locks/`` that keeps garbage collection (:mod:`.gc`)
  away from running backups (:mod:`.locks`).

The format is specified in docs/repository-format.md. This layer knows nothing of
PostgreSQL or HTTP; it stores through :mod:`respaldo.storage`.
"""

from typing import TYPE_CHECKING

from respaldo.lazy_exports import resolver

if TYPE_CHECKING:
    from respaldo.repository.chunker import ChunkerParams
    from respaldo.repository.gc import GcReport, collect_garbage
    from respaldo.repository.keys import KdfParams
    from respaldo.repository.locks import Lease, LockKind, shared_lease
    from respaldo.repository.manifest import Manifest, StreamInfo
    from respaldo.repository.reader import (
        copy_stream,
        iter_ranges,
        iter_stream,
        iter_stream_batches,
    )
    from respaldo.repository.rebuild import RebuildReport, rebuild_index
    from respaldo.repository.repo import Repository
    from respaldo.repository.verify import Problem, VerifyReport, verify_backups, verify_repository
    from respaldo.repository.writer import BackupWriter, WriteStats

# Imported on first use (PEP 562): a process imports only the modules it uses. The
# WAL commands, started once per WAL file, import a few submodules of this package,
# and importing them all (the writer, garbage collection, verification) cost more than
# the push itself.
_WHERE = {
    "BackupWriter": "respaldo.repository.writer",
    "ChunkerParams": "respaldo.repository.chunker",
    "GcReport": "respaldo.repository.gc",
    "KdfParams": "respaldo.repository.keys",
    "Lease": "respaldo.repository.locks",
    "LockKind": "respaldo.repository.locks",
    "Manifest": "respaldo.repository.manifest",
    "Problem": "respaldo.repository.verify",
    "RebuildReport": "respaldo.repository.rebuild",
    "Repository": "respaldo.repository.repo",
    "StreamInfo": "respaldo.repository.manifest",
    "VerifyReport": "respaldo.repository.verify",
    "WriteStats": "respaldo.repository.writer",
    "collect_garbage": "respaldo.repository.gc",
    "copy_stream": "respaldo.repository.reader",
    "iter_ranges": "respaldo.repository.reader",
    "iter_stream": "respaldo.repository.reader",
    "iter_stream_batches": "respaldo.repository.reader",
    "rebuild_index": "respaldo.repository.rebuild",
    "shared_lease": "respaldo.repository.locks",
    "verify_backups": "respaldo.repository.verify",
    "verify_repository": "respaldo.repository.verify",
}


__getattr__ = resolver(__name__, _WHERE)


__all__ = [
    "BackupWriter",
    "ChunkerParams",
    "GcReport",
    "KdfParams",
    "Lease",
    "LockKind",
    "Manifest",
    "Problem",
    "RebuildReport",
    "Repository",
    "StreamInfo",
    "VerifyReport",
    "WriteStats",
    "collect_garbage",
    "copy_stream",
    "iter_ranges",
    "iter_stream",
    "iter_stream_batches",
    "rebuild_index",
    "shared_lease",
    "verify_backups",
    "verify_repository",
]

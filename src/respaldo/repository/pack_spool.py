"""Packs written to the store while they fill, instead of held whole in memory.

:class:`~.packs.PackBuilder` keeps a pack's sealed chunks until the pack is full, joins them
into one 12 MiB object and hands it to an upload thread: the pack being filled, its joined
copy and the packs still being stored were about 25-35 MiB of a backup's peak (a third of
what the pipeline adds to the imports). :class:`PackSpooler` hands each pack's chunks to a
spool of the store (:meth:`~respaldo.storage.base.Storage.open_spool`) as they come, in
pieces of about :data:`PIECE_SIZE`, hashed and written in order on a thread of its own,
and at the end names the object after the SHA-256 of its bytes. A local store's spool is
the temporary file its ``put`` would write, renamed at the end; S3's an unnamed file in a
private directory, uploaded by streaming at the end; the memory store's keeps the pieces
(its objects are in memory anyway). The pack's bytes, its id and the guarantees of ``put``
(durable once named, never seen half-written, the store's settings such as Object Lock,
retries of a transient failure through the retrying wrapper) are the same; what stays in
memory is a few pieces.

:class:`~.packs.PackBuilder` is left to garbage collection and repair, which repack a few
packs at a time.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from respaldo.repository.crypto import AAD_PACK_HEADER, ID_SIZE, Sealer
from respaldo.repository.packs import ENTRY, PACK_PREFIX, TRAILER, PackRow, pack_name
from respaldo.storage.base import Spool, Storage

PIECE_SIZE = 1 << 20
"""Sealed bytes gathered before they are handed to the writing thread (one ``writev``)."""
PIECES_QUEUED = 2
"""Pieces waiting for the writing thread before :meth:`PackSpooler.add` waits: what a slow
disk can make the writer hold, whatever the pack size."""


class _PackFile:
    """One pack's temporary file and running hash, fed on the writing thread in order."""

    def __init__(self, store: Storage) -> None:
        self._store = store
        self._spool: Spool | None = None
        self._sha = hashlib.sha256()
        self._error: BaseException | None = None

    def write(self, pieces: list[bytes]) -> None:
        # A piece after a failed one is not written: the pack would have a hole.
        if self._error is not None:
            raise self._error
        try:
            if self._spool is None:
                self._spool = self._store.open_spool(PACK_PREFIX)
            for piece in pieces:
                self._sha.update(piece)
            self._spool.write(pieces)
        except BaseException as exc:
            self._error = exc
            raise

    def commit(self) -> tuple[str, int]:
        """Store the complete pack under the name its hash gives: (pack id, size)."""
        if self._error is not None:
            raise self._error
        assert self._spool is not None  # a pack has at least its header
        pack_id = self._sha.hexdigest()
        self._spool.commit(pack_name(pack_id))
        return pack_id, self._spool.size

    def discard(self) -> None:
        if self._spool is not None:
            self._spool.discard()


class SpooledPack:
    """A full pack whose last pieces may still be on their way to its file."""

    def __init__(
        self, owner: PackSpooler, file: _PackFile, last: Future[None], rows: list[PackRow]
    ) -> None:
        self._owner = owner
        self._file = file
        self._last = last
        self.rows = rows

    def complete(self) -> tuple[str, int]:
        """Wait for the pack's pieces and commit them under the pack's name: (pack id,
        size in bytes). On failure the spool is discarded and the error raised. Runs on
        an upload thread."""
        try:
            self._last.result()
            return self._file.commit()
        except BaseException:
            self._file.discard()
            raise
        finally:
            self._owner._done(self._file)


class PackSpooler:
    """Like :class:`~.packs.PackBuilder` (``add``, ``full``, ``len``), but what it was
    given is in a file of ``store`` already when the pack is taken. Called from one thread;
    :meth:`close` once, after the packs taken were completed (or abandoned)."""

    def __init__(self, store: Storage, target_size: int) -> None:
        self.target_size = target_size
        self._store = store
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="pack-spool")
        self._queued: deque[Future[None]] = deque()
        self._lock = threading.Lock()
        self._open: set[_PackFile] = set()
        self._file: _PackFile | None = None
        self._rows: list[PackRow] = []
        self._pieces: list[bytes] = []
        self._piece_size = 0
        self._size = 0

    def add(self, chunk_id: bytes, sealed: bytes, raw_length: int) -> None:
        """Append one sealed chunk; may wait while :data:`PIECES_QUEUED` pieces are being
        written, and raises the storage error that stopped one."""
        assert len(chunk_id) == ID_SIZE
        self._rows.append((chunk_id, self._size, len(sealed), raw_length))
        self._size += len(sealed)
        self._pieces.append(sealed)
        self._piece_size += len(sealed)
        if self._piece_size >= PIECE_SIZE:
            self._send()

    @property
    def full(self) -> bool:
        return self._size >= self.target_size

    def __len__(self) -> int:
        return len(self._rows)

    def take(self, sealer: Sealer) -> SpooledPack:
        """Seal the header, send the last piece and start a new pack; the caller completes
        the pack returned (:meth:`SpooledPack.complete`, on an upload thread)."""
        header = sealer.seal(b"".join(ENTRY.pack(*row) for row in self._rows), AAD_PACK_HEADER)
        self._pieces += [header, TRAILER.pack(len(header))]
        last = self._send()
        assert self._file is not None
        pack = SpooledPack(self, self._file, last, self._rows)
        self._file, self._rows, self._size = None, [], 0
        return pack

    def close(self) -> None:
        """Stop the writing thread and remove the files of packs never completed."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            abandoned, self._open = self._open, set()
        for file in abandoned:
            file.discard()

    def _send(self) -> Future[None]:
        if self._file is None:
            self._file = _PackFile(self._store)
            with self._lock:
                self._open.add(self._file)
        future = self._pool.submit(self._file.write, self._pieces)
        self._pieces, self._piece_size = [], 0
        self._queued.append(future)
        while len(self._queued) > PIECES_QUEUED:
            self._queued.popleft().result()
        return future

    def _done(self, file: _PackFile) -> None:
        with self._lock:
            self._open.discard(file)

"""Helpers shared by the repository tests: small parameters, data makers, byte surgery.

The parameters are tiny on purpose (borg's ``BORG_PACK_MAX_COUNT`` trick): chunks of
about a kilobyte and packs of 16 KiB make a few hundred kilobytes of data exercise the
multi-chunk, multi-pack and multi-list paths that real backups take at gigabytes.
"""

from __future__ import annotations

import hashlib
import io
import random
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from respaldo.repository import (
    BackupWriter,
    ChunkerParams,
    KdfParams,
    Manifest,
    Repository,
    WriteStats,
    iter_stream,
    keys,
)
from respaldo.repository.reader import read_list
from respaldo.storage.base import BufferedSpool, ObjectInfo, Spool, Storage

CHUNKER = ChunkerParams(min_size=256, avg_size=1024, max_size=4096)
KDF = KdfParams(time_cost=1, memory_cost=1024, parallelism=1)
PACK_SIZE = 16 * 1024
PASSPHRASE = "correct horse battery staple"
STARTED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def init_repo(storage: Storage, passphrase: str = PASSPHRASE, **options: Any) -> Repository:
    options.setdefault("chunker", CHUNKER)
    options.setdefault("kdf", KDF)
    options.setdefault("pack_size", PACK_SIZE)
    return Repository.init(storage, passphrase, **options)


def open_repo(storage: Storage, passphrase: str = PASSPHRASE, **options: Any) -> Repository:
    options.setdefault("pack_size", PACK_SIZE)
    return Repository.open(storage, passphrase, **options)


def random_bytes(size: int, seed: int = 0) -> bytes:
    """Incompressible, but reproducible: a failing test can be rerun on the same data."""
    return random.Random(seed).randbytes(size)


def compressible_bytes(size: int, seed: int = 0) -> bytes:
    """Text that looks like a dump's COPY lines: zstd shrinks it several times over."""
    rng = random.Random(seed)
    words = [b"invoice", b"customer", b"2026-11-28", b"EUR", b"paid", b"open", b"Madrid"]
    out = io.BytesIO()
    row = 0
    while out.tell() < size:
        row += 1
        fields = [str(row).encode(), *rng.choices(words, k=4), str(rng.randrange(10**6)).encode()]
        out.write(b"\t".join(fields) + b"\n")
    return out.getvalue()[:size]


def write_backup(
    repo: Repository,
    backup_id: str,
    streams: Mapping[str, bytes],
    *,
    kind: str = "full",
    source: str = "erp",
    meta: dict[str, Any] | None = None,
) -> tuple[Manifest, WriteStats]:
    with BackupWriter(repo, backup_id) as writer:
        for name, data in streams.items():
            writer.write_stream(name, io.BytesIO(data))
        manifest = writer.commit(kind=kind, source=source, started_at=STARTED, meta=meta)
    return manifest, writer.stats


def read_stream(repo: Repository, manifest: Manifest, name: str = "dump") -> bytes:
    return b"".join(iter_stream(repo, manifest, name))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stream_entries(
    repo: Repository, manifest: Manifest, name: str = "dump"
) -> list[tuple[bytes, int]]:
    """(chunk id, length) of every data chunk of a stream, in order, via its list chunks."""
    entries: list[tuple[bytes, int]] = []
    for list_id in manifest.stream(name).lists:
        entries.extend(read_list(repo, list_id))
    return entries


def snapshot(storage: Storage) -> dict[str, bytes]:
    """Every object's name and bytes: compare two to prove that nothing was written."""
    return {info.name: storage.get(info.name) for info in storage.list("")}


def names(storage: Storage, prefix: str = "") -> list[str]:
    return [info.name for info in storage.list(prefix)]


def flip_byte(storage: Storage, name: str, offset: int) -> None:
    """Invert one byte of an object (a negative offset counts from the end)."""
    data = bytearray(storage.get(name))
    data[offset] ^= 0xFF
    storage.put(name, bytes(data))


def pack_of_chunk(repo: Repository, chunk_id: bytes) -> tuple[str, int, int]:
    """(pack object name, offset, sealed length) of a chunk, from the loaded index."""
    location = repo.index.get(chunk_id)
    assert location is not None, "chunk is not in the index"
    pid = location.pack_id
    return f"packs/{pid[:2]}/{pid}", location.offset, location.length


class TrickleReader:
    """A source that returns at most ``step`` bytes per ``read``, like a pipe from pg_dump."""

    def __init__(self, data: bytes, step: int = 100) -> None:
        self._data = io.BytesIO(data)
        self._step = step
        self.calls = 0

    def read(self, size: int = -1, /) -> bytes:
        self.calls += 1
        return self._data.read(self._step if size < 0 else min(size, self._step))


class TrickleReadinto(TrickleReader):
    """The same with ``readinto``, which pyfastcdc prefers when a source has it."""

    def readinto(self, buffer: memoryview) -> int:
        self.calls += 1
        return self._data.readinto(buffer[: self._step])


class Derivations:
    """Counts the passphrase derivations (argon2id) from now on, until ``monkeypatch``
    undoes it: a key taken from the machine's key cache derives nothing."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = keys._kek

        def counted(passphrase: str, salt: bytes, params: keys.KdfParams) -> bytes:
            self.count += 1
            return real(passphrase, salt, params)

        monkeypatch.setattr(keys, "_kek", counted)


class DelegatingStorage:
    """Passes every call on to the store ``inner``: the base of the tests' store wrappers,
    each of which overrides the calls it watches. A spool it opens puts through the
    wrapper's own ``put``: packs too pass where a wrapper looks."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner

    @property
    def location(self) -> str:
        return self.inner.location

    def put(self, name: str, data: bytes) -> None:
        self.inner.put(name, data)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        return self.inner.get(name, offset, length)

    def stat(self, name: str) -> ObjectInfo:
        return self.inner.stat(name)

    def sync(self, name: str) -> None:
        self.inner.sync(name)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def delete(self, name: str) -> None:
        self.inner.delete(name)

    def open_spool(self, directory: str) -> Spool:
        return BufferedSpool(self)

    def close(self) -> None:
        self.inner.close()


class CountingStorage(DelegatingStorage):
    """Delegates to another store and records every ``get`` by object name."""

    def __init__(self, inner: Storage) -> None:
        super().__init__(inner)
        self.gets: list[str] = []
        self.bytes_read = 0

    def gets_under(self, prefix: str) -> list[str]:
        return [name for name in self.gets if name.startswith(prefix)]

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        self.gets.append(name)
        data = self.inner.get(name, offset, length)
        self.bytes_read += len(data)
        return data

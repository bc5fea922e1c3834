"""Opening, creating and managing a repository; loading its index."""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
from collections.abc import Collection, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from respaldo.errors import (
    ConfigDamaged,
    IntegrityError,
    ObjectNotFound,
    RepositoryError,
    RepositoryExists,
    WrongPassphrase,
)
from respaldo.repository import allocator, index_cache
from respaldo.repository.authentic import read_opened
from respaldo.repository.chunker import ChunkerParams, load_fastcdc
from respaldo.repository.config_file import (
    CONFIG_NAME,
    FORMAT_VERSION,
    RESTORE_HINT,
    check_config,
    differing_fields,
    held_prefixes,
    mac_ok,
    missing_config,
    read_config,
    with_mac,
)
from respaldo.repository.crypto import AAD_INDEX, KeySet, Sealer, SealError
from respaldo.repository.index import (
    INDEX_PREFIX,
    ChunkIndex,
    Location,
    check_index,
    decode_index,
)
from respaldo.repository.keycache import cached_kek, store_kek
from respaldo.repository.keys import (
    KEY_PREFIX,
    KdfParams,
    KeyFile,
    read_key_files,
    wrap_master_key,
    wrap_master_key_kek,
)
from respaldo.repository.locks import DEFAULT_STALE_AFTER
from respaldo.repository.manifest import (
    MANIFEST_PREFIX,
    Manifest,
    manifest_aad,
    manifest_name,
)
from respaldo.repository.packs import PACK_PREFIX, pack_id_from_name, read_header
from respaldo.repository.quarantine import Quarantine
from respaldo.storage.base import Storage, validate_name
from respaldo.storage.local import keep_structure

log = logging.getLogger(__name__)

__all__ = ["CONFIG_NAME", "FORMAT_VERSION", "Repository", "read_config"]


class SecretText(Protocol):
    """A secret that does not print itself: pydantic's ``SecretStr``, or the WAL commands'
    ``respaldo.config_core.Secret`` (pydantic is not imported for this: a ``wal-push``
    process does not load it)."""

    def get_secret_value(self) -> str: ...


Passphrase = SecretText | str


def secret_text(passphrase: Passphrase) -> str:
    """The passphrase as text, however it was given."""
    return passphrase if isinstance(passphrase, str) else passphrase.get_secret_value()


def require_mirror(source: Repository, destination: Repository) -> None:
    """Raise RepositoryError unless ``destination`` is a mirror of ``source`` (the same
    repository id: the same keys, so sealed objects copy as they are)."""
    if source.id != destination.id:
        raise RepositoryError(
            f"{destination.storage.location} is not a mirror of {source.storage.location} "
            f"(repository ids {destination.id} and {source.id})",
            hint="create the destination with 'respaldo init', which makes secondaries mirrors",
        )


class Repository:
    """An open repository: its storage, keys, configuration and chunk index.

    Create one with :meth:`init` or :meth:`open`. Thread-safe for concurrent readers and
    writers; several processes may write at once (every object gets a unique name).
    """

    def __init__(
        self,
        storage: Storage,
        config: dict[str, Any],
        master_key: bytes,
        *,
        cache_dir: Path | None,
        compression_level: int,
        pack_size: int,
        workers: int,
        compressible_level: int = 0,
    ) -> None:
        # Made (init) or found (open) with its config: a directory store that loses it
        # (its disk unmounted under a long-lived process) is missing, not made again.
        keep_structure(storage, CONFIG_NAME)
        self.storage = storage
        self.config = config
        self.id: str = config["id"]
        self.chunker = ChunkerParams.from_json(config["chunker"])
        self.keys = KeySet.derive(master_key, self.id)
        self._master_key = master_key
        self.sealer = Sealer(self.keys, compression_level, compressible_level=compressible_level)
        self.pack_size = pack_size
        self.workers = workers
        # What this machine keeps of the repository: per id (the config copy; the key
        # cache is <cache_dir>/<id>/keys) in cache_dir, and per location (the index
        # cache, the index file copies) in index_cache_dir: a primary and its mirrors
        # share the id but not their index files.
        self.cache_dir: Path | None = cache_dir / self.id if cache_dir is not None else None
        self.index_cache_dir: Path | None = (
            index_cache.location_dir(self.cache_dir, storage.location)
            if self.cache_dir is not None
            else None
        )
        self.index = ChunkIndex()
        self.index_files: set[str] = set()
        # Index files that failed authentication at the last load (name -> why): left out
        # of the index; readers look for what they described in the pack headers.
        self.damaged_index_files: dict[str, str] = {}
        self._header_index: ChunkIndex | None = None
        self._header_lock = threading.Lock()
        # Chunk copies found damaged, left out of the index (quarantine.py).
        self.quarantine = Quarantine()
        # Leases of writers and garbage collection (locks.py); the operations layer sets
        # them from the [locks] settings.
        self.lock_stale_after: float = DEFAULT_STALE_AFTER
        self.lock_wait: float = 0.0

    # --- creation and opening --------------------------------------------------------

    @classmethod
    def init(
        cls,
        storage: Storage,
        passphrase: Passphrase,
        *,
        chunker: ChunkerParams,
        kdf: KdfParams | None = None,
        cache_dir: Path | None = None,
        compression_level: int = 1,
        compressible_level: int = 0,
        pack_size: int = 12 * 1024 * 1024,
        workers: int = 2,
        key_cache: Path | None = None,
    ) -> Repository:
        """Create a repository in an empty location. Raises RepositoryExists, and
        ConfigMissing where a repository's keys or data are but its config is not (a new
        repository there would bury the old one: its config must be restored instead).

        The key file is written before ``config``: a crash in between leaves a key file
        without config, which 'respaldo repository restore-config' completes. With
        ``key_cache`` the key derived to write it is kept there, as :meth:`open` keeps it.
        """
        load_fastcdc()  # refuse to create a repository we could not write to fast
        _refuse_occupied(storage)
        repository_id = secrets.token_hex(16)
        master_key = secrets.token_bytes(32)
        config = with_mac(
            KeySet.derive(master_key, repository_id).config_key,
            {
                "version": FORMAT_VERSION,
                "id": repository_id,
                "created": datetime.now(UTC).isoformat(),
                "chunker": chunker.to_json(),
            },
        )
        _write_key_file(storage, master_key, passphrase, repository_id, kdf, config, key_cache)
        storage.put(CONFIG_NAME, json.dumps(config, indent=2).encode())
        return cls(
            storage,
            config,
            master_key,
            cache_dir=cache_dir,
            compression_level=compression_level,
            compressible_level=compressible_level,
            pack_size=pack_size,
            workers=workers,
        )

    @classmethod
    def init_mirror(
        cls,
        storage: Storage,
        source: Repository,
        passphrase: Passphrase,
        *,
        kdf: KdfParams | None = None,
        cache_dir: Path | None = None,
        key_cache: Path | None = None,
    ) -> Repository:
        """Create an empty *mirror* of ``source``: same id, chunker and master key.

        Mirrors share chunk ids and sealed bytes, so copying a backup between them moves
        only the sealed chunks the destination lacks, without decrypting anything, and a
        restore can take any damaged chunk from any mirror. The passphrase may differ
        (it wraps the same master key). Raises RepositoryExists and ConfigMissing. With
        ``key_cache``, as :meth:`init`.
        """
        _refuse_occupied(storage)
        config = source.authenticated_config()
        _write_key_file(storage, source._master_key, passphrase, source.id, kdf, config, key_cache)
        storage.put(CONFIG_NAME, json.dumps(config, indent=2).encode())
        return cls(
            storage,
            config,
            source._master_key,
            cache_dir=cache_dir,
            compression_level=source.sealer.compression_level,
            compressible_level=source.sealer.compressible_level,
            pack_size=source.pack_size,
            workers=source.workers,
        )

    @classmethod
    def open(
        cls,
        storage: Storage,
        passphrase: Passphrase,
        *,
        cache_dir: Path | None = None,
        compression_level: int = 1,
        compressible_level: int = 0,
        pack_size: int = 12 * 1024 * 1024,
        workers: int = 2,
        load_index: bool = True,
        key_cache: Path | None = None,
    ) -> Repository:
        """Open an existing repository with a passphrase and load its index.

        With ``key_cache`` (a cache directory, usually ``cache_dir``), the key derived from
        the passphrase is taken from and kept in this machine's cache (:mod:`.keycache`).

        Raises RepositoryNotFound, ConfigMissing, ConfigDamaged (config unreadable, not
        authentic, or of another repository id than the key files: never reported as a
        wrong passphrase when the key files say otherwise) or WrongPassphrase.
        """
        # Megabyte buffers handed back when freed (a first backup of 1 GB peaked 10%
        # lower, :mod:`.allocator`).
        allocator.tune()
        config = read_config(storage)
        key_files = read_key_files(storage)
        master_key = _unlock(
            storage, config, key_files, secret_text(passphrase), cache_dir, key_cache
        )
        config_key = KeySet.derive(master_key, config["id"]).config_key
        check_config(config, config_key, key_files, storage.location)
        if "mac" not in config and cache_dir is not None:
            _refuse_stripped(config, config_key, cache_dir / config["id"], storage.location)
        repo = cls(
            storage,
            config,
            master_key,
            cache_dir=cache_dir,
            compression_level=compression_level,
            compressible_level=compressible_level,
            pack_size=pack_size,
            workers=workers,
        )
        repo._keep_config_copy()
        if load_index:
            repo.load_index()
        return repo

    def close(self) -> None:
        """Release the store (its connections, its S3 client). The repository must not be
        used afterwards; calling it twice is harmless."""
        self.storage.close()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- keys ------------------------------------------------------------------------

    def list_keys(self) -> list[dict[str, Any]]:
        """Every key file's id (its object's name), creation time and, for a damaged or
        malformed one, ``problem`` (never any key material). A damaged key file is
        listed, so that it can be named to 'respaldo key remove', not a failure."""
        keys: list[dict[str, Any]] = []
        for info in self.storage.list(KEY_PREFIX):
            key_id = info.name[len(KEY_PREFIX) :]
            try:
                raw = self.storage.get(info.name)
            except ObjectNotFound:
                continue  # removed while we listed
            problem = None
            try:
                KeyFile.parse(raw, info.name)
                created = json.loads(raw).get("created")
            except RepositoryError as exc:
                problem, created = exc.message, None
            keys.append({"id": key_id, "created": created, "problem": problem})
        return keys

    def add_key(self, passphrase: Passphrase, kdf: KdfParams | None = None) -> str:
        """Add a passphrase that opens this repository; returns the new key id.

        The key file carries the authenticated config. A config written before configs
        had an authenticator gets it first (the one time config is rewritten): a key
        file with a copy beside a config without one would read as tampering.
        """
        if "mac" not in self.config:
            config = self.authenticated_config()
            self.storage.put(CONFIG_NAME, json.dumps(config, indent=2).encode())
            self.config = config
        key_id, doc = wrap_master_key(
            self._master_key, secret_text(passphrase), self.id, kdf or KdfParams(), self.config
        )
        self.storage.put(f"{KEY_PREFIX}{key_id}", doc)
        return key_id

    def authenticated_config(self) -> dict[str, Any]:
        """This repository's config with its authenticator."""
        return with_mac(self.keys.config_key, self.config)

    def remove_key(self, key_id: str) -> None:
        """Remove a key file. Refuses to remove the last whole one (the data would be
        lost): the last one, or one beside only damaged or malformed key files.

        Another removal at the same time (another machine) may take the other keys after
        the check: the key files left are listed again after the delete, and with none
        whole left this one is put back (RepositoryError), so two removals at once leave
        at least one key.
        """
        name = validate_name(f"{KEY_PREFIX}{key_id}")
        names = [info.name for info in self.storage.list(KEY_PREFIX)]
        if name not in names:
            raise RepositoryError(f"no key {key_id} in {self.storage.location}")
        if len(names) == 1:
            raise RepositoryError(
                "refusing to remove the last key: nothing could open the repository any more",
                hint="add another passphrase first",
            )
        whole, broken = _whole_key_files(self.storage, exclude=name)
        if not whole:
            raise RepositoryError(
                f"refusing to remove key {key_id}: the other key files are damaged or "
                f"malformed ({'; '.join(broken)}), so nothing could open the repository",
                hint="put back undamaged copies of those key files, or 'respaldo key add' "
                "another passphrase first",
            )
        doc = self.storage.get(name)
        self.storage.delete(name)
        if not _whole_key_files(self.storage, exclude=name)[0]:
            self.storage.put(name, doc)
            raise RepositoryError(
                f"key {key_id} was put back: the other keys of {self.storage.location} were "
                "removed at the same time (another 'respaldo key remove' or 'key passwd')",
                hint="'respaldo key list' shows the keys left",
            )

    def change_passphrase(
        self, current_key_id: str, new_passphrase: Passphrase, kdf: KdfParams | None = None
    ) -> str:
        """Add the new passphrase, then remove the old key file; returns the new key id."""
        new_id = self.add_key(new_passphrase, kdf)
        self.storage.delete(validate_name(f"{KEY_PREFIX}{current_key_id}"))
        return new_id

    def key_id_for(self, passphrase: Passphrase) -> str:
        """Which key file this passphrase opens (damaged and malformed ones open with
        nothing). Raises WrongPassphrase."""
        found = self.key_ids_for(passphrase)
        if not found:
            raise WrongPassphrase("the passphrase opens no key of this repository")
        return found[0]

    def key_ids_for(self, passphrase: Passphrase) -> list[str]:
        """Every key file this passphrase opens (several when a passphrase was added
        twice, or a mirror's key file copied in): a passphrase change must remove them
        all, or the old passphrase still opens the repository. Damaged and malformed key
        files open with nothing and are left out."""
        secret = secret_text(passphrase)
        found = []
        for name, key in read_key_files(self.storage):
            opened = key.open(secret, self.id)
            if opened is not None and opened[0] == self._master_key:
                found.append(name[len(KEY_PREFIX) :])
        return found

    def check_key(self, key_id: str, passphrase: Passphrase) -> None:
        """Read key file ``key_id`` back from storage and check that ``passphrase`` opens
        it to this repository's master key: the proof a new key was stored whole, taken
        before an old one is removed. Raises RepositoryError."""
        name = validate_name(f"{KEY_PREFIX}{key_id}")
        try:
            key = KeyFile.parse(self.storage.get(name), name)
        except ObjectNotFound:
            raise RepositoryError(
                f"the new key file {name} is not in {self.storage.location} after it was written",
                hint="nothing was removed; check the storage, then run the command again",
            ) from None
        opened = key.open(secret_text(passphrase), self.id)
        if opened is None or opened[0] != self._master_key:
            raise RepositoryError(
                f"the new key file {name} in {self.storage.location} does not open with the "
                "new passphrase as it was read back",
                hint="nothing was removed; check the storage, then run the command again",
            )

    # --- index -----------------------------------------------------------------------

    def load_index(self) -> None:
        """(Re)load every index file, using and refreshing the local cache, leaving out
        the quarantined copies of chunks (:mod:`.quarantine`). With a cache directory
        the index is this machine's merged cache of the index files on disk, brought up
        to date first (:mod:`.index_cache`); without one, all of it is in memory.

        A damaged index file is left out and named in one warning (and in
        :attr:`damaged_index_files`) instead of failing the open: the index is only an
        accelerator, and one bad file must not stop restores or verification. Writers
        merely store again what it described; garbage collection, which must know every
        pack, reads index files itself and refuses.
        """
        self.quarantine = Quarantine.load(self.storage, self.sealer)
        if self.cache_dir is not None and self.index_cache_dir is not None:
            # Best effort, both: the cache only saves time.
            index_cache.drop_legacy(self.cache_dir)
            index_cache.note_location(self.index_cache_dir, self.storage.location)
        cached = self._load_cached_index()
        if cached is not None:
            self.index, names, damaged = cached
        else:
            names = [info.name for info in self.storage.list(INDEX_PREFIX)]
            plaintexts: list[bytes] = []
            damaged = {}
            for name in names:
                try:
                    plaintexts.append(self._read_index_file(name))
                except IntegrityError as exc:
                    damaged[name] = str(exc)  # with "[object <name>]": the warning names it
            self.index = ChunkIndex.from_files(plaintexts, self.quarantine.excluded())
        self.index_files = set(names)
        self.damaged_index_files = damaged
        with self._header_lock:
            self._header_index = None
        if damaged:
            log.warning(
                "%d damaged index file(s) left out: %s; chunks they describe are looked "
                "up in the pack headers; run 'respaldo index rebuild' to fix the index",
                len(damaged),
                "; ".join(damaged.values()),
            )
        self._prune_cache(set(names))

    def _load_cached_index(self) -> tuple[ChunkIndex, list[str], dict[str, str]] | None:
        """The index backed by this machine's merged index cache (:mod:`.index_cache`),
        or None without a cache directory (or where the cache cannot be used)."""
        if self.index_cache_dir is None or not index_cache.usable():
            return None
        return index_cache.load_cached(
            self.index_cache_dir,
            self.id,
            lambda: {info.name: info.size for info in self.storage.list(INDEX_PREFIX)},
            self._read_index_file,
            (IntegrityError,),
            self.quarantine.excluded(),
        )

    def locate_outside_index(self, chunk_id: bytes) -> Location | None:
        """Where a chunk the loaded index lacks is, from the headers of the packs that no
        loaded index file describes; only while some index file is damaged (otherwise
        such packs are leftovers of interrupted backups, and the index is complete).

        For readers only: writers never deduplicate against these packs (garbage
        collection may delete packs no index file describes). The headers are read once,
        at the first call after each load of the index. First, the miss is confirmed
        against a damaged local index cache (which is then rebuilt).
        """
        confirmed = self.index.confirm_miss(chunk_id)
        if confirmed is not None or not self.damaged_index_files:
            return confirmed
        with self._header_lock:
            if self._header_index is None:
                self._header_index = self._read_unindexed_headers()
            found = self._header_index
        return found.get(chunk_id)

    def _read_unindexed_headers(self) -> ChunkIndex:
        described = self.index.packs()
        found = ChunkIndex()
        unindexed = [
            info.name
            for info in self.storage.list(PACK_PREFIX)
            if pack_id_from_name(info.name) not in described
        ]
        log.info("reading the headers of %d packs no index file describes", len(unindexed))
        excluded = self.quarantine.excluded()
        for name in unindexed:
            try:
                entries = read_header(self.storage, self.sealer, name)
            except IntegrityError as exc:
                log.warning("%s", exc)
                continue
            pack_id = pack_id_from_name(name)
            # Quarantined copies stay out of this index too: readers must not find them.
            bad = excluded.get(pack_id, set())
            found.add_pack(pack_id, [e for e in entries if e.chunk_id not in bad])
        return found

    def index_damage(self) -> str:
        """A phrase naming the damaged index files ("" if none), for messages about
        chunks the index does not know."""
        if not self.damaged_index_files:
            return ""
        return "index file(s) " + ", ".join(sorted(self.damaged_index_files)) + " are damaged"

    def all_copies(self, chunk_ids: Collection[bytes]) -> dict[bytes, list[Location]]:
        """Every location the index files give for ``chunk_ids`` but the quarantined
        ones (the loaded index keeps one per chunk). Costs a pass over every index file:
        for readers that met a damaged copy while a quarantine record is unreadable
        (:mod:`.quarantine`), when the index may have chosen a copy the record named."""
        wanted = set(chunk_ids)
        out: dict[bytes, list[Location]] = {}
        for name in sorted(self.index_files):
            try:
                plain = self._read_index_file(name)
            except (IntegrityError, ObjectNotFound):
                continue  # damaged (already warned about) or removed by a rebuild
            for pack_id, entries in decode_index(plain):
                for e in entries:
                    if e.chunk_id in wanted and not self.quarantine.is_bad_copy(
                        e.chunk_id, pack_id
                    ):
                        loc = Location(pack_id, e.offset, e.length, e.raw_length)
                        out.setdefault(e.chunk_id, []).append(loc)
        return out

    def _read_index_file(self, name: str) -> bytes:
        """An index file's plaintext, checked to be well-formed."""
        blob, cached = self._cached_get(name)
        try:
            return self._open_index_file(blob)
        except (SealError, ValueError) as exc:
            self._drop_cached(name)
            if cached:
                # Only our local copy is bad (a torn write, a disk error): the repository's
                # own copy decides whether the index is damaged.
                log.warning("cached index file %s is damaged (%s); fetching it again", name, exc)
                return self._read_index_file(name)
            # Fresh from the store, and maybe spoiled on the way: read once more before
            # it counts as damaged (see respaldo.repository.authentic).
            try:
                return read_opened(self.storage, name, self._open_index_file)
            except (SealError, ValueError):
                pass
            raise IntegrityError(
                f"index file is damaged: {exc}",
                obj=name,
                hint="run 'respaldo index rebuild' to recreate the index from the packs",
            ) from None

    def _open_index_file(self, blob: bytes) -> bytes:
        plain = self.sealer.open(blob, AAD_INDEX)
        check_index(plain)
        return plain

    def _keep_config_copy(self) -> None:
        """Keep a copy of config in the local cache (``<cache>/<id>/config``): one more
        place to get it back from if the repository's is lost (the directory's name alone
        already says the id). Only saves trouble: failing to write it fails nothing."""
        if self.cache_dir is None:
            return
        path = self.cache_dir / CONFIG_NAME
        data = json.dumps(self.config, indent=2).encode()
        try:
            if path.exists() and path.read_bytes() == data:
                return
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = path.with_name(f"{CONFIG_NAME}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        except OSError as exc:
            log.info("cannot keep a copy of config in the cache: %s", exc)

    def _cache_path(self, name: str) -> Path | None:
        if self.index_cache_dir is None:
            return None
        return self.index_cache_dir.joinpath(*name.split("/"))

    def _cached_get(self, name: str) -> tuple[bytes, bool]:
        """The object's bytes, and whether they came from the cache."""
        path = self._cache_path(name)
        if path is not None and path.exists():
            return path.read_bytes(), True
        blob = self.storage.get(name)
        if path is not None:
            # Index files are immutable and stay sealed in the cache; a torn cache file
            # only fails authentication and is fetched again. The cache only saves time:
            # failing to write it (no space, read-only, another process pruning our
            # temporary file) must not fail the open.
            try:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
                tmp.write_bytes(blob)
                tmp.replace(path)
            except OSError as exc:
                log.warning("cannot cache index file %s: %s", name, exc)
        return blob, False

    def _drop_cached(self, name: str) -> None:
        path = self._cache_path(name)
        if path is not None:
            path.unlink(missing_ok=True)

    def _prune_cache(self, live: set[str]) -> None:
        if self.index_cache_dir is None:
            return
        directory = self.index_cache_dir / "index"
        if directory.is_dir():
            for path in directory.iterdir():
                if f"{INDEX_PREFIX}{path.name}" not in live:
                    path.unlink(missing_ok=True)

    # --- manifests -------------------------------------------------------------------

    def backup_ids(self) -> list[str]:
        """Every backup that exists (has a manifest), oldest first."""
        return [info.name[len(MANIFEST_PREFIX) :] for info in self.storage.list(MANIFEST_PREFIX)]

    def load_manifest(self, backup_id: str) -> Manifest:
        """Read and authenticate a manifest. Raises BackupNotFound or IntegrityError."""
        from respaldo.errors import BackupNotFound

        name = manifest_name(backup_id)
        aad = manifest_aad(backup_id)
        try:
            validate_name(name)
            return read_opened(
                self.storage, name, lambda blob: Manifest.from_bytes(self.sealer.open(blob, aad))
            )
        except ObjectNotFound:
            raise BackupNotFound(
                f"no backup {backup_id} in {self.storage.location}",
                hint="'respaldo list' shows the backups that exist",
            ) from None
        except (SealError, ValueError, KeyError) as exc:
            raise IntegrityError(
                f"manifest is damaged: {exc}", obj=name, backup=backup_id
            ) from None

    def manifests(self) -> Iterator[Manifest]:
        for backup_id in self.backup_ids():
            yield self.load_manifest(backup_id)


def _exists(storage: Storage, name: str) -> bool:
    try:
        storage.stat(name)
    except ObjectNotFound:
        return False
    return True


def _refuse_occupied(storage: Storage) -> None:
    """Refuse to create a repository where one is (whole, or without its config)."""
    if _exists(storage, CONFIG_NAME):
        raise RepositoryExists(
            f"a repository already exists at {storage.location}",
            hint="use it as it is, or choose another location",
        )
    held = held_prefixes(storage)
    if held:
        raise missing_config(storage, held)


def _write_key_file(
    storage: Storage,
    master_key: bytes,
    passphrase: Passphrase,
    repository_id: str,
    kdf: KdfParams | None,
    config: dict[str, Any],
    key_cache: Path | None,
) -> None:
    """Write a new key file wrapping ``master_key``; with ``key_cache``, keep the key
    derived for it there: the next process to open the repository on this machine (the
    first backup after ``init``, for the primary and for each mirror) would otherwise
    derive it again (argon2id: 64 MiB on top of its peak)."""
    text = secret_text(passphrase)
    key_id, key_doc, kek = wrap_master_key_kek(
        master_key, text, repository_id, kdf or KdfParams(), config
    )
    storage.put(f"{KEY_PREFIX}{key_id}", key_doc)
    if key_cache is not None:
        store_kek(key_cache, repository_id, KeyFile.parse(key_doc), text, kek)


def _unlock(
    storage: Storage,
    config: dict[str, Any],
    key_files: list[tuple[str, KeyFile]],
    passphrase: str,
    cache_dir: Path | None,
    key_cache: Path | None = None,
) -> bytes:
    """The master key, from the first key file the passphrase opens under config's id.

    With ``key_cache``, a key file's KEK is read from this machine's cache when it holds
    it for this passphrase, and kept there once derived (:mod:`.keycache`).

    When none does, the passphrase is tried (at no extra key derivation) under the other
    ids the repository's key files record and the local cache knows: if one opens, the
    passphrase is right and config's id is wrong.
    """
    tried: list[tuple[str, KeyFile, bytes]] = []
    for name, key in key_files:
        if key_cache is not None:
            cached = cached_kek(key_cache, config["id"], key, passphrase)
            master = key.unwrap(cached, config["id"]) if cached is not None else None
            if master is not None:
                return master
        # The passphrase as given, then its other Unicode forms (keys.passphrase_forms).
        for kek in key.keks(passphrase):
            master = key.unwrap(kek, config["id"])
            if master is not None:
                if key_cache is not None:
                    store_kek(key_cache, config["id"], key, passphrase, kek)
                return master
            tried.append((name, key, kek))
    others = {key.recorded_id for _, key in key_files} | _cached_ids(cache_dir)
    others.discard(config["id"])
    # Key files that record config's id vouch for it: then the one that opens under
    # another id is a stranger (copied from another repository), not evidence of damage.
    vouched = any(key.recorded_id == config["id"] for _, key in key_files)
    for name, key, kek in tried:
        for other in sorted(o for o in others if o is not None):
            if key.unwrap(kek, other) is None:
                continue
            if vouched:
                raise WrongPassphrase(
                    f"wrong passphrase for the repository at {storage.location}: it opens "
                    f"only {name}, a key file of another repository ({other})",
                    hint="check RESPALDO_PASSPHRASE or passphrase_file; remove that key "
                    "file if it was copied here by mistake",
                )
            raise ConfigDamaged(
                f"the repository config at {storage.location} is damaged: its id "
                f"{config['id']} is not the id {other} its key files are bound to "
                "(the passphrase is right)",
                hint=RESTORE_HINT,
            )
    hint = "check RESPALDO_PASSPHRASE or passphrase_file"
    if not any(key.config is not None for _, key in key_files):
        # Key files of the first format record no id: a damaged id in config looks
        # exactly like a wrong passphrase.
        hint += (
            "; if it is right, the repository id in config may be damaged: compare config "
            "with a mirror's, or run 'respaldo repository restore-config'"
        )
    raise WrongPassphrase(f"wrong passphrase for the repository at {storage.location}", hint=hint)


def _refuse_stripped(
    config: dict[str, Any], config_key: bytes, cached_dir: Path, location: str
) -> None:
    """Raise ConfigDamaged if ``config``, which has no authenticator, differs from this
    machine's copy of it (in ``cached_dir``) that has one that authenticates: someone
    who could write the repository removed it (and the key files' copies) to have a
    changed field pass. A config without one and equal to the copy is no harm (a
    primary of the first format beside a newer mirror shares the cached copy)."""
    try:
        cached = json.loads((cached_dir / CONFIG_NAME).read_bytes())
    except (OSError, ValueError):
        return
    if not isinstance(cached, dict) or not mac_ok(config_key, cached):
        return
    fields = differing_fields(config, cached)
    if not fields:
        return
    raise ConfigDamaged(
        f"the repository config at {location} was altered: it has no authenticator ('mac'), "
        f"and {', '.join(fields)} differ from this machine's authenticated copy of it "
        f"({cached_dir / CONFIG_NAME})",
        hint=RESTORE_HINT,
    )


def _whole_key_files(storage: Storage, exclude: str) -> tuple[list[str], list[str]]:
    """The key files but ``exclude`` that parse (their checksum matches), and a note on
    each of the others."""
    whole: list[str] = []
    broken: list[str] = []
    for info in storage.list(KEY_PREFIX):
        if info.name == exclude:
            continue
        try:
            KeyFile.parse(storage.get(info.name), info.name)
        except ObjectNotFound:
            continue
        except RepositoryError as exc:
            broken.append(f"{info.name}: {exc.message}")
        else:
            whole.append(info.name)
    return whole, broken


def _cached_ids(cache_dir: Path | None) -> set[str | None]:
    """Repository ids the local cache has directories for."""
    if cache_dir is None or not cache_dir.is_dir():
        return set()
    return {
        path.name
        for path in cache_dir.iterdir()
        if len(path.name) == 32 and all(c in "0123456789abcdef" for c in path.name)
    }

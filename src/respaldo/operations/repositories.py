"""Opening and creating the configured repositories."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from respaldo.catalog import Catalog, known_identity, recorded_identity
from respaldo.config import RepositorySettings, Settings
from respaldo.config_core import resolve_secret_file
from respaldo.errors import (
    ConfigError,
    ObjectNotFound,
    RepositoryError,
    RepositoryExists,
    RepositoryMismatch,
    RepositoryNotFound,
    RespaldoError,
    StorageError,
    WeakPassphrase,
)
from respaldo.repository import ChunkerParams, KdfParams, Repository
from respaldo.repository.config_file import CONFIG_NAME, read_config
from respaldo.repository.config_recovery import (
    ConfigSource,
    RestoredConfig,
    cached_sources,
    restore_config,
)
from respaldo.repository.locks import LOCK_PREFIX
from respaldo.storage import Storage, open_storage
from respaldo.storage.lifecycle import HAZARD_HINT, lifecycle_store
from respaldo.storage.object_lock import bucket_warnings, locking_store

# Argon2id makes each guess cost ~0.1 s and 64 MiB, which a few characters do not survive:
# 12 random lowercase letters are ~56 bits, a four-word diceware phrase ~51.
MIN_PASSPHRASE_LENGTH = 12


def check_new_passphrase(passphrase: SecretStr | str) -> None:
    """Refuse a passphrase for a *new* key (init, a new mirror, key add, key passwd) that is
    shorter than :data:`MIN_PASSPHRASE_LENGTH` characters or only blanks.

    Keys made before the minimum existed still open: only new ones are checked. Raises
    WeakPassphrase (the message never shows the passphrase).
    """
    secret = passphrase.get_secret_value() if isinstance(passphrase, SecretStr) else passphrase
    if len(secret) < MIN_PASSPHRASE_LENGTH or not secret.strip():
        raise WeakPassphrase(
            f"the new passphrase is too weak: it needs at least {MIN_PASSPHRASE_LENGTH} "
            f"characters, not only blanks",
            hint="choose a longer one (several random words); an existing repository with "
            "a shorter one still opens, and 'respaldo key passwd' replaces it",
        )


def storage_options(repo: RepositorySettings) -> dict[str, Any]:
    """Backend options from a repository's settings (the S3 ones, for now)."""
    # model_dump keeps SecretStr values as SecretStr: secrets stay wrapped until the
    # backend hands them to its client.
    dumped = repo.model_dump(exclude={"name", "url"})
    options = resolve_secret_file(
        {key: value for key, value in dumped.items() if value is not None}
    )
    if repo.url.startswith("s3://"):
        # Leases are rewritten every minute and gone within hours: never locked, and never
        # rewound (on any versioned bucket, with object_lock_mode or not).
        options["object_lock_exempt"] = (LOCK_PREFIX,)
    return options


def open_store(repo: RepositorySettings, *, retries: int = 4) -> Storage:
    """The store of a configured repository, retrying transient errors ``retries`` times
    in all (0: none, for a caller that is itself run again and again)."""
    return open_storage(repo.url, retries=retries, **storage_options(repo))


PROBE_SECONDS = 2.0
"""The most a look at whether a store answers (:func:`open_probe`) waits to connect, and
then for the answer: a store that answers at all does in milliseconds, and a health
probe is given a few seconds (a load balancer's default is 5 s or less)."""


def open_probe(repo: RepositorySettings) -> Storage:
    """The store of a configured repository for one quick look (``/health``): no retry,
    neither respaldo's nor botocore's, and at most :data:`PROBE_SECONDS` to connect and
    to answer. With :func:`open_store`'s retries a mirror that was down (stopped, or an
    endpoint that takes the connection and never answers) held each probe for 4 x 3
    attempts, up to their timeouts and backoff: seconds when refused, minutes when
    silent, and the prober gave up and took the whole service for dead. A store that
    fails one look is down for that answer; the next probe looks again."""
    options = storage_options(repo)
    if repo.url.startswith("s3://"):
        options["max_attempts"] = 1
        for key in ("connect_timeout", "read_timeout"):
            options[key] = min(float(options.get(key, PROBE_SECONDS)), PROBE_SECONDS)
    return open_storage(repo.url, retries=0, **options)


def open_repository(settings: Settings, name: str | None = None) -> Repository:
    """Open a configured repository (the primary one by default) and load its index.

    Raises ConfigError, RepositoryNotFound, WrongPassphrase or IntegrityError.
    """
    repo_settings = settings.repository(name)
    repo = Repository.open(
        open_store(repo_settings),
        settings.repository_passphrase(),
        cache_dir=settings.cache_dir,
        compression_level=settings.compression_level,
        compressible_level=settings.compressible_level,
        pack_size=settings.pack_size,
        workers=settings.workers,
        key_cache=settings.cache_dir if settings.key_cache else None,
    )
    repo.lock_stale_after = settings.locks.stale_after_seconds
    repo.lock_wait = settings.locks.wait_seconds
    return repo


def check_identity(
    catalog: Catalog,
    name: str,
    repository_id: str,
    location: str,
    *,
    adopt: bool = False,
    created: bool = False,
) -> None:
    """Refuse a repository that is not the one ``catalog`` records for ``name``; record
    it if the catalog records none yet (the first process to open it on this catalog).

    Machines sharing a catalog (workers, docs/scaling.md) must reach one repository under
    one name. A ``file://`` path that is each machine's own disk is a repository per
    machine: backups one wrote were recorded as the name's, restores and restore tests
    elsewhere could not find them, and prune elsewhere counted them as kept and deleted
    older good backups from its own disk. Raises RepositoryMismatch, naming both. With
    ``adopt`` (``catalog rebuild``: the repository is the truth) this one is recorded
    in place of the catalog's. ``created``: ``respaldo init`` made this repository
    just now (the message says so, and that it is not used).
    """
    # Read first: once recorded (every open but the first), no write transaction.
    with catalog.read() as session:
        known = None if adopt else recorded_identity(session, name)
    if known is None:
        with catalog.begin() as session:
            known = known_identity(session, name, repository_id, location, adopt=adopt)
    if known.repository_id != repository_id:
        # The way on, typed out: 'catalog rebuild' of this name is also how a repository
        # re-created after its only disk died (no mirror to copy the id from) is taken.
        rebuild = f"respaldo catalog rebuild --repository {name}"
        if created:
            said = (
                f"'respaldo init' created a new repository {name!r} at {location} (id "
                f"{repository_id}), but this catalog records its backups of {name!r} in "
                f"repository {known.repository_id} (first opened at {known.location}): "
                f"the new one is not used until you say so"
            )
        else:
            said = (
                f"repository {name!r} at {location} is not the one this catalog knows by "
                f"that name: its id is {repository_id}, the catalog's is "
                f"{known.repository_id} (first opened at {known.location}); nothing was "
                f"read or written"
            )
        raise RepositoryMismatch(
            said,
            hint=f"if the catalog's repository is lost for good (its disk died, no mirror "
            f"holds it), make this one the catalog's: '{rebuild}' (the backups recorded in "
            f"the lost one stay listed; 'respaldo verify --all' names them). Otherwise every "
            f"machine that shares the catalog must reach the same repository under one name "
            f"(S3, or one shared file system mounted at that path, docs/scaling.md): a "
            f"file:// path on each machine's own disk is a repository per machine",
        )


def check_identities(settings: Settings, catalog: Catalog) -> list[str]:
    """At a worker's or ``serve``'s start: refuse (RepositoryMismatch) if a configured
    repository here is not the one ``catalog`` records by its name, before any job of
    it runs; only each repository's config is read (no passphrase, no index).

    A repository that cannot be read now (none at its location, unreachable) is not
    refused: the jobs that need it fail with the reason. Returned as warnings instead.
    """
    warnings = []
    for repo_settings in settings.repositories:
        try:
            store = open_store(repo_settings, retries=0)
            try:
                repository_id = str(read_config(store)["id"])
                location = store.location
            finally:
                store.close()
        except RepositoryMismatch:
            raise
        except RespaldoError as exc:
            warnings.append(
                f"repository {repo_settings.name!r} cannot be read from this machine: {exc}; "
                "the jobs that write to it or read from it will fail"
            )
            continue
        check_identity(catalog, repo_settings.name, repository_id, location)
    return warnings


@dataclass(frozen=True)
class InitResult:
    name: str
    location: str
    created: bool
    repository_id: str
    warnings: tuple[str, ...] = ()


def init_repositories(settings: Settings, kdf: KdfParams | None = None) -> list[InitResult]:
    """Create the primary repository and every secondary as a mirror of it.

    Idempotent: existing repositories are opened (which checks the passphrase) and left
    as they are. Raises WrongPassphrase if an existing one does not open, and
    RepositoryError if an existing secondary is not a mirror of the primary (another
    repository id: copies into it would be impossible). Every repository with an
    ``object_lock_mode`` has its bucket checked first (ConfigError, and nothing created,
    if it cannot lock), and every S3 repository's lifecycle rules (ConfigError, nothing
    created, if one deletes or archives its objects); what is merely unwise about a
    bucket comes back as warnings.
    ConfigMissing (nothing created) where a location holds a repository without its
    config, ConfigDamaged where a config is damaged.
    """
    warnings = {
        repo.name: lock_warnings(repo) + lifecycle_warnings(repo) for repo in settings.repositories
    }
    passphrase = settings.repository_passphrase()
    # A location holding a repository whose config is lost must stop init before
    # anything is created anywhere (ConfigMissing says how to get the config back).
    for repo_settings in settings.repositories:
        store = open_store(repo_settings)
        try:
            read_config(store)
        except RepositoryNotFound:
            pass
        finally:
            store.close()
    chunker = ChunkerParams(
        settings.chunker.min_size, settings.chunker.avg_size, settings.chunker.max_size
    )
    primary_settings = settings.repository()
    # The keys derived here are kept for the commands that follow (the first backup),
    # as every other open of a repository keeps them.
    key_cache = settings.cache_dir if settings.key_cache else None
    results = []
    store = open_store(primary_settings)
    try:
        primary = Repository.open(store, passphrase, load_index=False, key_cache=key_cache)
        created = False
    except RepositoryNotFound:
        # After a disaster the primary is empty but a secondary survived: the new primary
        # must be a mirror of it, or nothing could be copied between them again.
        check_new_passphrase(passphrase)
        survivor = _existing_secondary(settings, passphrase)
        if survivor is not None:
            primary = Repository.init_mirror(
                store, survivor, passphrase, kdf=kdf, key_cache=key_cache
            )
        else:
            primary = Repository.init(
                store, passphrase, chunker=chunker, kdf=kdf, key_cache=key_cache
            )
        created = True
    results.append(
        InitResult(
            primary_settings.name,
            store.location,
            created,
            primary.id,
            warnings[primary_settings.name],
        )
    )
    for repo_settings in settings.repositories[1:]:
        store = open_store(repo_settings)
        try:
            if not _has_config(store):
                check_new_passphrase(passphrase)
            repo = Repository.init_mirror(store, primary, passphrase, kdf=kdf, key_cache=key_cache)
            created = True
        except RepositoryExists:
            repo = Repository.open(store, passphrase, load_index=False, key_cache=key_cache)
            created = False
            if repo.id != primary.id:
                raise RepositoryError(
                    f"repository {repo_settings.name} ({store.location}) is not a mirror of "
                    f"the primary {primary_settings.name}",
                    hint="point it at an empty location; 'respaldo init' creates it as a mirror",
                ) from None
        results.append(
            InitResult(
                repo_settings.name, store.location, created, repo.id, warnings[repo_settings.name]
            )
        )
    return results


def lock_warnings(repo: RepositorySettings) -> tuple[str, ...]:
    """For a repository with Object Lock: what is unwise about its bucket (ConfigError if
    the bucket cannot lock at all). Other repositories: nothing to say."""
    if repo.object_lock_mode is None:
        return ()
    store = open_store(repo)
    try:
        locking = locking_store(store)
        return tuple(bucket_warnings(locking)) if locking is not None else ()
    finally:
        store.close()


def lifecycle_warnings(repo: RepositorySettings) -> tuple[str, ...]:
    """For an S3 repository: ConfigError if its bucket's lifecycle rules delete or archive
    the repository's current objects (:mod:`respaldo.storage.lifecycle`: deduplicated
    backups would become unrestorable later), a warning if the rules cannot be read.
    Other repositories: nothing to say."""
    store = open_store(repo)
    try:
        s3 = lifecycle_store(store)
        if s3 is None:
            return ()
        try:
            found = s3.lifecycle_hazards()
        except StorageError as exc:
            return (
                f"cannot read the lifecycle rules of the bucket of {store.location} ({exc}); "
                "make sure none deletes or archives the repository's objects "
                "(docs/configuration.md)",
            )
        if found:
            raise ConfigError(
                f"the bucket of repository {repo.name} ({store.location}) takes backups "
                f"away behind respaldo's back: {'; '.join(found)}; a backup references "
                "chunks stored on any earlier day, so it would become unrestorable; "
                "nothing was written",
                hint=HAZARD_HINT,
            )
        return ()
    finally:
        store.close()


def _has_config(store: Storage) -> bool:
    try:
        store.stat(CONFIG_NAME)
    except ObjectNotFound:
        return False
    return True


def _existing_secondary(settings: Settings, passphrase: SecretStr) -> Repository | None:
    for repo_settings in settings.repositories[1:]:
        try:
            return Repository.open(
                open_store(repo_settings),
                passphrase,
                load_index=False,
                key_cache=settings.cache_dir if settings.key_cache else None,
            )
        except RepositoryNotFound:
            continue
    return None


def restore_repository_config(
    settings: Settings, name: str | None = None, from_mirror: str | None = None
) -> RestoredConfig:
    """Write a lost or damaged repository config again (see
    :func:`respaldo.repository.config_recovery.restore_config`), trying in turn the
    repository's key files, its mirrors (the other configured repositories, or only
    ``from_mirror``), then the local cache; the ``[chunker]`` settings stand in when only
    the repository id is left. Raises ConfigError for an unknown mirror name.
    """
    target = settings.repository(name)
    mirrors = [settings.repository(from_mirror)] if from_mirror else settings.repositories
    sources: list[ConfigSource] = []
    for mirror in mirrors:
        if mirror.name == target.name:
            continue
        store = open_store(mirror)
        try:
            config = read_config(store)
        except RespaldoError:
            continue  # not there, not readable: the next source may serve
        finally:
            store.close()
        sources.append(
            ConfigSource(f"mirror {mirror.name} ({store.location})", config, config["id"])
        )
    sources += cached_sources(settings.cache_dir)
    chunker = ChunkerParams(
        settings.chunker.min_size, settings.chunker.avg_size, settings.chunker.max_size
    )
    store = open_store(target)
    try:
        return restore_config(
            store, settings.repository_passphrase(), sources=sources, chunker=chunker
        )
    finally:
        store.close()

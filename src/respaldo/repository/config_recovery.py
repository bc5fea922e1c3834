"""Getting a lost or damaged repository ``config`` back.

What ``config`` holds can be found elsewhere: every key file written since key files carry
it has an authenticated copy; a mirror has the same config; the local cache keeps a copy
under ``<cache>/<repository id>/config`` (and older caches at least a directory named after
the id). A candidate is accepted only if the passphrase opens one of the repository's own
key files under its id — which proves the id —, if the keys so derived open the
repository's pack headers, and, when it carries an authenticator, if that authenticates
under the master key. Nothing else is ever written than ``config`` itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from respaldo.errors import (
    ConfigDamaged,
    ConfigMissing,
    IntegrityError,
    RepositoryError,
    WrongPassphrase,
)
from respaldo.repository.chunker import ChunkerParams
from respaldo.repository.config_file import (
    CONFIG_NAME,
    FORMAT_VERSION,
    differing_fields,
    mac_ok,
    parse_config,
    with_mac,
)
from respaldo.repository.crypto import KeySet, Sealer
from respaldo.repository.keys import KeyFile, read_key_files
from respaldo.repository.packs import PACK_PREFIX, read_header
from respaldo.repository.repo import Repository, secret_text
from respaldo.storage.base import Storage

DATA_PROBES = 3
"""Pack headers tried before keys are judged not to be the data's."""


@dataclass(frozen=True)
class ConfigSource:
    """A place that may know the repository's config: ``config`` is a config document,
    or None where only the id is known (an old cache directory)."""

    description: str
    config: dict[str, Any] | None
    repository_id: str


@dataclass(frozen=True)
class RestoredConfig:
    repository_id: str
    source: str
    chunker_assumed: bool
    """The chunker parameters were nowhere to be found and came from the caller (they
    only steer deduplication: data written with others still reads)."""


def cached_sources(cache_dir: Path | None) -> list[ConfigSource]:
    """What the local cache knows: config copies, then bare repository directories."""
    if cache_dir is None or not cache_dir.is_dir():
        return []
    with_copy: list[ConfigSource] = []
    bare: list[ConfigSource] = []
    for directory in sorted(cache_dir.iterdir()):
        name = directory.name
        if len(name) != 32 or any(c not in "0123456789abcdef" for c in name):
            continue
        description = f"local cache {directory}"
        try:
            config = parse_config((directory / CONFIG_NAME).read_bytes())
        except (OSError, ValueError):
            bare.append(ConfigSource(description, None, name))
            continue
        with_copy.append(ConfigSource(description, config, name))
    return with_copy + bare


def restore_config(
    storage: Storage,
    passphrase: SecretStr | str,
    *,
    sources: Sequence[ConfigSource] = (),
    chunker: ChunkerParams | None = None,
) -> RestoredConfig:
    """Write the config of the repository at ``storage`` again, from the first source
    that proves to be this repository's: the key files' own copies, then ``sources`` in
    order (mirrors, the local cache); ``chunker`` stands in for chunker parameters that
    no source has (a bare id from an old cache).

    A config that opens but whose keys open none of the repository's packs (one made
    over the data by an older 'respaldo init') is replaced too.

    Raises RepositoryError when config is intact (nothing is written), RepositoryNotFound
    where there is no repository, and RepositoryError when the passphrase opens no key
    file under any id found (nothing written).
    """
    secret = secret_text(passphrase)
    try:
        current = Repository.open(storage, secret, load_index=False)
    except (ConfigMissing, ConfigDamaged, WrongPassphrase):
        pass  # what is to be repaired (or a passphrase that will open nothing below)
    else:
        # A config that opens may still not be the data's: one that 'respaldo init' made
        # (with a key file of its own) over a repository whose config was lost, before
        # init refused to.
        stripped = "mac" not in current.config and any(
            source.config is not None
            and source.repository_id == current.id
            and mac_ok(current.keys.config_key, source.config)
            and differing_fields(current.config, source.config)
            for source in sources
        )
        # A config without its authenticator that differs from a source's authenticated
        # one is not intact: it was altered (Repository.open says so where the cache
        # knows).
        if opens_the_data(storage, current.sealer) and not stripped:
            raise RepositoryError(
                f"the config of the repository at {storage.location} is intact and opens "
                "with this passphrase: nothing to restore"
            )
    key_files = read_key_files(storage)
    candidates = [
        ConfigSource(f"key file {name}", key.config, key.recorded_id)
        for name, key in key_files
        if key.config is not None and key.recorded_id is not None
    ]
    candidates += sources
    keks = [(key, kek) for _, key in key_files for kek in key.keks(secret)]
    for candidate in candidates:
        config = _proven(storage, candidate, keks, chunker)
        if config is not None:
            storage.put(CONFIG_NAME, json.dumps(config, indent=2).encode())
            Repository.open(storage, secret, load_index=False)  # the proof it is whole
            return RestoredConfig(config["id"], candidate.description, candidate.config is None)
    looked = "the key files" + (", " + ", ".join(s.description for s in sources) if sources else "")
    raise RepositoryError(
        f"cannot restore the config of the repository at {storage.location}: the passphrase "
        f"opens no key file under any repository id found (in {looked})",
        hint="check the passphrase; name a mirror with --from-mirror, or run this where the "
        "repository's local cache is (cache_dir)"
        + ("" if chunker is not None else "; or give chunker parameters"),
    )


def opens_the_data(storage: Storage, sealer: Sealer) -> bool:
    """Whether these keys open the repository's data: one of its first few pack headers
    (a repository without packs has nothing to say against them)."""
    tried = 0
    for info in storage.list(PACK_PREFIX):
        try:
            read_header(storage, sealer, info.name)
            return True
        except IntegrityError:
            tried += 1
            if tried == DATA_PROBES:
                break
    return tried == 0


def _proven(
    storage: Storage,
    candidate: ConfigSource,
    keks: list[tuple[KeyFile, bytes]],
    chunker: ChunkerParams | None,
) -> dict[str, Any] | None:
    """The config to write if ``candidate`` is this repository's, else None."""
    for key, kek in keks:
        master = key.unwrap(kek, candidate.repository_id)
        if master is None:
            continue
        keys = KeySet.derive(master, candidate.repository_id)
        if not opens_the_data(storage, Sealer(keys)):
            return None  # a key file of another repository id (a config made over this one)
        config_key = keys.config_key
        if candidate.config is None:
            if chunker is None:
                return None
            body: dict[str, Any] = {
                "version": FORMAT_VERSION,
                "id": candidate.repository_id,
                "created": datetime.now(UTC).isoformat(),
                "chunker": chunker.to_json(),
            }
        else:
            if candidate.config.get("id") != candidate.repository_id:
                return None
            if "mac" in candidate.config and not mac_ok(config_key, candidate.config):
                return None  # altered: not to be trusted for its other fields
            try:
                parse_config(json.dumps(candidate.config).encode())
            except ValueError:
                return None
            body = candidate.config
        return with_mac(config_key, body)
    return None

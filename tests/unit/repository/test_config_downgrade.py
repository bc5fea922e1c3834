"""A config stripped of its authenticator, where this machine knew it had one.

Someone who can write the repository but does not know the passphrase can make it look
like one of the first format: remove ``mac`` from ``config`` and the config copies (and
checksums, which anyone can recompute) from the key files. Such a repository opens as
before, with its other fields unauthenticated: a changed ``chunker`` then passes. The
format alone cannot tell this from a repository that never had an authenticator, but a
machine that has opened the repository keeps an authenticated copy of ``config`` in its
cache: there, a field changed under the downgrade is reported as the damage it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from respaldo.errors import ConfigDamaged
from respaldo.repository import Repository
from respaldo.repository.config_recovery import cached_sources, restore_config
from respaldo.storage.local import LocalStorage
from tests.unit.repository.helpers import KDF, PASSPHRASE, init_repo, names

pytestmark = pytest.mark.unit


def _downgrade(storage: LocalStorage, chunker: dict[str, object] | None = None) -> None:
    config = json.loads(storage.get("config"))
    config.pop("mac")
    if chunker is not None:
        config["chunker"] = chunker
    storage.put("config", json.dumps(config).encode())
    for name in names(storage, "keys/"):
        key = json.loads(storage.get(name))
        key.pop("config")
        key.pop("checksum")
        storage.put(name, json.dumps(key).encode())


def test_a_config_stripped_of_its_authenticator_is_damage_where_the_cache_knew_it(
    tmp_path: Path,
) -> None:
    storage = LocalStorage(tmp_path / "repo")
    cache = tmp_path / "cache"
    repo = init_repo(storage)
    Repository.open(storage, PASSPHRASE, cache_dir=cache).close()  # keeps its copy
    chunker = {**repo.config["chunker"], "min_size": 512, "avg_size": 2048}
    _downgrade(storage, chunker)
    with pytest.raises(ConfigDamaged) as info:
        Repository.open(storage, PASSPHRASE, cache_dir=cache)
    assert "no authenticator" in str(info.value)
    assert "chunker.min_size" in str(info.value)
    assert "restore-config" in (info.value.hint or "")
    # The cache's copy stays the authenticated one, and puts config back.
    assert "mac" in json.loads((cache / repo.id / "config").read_text())
    restored = restore_config(storage, PASSPHRASE, sources=cached_sources(cache))
    assert restored.repository_id == repo.id
    reopened = Repository.open(storage, PASSPHRASE, cache_dir=cache)
    assert reopened.config["chunker"] == repo.config["chunker"]


def test_without_a_cache_copy_a_first_format_repository_still_opens(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "repo")
    repo = init_repo(storage)
    _downgrade(storage)
    assert Repository.open(storage, PASSPHRASE, cache_dir=tmp_path / "cache").id == repo.id


def test_a_first_format_primary_beside_its_newer_mirror_opens(tmp_path: Path) -> None:
    # A mirror made after the upgrade has an authenticated config; the primary, made
    # before, has none; both are cached under the one id. Nothing was altered.
    primary_storage = LocalStorage(tmp_path / "repo")
    cache = tmp_path / "cache"
    init_repo(primary_storage)
    _downgrade(primary_storage)  # as the first format wrote it
    primary = Repository.open(primary_storage, PASSPHRASE, cache_dir=cache)
    mirror_storage = LocalStorage(tmp_path / "mirror")
    Repository.init_mirror(mirror_storage, primary, PASSPHRASE, kdf=KDF)
    Repository.open(mirror_storage, PASSPHRASE, cache_dir=cache).close()
    assert "mac" in json.loads((cache / primary.id / "config").read_text())
    assert Repository.open(primary_storage, PASSPHRASE, cache_dir=cache).id == primary.id

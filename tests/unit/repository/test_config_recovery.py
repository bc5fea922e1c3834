"""A lost or damaged repository ``config``: detected, named for what it is, and repairable.

``config`` holds the repository id (the salt of every key derivation) and the chunker
parameters. Losing it must not invite ``respaldo init`` over the old data (a new id: the
old data could never be read with it); every key file carries an authenticated copy, so
the key files and the passphrase are enough to write it again. Any changed field is
detected (``config`` carries an authenticator keyed from the master key) and reported as
damage, not as a wrong passphrase.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from respaldo.errors import (
    ConfigDamaged,
    ConfigMissing,
    IntegrityError,
    RepositoryError,
    RepositoryNotFound,
    WrongPassphrase,
)
from respaldo.repository import ChunkerParams, Repository, rebuild_index
from respaldo.repository.config_recovery import ConfigSource, cached_sources, restore_config
from respaldo.storage.base import Storage
from respaldo.storage.memory import MemoryStorage
from tests.unit.repository.helpers import (
    CHUNKER,
    KDF,
    PASSPHRASE,
    init_repo,
    names,
    open_repo,
    random_bytes,
    read_stream,
    snapshot,
    write_backup,
)

pytestmark = pytest.mark.unit

DATA = random_bytes(30_000, seed=8)


@pytest.fixture
def filled(repo: Repository) -> Repository:
    write_backup(repo, "b1", {"dump": DATA})
    return repo


def _config(storage: Storage) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(storage.get("config"))
    return doc


def _put_config(storage: Storage, doc: dict[str, Any]) -> None:
    storage.put("config", json.dumps(doc, indent=2).encode())


def _one_hex_digit_changed(text: str) -> str:
    return ("1" if text[0] != "1" else "2") + text[1:]


def _make_legacy(storage: Storage) -> None:
    """Turn a repository into one written before config and key files carried their
    authenticated copies (format 1 as first released): same bytes otherwise."""
    doc = _config(storage)
    doc.pop("mac")
    _put_config(storage, doc)
    for name in names(storage, "keys/"):
        key = json.loads(storage.get(name))
        key.pop("config")
        key.pop("checksum")
        storage.put(name, json.dumps(key, indent=2).encode())


# --- init never writes over a repository whose config is gone -----------------------------


@pytest.mark.parametrize("kept", ["keys/", "packs/", "manifests/"])
def test_init_refuses_a_location_holding_a_repository_without_config(
    storage: Storage, filled: Repository, kept: str
) -> None:
    storage.delete("config")
    for name in names(storage):
        if not name.startswith(kept):
            storage.delete(name)
    before = snapshot(storage)
    with pytest.raises(ConfigMissing) as info:
        init_repo(storage)
    assert kept.rstrip("/") in str(info.value)
    assert "restore-config" in info.value.hint
    assert snapshot(storage) == before
    with pytest.raises(ConfigMissing):
        Repository.init_mirror(storage, filled, PASSPHRASE, kdf=KDF)
    assert snapshot(storage) == before


def test_a_missing_config_is_not_reported_as_no_repository(
    storage: Storage, filled: Repository
) -> None:
    storage.delete("config")
    with pytest.raises(ConfigMissing) as info:
        open_repo(storage)
    assert not isinstance(info.value, RepositoryNotFound)
    assert "respaldo init" not in info.value.hint
    assert "restore-config" in info.value.hint
    assert "mirror" in info.value.hint and "cache" in info.value.hint


# --- restoring it ------------------------------------------------------------------------


def test_a_lost_config_is_restored_from_a_key_file(storage: Storage, filled: Repository) -> None:
    original = storage.get("config")
    storage.delete("config")
    restored = restore_config(storage, PASSPHRASE)
    assert restored.source.startswith("key file keys/")
    assert not restored.chunker_assumed
    assert json.loads(storage.get("config")) == json.loads(original)
    reopened = open_repo(storage)
    assert reopened.id == filled.id
    assert read_stream(reopened, reopened.load_manifest("b1")) == DATA


def test_restore_config_needs_the_passphrase_and_changes_nothing_without_it(
    storage: Storage, filled: Repository
) -> None:
    storage.delete("config")
    before = snapshot(storage)
    with pytest.raises(RepositoryError, match="opens no key file") as info:
        restore_config(storage, "not the passphrase")
    assert "not the passphrase" not in str(info.value)
    assert snapshot(storage) == before


def test_restore_config_leaves_an_intact_config_alone(storage: Storage, filled: Repository) -> None:
    before = snapshot(storage)
    with pytest.raises(RepositoryError, match="intact"):
        restore_config(storage, PASSPHRASE)
    assert snapshot(storage) == before


def test_restore_config_where_there_is_no_repository(memory_storage: MemoryStorage) -> None:
    with pytest.raises(RepositoryNotFound):
        restore_config(memory_storage, PASSPHRASE)
    assert names(memory_storage) == []


def test_a_legacy_config_is_restored_from_a_mirror(storage: Storage, filled: Repository) -> None:
    """Key files of the first format carry no copy: a mirror's config (whose id the
    passphrase proves on this repository's own key files) serves."""
    mirror = MemoryStorage("mirror")
    Repository.init_mirror(mirror, filled, PASSPHRASE, kdf=KDF)
    _make_legacy(storage)
    storage.delete("config")
    stranger = init_repo(MemoryStorage("stranger"))
    sources = [
        ConfigSource("stranger", _config(stranger.storage), stranger.id),
        ConfigSource("mirror", _config(mirror), filled.id),
    ]
    restored = restore_config(storage, PASSPHRASE, sources=sources)
    assert restored.source == "mirror"
    reopened = open_repo(storage)
    assert (reopened.id, reopened.chunker) == (filled.id, CHUNKER)
    assert read_stream(reopened, reopened.load_manifest("b1")) == DATA


def test_a_legacy_config_is_restored_from_the_local_cache(storage: Storage, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    repo = init_repo(storage, cache_dir=cache)
    write_backup(repo, "b1", {"dump": DATA})
    _make_legacy(storage)
    open_repo(storage, cache_dir=cache)  # every open keeps a copy of config in the cache
    assert (cache / repo.id / "config").exists()
    storage.delete("config")
    restored = restore_config(storage, PASSPHRASE, sources=cached_sources(cache))
    assert restored.source == f"local cache {cache / repo.id}"
    assert not restored.chunker_assumed
    assert open_repo(storage).chunker == CHUNKER


def test_with_only_the_cache_directory_the_chunker_comes_from_the_settings(
    storage: Storage, tmp_path: Path
) -> None:
    """An older cache holds index files under the repository id but no config copy: the id
    is enough to read everything; the chunker parameters given stand in (they only affect
    deduplication) and the result says so."""
    cache = tmp_path / "cache"
    repo = init_repo(storage, cache_dir=cache)
    write_backup(repo, "b1", {"dump": DATA})
    _make_legacy(storage)
    open_repo(storage, cache_dir=cache)
    (cache / repo.id / "config").unlink()
    storage.delete("config")
    other = ChunkerParams(min_size=512, avg_size=2048, max_size=8192)
    with pytest.raises(RepositoryError, match="opens no key file"):
        restore_config(storage, PASSPHRASE, sources=cached_sources(cache))
    restored = restore_config(storage, PASSPHRASE, sources=cached_sources(cache), chunker=other)
    assert restored.chunker_assumed
    reopened = open_repo(storage)
    assert (reopened.id, reopened.chunker) == (repo.id, other)
    assert read_stream(reopened, reopened.load_manifest("b1")) == DATA


# --- damage is detected and named --------------------------------------------------------


def test_one_changed_digit_of_the_id_is_reported_as_damage_not_a_wrong_passphrase(
    storage: Storage, filled: Repository
) -> None:
    doc = _config(storage)
    _put_config(storage, {**doc, "id": _one_hex_digit_changed(doc["id"])})
    with pytest.raises(ConfigDamaged) as info:
        open_repo(storage)
    assert not isinstance(info.value, WrongPassphrase)
    assert "config" in str(info.value) and filled.id in str(info.value)
    assert "restore-config" in info.value.hint
    # A wrong passphrase is still just that.
    with pytest.raises(WrongPassphrase):
        open_repo(storage, "not the passphrase")
    restore_config(storage, PASSPHRASE)
    assert open_repo(storage).id == filled.id


def test_a_changed_id_in_a_legacy_repository_is_recognised_through_the_cache(
    storage: Storage, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    repo = init_repo(storage)
    _make_legacy(storage)
    open_repo(storage, cache_dir=cache)
    doc = _config(storage)
    _put_config(storage, {**doc, "id": _one_hex_digit_changed(doc["id"])})
    with pytest.raises(ConfigDamaged) as info:
        open_repo(storage, cache_dir=cache)
    assert repo.id in str(info.value)
    # Without any other knowledge of the id, both causes are named.
    with pytest.raises(WrongPassphrase) as wrong:
        open_repo(storage)
    assert "config" in wrong.value.hint and "restore-config" in wrong.value.hint


def _change(path: str, value: Any) -> Any:
    def apply(doc: dict[str, Any]) -> dict[str, Any]:
        doc = json.loads(json.dumps(doc))
        *parents, last = path.split(".")
        target = doc
        for part in parents:
            target = target[part]
        if value is None:
            del target[last]
        else:
            target[last] = value
        return doc

    return apply


FIELD_CHANGES = {
    "created": _change("created", "2020-01-01T00:00:00+00:00"),
    "version": _change("version", 2),
    "chunker.min_size": _change("chunker.min_size", 512),
    "chunker.avg_size": _change("chunker.avg_size", 2048),
    "chunker.max_size": _change("chunker.max_size", 8192),
    "chunker.normalization": _change("chunker.normalization", 2),
    "mac": _change("mac", "00" * 32),
    "mac-removed": _change("mac", None),
    "added-field": _change("note", "hello"),
}


@pytest.mark.parametrize("field", list(FIELD_CHANGES))
def test_a_change_to_any_field_of_config_is_detected(
    storage: Storage, filled: Repository, field: str
) -> None:
    _put_config(storage, FIELD_CHANGES[field](_config(storage)))
    before = snapshot(storage)
    with pytest.raises(RepositoryError) as info:
        open_repo(storage)
    assert isinstance(info.value, ConfigDamaged), info.value
    assert "config" in str(info.value)
    assert "restore-config" in info.value.hint
    assert snapshot(storage) == before
    restore_config(storage, PASSPHRASE)
    assert read_stream(open_repo(storage), filled.load_manifest("b1")) == DATA


def test_a_legacy_repository_still_opens(storage: Storage, filled: Repository) -> None:
    _make_legacy(storage)
    reopened = open_repo(storage)
    assert reopened.id == filled.id
    assert read_stream(reopened, reopened.load_manifest("b1")) == DATA


def test_a_key_added_to_a_legacy_repository_carries_the_config(
    storage: Storage, filled: Repository
) -> None:
    """New key files always carry the authenticated copy: 'respaldo key passwd' (or add
    and remove) upgrades a legacy repository's key files, after which a changed config
    field is detected there too."""
    _make_legacy(storage)
    legacy = open_repo(storage)
    old = legacy.key_id_for(PASSPHRASE)
    legacy.change_passphrase(old, PASSPHRASE, KDF)
    doc = _config(storage)
    assert "mac" in doc  # config gained its authenticator too
    assert open_repo(storage).id == filled.id
    _put_config(storage, {**doc, "chunker": {**doc["chunker"], "min_size": 512}})
    with pytest.raises(ConfigDamaged, match="chunker"):
        open_repo(storage)


# --- index rebuild never deletes index files under a config that is not the repository's --


def test_index_rebuild_under_a_foreign_config_deletes_nothing(
    storage: Storage, filled: Repository
) -> None:
    """What 'respaldo init' over a lost config used to leave: a new config and key file
    beside the old data. Rebuilding the index then would have deleted every index file."""
    storage.delete("config")
    foreign = init_repo(MemoryStorage("foreign"), "another passphrase")
    storage.put("config", foreign.storage.get("config"))
    for name in names(foreign.storage, "keys/"):
        storage.put(name, foreign.storage.get(name))
    before = snapshot(storage)
    wrong = open_repo(storage, "another passphrase", load_index=False)
    with pytest.raises(IntegrityError, match="no pack") as info:
        rebuild_index(wrong)
    assert "restore-config" in info.value.hint
    assert snapshot(storage) == before


def test_a_config_made_over_the_data_by_an_old_init_is_replaced(
    storage: Storage, filled: Repository
) -> None:
    """What 'respaldo init' over a lost config did before it refused: a new config and a
    new key file (same passphrase) beside the old data. That config opens, but no pack
    does with its keys: restore-config takes the old key file's copy instead."""
    storage.delete("config")
    foreign = init_repo(MemoryStorage("foreign"))
    storage.put("config", foreign.storage.get("config"))
    for name in names(foreign.storage, "keys/"):
        storage.put(name, foreign.storage.get(name))
    assert open_repo(storage, load_index=False).id == foreign.id  # it does open
    restored = restore_config(storage, PASSPHRASE)
    assert restored.repository_id == filled.id
    reopened = open_repo(storage)
    assert read_stream(reopened, reopened.load_manifest("b1")) == DATA


def test_the_message_names_the_changed_fields_in_a_sentence(
    storage: Storage, filled: Repository
) -> None:
    """Field names such as 'created' are quoted, and the verb agrees with their number."""
    _put_config(storage, FIELD_CHANGES["created"](_config(storage)))
    with pytest.raises(ConfigDamaged) as info:
        open_repo(storage)
    assert "; the field 'created' differs from the authenticated copy in keys/" in str(info.value)
    doc = FIELD_CHANGES["chunker.min_size"](FIELD_CHANGES["created"](_config(storage)))
    _put_config(storage, doc)
    with pytest.raises(ConfigDamaged) as info:
        open_repo(storage)
    assert (
        "; the fields 'chunker.min_size', 'created' differ from the authenticated copy in keys/"
        in str(info.value)
    )

"""Creating and opening a repository: config, first key, refusals that change nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from respaldo.errors import (
    ConfigDamaged,
    RepositoryError,
    RepositoryExists,
    RepositoryNotFound,
    WrongPassphrase,
)
from respaldo.repository import Repository
from respaldo.repository.repo import FORMAT_VERSION
from respaldo.storage.base import Storage
from respaldo.storage.local import LocalStorage
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


def test_init_writes_config_and_exactly_one_key(storage: Storage) -> None:
    repo = init_repo(storage)
    objects = names(storage)
    assert len(objects) == 2
    assert objects[0] == "config"
    assert objects[1].startswith("keys/")
    config = json.loads(storage.get("config"))
    assert config["version"] == FORMAT_VERSION
    assert config["id"] == repo.id
    assert len(bytes.fromhex(config["id"])) == 16
    assert config["chunker"] == CHUNKER.to_json()
    key = json.loads(storage.get(objects[1]))
    assert objects[1] == f"keys/{key['id']}"
    assert key["kdf"]["algorithm"] == "argon2id"
    assert (key["kdf"]["time_cost"], key["kdf"]["memory_cost"], key["kdf"]["parallelism"]) == (
        KDF.time_cost,
        KDF.memory_cost,
        KDF.parallelism,
    )


def test_each_init_makes_a_new_repository_id(tmp_path: Path) -> None:
    first = init_repo(MemoryStorage("a"))
    second = init_repo(MemoryStorage("b"))
    assert first.id != second.id


def test_init_twice_is_refused_and_changes_nothing(storage: Storage) -> None:
    init_repo(storage)
    before = snapshot(storage)
    with pytest.raises(RepositoryExists) as info:
        init_repo(storage, "another passphrase")
    assert storage.location in str(info.value)
    assert snapshot(storage) == before


def test_open_finds_the_same_repository(storage: Storage) -> None:
    created = init_repo(storage)
    manifest, _ = write_backup(created, "b1", {"dump": b"hello"})
    opened = open_repo(storage)
    assert opened.id == created.id
    assert opened.chunker == CHUNKER
    assert opened.keys.chunker_seed == created.keys.chunker_seed
    assert read_stream(opened, opened.load_manifest("b1")) == b"hello"
    assert opened.load_manifest("b1").streams == manifest.streams


def test_passphrase_may_be_a_secret_str(memory_storage: MemoryStorage) -> None:
    Repository.init(memory_storage, SecretStr(PASSPHRASE), chunker=CHUNKER, kdf=KDF)
    assert Repository.open(memory_storage, SecretStr(PASSPHRASE)).id


def test_wrong_passphrase_is_refused_clearly_and_writes_nothing(
    storage: Storage, tmp_path: Path
) -> None:
    repo = init_repo(storage)
    write_backup(repo, "b1", {"dump": random_bytes(20_000)})
    before = snapshot(storage)
    cache = tmp_path / "cache"
    with pytest.raises(WrongPassphrase) as info:
        open_repo(storage, "not the passphrase", cache_dir=cache)
    message = str(info.value)
    assert "wrong passphrase" in message
    assert storage.location in message
    assert "not the passphrase" not in message
    assert "RESPALDO_PASSPHRASE" in info.value.hint
    assert snapshot(storage) == before
    assert not cache.exists()


def test_open_where_nothing_exists(tmp_path: Path) -> None:
    for storage in (MemoryStorage("empty"), LocalStorage(tmp_path / "nowhere")):
        with pytest.raises(RepositoryNotFound) as info:
            open_repo(storage)
        assert "respaldo init" in info.value.hint
    assert not (tmp_path / "nowhere").exists()


def test_open_of_a_location_with_config_but_no_keys(memory_storage: MemoryStorage) -> None:
    init_repo(memory_storage)
    for name in names(memory_storage, "keys/"):
        memory_storage.delete(name)
    with pytest.raises(RepositoryError, match="no key files"):
        open_repo(memory_storage)


def test_empty_passphrase_is_refused_and_nothing_is_written(storage: Storage) -> None:
    with pytest.raises(RepositoryError, match="passphrase is empty"):
        init_repo(storage, "")
    assert names(storage) == []
    with pytest.raises(RepositoryError, match="passphrase is empty"):
        Repository.init(storage, SecretStr(""), chunker=CHUNKER, kdf=KDF)
    assert names(storage) == []


def test_empty_passphrase_does_not_open(memory_storage: MemoryStorage) -> None:
    init_repo(memory_storage)
    with pytest.raises(WrongPassphrase):
        open_repo(memory_storage, "")


def _config(storage: Storage) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(storage.get("config"))
    return doc


def _dumps(doc: object) -> bytes:
    return json.dumps(doc).encode()


# Each turns (config bytes, config document) into damaged config bytes.
CONFIG_DAMAGE: dict[str, Callable[[bytes, dict[str, Any]], bytes]] = {
    "truncated": lambda raw, doc: raw[: len(raw) // 2],
    "not-utf8": lambda raw, doc: b"\xff\xfe" + raw,
    "a-list": lambda raw, doc: b"[]",
    "null": lambda raw, doc: b"null",
    "bad-id": lambda raw, doc: _dumps({**doc, "id": "xyz"}),
    "id-not-a-string": lambda raw, doc: _dumps({**doc, "id": 5}),
    "no-id": lambda raw, doc: _dumps({k: v for k, v in doc.items() if k != "id"}),
    "no-version": lambda raw, doc: _dumps({k: v for k, v in doc.items() if k != "version"}),
    "unknown-chunker": lambda raw, doc: _dumps({**doc, "chunker": {"algorithm": "rabin"}}),
    "bad-chunk-sizes": lambda raw, doc: _dumps(
        {**doc, "chunker": {**doc["chunker"], "min_size": 1}}
    ),
}


@pytest.mark.parametrize("damage", list(CONFIG_DAMAGE))
def test_damaged_config_is_a_clear_repository_error(storage: Storage, damage: str) -> None:
    init_repo(storage)
    raw = storage.get("config")
    storage.put("config", CONFIG_DAMAGE[damage](raw, json.loads(raw)))
    with pytest.raises(RepositoryError) as info:
        open_repo(storage)
    assert not isinstance(info.value, RepositoryNotFound | WrongPassphrase)
    assert "config" in str(info.value)
    assert "damaged" in str(info.value)
    assert storage.location in str(info.value)
    # And init does not paper over it by making a second repository there.
    with pytest.raises(RepositoryExists):
        init_repo(storage)


def test_a_newer_format_version_is_refused_with_a_hint(memory_storage: MemoryStorage) -> None:
    """A config of a newer format that authenticates (one a newer respaldo wrote; an edited
    version is damage: tests/unit/repository/test_config_recovery.py). Its mac is computed
    here as docs/repository-format.md says, not with respaldo's function."""
    repo = init_repo(memory_storage)
    doc = {k: v for k, v in _config(memory_storage).items() if k != "mac"}
    doc["version"] = FORMAT_VERSION + 1
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    doc["mac"] = hmac.new(repo.keys.config_key, canonical, hashlib.sha256).hexdigest()
    memory_storage.put("config", json.dumps(doc).encode())
    with pytest.raises(RepositoryError, match="not supported") as info:
        open_repo(memory_storage)
    assert not isinstance(info.value, ConfigDamaged)
    assert "upgrade" in info.value.hint


def test_a_malformed_key_file_is_a_repository_error(memory_storage: MemoryStorage) -> None:
    init_repo(memory_storage)
    (key_name,) = names(memory_storage, "keys/")
    memory_storage.put(key_name, b'{"version": 1}')
    with pytest.raises(RepositoryError, match="malformed key file"):
        open_repo(memory_storage)

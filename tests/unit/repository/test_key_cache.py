"""The per-machine cache of passphrase-derived keys (respaldo.repository.keycache): a second
open derives nothing, and the passphrase is still checked as without the cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from respaldo.errors import WrongPassphrase
from respaldo.storage.memory import MemoryStorage
from tests.unit.repository.helpers import KDF, PASSPHRASE, Derivations, init_repo, open_repo

pytestmark = pytest.mark.unit


def _cache_files(cache: Path) -> list[Path]:
    return sorted(p for p in cache.rglob("*") if p.is_file())


def test_the_second_open_takes_the_key_from_the_cache(
    memory_storage: MemoryStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = init_repo(memory_storage)
    cache = tmp_path / "cache"
    derivations = Derivations(monkeypatch)
    assert open_repo(memory_storage, key_cache=cache).id == repo.id
    assert derivations.count == 1
    assert open_repo(memory_storage, key_cache=cache).id == repo.id
    assert derivations.count == 1  # no argon2id the second time
    [cached] = _cache_files(cache)
    assert cached.parent == cache / repo.id / "keys"
    assert cached.stat().st_mode & 0o777 == 0o600
    assert cached.parent.stat().st_mode & 0o777 == 0o700


def test_a_wrong_passphrase_still_fails_with_a_cache_and_changes_nothing(
    memory_storage: MemoryStorage, tmp_path: Path
) -> None:
    init_repo(memory_storage)
    cache = tmp_path / "cache"
    open_repo(memory_storage, key_cache=cache)
    before = {p: p.read_bytes() for p in _cache_files(cache)}
    with pytest.raises(WrongPassphrase):
        open_repo(memory_storage, "not the passphrase", key_cache=cache)
    assert {p: p.read_bytes() for p in _cache_files(cache)} == before


def test_a_cache_file_others_can_read_is_ignored(
    memory_storage: MemoryStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    init_repo(memory_storage)
    cache = tmp_path / "cache"
    open_repo(memory_storage, key_cache=cache)
    [cached] = _cache_files(cache)
    cached.chmod(0o644)
    derivations = Derivations(monkeypatch)
    open_repo(memory_storage, key_cache=cache)
    assert derivations.count == 1


def test_a_removed_key_file_is_not_opened_by_its_cached_key(
    memory_storage: MemoryStorage, tmp_path: Path
) -> None:
    repo = init_repo(memory_storage)
    cache = tmp_path / "cache"
    open_repo(memory_storage, key_cache=cache)
    new_id = repo.change_passphrase(repo.key_id_for(PASSPHRASE), "the new passphrase", KDF)
    assert repo.key_id_for("the new passphrase") == new_id
    with pytest.raises(WrongPassphrase):
        open_repo(memory_storage, PASSPHRASE, key_cache=cache)
    assert open_repo(memory_storage, "the new passphrase", key_cache=cache).id == repo.id


def test_a_damaged_cache_file_costs_only_a_derivation(
    memory_storage: MemoryStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = init_repo(memory_storage)
    cache = tmp_path / "cache"
    open_repo(memory_storage, key_cache=cache)
    [cached] = _cache_files(cache)
    cached.write_bytes(b"{not json")
    derivations = Derivations(monkeypatch)
    assert open_repo(memory_storage, key_cache=cache).id == repo.id
    assert derivations.count == 1
    assert open_repo(memory_storage, key_cache=cache).id == repo.id
    assert derivations.count == 1  # rewritten whole by the derivation


def test_a_cache_directory_that_does_not_exist_yet_is_made(
    memory_storage: MemoryStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ~/.cache/respaldo of a new OS user: neither it nor ~/.cache exists yet.
    init_repo(memory_storage)
    cache = tmp_path / "home" / ".cache" / "respaldo"
    open_repo(memory_storage, key_cache=cache)
    derivations = Derivations(monkeypatch)
    open_repo(memory_storage, key_cache=cache)
    assert derivations.count == 0

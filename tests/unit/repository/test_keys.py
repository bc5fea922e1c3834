"""Passphrases: several keys wrap one master key; adding, changing and removing them."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from respaldo.errors import InvalidObjectName, KeyFileDamaged, RepositoryError, WrongPassphrase
from respaldo.repository import Repository
from respaldo.storage.base import Storage
from respaldo.storage.memory import MemoryStorage
from tests.unit.repository.helpers import (
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

OTHER = "a second, different passphrase"


def test_added_passphrase_opens_and_the_first_still_does(storage: Storage) -> None:
    repo = init_repo(storage)
    new_id = repo.add_key(OTHER, KDF)
    assert f"keys/{new_id}" in names(storage, "keys/")
    assert len(names(storage, "keys/")) == 2
    assert open_repo(storage, PASSPHRASE).id == repo.id
    assert open_repo(storage, OTHER).id == repo.id
    assert repo.key_id_for(OTHER) == new_id
    assert repo.key_id_for(PASSPHRASE) != new_id


def test_change_passphrase(storage: Storage) -> None:
    repo = init_repo(storage)
    data = random_bytes(30_000)
    write_backup(repo, "b1", {"dump": data})
    old_id = repo.key_id_for(PASSPHRASE)
    new_id = repo.change_passphrase(old_id, OTHER, KDF)
    assert new_id != old_id
    assert names(storage, "keys/") == [f"keys/{new_id}"]
    with pytest.raises(WrongPassphrase):
        open_repo(storage, PASSPHRASE)
    reopened = open_repo(storage, OTHER)
    assert read_stream(reopened, reopened.load_manifest("b1")) == data


def test_remove_key(storage: Storage) -> None:
    repo = init_repo(storage)
    first = repo.key_id_for(PASSPHRASE)
    repo.add_key(OTHER, KDF)
    repo.remove_key(first)
    with pytest.raises(WrongPassphrase):
        open_repo(storage, PASSPHRASE)
    assert open_repo(storage, OTHER).id == repo.id


def test_removing_the_last_key_is_refused(memory_storage: MemoryStorage) -> None:
    repo = init_repo(memory_storage)
    before = snapshot(memory_storage)
    with pytest.raises(RepositoryError, match="last key") as info:
        repo.remove_key(repo.key_id_for(PASSPHRASE))
    assert "add another passphrase" in info.value.hint
    assert snapshot(memory_storage) == before
    assert open_repo(memory_storage).id == repo.id


def test_removing_an_unknown_key_is_an_error(mem_repo: Repository) -> None:
    mem_repo.add_key(OTHER, KDF)
    before = snapshot(mem_repo.storage)
    with pytest.raises(RepositoryError, match="no key 0123456789abcdef"):
        mem_repo.remove_key("0123456789abcdef")
    with pytest.raises(InvalidObjectName):
        mem_repo.remove_key("../config")
    assert snapshot(mem_repo.storage) == before


def test_empty_passphrase_cannot_be_added(mem_repo: Repository) -> None:
    before = snapshot(mem_repo.storage)
    with pytest.raises(RepositoryError, match="empty"):
        mem_repo.add_key("", KDF)
    assert snapshot(mem_repo.storage) == before


def test_key_id_for_an_unknown_passphrase(mem_repo: Repository) -> None:
    with pytest.raises(WrongPassphrase):
        mem_repo.key_id_for("nope")


def test_list_keys_shows_ids_and_no_key_material(mem_repo: Repository) -> None:
    second = mem_repo.add_key(OTHER, KDF)
    keys = mem_repo.list_keys()
    assert {k["id"] for k in keys} == {mem_repo.key_id_for(PASSPHRASE), second}
    for key in keys:
        assert set(key) == {"id", "created", "problem"} and key["problem"] is None
        assert len(str(key["id"])) == 16


def _forms(secret: bytes) -> list[bytes]:
    """The ways a key could leak into a text file."""
    return [
        secret,
        secret.hex().encode(),
        secret.hex().upper().encode(),
        base64.b64encode(secret),
        base64.urlsafe_b64encode(secret),
        base64.b64encode(secret).rstrip(b"="),
    ]


def test_no_object_holds_the_master_key_or_a_derived_key_in_clear(storage: Storage) -> None:
    repo = init_repo(storage)
    repo.add_key(OTHER, KDF)
    write_backup(repo, "b1", {"dump": random_bytes(20_000)})
    master = repo._master_key
    secrets = [master, repo.keys.encryption_key, repo.keys.id_key]
    objects = snapshot(storage)
    assert any(name.startswith("keys/") for name in objects)
    for name, data in objects.items():
        for secret in secrets:
            for form in _forms(secret):
                assert form not in data, f"{name} holds a key in clear"
    assert repr(repo.keys) == "KeySet(<secret>)"


def test_key_file_does_not_open_another_repository(memory_storage: MemoryStorage) -> None:
    """The wrapped key is bound to its repository id: a key file copied into another
    repository (same passphrase) is not accepted there."""
    first = init_repo(memory_storage)
    other = MemoryStorage("other")
    second = init_repo(other, "another passphrase")
    (key_name,) = names(memory_storage, "keys/")
    other.put(key_name, memory_storage.get(key_name))
    with pytest.raises(WrongPassphrase) as info:
        open_repo(other, PASSPHRASE)
    assert f"{key_name}, a key file of another repository ({first.id})" in str(info.value)
    assert open_repo(other, "another passphrase").id == second.id != first.id


def _rewrite_key(storage: MemoryStorage, change: Callable[[dict[str, Any]], None]) -> str:
    (key_name,) = names(storage, "keys/")
    doc = json.loads(storage.get(key_name))
    change(doc)
    storage.put(key_name, json.dumps(doc, indent=2).encode())
    return key_name


def _flip_b64(value: str) -> str:
    data = bytearray(base64.b64decode(value))
    data[len(data) // 2] ^= 0x10
    return base64.b64encode(bytes(data)).decode()


def _flip_wrapped(doc: dict[str, Any]) -> None:
    doc["wrapped_key"] = _flip_b64(doc["wrapped_key"])


def _flip_salt(doc: dict[str, Any]) -> None:
    doc["kdf"]["salt"] = _flip_b64(doc["kdf"]["salt"])


def _flip_nonce(doc: dict[str, Any]) -> None:
    doc["nonce"] = _flip_b64(doc["nonce"])


def _old_format(doc: dict[str, Any]) -> None:
    """A key file written before key files had a checksum."""
    del doc["checksum"]


@pytest.mark.parametrize("flip", [_flip_wrapped, _flip_salt, _flip_nonce])
def test_a_flipped_bit_in_a_key_file_reads_as_damage_not_a_wrong_passphrase(
    memory_storage: MemoryStorage, flip: Callable[[dict[str, Any]], None]
) -> None:
    repo = init_repo(memory_storage)
    key_name = _rewrite_key(memory_storage, flip)
    before = snapshot(memory_storage)
    with pytest.raises(KeyFileDamaged) as info:
        open_repo(memory_storage)
    assert not isinstance(info.value, WrongPassphrase)
    assert str(info.value).startswith(f"key file {key_name} is damaged")
    assert "passphrase" not in str(info.value)
    assert "RESPALDO_PASSPHRASE" not in (info.value.hint or "")
    assert "undamaged copy" in (info.value.hint or "")
    assert snapshot(memory_storage) == before  # reading changed nothing
    del repo


def test_a_damaged_key_file_is_passed_over_when_another_opens(
    memory_storage: MemoryStorage,
) -> None:
    repo = init_repo(memory_storage)
    first = repo.key_id_for(PASSPHRASE)
    repo.add_key(OTHER, KDF)
    doc = json.loads(memory_storage.get(f"keys/{first}"))
    _flip_wrapped(doc)
    memory_storage.put(f"keys/{first}", json.dumps(doc).encode())
    assert open_repo(memory_storage, OTHER).id == repo.id


def test_new_key_files_carry_a_checksum(memory_storage: MemoryStorage) -> None:
    repo = init_repo(memory_storage)
    repo.add_key(OTHER, KDF)
    repo.change_passphrase(repo.key_id_for(PASSPHRASE), "a third passphrase", KDF)
    for name in names(memory_storage, "keys/"):
        doc = json.loads(memory_storage.get(name))
        body = {k: v for k, v in doc.items() if k != "checksum"}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        assert doc["checksum"] == "sha256:" + hashlib.sha256(canonical).hexdigest()
        assert "config" in doc  # the config copy is kept beside it


def test_an_old_format_key_file_without_a_checksum_still_opens(
    memory_storage: MemoryStorage,
) -> None:
    repo = init_repo(memory_storage)
    _rewrite_key(memory_storage, _old_format)
    assert open_repo(memory_storage).id == repo.id


def test_old_format_key_file_tampering_is_not_mistaken_for_the_right_passphrase(
    memory_storage: MemoryStorage,
) -> None:
    """Without a checksum (old key files), damage still reads as before: never as the
    right passphrase."""
    init_repo(memory_storage)
    _rewrite_key(memory_storage, _old_format)
    _rewrite_key(memory_storage, _flip_wrapped)
    with pytest.raises(WrongPassphrase):
        open_repo(memory_storage)


def test_a_damaged_key_file_is_replaced_by_a_mirrors_key_file(
    memory_storage: MemoryStorage,
) -> None:
    """What the hint says: a mirror's key file wraps the same master key for the same
    repository id, so copied into keys/ it opens the repository (with its passphrase)."""
    repo = init_repo(memory_storage)
    data = random_bytes(20_000)
    write_backup(repo, "b1", {"dump": data})
    mirror = MemoryStorage("mirror")
    Repository.init_mirror(mirror, repo, OTHER, kdf=KDF)
    damaged = _rewrite_key(memory_storage, _flip_nonce)
    with pytest.raises(KeyFileDamaged) as info:
        open_repo(memory_storage)
    assert "mirror" in (info.value.hint or "")
    memory_storage.delete(damaged)
    (mirror_key,) = names(mirror, "keys/")
    memory_storage.put(mirror_key, mirror.get(mirror_key))
    reopened = open_repo(memory_storage, OTHER)
    assert read_stream(reopened, reopened.load_manifest("b1")) == data


def _kdf(field: str, value: int) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        doc["kdf"][field] = value

    return change


def _field(field: str, value: str) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        doc[field] = value

    return change


def _salt(value: str) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        doc["kdf"]["salt"] = value

    return change


# Values no respaldo writes: a bit flipped in a key file of the first format (no checksum:
# '"parallelism": 2' is one bit from 0), or a key file rewritten by someone who can write
# the repository (the checksum is no authenticator). argon2 and AES-GCM refused them with
# their own exceptions, which stopped the open even where another key file opened, and
# huge costs made every process that opens the repository allocate or compute for ever.
ODD_KEY_FILES = {
    "parallelism 0": _kdf("parallelism", 0),
    "time cost 0": _kdf("time_cost", 0),
    "negative time cost": _kdf("time_cost", -1),
    "memory cost 1": _kdf("memory_cost", 1),
    "memory cost 4 TiB": _kdf("memory_cost", 2**32 - 1),
    "time cost of years": _kdf("time_cost", 2**31),
    "empty salt": _salt(""),
    "short salt": _salt("AAAA"),
    "empty nonce": _field("nonce", ""),
    "short wrapped key": _field("wrapped_key", "AAAA"),
}


@pytest.mark.parametrize("change", ODD_KEY_FILES.values(), ids=ODD_KEY_FILES.keys())
def test_a_key_file_with_impossible_parameters_is_malformed_and_passed_over(
    memory_storage: MemoryStorage, change: Callable[[dict[str, Any]], None]
) -> None:
    repo = init_repo(memory_storage)
    first = repo.key_id_for(PASSPHRASE)
    doc = json.loads(memory_storage.get(f"keys/{first}"))
    del doc["checksum"]  # the first format (or a checksum made anew: the same here)
    change(doc)
    memory_storage.put(f"keys/{first}", json.dumps(doc).encode())
    with pytest.raises(RepositoryError) as info:
        open_repo(memory_storage)
    assert "malformed key file" in str(info.value) and f"keys/{first}" in str(info.value)
    assert not isinstance(info.value, WrongPassphrase)
    # Another key file still opens the repository.
    repo.add_key(OTHER, KDF)
    assert open_repo(memory_storage, OTHER).id == repo.id


class _RacingStorage(MemoryStorage):
    """Runs ``meanwhile`` once, just before the first key file is deleted: another
    process's removal, after this one has checked that a key would remain."""

    meanwhile: Callable[[], None] | None = None

    def delete(self, name: str) -> None:
        if name.startswith("keys/") and self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            meanwhile()
        super().delete(name)


def test_two_removals_at_once_never_leave_the_repository_without_a_key() -> None:
    storage = _RacingStorage("racing")
    here = init_repo(storage)
    first = here.key_id_for(PASSPHRASE)
    second = here.add_key(OTHER, KDF)
    elsewhere = open_repo(storage, OTHER)  # another machine, removing the other key
    storage.meanwhile = lambda: elsewhere.remove_key(first)
    with pytest.raises(RepositoryError) as info:
        here.remove_key(second)
    assert "at the same time" in str(info.value)
    assert names(storage, "keys/") == [f"keys/{second}"]  # put back
    assert open_repo(storage, OTHER).id == here.id


def test_removing_the_last_whole_key_beside_damaged_ones_is_refused(
    memory_storage: MemoryStorage,
) -> None:
    repo = init_repo(memory_storage)
    first = repo.key_id_for(PASSPHRASE)
    second = repo.add_key(OTHER, KDF)
    doc = json.loads(memory_storage.get(f"keys/{second}"))
    _flip_wrapped(doc)
    memory_storage.put(f"keys/{second}", json.dumps(doc).encode())
    before = snapshot(memory_storage)
    with pytest.raises(RepositoryError) as info:
        repo.remove_key(first)
    assert "damaged" in str(info.value) and f"keys/{second}" in str(info.value)
    assert snapshot(memory_storage) == before
    assert open_repo(memory_storage).id == repo.id

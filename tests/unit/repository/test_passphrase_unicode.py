"""A passphrase with accents opens whatever Unicode form it is typed in.

"contraseña" is one string to its owner and two byte sequences to a computer: composed
(NFC, ``ñ`` as one code point, what most keyboards type) and decomposed (NFD, ``n`` and a
combining tilde: text pasted from some macOS applications, PDFs, password managers that
copied it so). argon2id derives from bytes, so a key wrapped under one form did not open
with the other: on the fresh machine of a disaster, the right passphrase was "wrong".
New keys are wrapped under the composed form; a passphrase that opens nothing as given
is tried in its other forms (key files written before this may be under either).
"""

from __future__ import annotations

import base64
import json
import secrets
import unicodedata

import pytest
from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from respaldo.errors import WrongPassphrase
from respaldo.repository import Repository
from respaldo.repository.keys import KdfParams
from respaldo.storage.memory import MemoryStorage
from tests.unit.repository.helpers import KDF, init_repo, open_repo

pytestmark = pytest.mark.unit

SPOKEN = "mi contraseña del año pasado"
NFC = unicodedata.normalize("NFC", SPOKEN)
NFD = unicodedata.normalize("NFD", SPOKEN)


def test_the_two_forms_differ() -> None:
    assert NFC != NFD and NFC.encode() != NFD.encode()


@pytest.mark.parametrize(("made", "typed"), [(NFC, NFD), (NFD, NFC)])
def test_a_repository_opens_with_its_passphrase_in_either_form(
    memory_storage: MemoryStorage, made: str, typed: str
) -> None:
    repo = init_repo(memory_storage, made)
    assert open_repo(memory_storage, typed).id == repo.id
    assert repo.key_id_for(typed) == repo.key_id_for(made)


def test_a_key_file_wrapped_under_the_decomposed_form_still_opens_with_either(
    memory_storage: MemoryStorage,
) -> None:
    # As a respaldo before this wrote it: the passphrase's bytes as typed (NFD).
    repo = init_repo(memory_storage, "an ascii passphrase")
    key_id, doc = _wrapped_as_typed(repo, NFD, KDF)
    memory_storage.put(f"keys/{key_id}", doc)
    with pytest.raises(WrongPassphrase):  # the form it was wrapped under matters
        Repository.open(memory_storage, "not it at all", load_index=False)
    assert open_repo(memory_storage, NFC).id == repo.id
    assert open_repo(memory_storage, NFD).id == repo.id


def test_a_wrong_passphrase_with_accents_is_still_wrong(memory_storage: MemoryStorage) -> None:
    init_repo(memory_storage, NFC)
    with pytest.raises(WrongPassphrase):
        open_repo(memory_storage, unicodedata.normalize("NFD", "mi contraseña de este año"))


def _wrapped_as_typed(repo: Repository, passphrase: str, kdf: KdfParams) -> tuple[str, bytes]:
    """A key file of the first format (docs/repository-format.md, *Keys*) whose key is
    derived from ``passphrase``'s bytes as they are, as earlier versions derived it."""
    key_id, salt, nonce = secrets.token_hex(8), secrets.token_bytes(16), secrets.token_bytes(12)
    kek = hash_secret_raw(
        passphrase.encode("utf-8"),
        salt,
        time_cost=kdf.time_cost,
        memory_cost=kdf.memory_cost,
        parallelism=kdf.parallelism,
        hash_len=32,
        type=Type.ID,
    )
    aad = f"respaldo/key/{repo.id}/{key_id}".encode()
    doc = {
        "version": 1,
        "id": key_id,
        "created": "2025-01-01T00:00:00+00:00",
        "kdf": {
            "algorithm": "argon2id",
            "salt": base64.b64encode(salt).decode(),
            "time_cost": kdf.time_cost,
            "memory_cost": kdf.memory_cost,
            "parallelism": kdf.parallelism,
        },
        "cipher": "aes-256-gcm",
        "nonce": base64.b64encode(nonce).decode(),
        "wrapped_key": base64.b64encode(AESGCM(kek).encrypt(nonce, repo._master_key, aad)).decode(),
    }
    return key_id, json.dumps(doc).encode()

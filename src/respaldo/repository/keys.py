"""Key files: the master key wrapped by a key derived from a passphrase.

``keys/<key id>`` is plain JSON::

    {"version": 1, "id": "<16 hex>", "created": "<ISO 8601>",
     "kdf": {"algorithm": "argon2id", "salt": "<base64, 16 bytes>",
             "time_cost": 3, "memory_cost": 65536, "parallelism": 2},
     "cipher": "aes-256-gcm", "nonce": "<base64, 12 bytes>",
     "wrapped_key": "<base64: AES-256-GCM(kek, nonce, master_key, aad)>",
     "config": {<a copy of the repository's config, with its "mac">},
     "checksum": "sha256:<hex>"}

with ``kek = argon2id(passphrase, salt, …, 32 bytes)`` and
``aad = "respaldo/key/" + repository id + "/" + key id``. Several key files may wrap the
same master key (one per passphrase); removing one never touches the data.

``config`` (absent from key files written before it existed) makes a lost or damaged
repository ``config`` repairable from any key file and its passphrase: its id is the one
the wrapped key is bound to (a passphrase that unwraps with it proves it), and its other
fields are authenticated by the copy's ``mac`` (see :mod:`.config_file`).

``checksum`` (absent from key files written before it existed, which open as before) is
the SHA-256 of the canonical JSON of every other field (keys sorted, separators ``,``
and ``:``). It needs no passphrase: without it, one bit changed in ``salt``, ``nonce`` or
``wrapped_key`` makes AES-GCM fail exactly as a wrong passphrase does, and the operator
is sent to check a passphrase that is right. It is an integrity check against damage,
not an authenticator (AES-GCM is that).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from respaldo.errors import KeyFileDamaged, ObjectNotFound, RepositoryError
from respaldo.storage.base import Storage

KEY_PREFIX = "keys/"


@dataclass(frozen=True)
class KdfParams:
    """argon2id cost parameters. The defaults follow RFC 9106's second recommendation
    (64 MiB, 3 passes); tests lower them to keep the suite fast."""

    time_cost: int = 3
    memory_cost: int = 64 * 1024  # KiB
    parallelism: int = 2


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def passphrase_forms(passphrase: str) -> list[str]:
    """The passphrase as given, then its other Unicode normal forms (composed, NFC, then
    decomposed, NFD) where they differ: "contraseña" typed on one machine and pasted on
    another may be either, and argon2id derives from bytes. New keys are wrapped under
    the composed form; key files of earlier versions under the form as typed."""
    forms = [passphrase]
    for form in ("NFC", "NFD"):
        other = unicodedata.normalize(form, passphrase)
        if other not in forms:
            forms.append(other)
    return forms


def _kek(passphrase: str, salt: bytes, params: KdfParams) -> bytes:
    # Imported here: with the key cache (the default) a wal-push process never derives.
    from argon2.low_level import Type, hash_secret_raw

    return hash_secret_raw(
        passphrase.encode("utf-8"),
        salt,
        time_cost=params.time_cost,
        memory_cost=params.memory_cost,
        parallelism=params.parallelism,
        hash_len=32,
        type=Type.ID,
    )


NONCE_SIZE = 12
WRAPPED_SIZE = 32 + 16
"""A master key and its AES-GCM tag."""
# Bounds of what a key file may ask argon2id for: far above any respaldo writes (3 passes,
# 64 MiB, 2 lanes), far below what would stop a machine.
MAX_TIME_COST = 64
MAX_MEMORY_COST = 4 * 1024 * 1024  # KiB: 4 GiB
MAX_PARALLELISM = 64

_CHECKSUM = "checksum"
_CHECKSUM_ALGORITHM = "sha256:"


def _checksum(doc: dict[str, Any]) -> str:
    """The checksum of a key file's fields other than the checksum itself."""
    body = {k: v for k, v in doc.items() if k != _CHECKSUM}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return _CHECKSUM_ALGORITHM + hashlib.sha256(canonical).hexdigest()


def _aad(repository_id: str, key_id: str) -> bytes:
    return f"respaldo/key/{repository_id}/{key_id}".encode()


def wrap_master_key(
    master_key: bytes,
    passphrase: str,
    repository_id: str,
    params: KdfParams,
    config: dict[str, Any] | None = None,
) -> tuple[str, bytes]:
    """Return (key id, key file bytes) wrapping ``master_key`` with ``passphrase``; the
    key file carries ``config`` (the repository's, with its mac) when given."""
    key_id, doc, _ = wrap_master_key_kek(master_key, passphrase, repository_id, params, config)
    return key_id, doc


def wrap_master_key_kek(
    master_key: bytes,
    passphrase: str,
    repository_id: str,
    params: KdfParams,
    config: dict[str, Any] | None = None,
) -> tuple[str, bytes, bytes]:
    """:func:`wrap_master_key`, and the key derived from ``passphrase`` that wraps it (for
    the key cache: whoever wrote the key file need not derive it again to open it)."""
    if not passphrase:
        raise RepositoryError("the passphrase is empty", hint="choose a long passphrase")
    if config is not None and config.get("id") != repository_id:
        raise ValueError("the config copy must be of the same repository")
    key_id = secrets.token_hex(8)
    salt = secrets.token_bytes(16)
    nonce = secrets.token_bytes(NONCE_SIZE)
    kek = _kek(unicodedata.normalize("NFC", passphrase), salt, params)
    wrapped = AESGCM(kek).encrypt(nonce, master_key, _aad(repository_id, key_id))
    doc: dict[str, Any] = {
        "version": 1,
        "id": key_id,
        "created": datetime.now(UTC).isoformat(),
        "kdf": {
            "algorithm": "argon2id",
            "salt": _b64(salt),
            "time_cost": params.time_cost,
            "memory_cost": params.memory_cost,
            "parallelism": params.parallelism,
        },
        "cipher": "aes-256-gcm",
        "nonce": _b64(nonce),
        "wrapped_key": _b64(wrapped),
    }
    if config is not None:
        doc["config"] = config
    doc[_CHECKSUM] = _checksum(doc)
    return key_id, json.dumps(doc, indent=2).encode(), kek


# Without a readable key file nothing in the repository can be decrypted, and the
# passphrase alone cannot make one again.
_DAMAGED_KEY_HINT = (
    "put back an undamaged copy of this key file (from a backup of the repository's "
    "directory or bucket), or copy a key file from a mirror's keys/ (mirrors wrap the same "
    "master key; it opens with the mirror's passphrase); if the repository has other keys "
    "('respaldo key add'), use one of those"
)


@dataclass(frozen=True)
class KeyFile:
    """A parsed key file. Deriving the passphrase's key (:meth:`kek`, the slow part) is
    apart from unwrapping (:meth:`unwrap`, fast), so that one derivation can try several
    repository ids: telling a wrong passphrase from a damaged ``config`` costs nothing."""

    id: str
    params: KdfParams
    salt: bytes
    nonce: bytes
    wrapped: bytes
    config: dict[str, Any] | None

    @classmethod
    def parse(cls, doc_bytes: bytes, name: str | None = None) -> KeyFile:
        """Raises KeyFileDamaged if the key file's checksum does not match (``name``, the
        object's name, is for the message), RepositoryError if it is malformed."""
        try:
            doc: dict[str, Any] = json.loads(doc_bytes)
            if not isinstance(doc, dict):
                raise TypeError("not a JSON object")
            if _CHECKSUM in doc and doc[_CHECKSUM] != _checksum(doc):
                raise KeyFileDamaged(
                    f"key file {name or doc.get('id')} is damaged: its contents do not "
                    "match its checksum",
                    hint=_DAMAGED_KEY_HINT,
                )
            kdf = doc["kdf"]
            if kdf["algorithm"] != "argon2id" or doc["cipher"] != "aes-256-gcm":
                raise RepositoryError(f"key file {doc.get('id')} uses an unknown algorithm")
            params = KdfParams(
                int(kdf["time_cost"]), int(kdf["memory_cost"]), int(kdf["parallelism"])
            )
            config = doc.get("config")
            key = cls(
                id=str(doc["id"]),
                params=params,
                salt=base64.b64decode(kdf["salt"], validate=True),
                nonce=base64.b64decode(doc["nonce"], validate=True),
                wrapped=base64.b64decode(doc["wrapped_key"], validate=True),
                config=config if isinstance(config, dict) else None,
            )
            key._check_sizes()
            return key
        except (ValueError, KeyError, TypeError) as exc:
            raise RepositoryError(f"malformed key file: {exc}") from None

    def _check_sizes(self) -> None:
        """Raise ValueError for what no respaldo writes: argon2 and AES-GCM would refuse
        it with exceptions of their own (stopping the open even where another key file
        opens), and costs past these bounds would have every process that opens the
        repository allocate or compute for ever (a key file rewritten by someone who can
        write the repository: the checksum is no authenticator)."""
        p = self.params
        if not 1 <= p.time_cost <= MAX_TIME_COST:
            raise ValueError(f"time_cost {p.time_cost} is outside 1..{MAX_TIME_COST}")
        if not 1 <= p.parallelism <= MAX_PARALLELISM:
            raise ValueError(f"parallelism {p.parallelism} is outside 1..{MAX_PARALLELISM}")
        if not 8 * p.parallelism <= p.memory_cost <= MAX_MEMORY_COST:
            raise ValueError(
                f"memory_cost {p.memory_cost} KiB is outside {8 * p.parallelism}..{MAX_MEMORY_COST}"
            )
        if not 8 <= len(self.salt) <= 64:
            raise ValueError(f"the salt is {len(self.salt)} bytes, not 8 to 64")
        if len(self.nonce) != NONCE_SIZE:
            raise ValueError(f"the nonce is {len(self.nonce)} bytes, not {NONCE_SIZE}")
        if len(self.wrapped) != WRAPPED_SIZE:
            raise ValueError(f"the wrapped key is {len(self.wrapped)} bytes, not {WRAPPED_SIZE}")

    @property
    def recorded_id(self) -> str | None:
        """The repository id of the config copy, if the key file carries one."""
        rid = self.config.get("id") if self.config is not None else None
        return rid if isinstance(rid, str) else None

    def keks(self, passphrase: str) -> Iterator[bytes]:
        """The keys derived from each of :func:`passphrase_forms`, derived one at a time
        as they are asked for (an ASCII passphrase has one form: one derivation)."""
        for form in passphrase_forms(passphrase):
            yield _kek(form, self.salt, self.params)

    def open(self, passphrase: str, repository_id: str) -> tuple[bytes, bytes] | None:
        """(master key, the key that unwrapped it) if ``passphrase``, in any of its forms,
        opens this key file for ``repository_id``, else None."""
        for kek in self.keks(passphrase):
            master = self.unwrap(kek, repository_id)
            if master is not None:
                return master, kek
        return None

    def unwrap(self, kek: bytes, repository_id: str) -> bytes | None:
        """The master key if ``kek`` opens this key file for ``repository_id``, else None."""
        try:
            return AESGCM(kek).decrypt(self.nonce, self.wrapped, _aad(repository_id, self.id))
        except InvalidTag:
            return None


def unwrap_master_key(doc_bytes: bytes, passphrase: str, repository_id: str) -> bytes | None:
    """Return the master key if ``passphrase`` opens this key file, else None.

    Raises RepositoryError if the key file is malformed (not merely the wrong passphrase).
    """
    opened = KeyFile.parse(doc_bytes).open(passphrase, repository_id)
    return opened[0] if opened is not None else None


def read_key_files(storage: Storage) -> list[tuple[str, KeyFile]]:
    """Every readable key file. Raises RepositoryError when there is none, naming the
    first malformed one if any."""
    found: list[tuple[str, KeyFile]] = []
    malformed: RepositoryError | None = None
    for info in storage.list(KEY_PREFIX):
        try:
            found.append((info.name, KeyFile.parse(storage.get(info.name), info.name)))
        except ObjectNotFound:
            continue  # removed while we listed ('respaldo key remove')
        except KeyFileDamaged as exc:
            malformed = malformed or exc
        except RepositoryError as exc:
            malformed = malformed or RepositoryError(
                f"{exc.message} [object {info.name}]",
                hint=exc.hint or _DAMAGED_KEY_HINT,
            )
    if not found:
        raise malformed or RepositoryError(
            f"the repository at {storage.location} has no key files",
            hint="copy keys/ back from a mirror of this repository, or put back a key "
            "exported with 'respaldo key export': 'respaldo key import FILE' "
            "(docs/disaster-recovery.md, 'Lost key files')",
        )
    return found

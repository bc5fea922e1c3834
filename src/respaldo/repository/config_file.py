"""The repository's ``config``: reading it, and telling a missing or damaged one apart.

``config`` is plain JSON (format version, repository id, creation time, chunker
parameters) and, since it was introduced, ``"mac"``: HMAC-SHA256, keyed with the config
key that HKDF derives from the master key, of the canonical JSON of every other field
(keys sorted, no spaces). The repository id is the salt of every key derivation; an id
that is wrong by one digit makes every key file fail to unwrap, which without more
knowledge looks exactly like a wrong passphrase. So every key file also carries a copy of
``config`` (:mod:`.keys`), whose id the key file's wrapping is bound to: when no key file
opens under ``config``'s id but one does under the id of its copy, ``config`` is damaged,
and the copy can replace it (:mod:`.config_recovery`).

Repositories written before this carry no ``mac`` and key files without a copy: they open
as before, and any new key file (``respaldo key add``/``passwd``) adds both.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from respaldo.errors import (
    ConfigDamaged,
    ConfigMissing,
    ObjectNotFound,
    RepositoryError,
    RepositoryNotFound,
)
from respaldo.repository.chunker import ChunkerParams
from respaldo.repository.keys import KeyFile
from respaldo.storage.base import Storage

CONFIG_NAME = "config"
FORMAT_VERSION = 1

# Prefixes that only a repository writes: a location holding any of them is a repository,
# with or without its config.
DATA_PREFIXES = ("keys/", "packs/", "index/", "manifests/", "wal/", "clusters/")

RESTORE_HINT = (
    "get config back with 'respaldo repository restore-config': it rewrites it from a key "
    "file and the passphrase, or takes it from a mirror or the local cache "
    "(docs/disaster-recovery.md, 'Lost or damaged repository config')"
)


def _canonical(config: dict[str, Any]) -> bytes:
    body = {key: value for key, value in config.items() if key != "mac"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def config_mac(config_key: bytes, config: dict[str, Any]) -> str:
    return hmac.new(config_key, _canonical(config), hashlib.sha256).hexdigest()


def mac_ok(config_key: bytes, config: dict[str, Any]) -> bool:
    mac = config.get("mac")
    return isinstance(mac, str) and hmac.compare_digest(mac, config_mac(config_key, config))


def with_mac(config_key: bytes, config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with its authenticator (computed afresh)."""
    body = {key: value for key, value in config.items() if key != "mac"}
    return {**body, "mac": config_mac(config_key, body)}


def held_prefixes(storage: Storage) -> list[str]:
    """Which of the repository's prefixes hold at least one object here."""
    return [prefix for prefix in DATA_PREFIXES if next(iter(storage.list(prefix)), None)]


def missing_config(storage: Storage, held: list[str]) -> ConfigMissing:
    found = ", ".join(prefix.rstrip("/") + "/" for prefix in held)
    return ConfigMissing(
        f"{storage.location} holds a repository ({found}) but its config is missing",
        hint=RESTORE_HINT,
    )


def read_config(storage: Storage) -> dict[str, Any]:
    """The repository's ``config``, well-formed but not yet authenticated (that needs the
    master key: :func:`check_config`).

    Raises RepositoryNotFound (nothing there), ConfigMissing (a repository whose config
    is gone) or ConfigDamaged (not a well-formed config).
    """
    try:
        raw = storage.get(CONFIG_NAME)
    except ObjectNotFound:
        held = held_prefixes(storage)
        if held:
            raise missing_config(storage, held) from None
        raise RepositoryNotFound(
            f"no repository at {storage.location}",
            hint="run 'respaldo init' to create it",
        ) from None
    try:
        return parse_config(raw)
    except ValueError as exc:
        raise ConfigDamaged(
            f"the repository config at {storage.location} is damaged: {exc}", hint=RESTORE_HINT
        ) from None


def parse_config(raw: bytes) -> dict[str, Any]:
    """Check the shape of a config document. Raises ValueError saying what is wrong."""
    try:
        config = json.loads(raw)
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
        if not isinstance(config["version"], int):
            raise ValueError("version is not a number")
        rid = config["id"]
        if not isinstance(rid, str) or len(bytes.fromhex(rid)) != 16 or rid != rid.lower():
            raise ValueError(f"id {rid!r} is not 32 lower-case hex digits")
        ChunkerParams.from_json(config["chunker"])
    except KeyError as exc:
        raise ValueError(f"no {exc} field") from None
    except (TypeError, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)) from None
    return config


def check_config(
    config: dict[str, Any],
    config_key: bytes,
    key_files: list[tuple[str, KeyFile]],
    location: str,
) -> None:
    """Authenticate ``config`` (ConfigDamaged, naming the fields that differ from a key
    file's authenticated copy), then its format version (RepositoryError)."""
    copies = [
        (name, key.config)
        for name, key in key_files
        if key.config is not None and mac_ok(config_key, key.config)
    ]
    detail = ""
    if "mac" in config:
        if not mac_ok(config_key, config):
            detail = "it fails authentication"
    elif copies:
        # Every respaldo that writes copies into key files also gives config its mac.
        detail = "its authenticator ('mac') is missing"
    if detail:
        if copies:
            name, copy = copies[0]
            fields = differing_fields(config, copy)
            if fields:
                detail += f"; {_fields_phrase(fields)} from the authenticated copy in {name}"
        raise ConfigDamaged(
            f"the repository config at {location} is damaged or was altered: {detail}",
            hint=RESTORE_HINT,
        )
    if config["version"] != FORMAT_VERSION:
        raise RepositoryError(
            f"repository format {config['version']} is not supported by this version of respaldo",
            hint="upgrade respaldo",
        )


def _fields_phrase(fields: list[str]) -> str:
    """ "the field 'created' differs" or "the fields 'a', 'b' differ": quoted, because
    field names such as ``created`` or ``version`` read as words in a sentence."""
    quoted = ", ".join(f"'{field}'" for field in fields)
    if len(fields) == 1:
        return f"the field {quoted} differs"
    return f"the fields {quoted} differ"


def differing_fields(config: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """Names of the fields (``chunker.min_size`` for nested ones) that differ, mac aside."""
    fields: list[str] = []
    for key in sorted((set(config) | set(other)) - {"mac"}):
        mine, theirs = config.get(key), other.get(key)
        if isinstance(mine, dict) and isinstance(theirs, dict):
            fields += [f"{key}.{sub}" for sub in differing_fields(mine, theirs)]
        elif mine != theirs:
            fields.append(key)
    return fields

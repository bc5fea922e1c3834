"""Putting a key file back into a repository from a copy kept elsewhere.

A key file (:mod:`.keys`) wraps the master key with a key derived from a passphrase, so a
copy of it (``respaldo key export``) can be kept outside the repository, away from the
passphrase: when the repository's own key files are lost, that copy and the passphrase
open the data again. A copy is accepted only if the passphrase opens it under this
repository's id (config's, or, where config is lost, the id its own config copy records),
and if the keys so derived open the repository's pack headers; nothing but the key file
itself is ever written.
"""

from __future__ import annotations

from dataclasses import dataclass

from respaldo.errors import ConfigDamaged, ConfigMissing, RepositoryError, WrongPassphrase
from respaldo.repository.config_file import read_config
from respaldo.repository.config_recovery import opens_the_data
from respaldo.repository.crypto import KeySet, Sealer
from respaldo.repository.keys import KEY_PREFIX, KeyFile
from respaldo.storage.base import Storage, validate_name


@dataclass(frozen=True)
class ImportedKey:
    key_id: str
    repository_id: str
    config_missing: bool
    """The repository's config is lost or damaged: restore it next (the key file carries
    a copy)."""


def import_key(storage: Storage, doc: bytes, passphrase: str) -> ImportedKey:
    """Write key file ``doc`` into the repository at ``storage`` once it is proven to be
    this repository's. Raises RepositoryError (malformed, of another repository, or not
    opening the data), WrongPassphrase, RepositoryNotFound where there is no repository;
    in every case nothing is written."""
    key = KeyFile.parse(doc, "given")
    config_missing = False
    try:
        repository_id: str | None = read_config(storage)["id"]
    except (ConfigMissing, ConfigDamaged):
        config_missing = True
        repository_id = key.recorded_id
        if repository_id is None:
            raise RepositoryError(
                f"the config of the repository at {storage.location} is lost, and the key "
                "file given (of the first format) does not say which repository it is of",
                hint="restore the config first ('respaldo repository restore-config')",
            ) from None
    assert repository_id is not None
    if key.recorded_id is not None and key.recorded_id != repository_id:
        raise RepositoryError(
            f"the key file given is of repository {key.recorded_id}, not of the one at "
            f"{storage.location} ({repository_id})",
            hint="export the key of this repository, or import this one where it belongs",
        )
    opened = key.open(passphrase, repository_id)
    if opened is None:
        raise WrongPassphrase(
            "the configured passphrase does not open the key file given",
            hint="set the passphrase the key was exported with (RESPALDO_PASSPHRASE or "
            "passphrase_file)",
        )
    if not opens_the_data(storage, Sealer(KeySet.derive(opened[0], repository_id))):
        raise RepositoryError(
            f"the key file given opens, but not the data of the repository at {storage.location}",
            hint="export the key of this repository (from a mirror, or your copy of it)",
        )
    storage.put(validate_name(f"{KEY_PREFIX}{key.id}"), doc)
    return ImportedKey(key.id, repository_id, config_missing)

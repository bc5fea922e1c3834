"""``respaldo init`` keeps the keys it derived in the machine's key cache: the first
backup after it derives nothing, for the primary or for a mirror.

Each repository's key file is wrapped with a key derived from the passphrase (argon2id,
64 MiB); init derived it to write the key file and threw it away, so the first backup
derived it again, once for the primary and once more for each mirror it copies to (a
backup with an S3 mirror peaked 40 MiB higher for it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from respaldo.config import load_settings
from respaldo.operations.initialize import initialize
from tests.unit.operations.support import FAST_KDF, Installation, write_config
from tests.unit.repository.helpers import Derivations

pytestmark = pytest.mark.unit


def test_the_repositories_init_made_open_without_a_derivation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    installation = Installation.create(tmp_path)
    derivations = Derivations(monkeypatch)
    primary = installation.repository("local")
    mirror = installation.repository("second")
    assert (primary.id, derivations.count) == (mirror.id, 0)
    # What was cached is the key of each repository's own key file, one apiece.
    assert len(list((tmp_path / "cache" / primary.id / "keys").iterdir())) == 2


def test_without_the_key_cache_init_caches_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    config.write_text("key_cache = false\n" + config.read_text())
    initialize(load_settings(config), kdf=FAST_KDF)
    assert not list((tmp_path / "cache").rglob("keys"))

"""The configuration the alert tests share: one local repository and one database that
is "down" (nothing listens on its port), so that a backup of it fails at once, with the
notification section each test gives."""

from __future__ import annotations

from pathlib import Path

from respaldo.config import load_settings
from respaldo.operations.initialize import initialize
from tests.configs import local_config
from tests.integration.logical.conftest import FAST_KDF
from tests.ports import closed_port


def down_database_config(tmp_path: Path, notifications: str) -> Path:
    """Writes and initializes ``respaldo.toml`` under ``tmp_path`` (the passphrase comes
    from RESPALDO_PASSPHRASE, which the caller sets); ``notifications`` is the TOML of the
    ``[notifications]`` section and its targets."""
    config = local_config(
        tmp_path,
        f"""
[[databases]]
name = "erp"
dsn = "postgresql://respaldo@127.0.0.1:{closed_port()}/erp"

{notifications}""",
    )
    initialize(load_settings(config), kdf=FAST_KDF)
    return config

"""A secret file the OS user running respaldo cannot read: the error says who and how.

``archive_command`` and ``restore_command`` run respaldo as the server's OS user
(``postgres``); a ``passphrase_file`` or ``secret_access_key_file`` left owned by root
made every push and fetch fail with "cannot read passphrase_file …: Permission denied"
and nothing else, in the server's log. The error's hint now names the user and the
command that lets it read the file, in the words of the physical restore's own check
(respaldo.readable). The real console script runs as that user (``runuser``); the
command fails before it reaches any repository, so none is made.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.physical.conftest import OS_USER, server_respaldo

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="the case is root and the server's user"),
]


def _secret(path: Path) -> Path:
    path.parent.mkdir(exist_ok=True)
    path.write_text("only root reads this\n")
    path.chmod(0o600)
    return path


def _fetch_as_server_user(config: Path) -> str:
    fetch = ["wal-fetch", "000000010000000000000001", str(config.parent / "fetched")]
    done = subprocess.run(
        ["runuser", "-u", OS_USER, "--", server_respaldo(), "--config", str(config), *fetch],
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "RESPALDO_PASSPHRASE"},
    )
    assert done.returncode == 255, done.stderr
    return done.stderr


def _config(base: Path, text: str) -> Path:
    config = base / "respaldo.toml"
    config.write_text(f'cache_dir = "{base / "cache"}"\n{text}')
    config.chmod(0o644)
    return config


def test_a_secret_access_key_file_only_root_reads(enterable_dir: Path) -> None:
    key = _secret(enterable_dir / "s3-secret")
    config = _config(
        enterable_dir,
        f"""
[[repositories]]
name = "offsite"
url = "s3://respaldo/main"
endpoint_url = "http://127.0.0.1:1"
access_key_id = "respaldo"
secret_access_key_file = "{key}"
""",
    )
    err = _fetch_as_server_user(config)
    assert f"cannot read secret_access_key_file {key}: Permission denied" in err
    assert (
        f"respaldo: hint: respaldo runs as OS user {OS_USER}, which must be able to read "
        f"secret_access_key_file {key}: chown {OS_USER} {key}\n"
    ) in err


def test_a_passphrase_file_in_a_directory_only_root_enters(enterable_dir: Path) -> None:
    closed = enterable_dir / "secrets"
    passphrase = _secret(closed / "passphrase")
    closed.chmod(0o700)
    config = _config(
        enterable_dir,
        f"""passphrase_file = "{passphrase}"

[[repositories]]
name = "local"
url = "file://{enterable_dir / "repo"}"
""",
    )
    err = _fetch_as_server_user(config)
    assert f"cannot read passphrase_file {passphrase}: Permission denied" in err
    assert f"which must be able to read passphrase_file {passphrase}: chmod o+x {closed}\n" in err

"""Which key and secret files respaldo accepts: never one others can read; the HTTPS
server's key also as Debian keeps it (root:ssl-cert 0640), the rule PostgreSQL applies
to its own ssl_key_file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from respaldo.config import check_private_file, read_secret_file
from respaldo.errors import ConfigError

pytestmark = pytest.mark.unit

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
NOBODY = 65534


def _key(tmp_path: Path, mode: int, *, uid: int | None = None) -> Path:
    key = tmp_path / "server.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    if uid is not None:
        os.chown(key, uid, -1)
    key.chmod(mode)
    return key


@as_root
def test_a_tls_key_owned_by_root_may_be_read_by_its_group(tmp_path: Path) -> None:
    # Debian: /etc/ssl/private/*.key root:ssl-cert 0640, respaldo's user in ssl-cert.
    check_private_file(_key(tmp_path, 0o640, uid=0), "[server] tls_key", root_group_read=True)


@as_root
@pytest.mark.parametrize("mode", [0o644, 0o604, 0o660, 0o650])
def test_a_root_owned_tls_key_others_can_read_or_its_group_write_is_refused(
    tmp_path: Path, mode: int
) -> None:
    key = _key(tmp_path, mode, uid=0)
    with pytest.raises(ConfigError) as caught:
        check_private_file(key, "[server] tls_key", root_group_read=True)
    assert str(key) in str(caught.value)
    assert caught.value.hint == f"chmod 640 {key} (owned by root: u=rw,g=r at most)"
    assert key.stat().st_mode & 0o777 == mode  # nothing changed


@as_root
def test_a_tls_key_of_another_owner_must_be_its_owners_alone(tmp_path: Path) -> None:
    key = _key(tmp_path, 0o640, uid=NOBODY)
    with pytest.raises(ConfigError) as caught:
        check_private_file(key, "[server] tls_key", root_group_read=True)
    assert "readable by group or others" in str(caught.value)
    hint = caught.value.hint or ""
    assert f"chmod 600 {key}" in hint and "owned by root" in hint and "640" in hint
    check_private_file(_key(tmp_path, 0o600, uid=NOBODY), "[server] tls_key", root_group_read=True)


@as_root
def test_a_secret_respaldo_reads_itself_stays_its_owners_alone(tmp_path: Path) -> None:
    # The JWT secret, passwords, passphrases: 0600 even when root owns them.
    key = _key(tmp_path, 0o640, uid=0)
    with pytest.raises(ConfigError) as caught:
        read_secret_file(key, "[server] jwt_secret_file")
    assert caught.value.hint == f"chmod 600 {key}"

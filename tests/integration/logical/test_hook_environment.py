"""Restore hooks run with the environment they need, without respaldo's secrets.

The hooks of a ``--replace`` are the operator's programs (``systemctl stop erp``); they
must not receive the repository passphrase, a stray ``PGPASSWORD`` or storage
credentials from respaldo's environment. Each hook here writes what it received.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.logical.conftest import PASSPHRASE, Respaldo

pytestmark = pytest.mark.integration

STRAY_PASSWORD = "stray-pgpassword-5e2a"
AWS_SECRET = "aws-secret-c0ffee"


def _environ(path: Path) -> dict[str, str]:
    return {k: v for k, _, v in (line.partition("=") for line in path.read_text().splitlines())}


def test_hooks_get_no_passphrase_and_no_passwords(
    respaldo: Respaldo, monkeypatch: pytest.MonkeyPatch
) -> None:
    pre, post = respaldo.tmp / "pre.env", respaldo.tmp / "post.env"
    dsn = f"postgresql://{respaldo.pg.superuser}@{respaldo.pg.host}:{respaldo.pg.port}/postgres"
    with respaldo.config.open("a") as fh:
        fh.write(
            f"""
[[databases]]
name = "erp_envhooks"
dsn = "{dsn}"
password_file = "{respaldo.tmp / "erp.pass"}"
pre_restore_hook = {json.dumps(["sh", "-c", f"env > {pre}"])}
post_restore_hook = {json.dumps(["sh", "-c", f"env > {post}"])}
"""
        )
    monkeypatch.setenv("PGPASSWORD", STRAY_PASSWORD)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("LC_MESSAGES", "C")
    backup_id = respaldo.backup()["id"]

    respaldo.restore(backup_id, respaldo.dbname, "--replace", "--database", "erp_envhooks")

    for path in (pre, post):
        text = path.read_text()
        for secret in (
            PASSPHRASE,
            STRAY_PASSWORD,
            AWS_SECRET,
            respaldo.pg.password.get_secret_value(),
        ):
            assert secret not in text, path.name
        environ = _environ(path)
        assert not [name for name in environ if name.startswith("RESPALDO_")]
        assert environ["PATH"]
        assert environ["LC_MESSAGES"] == "C"

"""``respaldo serve`` that cannot start (here: its catalog is damaged) alerts, once per
repeat interval however often its service manager starts it again: nothing runs the
schedule meanwhile, and the watchdog that would tell is the service's own. A real serve
process and a real webhook."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.configs import local_config
from tests.servers.notify import Webhook, webhook  # noqa: F401

pytestmark = pytest.mark.integration


def _config(tmp_path: Path, hook: str) -> Path:
    catalog = tmp_path / "catalog.db"
    catalog.write_bytes(b"not a database, a disk's damage " * 256)
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("serve start passphrase\n")
    passphrase.chmod(0o600)
    return local_config(
        tmp_path,
        f"""
[server]
listen = "127.0.0.1:0"

[[databases]]
name = "erp"
dsn = "postgresql://respaldo@127.0.0.1:1/erp"

[[notifications.targets]]
name = "hook"
url = "{hook}"
""",
        settings=f'passphrase_file = "{passphrase}"',
    )


def _serve(config: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "respaldo.cli.main", "--config", str(config), "serve"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def test_a_serve_that_cannot_start_alerts_once_per_repeat_interval(
    tmp_path: Path,
    webhook: Webhook,  # noqa: F811
) -> None:
    config = _config(tmp_path, webhook.url)
    first = _serve(config)
    assert first.returncode == 1, first.stderr
    assert "respaldo: error: cannot open the catalog" in first.stderr
    (told,) = webhook.inbox.wait(1)
    body = told["json"]
    assert body["title"] == "[respaldo] CRITICAL: service start failed", body
    assert "cannot open the catalog" in body["message"], body
    assert "file is not a database" in body["message"], body
    # Restarted by its service manager (Restart=on-failure, every 30 s): not told again.
    again = _serve(config)
    assert again.returncode == 1, again.stderr
    assert len(webhook.inbox.items) == 1, webhook.inbox.items

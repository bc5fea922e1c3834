"""A server respaldo starts keeps no secret of respaldo's environment.

``restore --start`` leaves the restored server running, and it hands its environment to
its own children (``restore_command``, ``COPY … TO PROGRAM``): read from
``/proc/PID/environ`` of the real postmaster.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sample.cluster import TempCluster

from tests.integration.physical.conftest import PASSPHRASE, Archiving

pytestmark = pytest.mark.integration

JSON_PASSWORD = "json-password-5d21"
STRAY_PASSWORD = "stray-pgpassword-e03c"


def _proc_environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(): v.decode(errors="replace") for k, v in pairs}


def test_the_restored_server_gets_no_passphrase_and_no_password(
    archiving: Archiving, restored_servers: list[TempCluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    record = archiving.backup()
    # The config has a passphrase_file: the passphrase in the environment (the same one,
    # so that it opens the repository) is not the server's to keep.
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv(
        "RESPALDO_DATABASES",
        f'[{{"name": "x", "dsn": "host=h", "password": "{JSON_PASSWORD}"}}]',
    )
    monkeypatch.setenv("PGPASSWORD", STRAY_PASSWORD)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-9a4b")
    monkeypatch.setenv("LC_TIME", "C")
    restored, datadir, _ = archiving.restore_started(record["id"], restored_servers)
    pid = int((datadir / "postmaster.pid").read_text().splitlines()[0])
    environ = _proc_environ(pid)
    text = "\n".join(f"{k}={v}" for k, v in environ.items())
    for secret in (PASSPHRASE, JSON_PASSWORD, STRAY_PASSWORD, "aws-secret-9a4b"):
        assert secret not in text
    assert not [name for name in environ if name.startswith(("RESPALDO_", "AWS_"))]
    assert "PGPASSWORD" not in environ
    assert environ["PATH"] and environ["LC_TIME"] == "C"
    # The server works with it: recovery fetched WAL through restore_command.
    assert restored.scalar("SELECT pg_is_in_recovery()") is False

"""A real ``respaldo serve`` process over HTTPS (a self-signed certificate made here):
the specification's BackupManager calls, replayed exactly (list, create a full backup,
restore it with the confirm dialog's answer), against the service's own job workers."""

from __future__ import annotations

import signal
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
from sample.cluster import TempCluster

from respaldo.config import load_settings
from respaldo.domain import Role
from tests.integration.api.conftest import token
from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import table_checksums
from tests.integration.logical.test_replace import _spoil
from tests.integration.logical.test_serve import ANY_PORT, listening_port, serving
from tests.servers.tls import self_signed
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def https_config(respaldo: Respaldo, cert: Path, key: Path, port: int = ANY_PORT) -> Path:
    """The test's config with only the erp database, no schedule, HTTPS on ``port``."""
    text = respaldo.config.read_text()
    text = text[: text.index('[[databases]]\nname = "erp_hooked"')]
    text += f"""
[schedules]
full = "off"
incremental = "off"
restore_test = "off"
cleanup = "off"
verify = "off"

[server]
listen = "127.0.0.1:{port}"
tls_certificate = "{cert}"
tls_key = "{key}"
"""
    path = respaldo.tmp / "https.toml"
    path.write_text(text)
    return path


def answers(client: httpx.Client) -> bool:
    try:
        client.get("/health")
    except httpx.TransportError:
        return False
    return True


def job_ended(client: httpx.Client, job_id: int) -> dict[str, Any] | None:
    job: dict[str, Any] = client.get(f"/admin/jobs/{job_id}").json()
    return job if job["status"] not in ("queued", "running") else None


def test_the_backup_manager_calls_over_https_against_respaldo_serve(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    cert, key = self_signed(respaldo.tmp, "https")
    config = https_config(respaldo, cert, key)
    headers = token(load_settings(config), "erp-page", Role.ADMIN)
    trusted = ssl.create_default_context(cafile=str(cert))
    with serving(config) as process:
        port = listening_port(process, "https")
        with httpx.Client(
            base_url=f"https://127.0.0.1:{port}", headers=headers, verify=trusted, timeout=60
        ) as page:
            assert answers(page)
            with pytest.raises(httpx.TransportError):
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=30)  # no plain HTTP

            # BackupManager: loadBackups() maps response.data directly.
            assert page.get("/admin/backups").json() == []
            # createBackup('full')
            created = page.post("/admin/backups", json={"type": "full"})
            assert created.status_code == 202, created.text
            record = created.json()
            assert record["status"] in ("pending", "in_progress")
            wait_for("the backup", lambda: job_ended(page, record["jobId"]) is not None)
            assert job_ended(page, record["jobId"])["status"] == "completed"  # type: ignore[index]
            listed = page.get("/admin/backups").json()
            assert [(r["id"], r["status"]) for r in listed] == [(record["id"], "completed")]
            assert listed == respaldo.run("list", "--json").json()

            backed_up = table_checksums(pg, respaldo.dbname)
            _spoil(pg, respaldo.dbname)
            # restoreBackup(id) after the confirm dialog: the database's name typed in.
            restored = page.post(
                f"/admin/backups/{record['id']}/restore", json={"replace": True, "confirm": "erp"}
            )
            assert restored.status_code == 202, restored.text
            assert set(restored.json()) >= {"message", "jobId"}
            wait_for("the restore", lambda: job_ended(page, restored.json()["jobId"]) is not None)
            job = job_ended(page, restored.json()["jobId"])
            assert job is not None and job["status"] == "completed", job
            assert table_checksums(pg, respaldo.dbname) == backed_up

            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err

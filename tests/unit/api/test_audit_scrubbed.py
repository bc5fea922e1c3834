"""The audit entry of a change the API refused holds the reason as the client read it:
scrubbed of the server's secrets and of the paths of the files holding them (a real
SQLite catalog and a local repository)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from respaldo.api import create_app
from respaldo.config import Settings
from respaldo.domain import AuditAction, BackupKind, Role
from respaldo.operations import audit
from respaldo.operations.context import Context
from respaldo.operations.repositories import init_repositories
from tests.unit.access.conftest import write_secret
from tests.unit.api.conftest import FAST_KDF, completed_backup, token_headers


def test_a_refused_delete_is_audited_without_the_secret_files_path(tmp_path: Path) -> None:
    passphrase = write_secret(tmp_path / "passphrase", "correct horse (test) phrase")
    settings = Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        repositories=[{"name": "local", "url": f"file://{tmp_path / 'repo'}"}],
        cache_dir=tmp_path / "cache",
        passphrase_file=passphrase,
    )
    init_repositories(settings, kdf=FAST_KDF)
    with Context.open(settings, create=True) as context:
        now = datetime.now(UTC)
        old = completed_backup(context, "erp", BackupKind.FULL, now - timedelta(hours=2))
        completed_backup(context, "erp", BackupKind.FULL, now - timedelta(hours=1))
        headers = token_headers(context, "boss", Role.ADMIN)
        # Made readable by others under the running service: the repository refuses it.
        passphrase.chmod(0o644)
        with TestClient(create_app(settings, context), headers=headers) as client:
            answer = client.delete(f"/admin/backups/{old}")
        (entry,) = audit.entries(context, action=AuditAction.BACKUP_DELETE)
    assert answer.status_code == 503
    assert (entry.target, entry.outcome.value) == (old, "failure")
    assert entry.detail == answer.json()["detail"]
    assert str(passphrase) not in (entry.detail or "")

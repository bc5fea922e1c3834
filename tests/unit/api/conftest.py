"""An API over a real SQLite catalog and local repositories, no PostgreSQL: records are
written into the catalog directly."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from respaldo.catalog import BackupRecords
from respaldo.config import Settings
from respaldo.domain import BackupKind, Role, TriggeredBy
from respaldo.operations.api_tokens import create_token
from respaldo.operations.context import Context
from respaldo.operations.principal import local_principal
from respaldo.operations.repositories import init_repositories
from respaldo.repository import KdfParams

FAST_KDF = KdfParams(time_cost=1, memory_cost=8 * 1024, parallelism=1)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", "correct horse (test)")
    return Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        repositories=[
            {"name": "local", "url": f"file://{tmp_path / 'repo'}"},
            {"name": "offsite", "url": f"file://{tmp_path / 'offsite'}"},
        ],
        cache_dir=tmp_path / "cache",
    )


@pytest.fixture
def context(settings: Settings) -> Iterator[Context]:
    init_repositories(settings, kdf=FAST_KDF)
    with Context.open(settings, create=True) as opened:
        yield opened


def completed_backup(
    context: Context,
    database: str,
    kind: BackupKind,
    when: datetime,
    *,
    verified: bool = False,
) -> str:
    """A completed backup's record (no manifest behind it), made at ``when``."""
    with context.catalog.begin() as session:
        records = BackupRecords(session)
        record = records.create_pending(
            kind=kind,
            repository="local",
            triggered_by=TriggeredBy.SCHEDULE,
            retention_days=7,
            database_name=database,
            now=when,
        )
        records.start(record.id, 1, now=when)
        records.complete(
            record.id,
            completed_at=when + timedelta(minutes=1),
            size_bytes=1,
            size_compressed=1,
            checksum="0" * 64,
            manifest=f"manifests/{record.id}",
        )
        if verified:
            records.set_verified(record.id, when + timedelta(minutes=2))
        return record.id


def token_headers(context: Context, name: str, role: Role) -> dict[str, str]:
    """The Authorization header of a new API token ``name`` with ``role``."""
    token = create_token(context, name, role, actor=local_principal()).token
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def admin(context: Context) -> dict[str, str]:
    """The Authorization header of an admin's API token."""
    return token_headers(context, "admin", Role.ADMIN)

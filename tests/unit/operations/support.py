"""A respaldo installation without PostgreSQL: config file, SQLite catalog, a primary and a
secondary local repository, and backups written straight through the repository layer with
catalog records dated as the test wants.

The prune tests need histories of weeks of backups; taking them with pg_dump would cost
minutes, and what prune looks at (records, manifests, chunks) is the same either way.
Backups of "the same database" share most of their bytes, as successive dumps do.
"""

from __future__ import annotations

import hashlib
import io
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import respaldo.repository.repo
from respaldo.catalog import BackupRecords
from respaldo.cli.main import invoke
from respaldo.config import Settings, load_settings
from respaldo.domain import BackupKind, BackupStatus, TriggeredBy, new_backup_id
from respaldo.operations.context import Context
from respaldo.operations.copy import replicate
from respaldo.operations.initialize import initialize
from respaldo.operations.repositories import open_repository
from respaldo.repository import BackupWriter, KdfParams, Repository, iter_stream
from respaldo.storage.local import LocalStorage

PASSPHRASE = "prune tests passphrase"
FAST_KDF = KdfParams(time_cost=1, memory_cost=1024, parallelism=1)
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class FastDefaultKdf(KdfParams):
    """KdfParams whose defaults are FAST_KDF's."""

    time_cost: int = FAST_KDF.time_cost
    memory_cost: int = FAST_KDF.memory_cost
    parallelism: int = FAST_KDF.parallelism


def fast_new_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Key files that the commands write (``init``, ``key add``, ``key passwd``) wrapped
    with FAST_KDF instead of the default argon2id (64 MiB, 3 passes): each derivation of
    those costs 0.1-1 s, and the key tests open every repository with each passphrase
    several times. test_key_changes.py checks that the commands use the default."""
    monkeypatch.setattr(respaldo.repository.repo, "KdfParams", FastDefaultKdf)


BASE_SIZE = 120_000


def data_for(backup_id: str, database: str = "erp") -> bytes:
    """The "dump" of a backup: a base shared by every backup of the database, changed in
    a few places that depend on the backup id (reproducible from the id alone)."""
    base = random.Random(database).randbytes(BASE_SIZE)
    rng = random.Random(backup_id)
    out = bytearray(base)
    for _ in range(3):
        at = rng.randrange(BASE_SIZE)
        out[at:at] = rng.randbytes(4000)
    return bytes(out)


def write_config(root: Path, *, secondary: bool = True, extra: str = "") -> Path:
    text = f"""
cache_dir = "{root / "cache"}"
pack_size = 65536
workers = 2

[catalog]
url = "sqlite:///{root / "catalog.db"}"

[chunker]
min_size = 256
avg_size = 1024
max_size = 4096

[locks]
wait_seconds = 0
stale_after_seconds = 600

[[repositories]]
name = "local"
url = "file://{root / "repo"}"
"""
    if secondary:
        text += f"""
[[repositories]]
name = "second"
url = "file://{root / "second"}"
"""
    text += f"""
[[databases]]
name = "erp"
dsn = "postgresql://nobody@127.0.0.1:1/erp"

[[databases]]
name = "crm"
dsn = "postgresql://nobody@127.0.0.1:1/crm"
{extra}
"""
    path = root / "respaldo.toml"
    path.write_text(text)
    return path


@dataclass
class Installation:
    root: Path
    config: Path
    _ctx: Context | None = None
    _primary: Repository | None = None

    @classmethod
    def create(cls, root: Path, *, secondary: bool = True, extra: str = "") -> Installation:
        config = write_config(root, secondary=secondary, extra=extra)
        initialize(load_settings(config), kdf=FAST_KDF)
        return cls(root, config)

    def close(self) -> None:
        if self._ctx is not None:
            self._ctx.close()
            self._ctx = None

    def settings(self) -> Settings:
        return load_settings(self.config)

    def context(self) -> Context:
        """A new context (the caller closes it), as each respaldo command opens one."""
        return Context.open(self.settings())

    @property
    def ctx(self) -> Context:
        """The installation's own long-lived context, for setting up histories."""
        if self._ctx is None:
            self._ctx = self.context()
        return self._ctx

    def repository(self, name: str | None = None) -> Repository:
        return open_repository(self.settings(), name)

    def backup(
        self,
        age: timedelta,
        *,
        database: str = "erp",
        failed: bool = False,
        verified: bool | None = None,
        pinned: bool = False,
        kind: BackupKind = BackupKind.FULL,
        parent: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> str:
        """A backup completed (or failed) ``age`` before NOW, in the primary only (see
        :meth:`replicate`); ``parent`` is the backup an incremental one builds on; ``meta``
        is added to its manifest's."""
        when = NOW - age
        backup_id = new_backup_id(when)
        catalog = self.ctx.catalog
        with catalog.begin() as session:
            records = BackupRecords(session)
            records.create_pending(
                kind=kind,
                repository="local",
                triggered_by=TriggeredBy.SCHEDULE,
                retention_days=7,
                database_name=database,
                backup_id=backup_id,
                pinned=pinned,
                now=when - timedelta(minutes=10),
            )
            records.start(backup_id, 1, now=when - timedelta(minutes=10))
            if failed:
                records.fail(backup_id, "pg_dump exited with status 1", now=when)
                return backup_id
        if self._primary is None:
            self._primary = self.repository()
        data = data_for(backup_id, database)
        meta = dict(meta or {})
        if parent is not None:
            # As an incremental physical backup records its chain (operations.physical).
            chain = self._primary.load_manifest(parent).meta.get("chain", [])
            meta |= {"incremental_of": parent, "chain": [*chain, parent]}
        with BackupWriter(self._primary, backup_id) as writer:
            writer.write_stream("dump", io.BytesIO(data))
            writer.commit(kind=kind.value, source=database, started_at=when, meta=meta)
        with catalog.begin() as session:
            records = BackupRecords(session)
            records.complete(
                backup_id,
                completed_at=when,
                size_bytes=len(data),
                size_compressed=len(data),
                checksum=hashlib.sha256(data).hexdigest(),
                manifest=f"manifests/{backup_id}",
                parent_id=parent,
            )
            if verified is not None:
                records.set_verified(backup_id, when + timedelta(hours=1), verified=verified)
        return backup_id

    def replicate(self) -> None:
        """Copy every backup the secondary lacks, as each real backup does at its end."""
        outcomes = replicate(self.ctx)
        assert all(o.ok for o in outcomes), outcomes

    def record_ids(self) -> set[str]:
        with self.ctx.catalog.begin() as session:
            return {r.id for r in BackupRecords(session).list()}

    def completed_ids(self) -> set[str]:
        with self.ctx.catalog.begin() as session:
            completed = BackupRecords(session).list(status=BackupStatus.COMPLETED)
            return {r.id for r in completed}

    def manifests(self, name: str | None = None) -> set[str]:
        storage = LocalStorage(self.root / ("second" if name == "second" else "repo"))
        return {i.name.split("/", 1)[1] for i in storage.list("manifests/")}

    def read(self, backup_id: str, name: str | None = None) -> bytes:
        repo = self.repository(name)
        return b"".join(iter_stream(repo, repo.load_manifest(backup_id), "dump"))


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``respaldo ARGV`` in this process: its exit status, stdout and stderr."""
    capsys.readouterr()
    code = invoke(list(argv))
    out, err = capsys.readouterr()
    return code, out, err

"""Incremental physical backups (PostgreSQL 17+): which backup a new one builds on.

With ``summarize_wal = on`` the server can send only the blocks changed since an earlier
backup (``pg_basebackup --incremental`` with that backup's ``backup_manifest``). Such a
backup restores only on top of its *chain*: the full backup it ultimately builds on and
every incremental in between, combined by ``pg_combinebackup``
(operations/physical_restore.py). For the user every backup still restores on its own;
the chain is recorded in the manifest (``chain``: ids oldest first, ``incremental_of``:
the parent) and in the catalog (``parent_id``, which retention follows, so that a
parent is kept as long as a child is).

A backup is incremental when it can be: the server is 17 or newer with summaries that
reach back to the previous physical backup of the database, which is of the same
cluster, holds its ``backup_manifest`` as a stream, did not fail verification (a repair
that found its chunks lost, a failed restore test: that failure is also every backup's
built on it, see ``BackupRecords.set_verified``), and is not at the end of a chain of
:data:`MAX_CHAIN` incrementals already (a full backup then starts a new chain, so that a
restore never combines more than ``MAX_CHAIN`` + 1 backups, and a damaged old full backup
stops mattering after a week of daily backups). Otherwise it is full, and the manifest
says why (``full_reason``).
"""

from __future__ import annotations

from dataclasses import dataclass

from respaldo.catalog.backups import BackupRecords, has_failed_verification
from respaldo.domain import BackupKind, BackupStatus
from respaldo.operations.context import Context
from respaldo.postgres import ConnInfo, ServerInfo
from respaldo.postgres.basebackup import incremental_refusal
from respaldo.postgres.wal import parse_lsn
from respaldo.repository import Manifest, Repository, iter_stream

MANIFEST_STREAM = "backup_manifest"
"""The stream of a physical backup holding its ``backup_manifest`` alone: what the next
incremental backup hands to the server, without reading the whole base stream."""
MAX_CHAIN = 6
"""Incremental backups on one full backup before the next full one."""
FIRST_INCREMENTAL_MAJOR = 17


@dataclass(frozen=True)
class Parent:
    """The backup a new incremental builds on, and its ``backup_manifest``."""

    manifest: Manifest
    backup_manifest: bytes

    @property
    def chain(self) -> list[str]:
        """The new backup's chain: the parent's own, then the parent."""
        return [*self.manifest.meta.get("chain", []), self.manifest.backup_id]


def choose_parent(
    ctx: Context, repo: Repository, database: str, conninfo: ConnInfo, server: ServerInfo
) -> tuple[Parent | None, str]:
    """The backup a new physical backup of ``database`` can be incremental on, or None
    and why not. Raises ConnectionFailed, QueryFailed, RepositoryError."""
    if server.major < FIRST_INCREMENTAL_MAJOR:
        return None, f"PostgreSQL {server.major} has no incremental backups (17+)"
    with ctx.catalog.begin() as session:
        latest = BackupRecords(session).list(
            database=database,
            kind=BackupKind.INCREMENTAL,
            status=BackupStatus.COMPLETED,
            limit=1,
        )
    if not latest:
        return None, "no earlier physical backup of this database"
    previous = latest[0]
    if has_failed_verification(previous):
        # Built on it, the new backup could not restore either (pg_combinebackup needs
        # the whole chain), and would still count as the database's good recovery point.
        return None, (
            f"the previous physical backup ({previous.id}) failed verification: a full one "
            "starts a new chain"
        )
    manifest = repo.load_manifest(latest[0].id)
    meta = manifest.meta
    if str(meta.get("system_identifier")) != str(server.system_identifier):
        return None, "the previous physical backup is of another cluster"
    if MANIFEST_STREAM not in {s.name for s in manifest.streams}:
        return None, "the previous physical backup does not hold its backup_manifest"
    if len(meta.get("chain", [])) >= MAX_CHAIN:
        return None, f"{MAX_CHAIN} incremental backups in a row: a full one starts a new chain"
    refusal = incremental_refusal(
        conninfo, int(meta["timeline"]), parse_lsn(str(meta["start_lsn"]))
    )
    if refusal is not None:
        return None, refusal
    data = b"".join(iter_stream(repo, manifest, MANIFEST_STREAM))
    return Parent(manifest, data), ""

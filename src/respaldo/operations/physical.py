"""Physical backups (kind ``incremental``): the whole cluster, through pg_basebackup.

The stream ``base``: the tar ``pg_basebackup -Ft -D - -X fetch -c fast`` writes, WAL
included. It passes through the chunker like a dump: files that did not change since the
last backup (most of a cluster, most days) yield the same bytes and so the same chunks,
and cost nothing new. On PostgreSQL 17+ with ``summarize_wal = on`` the backup is
incremental when it can be (operations/physical_chain.py): the server reads and sends
only the blocks changed since the previous backup, and a restore combines the chain with
``pg_combinebackup``; every backup still restores on its own from the user's point of
view. The second stream, ``backup_manifest``, holds the server's manifest alone, for the
next incremental. The tar is checked as it streams against the
``backup_manifest`` PostgreSQL wrote (sizes, SHA-256 of every file, the WAL range), and
the manifest's figures are recorded: start, checkpoint and stop LSN, timeline, system
identifier (from ``pg_control``, checked against the server's own).

Before the backup, the repository's record of which cluster this database is
(``clusters/<database>``) is checked, or written if there is none, so that the WAL
archive and the backups of one database cannot silently come from two clusters.
"""

from __future__ import annotations

import contextlib
import io
import logging
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from respaldo.config import DatabaseSettings
from respaldo.domain import BackupKind, TriggeredBy
from respaldo.errors import BaseBackupInvalid, PostgresError
from respaldo.operations.context import Context
from respaldo.operations.physical_chain import MANIFEST_STREAM, Parent, choose_parent
from respaldo.operations.recorded import BackupResult, Heartbeat, recorded_backup
from respaldo.operations.wal import ensure_cluster_record
from respaldo.postgres import ConnInfo, server_info
from respaldo.postgres.basebackup import (
    BaseBackupReader,
    basebackup_hint,
    pg_basebackup,
    wal_reservation,
)
from respaldo.postgres.server import Connection, connect, server_clock
from respaldo.postgres.standby import STANDBY_META, refuse_stale_standby, standby_meta
from respaldo.postgres.toolsets import Tools, find_tools
from respaldo.privatedir import private_directory
from respaldo.repository import BackupWriter, Manifest, Repository, WriteStats

log = logging.getLogger(__name__)

BASE_STREAM = "base"


def backup_cluster(
    ctx: Context,
    database: str,
    *,
    triggered_by: TriggeredBy = TriggeredBy.CLI,
    snapshot: str | None = None,
    method: Literal["auto", "full"] = "auto",
    reserved: str | None = None,
) -> BackupResult:
    """Take a physical backup of the cluster that the configured ``database`` lives in.

    ``snapshot`` (a snapshot id) pins the backup and records the id in its manifest;
    ``reserved`` is a pending record made for it beforehand.
    ``method`` "auto" takes an incremental backup where the server can (see
    operations/physical_chain.py), "full" a full one whatever the server can do.
    Raises ConfigError, ConnectionFailed, ToolNotFound, ToolVersionError, PostgresError
    (with a hint for the usual setup problems), BaseBackupInvalid (nothing stored),
    WalRefused (the server is not the cluster recorded for this database), StorageError.
    """
    db = ctx.settings.database(database)
    conninfo = ConnInfo.from_settings(db)

    def body(
        repo: Repository, backup_id: str, started_at: datetime, heartbeat: Heartbeat
    ) -> tuple[Manifest, WriteStats]:
        # Inside the record (as a logical backup's): a server that does not answer, or
        # client programs that do not fit it, make a failed backup, which status, the
        # metrics and the page count, not only a failed job.
        # One session for the whole backup: the server's identity is read on the session
        # that then holds the WAL reservation (a session costs the server a backend and
        # an authentication, about 30 ms of a small cluster's backup on a loaded machine).
        with connect(
            conninfo, autocommit=True, application_name="respaldo physical backup"
        ) as conn:
            return _backup(
                ctx, db, conninfo, conn, repo, backup_id, started_at, heartbeat, snapshot, method
            )

    return recorded_backup(
        ctx,
        kind=BackupKind.INCREMENTAL,
        source=db.name,
        retention_days=db.retention_days,
        triggered_by=triggered_by,
        pinned=snapshot is not None,
        body=body,
        reserved=reserved,
    )


def _backup(
    ctx: Context,
    db: DatabaseSettings,
    conninfo: ConnInfo,
    conn: Connection,
    repo: Repository,
    backup_id: str,
    started_at: datetime,
    heartbeat: Heartbeat,
    snapshot: str | None,
    method: Literal["auto", "full"],
) -> tuple[Manifest, WriteStats]:
    """The backup proper, on the session ``conn``, into ``repo`` as ``backup_id`` (the
    body of :func:`~respaldo.operations.recorded.recorded_backup`)."""
    server = server_info(conninfo, conn)
    standby = refuse_stale_standby(conninfo, conn, ctx.settings.rpo_for(db.name).standby_lag)
    tools = find_tools("physical", server.major, pg_bin_dir=db.pg_bin_dir, database=db.name)
    meta: dict[str, Any] = {
        "database": db.name,
        "server_version": server.version,
        "server_version_num": server.version_num,
        "system_identifier": str(server.system_identifier),
        "retention_days": db.retention_days,
        "pg_basebackup": tools.version.text,
        "client_tools": tools.meta("pg_basebackup"),
    }
    if snapshot is not None:
        meta["snapshot"] = snapshot
        meta["pinned"] = True
    standby_said = standby_meta(standby)
    if standby_said is not None:
        meta[STANDBY_META] = standby_said
    ensure_cluster_record(repo, db.name, server.system_identifier, "backup")
    parent, why = (
        choose_parent(ctx, repo, db.name, conninfo, server)
        if method == "auto"
        else (None, "a full backup was asked for")
    )
    if parent is None:
        meta.update(backup_method="full", full_reason=why)
    else:
        meta.update(
            backup_method="incremental",
            incremental_of=parent.manifest.backup_id,
            chain=parent.chain,
        )
    return _stream(conninfo, conn, repo, backup_id, started_at, heartbeat, meta, tools, parent)


def _stream(
    conninfo: ConnInfo,
    conn: Connection,
    repo: Repository,
    backup_id: str,
    started_at: datetime,
    heartbeat: Heartbeat,
    meta: dict[str, Any],
    tools: Tools,
    parent: Parent | None,
) -> tuple[Manifest, WriteStats]:
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(private_directory("chain"))
        since: Path | None = None
        if parent is not None:
            since = tmp / "parent_backup_manifest"
            since.write_bytes(parent.backup_manifest)
        with wal_reservation(conninfo, conn) as slot:
            try:
                with pg_basebackup(
                    conninfo,
                    label=f"respaldo {backup_id}",
                    incremental=since,
                    bindir=tools.bindir,
                ) as command:
                    # The writer (its repository lease: a write, a listing) is made while
                    # the server checkpoints and pg_basebackup connects, not before: ~13 ms
                    # of a small cluster's backup. Nothing is stored or deduplicated
                    # against before it holds the lease.
                    writer = stack.enter_context(BackupWriter(repo, backup_id))
                    reader = BaseBackupReader(command.stdout)
                    writer.write_stream(BASE_STREAM, reader, heartbeat.phase("base"))
            except PostgresError as exc:
                raise PostgresError(
                    exc.program, exc.returncode, exc.stderr, hint=basebackup_hint(exc.stderr, conn)
                ) from None
        info = reader.finish()
        stop_time, log_timezone = server_clock(conn)
        server_manifest = reader.check.manifest_bytes
        assert server_manifest is not None  # finish() raised otherwise
        writer.write_stream(MANIFEST_STREAM, io.BytesIO(server_manifest))
        if str(info.system_identifier) != meta["system_identifier"]:
            raise BaseBackupInvalid(
                f"pg_control in the backup names cluster {info.system_identifier}, the "
                f"server said {meta['system_identifier']}"
            )
        meta = {**meta, **info.to_meta(), "wal_reserved_by_slot": slot is not None}
        if stop_time is not None:
            # The backup's end at the latest as recovery targets see time (commit
            # timestamps are the server's; read after pg_basebackup exited): a target time
            # before it is warned about, not refused (operations/wal_coverage.py).
            meta["stop_time"] = stop_time.isoformat()
        else:
            log.warning("could not read the server's time at the end of backup %s", backup_id)
        if log_timezone is not None:
            # The zone the label's START TIME is written in, by name: its abbreviation
            # alone may fit several zones, or lie (a POSIX 'UTC+3' writes "UTC").
            meta["log_timezone"] = log_timezone
        manifest = writer.commit(
            kind=BackupKind.INCREMENTAL.value,
            source=str(meta["database"]),
            started_at=started_at,
            meta=meta,
        )
        return manifest, writer.stats

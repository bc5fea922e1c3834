"""Full logical backups: ``pg_dump -Fc -Z0`` and the globals, streamed into the repository.

Order of events, each step recorded so a crash is never silent:

1. a ``pending`` catalog record, then ``in_progress`` with this process's pid;
2. server checks: reachable, version and system identifier, and the client programs that
   fit that version (respaldo.postgres.toolsets: the database's ``pg_bin_dir``, the
   system's installations, the ``respaldo[pg18]`` extra), whose versions are recorded;
3. an exported snapshot whose transaction counts every table's rows, and ``pg_dump
   --snapshot`` of exactly that state, streamed through the chunker (with ``jobs`` > 1,
   ``pg_dump --format=directory --jobs`` and a stream per file: operations/pardump.py);
4. ``pg_dumpall --globals-only`` (roles, tablespaces) as a second stream;
5. the manifest (the backup now exists), then the catalog record ``completed``.

Any failure marks the record ``failed`` with the error's message (which never holds a
password: the postgres layer scrubs them) and re-raises.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from respaldo.config import DatabaseSettings, Rpo
from respaldo.domain import BackupKind, TriggeredBy
from respaldo.errors import PostgresError, QueryFailed, SourceError
from respaldo.operations.context import Context
from respaldo.operations.pardump import DIRECTORY_FORMAT, check_jobs, dump_directory
from respaldo.operations.recorded import BackupResult, Heartbeat, recorded_backup
from respaldo.postgres import (
    ConnInfo,
    counting_snapshot,
    pg_dump,
    pg_dumpall_globals,
    psql,
    server_info,
)
from respaldo.postgres.counts import FORMAT_KEY, ROW_COUNTS_FORMAT
from respaldo.postgres.largeobjects import META_KEY as LARGE_OBJECTS
from respaldo.postgres.server import (
    READ_EVERY_ROW,
    can_read_role_passwords,
    connect,
    hash_keys_to_load_via_root,
    own_sessions,
    server_version_num,
    table_sizes,
)
from respaldo.postgres.standby import STANDBY_META, refuse_stale_standby, standby_meta
from respaldo.postgres.standby_blocked import (
    ReplayLock,
    lock_wait_ms,
    lock_waited,
    replay_blocked,
    replay_locks,
)
from respaldo.postgres.toc import BlockStarts
from respaldo.postgres.toolsets import Tools, find_tools
from respaldo.repository import BackupWriter, Manifest, Repository, WriteStats

log = logging.getLogger(__name__)

DUMP_STREAM = "dump"
GLOBALS_STREAM = "globals"
DUMP_BLOCKS = "dump_blocks"
"""The manifest's ``meta`` key of where the dump's data blocks start (dump id, as text,
-> offset in the dump stream; see :class:`respaldo.postgres.toc.BlockStarts`)."""
TABLE_SIZES = "table_sizes"
THROUGH_ROOT = "load_via_partition_root"
"""The tables that made the dump load every partition through its partitioned table."""
ENCODING = "encoding"
"""The backed-up database's encoding (meta key): pg_restore --list prints names in it."""
"""The manifest's ``meta`` key of the tables' sizes (``schema.table`` -> bytes, on the
source when the backup was taken), for ``respaldo ls``."""


def backup_database(
    ctx: Context,
    database: str,
    *,
    kind: BackupKind = BackupKind.FULL,
    triggered_by: TriggeredBy = TriggeredBy.CLI,
    snapshot: str | None = None,
    reserved: str | None = None,
    jobs: int | None = None,
) -> BackupResult:
    """Take a full logical backup of the configured database ``database``.

    ``snapshot`` (a snapshot id, see operations/snapshot.py) pins the backup and records
    the id in its manifest. ``reserved`` is a pending record made for this backup
    beforehand (see :func:`~respaldo.operations.recorded.reserve_record`). ``jobs``
    pg_dump workers (default: the database's ``dump_jobs``): above 1, a parallel
    directory-format dump (operations/pardump.py).

    Raises InvalidInput (``jobs`` out of range, before anything is recorded), ConfigError
    (database not configured), ConnectionFailed, ToolVersionError, PostgresError,
    StorageError or RepositoryError; the catalog record is failed first.
    """
    if kind is not BackupKind.FULL:
        raise NotImplementedError(f"{kind} backups are not available yet")
    db = ctx.settings.database(database)
    dump_jobs = check_jobs(db.dump_jobs if jobs is None else jobs)

    def body(
        repo: Repository, backup_id: str, started_at: datetime, heartbeat: Heartbeat
    ) -> tuple[Manifest, WriteStats]:
        rpo = ctx.settings.rpo_for(db.name)
        return _dump(db, repo, backup_id, kind, started_at, heartbeat, snapshot, dump_jobs, rpo)

    return recorded_backup(
        ctx,
        kind=kind,
        source=db.name,
        retention_days=db.retention_days,
        triggered_by=triggered_by,
        pinned=snapshot is not None,
        body=body,
        reserved=reserved,
    )


def _dump(
    db: DatabaseSettings,
    repo: Repository,
    backup_id: str,
    kind: BackupKind,
    started_at: datetime,
    heartbeat: Heartbeat,
    snapshot_id: str | None,
    jobs: int,
    rpo: Rpo,
) -> tuple[Manifest, WriteStats]:
    # pg_dump's own timeouts off for respaldo's sessions too (own_sessions).
    configured = ConnInfo.from_settings(db)
    version = server_version_num(configured)
    conninfo = own_sessions(configured, version)
    with connect(conninfo, autocommit=True) as conn:  # one session for both questions
        server = server_info(conninfo, conn)
        standby = refuse_stale_standby(conninfo, conn, rpo.standby_lag)
    lock_wait: int | None = None
    if standby.in_recovery:
        # Through a standby a lock is waited for behind WAL replay alone, which may be
        # stuck for ever: waited for as long as [rpo] standby_lock_wait_minutes says.
        lock_wait = lock_wait_ms(rpo.standby_lock_wait)
        conninfo = own_sessions(configured, version, lock_wait_ms=lock_wait)
    tools = find_tools("logical", server.major, pg_bin_dir=db.pg_bin_dir, database=db.name)
    progress = heartbeat.phase

    meta: dict[str, Any] = {
        "database": db.name,
        "dbname": conninfo.dbname,
        "server_version": server.version,
        "server_version_num": server.version_num,
        "system_identifier": str(server.system_identifier),
        "retention_days": db.retention_days,
        "client_tools": tools.meta("pg_dump", "pg_dumpall"),
        **({"snapshot": snapshot_id, "pinned": True} if snapshot_id is not None else {}),
    }
    standby_said = standby_meta(standby)
    if standby_said is not None:
        meta[STANDBY_META] = standby_said
    try:
        return _write(
            conninfo,
            db,
            repo,
            backup_id,
            kind,
            started_at,
            meta,
            jobs,
            tools,
            progress,
            snapshot_id,
            lock_wait,
        )
    except (QueryFailed, PostgresError) as exc:
        if lock_wait is None or not lock_waited(exc):
            raise
        failure = exc
    # Outside the except block: the error says what the standby's replay waits for.
    try:
        locks: list[ReplayLock] | None = replay_locks(conninfo)
    except SourceError:
        log.warning("could not ask the standby what its replay waits for", exc_info=True)
        locks = None
    raise replay_blocked(rpo.standby_lock_wait, locks) from failure


def _write(
    conninfo: ConnInfo,
    db: DatabaseSettings,
    repo: Repository,
    backup_id: str,
    kind: BackupKind,
    started_at: datetime,
    meta: dict[str, Any],
    jobs: int,
    tools: Tools,
    progress: Any,
    snapshot_id: str | None,
    lock_wait: int | None,
) -> tuple[Manifest, WriteStats]:
    """The dump and the globals into the repository, the manifest with ``meta``.
    ``lock_wait``: pg_dump's ``--lock-wait-timeout`` (through a standby)."""
    with BackupWriter(repo, backup_id) as writer:
        # The rows are counted while pg_dump runs (in the snapshot it dumps), not before,
        # and only once pg_dump holds its locks (see postgres.server._wait_for_locks).
        holder = f"respaldo pg_dump {backup_id}"
        with counting_snapshot(conninfo, fmt=ROW_COUNTS_FORMAT, holder=holder) as snapshot:
            # For 'respaldo ls' (the dump's table of contents holds no sizes).
            meta[TABLE_SIZES] = table_sizes(conninfo)
            # Tables whose rows a new database would not take partition by partition:
            # the whole dump loads through partitioned tables then (pg_dump's option is
            # for every table), and the restore checks those trees by their totals.
            through_root = hash_keys_to_load_via_root(conninfo)
            if through_root:
                meta[THROUGH_ROOT] = through_root
            if db.schema_version_query:
                meta["schema_version"] = _schema_version(conninfo, db.schema_version_query, tools)
            try:
                if jobs > 1:
                    meta["dump_format"] = DIRECTORY_FORMAT
                    meta["dump_jobs"] = jobs
                    dump_directory(
                        conninfo,
                        writer,
                        jobs=jobs,
                        snapshot=snapshot.snapshot_id,
                        tools=tools,
                        progress=progress("dump"),
                        spool=db.dump_spool_dir,
                        encoding=snapshot.server_encoding,
                        application_name=holder,
                        load_via_partition_root=bool(through_root),
                        lock_wait_timeout_ms=lock_wait,
                    )
                else:
                    with pg_dump(
                        conninfo,
                        snapshot=snapshot.snapshot_id,
                        bindir=tools.bindir,
                        encoding=snapshot.server_encoding,
                        application_name=holder,
                        load_via_partition_root=bool(through_root),
                        lock_wait_timeout_ms=lock_wait,
                    ) as dump:
                        # Where each table's data starts: restore --table reads only those.
                        blocks = BlockStarts(dump.stdout)
                        writer.write_stream(DUMP_STREAM, blocks, progress("dump"))
                    meta[DUMP_BLOCKS] = {str(i): at for i, at in blocks.starts.items()}
            except PostgresError as exc:
                # pg_dump's own refusal to read something (a large object, say). The
                # server's reason is in its language (lc_messages), pg_dump's own words
                # around it in English (respaldo runs it so).
                if (
                    "permission denied" in exc.stderr
                    or "row-level security" in exc.stderr
                    or "could not open large object" in exc.stderr
                ):
                    exc.hint = READ_EVERY_ROW
                raise
            meta["row_counts"] = snapshot.row_counts()
            # Not tables: without this a restore that lost or cut short large objects
            # would pass its row counts (postgres.largeobjects).
            meta[LARGE_OBJECTS] = snapshot.large_objects().to_meta()
            if snapshot.server_encoding:
                # The encoding of the names in the dump's table of contents (pg_dump was
                # told to write in it: PGCLIENTENCODING would choose otherwise).
                meta[ENCODING] = snapshot.server_encoding
            meta[FORMAT_KEY] = ROW_COUNTS_FORMAT
        meta["globals_role_passwords"] = _dump_globals(conninfo, writer, progress("globals"), tools)
        if not meta["globals_role_passwords"]:
            # Said with the backup (its output, its detail on the page and the API), not
            # only in a log line: the day it matters is a restore, long after.
            meta["warnings"] = [ROLES_WITHOUT_PASSWORDS]
        manifest = writer.commit(
            kind=kind.value,
            source=db.name,
            started_at=started_at,
            meta=meta,
        )
        return manifest, writer.stats


ROLES_WITHOUT_PASSWORDS = (
    "role passwords were not backed up (the backup's role cannot read pg_authid, which "
    "needs a superuser): a restore --globals creates login roles without passwords, to be "
    "set again before the applications connect"
)


def _dump_globals(conninfo: ConnInfo, writer: BackupWriter, progress: Any, tools: Tools) -> bool:
    """Write the globals stream; returns whether role passwords are in it.

    Reading role passwords needs a superuser. A backup role without that still gets the
    roles, memberships and grants, just without passwords, instead of failing the backup.
    """
    try:
        with pg_dumpall_globals(conninfo, bindir=tools.bindir) as dumpall:
            data = dumpall.stdout.read()
    except PostgresError:
        # Asked of the server, not read from pg_dumpall's error: the server writes that in
        # its own language (lc_messages: "permiso denegado a la tabla pg_authid").
        if can_read_role_passwords(conninfo):
            raise
        log.warning("role passwords cannot be read by %s; dumping roles without them", conninfo)
        with pg_dumpall_globals(conninfo, no_role_passwords=True, bindir=tools.bindir) as dumpall:
            data = dumpall.stdout.read()
        _write_bytes(writer, GLOBALS_STREAM, data, progress)
        return False
    _write_bytes(writer, GLOBALS_STREAM, data, progress)
    return True


def _write_bytes(writer: BackupWriter, name: str, data: bytes, progress: Any) -> None:
    import io

    writer.write_stream(name, io.BytesIO(data), progress)


def _schema_version(conninfo: ConnInfo, query: str, tools: Tools) -> str:
    """The application's schema version, from the user's query (first column, first row)."""
    output = psql(conninfo, sql=query, tuples_only=True, timeout=60, bindir=tools.bindir).text
    return output.strip().splitlines()[0].strip() if output.strip() else ""

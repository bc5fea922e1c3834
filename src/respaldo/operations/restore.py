"""Restoring a logical backup into a new database, or in place of an existing one.

Nothing unverified reaches the target. The dump is always restored into a *staging*
database first: verified chunks stream into ``pg_restore --exit-on-error`` (or, for a
parallel restore, into ``jobs`` pg_restore workers that load the tables' data as it
arrives, building each one's own indexes in staging once its rows are
counted, the rest of the post-data section waiting for the stream's SHA-256: see
:mod:`respaldo.operations.restore_parallel`). Only when the whole stream matched its
checksum, pg_restore succeeded, every table's row count equals the count recorded in
the backup's snapshot and so do its large objects (count, bytes, a digest of their
contents: :mod:`respaldo.postgres.largeobjects`), is the staging database renamed to the
target. A failure at any point drops the staging database and leaves the target exactly
as it was.

``replace`` swaps an existing target: pre-restore hook, connections terminated, target
renamed to ``<target>_old_<UTC time>``, staging renamed to the target, post-restore hook.
If the second rename fails the old database is renamed back; if that fails too, the
error names the old database's current name and how to rename it back. The swap is noted
in the catalog before the first rename, so that a process killed between the two leaves
the status saying where the database went (:mod:`respaldo.operations.restore_swap`).
The old database is kept until the user drops it, or dropped at once with ``drop_old``.

``tables``/``schemas`` restore only those (see :mod:`respaldo.operations.restore_select`)
through the same pipeline, into a new database only: the selection is made from the
dump's table of contents before anything is created, pg_restore gets it as
``--use-list`` and, of the dump's data, only the blocks of the tables it restores; the
row counts of those tables are checked (large objects are not restored, as pg_restore's
own ``--table`` leaves them out, so none are checked). Only the dump's start and those
blocks are read (where the backup noted them to start; else the dump up to the last of
them): every chunk read is verified, but the whole stream's checksum is not (the full
restore checks it).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

from respaldo.catalog import BackupCopies, BackupRecord
from respaldo.childenv import hook_environment
from respaldo.config import DatabaseSettings
from respaldo.domain import (
    BackupStatus,
    truncate_name,
    validate_backup_id,
    validate_database_name,
)
from respaldo.errors import (
    BackupNotFound,
    ConfigError,
    ConnectionFailed,
    DatabaseExists,
    IntegrityError,
    InvalidInput,
    PostgresError,
    QueryFailed,
    RecordNotFound,
    RespaldoError,
    RestoreError,
    first_line,
    option,
)
from respaldo.operations.backup import DUMP_BLOCKS, DUMP_STREAM, ENCODING, GLOBALS_STREAM
from respaldo.operations.context import Context
from respaldo.operations.expired import expired_said
from respaldo.operations.pardump import (
    FILE_PREFIX,
    is_directory_dump,
    restore_directory,
    table_of_contents,
)
from respaldo.operations.restore_feed import write_all
from respaldo.operations.restore_parallel import (
    RowCheck,
    count_difference,
    counts_differ,
    restore_arriving,
    restore_directory_arriving,
    rows_of,
    stepped,
)
from respaldo.operations.restore_props import (
    NOTHING_CHANGED,
    apply_database_properties,
    check_properties,
    keep_within_replaced,
    read_database_properties,
)
from respaldo.operations.restore_select import names_encoding, read_selection
from respaldo.operations.restore_swap import clear_swap, note_swap
from respaldo.phrases import N_, Phrase, counted
from respaldo.postgres import (
    ConnInfo,
    create_database,
    database_exists,
    drop_database,
    exported_snapshot,
    hash_partition_leaves,
    pg_restore,
    psql,
    rename_database,
    server_major,
    statement_errors,
    terminate_connections,
    unexpected_objects,
)
from respaldo.postgres.commands import parse_tool_version, widen_pipe
from respaldo.postgres.counts import count_key, counts_format, find_recorded
from respaldo.postgres.dbprops import (
    DatabaseProperties,
    create_options_for,
    locale_differences,
)
from respaldo.postgres.encodings import decode_script, utf8_client
from respaldo.postgres.largeobjects import LargeObjects
from respaldo.postgres.largeobjects import differences as large_objects_differ
from respaldo.postgres.largeobjects import recorded as recorded_large_objects
from respaldo.postgres.scratchdb import (
    STAGING_PREFIX,
    drop_abandoned,
    drop_scratch,
    held_database,
    is_scratch_name,
    scratch_name,
)
from respaldo.postgres.scratchdb import describe as describe_scratch
from respaldo.postgres.server import (
    SERVER_IDENTITY,
    Connection,
    allow_connections,
    allows_connections,
    connect,
    large_objects,
    logical_slots_of,
    own_sessions,
    restore_sessions,
    server_identity,
    server_version_num,
    subscriptions_of,
    writable,
)
from respaldo.postgres.toc import Selection, only_blocks
from respaldo.postgres.toolsets import Tools, find_tools
from respaldo.privatedir import private_directory
from respaldo.repository import (
    Manifest,
    Repository,
    iter_ranges,
    iter_stream,
    iter_stream_batches,
)
from respaldo.repository.locks import reading_lease
from respaldo.repository.reader import ChunkResult
from respaldo.repository.repair import lost_chunks_of

log = logging.getLogger(__name__)

SYSTEM_DATABASES = ("template0", "template1", "postgres")
"""The databases every cluster has: never restore targets unless forced (template0 never)."""


@dataclass
class RestoreResult:
    backup_id: str
    target: str
    bytes_restored: int
    seconds: float
    replaced: bool = False
    old_database: str | None = None
    globals_restored: bool = False
    globals_created: list[str] = field(default_factory=list)
    """With ``globals_restored``: what it created, that the server lacked (role names,
    "tablespace NAME"); a failure after it says so rather than "nothing was changed"."""
    row_counts_checked: int = 0
    large_objects_checked: int | None = None
    """Large objects found as the backup recorded them; None when not checked (a backup
    that predates the record, or only some tables restored: a warning says which)."""
    warnings: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    """With ``tables``/``schemas``: the tables restored with their data."""


def restore_backup(
    ctx: Context,
    backup_id: str,
    target: str,
    *,
    database: str | None = None,
    replace: bool = False,
    drop_old: bool = False,
    jobs: int = 1,
    with_globals: bool = False,
    no_owner: bool = False,
    work_dir: Path | None = None,
    force_system_database: bool = False,
    tables: Sequence[str] = (),
    schemas: Sequence[str] = (),
    repository: str | None = None,
) -> RestoreResult:
    """Restore backup ``backup_id`` as database ``target`` of the configured server.

    ``database`` names the configured database whose server receives the restore
    (default: the backup's own). A target in :data:`SYSTEM_DATABASES` is refused unless
    ``force_system_database`` (template0 always). ``tables`` (``schema.table``) and
    ``schemas`` restore only those, into a new database (not with ``replace``).
    ``repository`` names the one repository to read (default: the first that opens, the
    others as fallbacks; see :func:`open_with_fallbacks`). Raises
    ConfigError, InvalidInput (an unknown table or schema: nothing created), InvalidBackupId,
    BackupNotFound, IntegrityError (nothing touched), RestoreError, PostgresError, ConnectionFailed.
    Every repository read holds a shared lease meanwhile, so that no garbage collection
    repacks the packs being read.
    """
    with contextlib.ExitStack() as leases:
        return _restore_backup(
            ctx,
            leases,
            backup_id,
            target,
            database=database,
            replace=replace,
            drop_old=drop_old,
            jobs=jobs,
            with_globals=with_globals,
            no_owner=no_owner,
            work_dir=work_dir,
            force_system_database=force_system_database,
            tables=tables,
            schemas=schemas,
            repository=repository,
        )


def _restore_backup(
    ctx: Context,
    leases: contextlib.ExitStack,
    backup_id: str,
    target: str,
    *,
    database: str | None,
    replace: bool,
    drop_old: bool,
    jobs: int,
    with_globals: bool,
    no_owner: bool,
    work_dir: Path | None,
    force_system_database: bool,
    tables: Sequence[str],
    schemas: Sequence[str],
    repository: str | None,
) -> RestoreResult:
    validate_backup_id(backup_id)  # before it becomes part of an object name
    validate_database_name(target)
    check_not_system_database(target, force=force_system_database)
    check_not_scratch_name(target)
    if jobs < 1:
        raise InvalidInput("jobs", "must be at least 1")
    check_partial(tables, schemas, replace=replace)
    if work_dir is not None and jobs > 1:
        check_work_dir(work_dir)
    started = datetime.now(UTC)  # names the old database (--replace)
    # How long it took, on the monotonic clock: the wall clock stepped by NTP (or a VM
    # resumed) during a restore gave negative or hour-long durations, which a drill
    # records (restore_seconds: the catalog, the page, the metrics).
    steady = time.monotonic()
    repo, fallbacks, warnings = open_with_fallbacks(
        ctx, leases, f"restore of {backup_id}", only=repository
    )
    manifest = load_manifest_told(ctx, repo, fallbacks, backup_id)
    if manifest.kind != "full":
        raise ConfigError(
            f"backup {backup_id} is a {manifest.kind} backup, not a logical one",
            hint=f"{option('target_database')} restores logical backups; use "
            f"{option('target_datadir')} for physical (incremental) backups and "
            f"{option('target_dir')} for files backups",
        )
    db = ctx.settings.database(database or manifest.source)
    admin = writable(ConnInfo.from_settings(db))
    # The maintenance database, for when the configured one cannot serve: "postgres",
    # or template1 when "postgres" itself is being (forcibly) replaced.
    maintenance = "template1" if target == "postgres" else "postgres"
    if admin.dbname == target:
        # We connect to the configured database to manage the target; it cannot be both.
        admin = admin.with_dbname(maintenance)
    # A session of its own for the version (no statement: see server_version_num), which
    # decides the options of every other session.
    admin = own_sessions(admin, _server_version_num(admin, maintenance))
    check_not_catalog(ctx, admin, target)
    # One session on the configured database for every question and step before the load
    # (the target's name, the tools' server, the abandoned staging databases, CREATE
    # DATABASE, its locale, the properties' dry run, the sessions' settings): a session
    # each cost a backend start and its catalog caches, 9 of them before the first
    # pg_restore (docs/benchmarks.md, session 20). Closed before the load
    # (_restore_staged): not left idle for as long as the load takes.
    with contextlib.ExitStack() as asking:
        admin, conn = _admin_session(asking, admin, maintenance)
        result = _restore_prepared(
            ctx,
            leases,
            asking,
            conn,
            repo,
            fallbacks,
            warnings,
            manifest,
            db,
            admin,
            backup_id=backup_id,
            target=target,
            replace=replace,
            drop_old=drop_old,
            jobs=jobs,
            with_globals=with_globals,
            no_owner=no_owner,
            work_dir=work_dir,
            tables=tables,
            schemas=schemas,
            started=started,
        )
    result.seconds = time.monotonic() - steady
    return result


def _admin_session(
    asking: contextlib.ExitStack, admin: ConnInfo, maintenance: str
) -> tuple[ConnInfo, Connection]:
    """A session on the database of ``admin``, closed with ``asking``; on ``maintenance``
    (and ``admin`` naming it) when that database is gone. Raises ConnectionFailed."""
    try:
        return admin, asking.enter_context(connect(admin, autocommit=True))
    except ConnectionFailed:
        if admin.dbname == maintenance or not _database_gone(admin, maintenance):
            raise
    # The configured database is gone, which is the disaster being recovered from:
    # restoring it under another name must still work, so manage from "postgres".
    admin = admin.with_dbname(maintenance)
    return admin, asking.enter_context(connect(admin, autocommit=True))


def _restore_prepared(
    ctx: Context,
    leases: contextlib.ExitStack,
    asking: contextlib.ExitStack,
    conn: Connection,
    repo: Repository,
    fallbacks: list[Repository],
    warnings: list[str],
    manifest: Manifest,
    db: DatabaseSettings,
    admin: ConnInfo,
    *,
    backup_id: str,
    target: str,
    replace: bool,
    drop_old: bool,
    jobs: int,
    with_globals: bool,
    no_owner: bool,
    work_dir: Path | None,
    tables: Sequence[str],
    schemas: Sequence[str],
    started: datetime,
) -> RestoreResult:
    partial = bool(tables or schemas)
    exists = database_exists(admin, target, conn)
    if exists and not replace:
        raise RestoreError(
            f"database {target!r} already exists",
            hint=f"choose a new name with {option('target_database')}, or use {option('replace')} "
            "to swap it",
        )
    if not exists and drop_old:
        raise InvalidInput(
            "drop_old", f"only makes sense with {option('replace')} of an existing database"
        )
    tools = restore_tools(db, admin, manifest, conn)

    reader = StreamReader(repo, fallbacks, warnings)
    # What reads the dump's table of contents alone (a directory-format dump's toc.dat).
    toc = leases.enter_context(table_of_contents(reader.stream, manifest, work_dir))
    selection = None
    if partial:
        # Before anything is created: an unknown name must cost nothing.
        selection = read_selection(
            toc,
            tables,
            schemas,
            bindir=tools.bindir,
            encoding=names_encoding(
                manifest.meta.get(ENCODING), toc, bindir=tools.bindir, work_dir=work_dir
            ),
            work_dir=work_dir,
        )
        warnings += _selection_notes(selection, jobs)
        jobs = 1
    # The database's own owner, grants, settings and comment (see restore_props), read
    # from the dump's table of contents by two pg_restore runs, while this thread prepares
    # the staging database: measured 0.3-0.4 s of a restore's fixed cost, now overlapped
    # (docs/benchmarks.md, "Restore profile (session 4)"). Nothing is changed before the
    # properties are known, except creating the (held) staging database, which is
    # dropped again if they cannot be read.
    with ThreadPoolExecutor(1, thread_name_prefix="properties") as pool:
        reading = pool.submit(
            read_database_properties,
            toc,
            no_owner=no_owner,
            bindir=tools.bindir,
        )
        try:
            return _restore_staged(
                ctx,
                reader,
                manifest,
                reading,
                asking,
                conn,
                db,
                admin,
                tools,
                warnings,
                backup_id=backup_id,
                target=target,
                exists=exists,
                started=started,
                selection=selection,
                drop_old=drop_old,
                jobs=jobs,
                with_globals=with_globals,
                no_owner=no_owner,
                work_dir=work_dir,
            )
        finally:
            # A failure before the properties were needed must not leave their reader
            # running (its pg_restore and the stream's fetch threads) past this call.
            reading.cancel()
            with contextlib.suppress(BaseException):
                reading.result()


def _restore_staged(
    ctx: Context,
    reader: StreamReader,
    manifest: Manifest,
    reading: Future[tuple[DatabaseProperties, list[str]]],
    asking: contextlib.ExitStack,
    conn: Connection,
    db: DatabaseSettings,
    admin: ConnInfo,
    tools: Tools,
    warnings: list[str],
    *,
    backup_id: str,
    target: str,
    exists: bool,
    started: datetime,
    selection: Selection | None,
    drop_old: bool,
    jobs: int,
    with_globals: bool,
    no_owner: bool,
    work_dir: Path | None,
) -> RestoreResult:
    # Staging databases of restores and drills that died (or whose server restarted).
    warnings += drop_abandoned(admin, conn)
    result = RestoreResult(backup_id, target, 0, 0.0, warnings=warnings)
    result.tables = list(selection.tables) if selection is not None else []
    # Held from before it exists until it is renamed or dropped: see postgres.scratchdb.
    with contextlib.ExitStack() as hold:
        staging = create_scratch(
            hold,
            admin,
            scratch_name(STAGING_PREFIX),
            lambda: scratch_name(STAGING_PREFIX),
            conn=conn,
        )
        try:
            properties, notes = reading.result()
            result.warnings += notes
            # Created before the properties were known: given their encoding and locale.
            match_locale(admin, staging, properties.create_options, conn=conn)
            if with_globals:
                # Roles are created for good: only once the properties could be read and
                # the server can create the database (before, a failure changes nothing).
                notes, result.globals_created = _restore_globals(reader, manifest, admin, tools)
                result.warnings += notes
                result.globals_restored = True
            check_properties(admin, properties, staging, conn)
            # The restore's own sessions: pg_restore's and the row counts'; whether they
            # may shorten their lock waits, asked on the session above.
            staged = restore_sessions(admin, conn).with_dbname(staging)
            # Not kept idle across the load, which takes as long as the data: a session
            # the server or the network ends meanwhile (idle_session_timeout, a firewall's
            # idle cut) would fail a restore whose data was loaded and checked. The
            # hand-over below opens one afresh.
            asking.close()
            # With --jobs, each worker checks the counts of the tables it loaded.
            early = RowCheck(manifest.meta, staged)
            try:
                result.bytes_restored = restore_stream_into(
                    ctx,
                    reader,
                    manifest,
                    staged,
                    jobs,
                    no_owner,
                    work_dir,
                    tools,
                    selection=selection,
                    check_rows=early,
                )
            except PostgresError as exc:
                raise _unchanged(
                    _missing_role(_unrouted(exc, selection)), target, replacing=exists
                ) from None
            result.row_counts_checked = check_row_counts(
                manifest,
                staged,
                only=selection.table_parts if selection is not None else None,
                checked=early.checked,
            )
            if selection is None:
                # Some tables restore no large objects (pg_restore leaves them out of a
                # --table restore too; _selection_notes says so): none to check then.
                result.large_objects_checked = check_large_objects(manifest, staged)
                if result.large_objects_checked is None:
                    result.warnings.append(LARGE_OBJECTS_NOT_RECORDED)
            if exists:
                apply_database_properties(admin, properties, staging)
                result.warnings += keep_within_replaced(admin, staging, target)
                # Its own sessions: a hook may run for minutes between two of them.
                result.old_database = _swap(
                    ctx, db, admin, staging, target, started, result.warnings
                )
                result.replaced = True
            else:
                # The hand-over to a new name in one session: the properties, the
                # rename, what the restored database subscribes to.
                with connect(admin, autocommit=True) as handing:
                    apply_database_properties(admin, properties, staging, handing)
                    rename_database(admin, staging, target, conn=handing)
                    # A database under that name again: a swap of it that died is resolved.
                    clear_swap(ctx, db.name, target)
                    result.warnings += _copied_subscriptions(admin, target, handing)
        except BaseException as exc:
            drop_quietly(admin, staging)
            if isinstance(exc, RespaldoError) and result.globals_created:
                # Its hint may say "nothing was changed" (a hook that failed, a spooled
                # dump cut short, properties refused): the roles stay created.
                exc.hint = _roles_created(
                    exc.hint, target, replacing=exists, created=result.globals_created
                )
            raise
    replaced, slots = result.old_database, []
    if replaced:
        result.warnings += _replication_left_behind(admin, replaced, target)
        # Read before --drop-old: DROP DATABASE drops them with it, saying nothing.
        slots = _slots_left_behind(admin, replaced)
    if result.old_database and drop_old:
        try:
            drop_database(admin, result.old_database)
        except RespaldoError as exc:
            # The backup is in place already: the restore succeeded, and the old database
            # is kept as it is without --drop-old (one that subscribes to another, say).
            result.warnings.append(
                f"the previous database is kept as {result.old_database}: it could not be "
                f"dropped ({first_line(exc)})"
            )
        else:
            result.old_database = None
    if replaced and slots:
        result.warnings.append(_publisher_note(slots, replaced, target, result.old_database))
    return result


def dump_major(manifest: Manifest) -> int:
    """The major version of the pg_dump that wrote the backup's dump; 0 when the manifest
    predates the record of its tools (any pg_restore that fits the server then)."""
    tools = manifest.meta.get("client_tools")
    text = tools.get("pg_dump") if isinstance(tools, dict) else None
    return parse_tool_version("pg_dump", str(text)).major if text else 0


def restore_tools(
    db: DatabaseSettings, admin: ConnInfo, manifest: Manifest, conn: Connection | None = None
) -> Tools:
    """pg_restore and psql for restoring ``manifest``'s dump into the server of ``admin``:
    of that server's major version or newer, and at least as new as the pg_dump that wrote
    the archive (an older pg_restore cannot read it). A dump written by a pg_dump newer
    than the server is refused: what that pg_restore writes is for servers of its own
    major (pg_restore 17+ sets ``transaction_timeout``, which a 16 refuses), and PostgreSQL
    does not support loading a dump into an older major. The server is asked on ``conn``
    (a session of ``admin``) if given. Raises RestoreError,
    ToolNotFound (saying what to install), ConnectionFailed."""
    major = server_major(admin, conn)
    dumped = dump_major(manifest)
    if dumped > major:
        raise RestoreError(
            f"backup {manifest.backup_id} was dumped by pg_dump {dumped}, newer than the "
            f"PostgreSQL {major} server it would be restored into",
            hint=f"nothing was changed; restore it into a PostgreSQL {dumped} or newer server. "
            f"For backups that restore into {major}, leave pg_bin_dir of {db.name!r} unset "
            f"(or point it at PostgreSQL {major}): respaldo then dumps with pg_dump {major}",
        )
    return find_tools("logical", major, pg_bin_dir=db.pg_bin_dir, at_least=dumped, database=db.name)


def check_partial(tables: Sequence[str], schemas: Sequence[str], *, replace: bool) -> None:
    """Raise InvalidInput if some tables or schemas are to replace a database: they go
    into a new database only (a database with only some of its tables is no swap)."""
    if (tables or schemas) and replace:
        raise InvalidInput(
            "tables" if tables else "schemas",
            f"cannot be combined with {option('replace')}: some tables of a backup are "
            "restored into a new database only",
            hint=f"restore them under a new name with {option('target_database')}, then "
            "copy the rows you need back with SQL (docs/disaster-recovery.md)",
        )


def _unrouted(error: PostgresError, selection: Selection | None) -> PostgresError:
    """``error`` of pg_restore, with a hint when it refused rows of chosen partitions
    that no restored partition takes: the dump loads them through their partitioned
    table (pg_dump does for a hash on an enum; the backup asks it to for an enum in
    another type or an OID type, :func:`~respaldo.postgres.server.hash_keys_to_load_via_root`),
    and the new database's hash sends some to the partitions left out.
    Which ones depends on the enum's new OIDs: only the whole tree restores each time."""
    if selection is None or not _copy_into(selection.definition_only, error.stderr):
        return error
    return PostgresError(
        error.program,
        error.returncode,
        error.stderr,
        hint="the dump loads these partitions' rows through their partitioned table "
        f"({', '.join(selection.definition_only)}: hash-partitioned on an enum or an OID "
        "type such as regtype, whose values a new database numbers anew), and the new hash "
        "sends some of them to "
        f"partitions not restored; restore the partitioned table with {option('tables')} "
        "(its partitions come with it), then take the rows you need",
    )


# The server's words for an owner or grantee it lacks (English: a server in another
# language gets the general hint).
_NO_ROLE = re.compile(r'ERROR:  role "(?P<role>.*)" does not exist')


def _missing_role(error: PostgresError) -> PostgresError:
    """``error`` of pg_restore, with a hint when the server lacks a role the dump names
    (an owner, a grantee): it said only "restore again once the cause is dealt with",
    and nothing told the operator about ``--globals`` or ``--no-owner``."""
    found = _NO_ROLE.search(error.stderr)
    if error.hint or found is None:
        return error
    return PostgresError(
        error.program,
        error.returncode,
        error.stderr,
        hint=Phrase(
            N_(
                "the backup names role {role} (an owner, or a grantee of rights), which "
                "this server lacks: restore with {globals} to create the backup's roles "
                "first, or create the role; {no_owner} leaves out owners, not grants"
            ),
            role=found.group("role"),
            globals=option("with_globals"),
            no_owner=option("no_owner"),
        ),
    )


def _unchanged(error: PostgresError, target: str, *, replacing: bool) -> PostgresError:
    """``error`` of a pg_restore into the staging database, its hint saying first that
    the target was not touched (with ``replacing``, the database being replaced is as it
    was; else none was made), as the restore's other failures say: a ``restore --jobs``
    whose worker was killed (the out-of-memory killer) said only "pg_restore was killed
    by signal 9", and the user could not tell what had become of the target. After a
    ``--globals`` that created roles, :func:`_roles_created` says so instead. The error's
    own hint follows (the server went away, a disk is full), or what to do next."""
    then: str
    if error.hint:
        then = error.hint
    elif error.returncode < 0:
        then = Phrase(
            N_(
                "something outside respaldo stopped {program} (signal 9 is most often the "
                "system's out-of-memory killer, which the system's log names): restore "
                "again once that is dealt with"
            ),
            program=error.program,
        )
    else:
        then = Phrase(N_("restore again once the cause is dealt with"))
    if replacing:
        hint = Phrase(
            N_("nothing was changed: {database} is as it was; {then}"), database=target, then=then
        )
    else:
        hint = Phrase(
            N_("nothing was changed: no database {database} was created; {then}"),
            database=target,
            then=then,
        )
    return PostgresError(error.program, error.returncode, error.stderr, hint=hint)


def _roles_created(hint: str, target: str, *, replacing: bool, created: Sequence[str]) -> str:
    """``hint`` of a restore that failed after ``--globals`` had created ``created``:
    one that opens with "nothing was changed" (a pg_restore that failed, a pre-restore
    hook, a spooled dump cut short) was untrue, and now names what was created, then
    says what it said next. Any other hint is returned as it was."""
    if not hint.startswith(NOTHING_CHANGED):
        return hint
    then: str
    if isinstance(hint, Phrase) and "then" in hint.values:
        then = hint.values["then"]
    else:
        then = hint.partition("; ")[2] or Phrase(N_("restore again once the cause is dealt with"))
    values = {
        "database": target,
        "option": option("with_globals"),
        "roles": ", ".join(created),
        "then": then,
    }
    if replacing:
        return Phrase(
            N_(
                # Not opening with {database}: a phrase that opens with a value is tried
                # at every ": " of a long error (respaldo.reasons).
                "the database {database} is as it was, but the backup's roles this server "
                "lacked were created ({option}): {roles}; {then}"
            ),
            **values,
        )
    return Phrase(
        N_(
            "no database {database} was created, but the backup's roles this server lacked "
            "were ({option}): {roles}; {then}"
        ),
        **values,
    )


def _copy_into(tables: Sequence[str], stderr: str) -> bool:
    """Whether pg_restore's COPY of a chosen partition's rows through one of ``tables``
    (its partitioned table, restored as a definition only) failed.

    Told from pg_restore's own words ('COPY failed for table "<partition>"', untranslated
    as respaldo runs it) and the server's context line, which names the table the rows
    went into ("COPY <table>, line N" in English, "COPY <table>, línea N" in Spanish: the
    command's name is kept); the server's reason ("no partition of relation … found for
    row") is in its language (lc_messages: "no se encontró una partición de …")."""
    if "COPY failed for table " not in stderr:
        return False
    names = {qualified.rsplit(".", 1)[-1].strip('"') for qualified in tables}
    return any(f"COPY {name}," in stderr for name in names)


def _selection_notes(selection: Selection, jobs: int) -> list[str]:
    """Warnings about what a selection leaves out, brings empty or brings from elsewhere."""
    notes = [*selection.skipped, *selection.brought]
    if selection.definition_only:
        notes.append(
            f"restored empty, as definitions only (the chosen tables need them): "
            f"{', '.join(selection.definition_only)}"
        )
    if selection.large_objects:
        # A table that keeps files as large objects comes back with their oids only.
        notes.append(
            "the backup's large objects are not restored with --table or --schema; "
            "restore the whole backup to get them back"
        )
    if jobs > 1:
        notes.append(f"some tables are restored with one job, not {jobs}")
    return notes


def check_not_system_database(target: str, *, force: bool) -> None:
    """Raise RestoreError if ``target`` is a system database and may not be restored into.

    template0 is refused even when forced: every new database (respaldo's staging and
    drill databases too) is a copy of it, so whatever it held would be in all of them.
    """
    if target not in SYSTEM_DATABASES or (force and target != "template0"):
        return
    if target == "template0":
        hint = (
            "template0 must never change: every new database, and every staging database "
            "of a restore, is copied from it"
        )
    else:
        hint = (
            f"restore under another name to look first; if you really mean to replace "
            f"{target}, add {option('force_system_database')}"
        )
    raise RestoreError(
        f"{target} is a system database of the cluster; restoring into it is refused",
        hint=hint,
    )


def _server_version_num(admin: ConnInfo, maintenance: str) -> int:
    """The server's version number, asked of the database of ``admin`` or, when that
    cannot be connected to (gone: the disaster being recovered from), of
    ``maintenance``. Raises the ConnectionFailed of ``admin`` when neither answers."""
    try:
        return server_version_num(admin)
    except ConnectionFailed as failed:
        try:
            return server_version_num(admin.with_dbname(maintenance))
        except ConnectionFailed:
            raise failed from None


def _database_gone(admin: ConnInfo, maintenance: str) -> bool:
    """Whether the database of ``admin``, which could not be connected to, is gone: asked
    of ``maintenance`` on the same server, not read from the connection's error, which the
    server writes in its own language (lc_messages: "no existe la base de datos")."""
    if admin.dbname is None:  # libpq's default, the user's name: nothing to ask about
        return False
    try:
        return not database_exists(admin.with_dbname(maintenance), admin.dbname)
    except ConnectionFailed:
        return False


def check_not_catalog(ctx: Context, admin: ConnInfo, target: str) -> None:
    """Raise RestoreError if ``target`` is the database of respaldo's own catalog on the
    server of ``admin`` (a PostgreSQL catalog there): replacing it would end respaldo's
    own sessions and put an application's backup where the catalog was."""
    catalog = ctx.catalog.server_identity(SERVER_IDENTITY)
    if catalog is None or catalog[0] != target:
        return
    try:
        here = server_identity(admin)
    except ConnectionFailed:
        if admin.dbname == "postgres" or not _database_gone(admin, "postgres"):
            raise
        here = server_identity(admin.with_dbname("postgres"))
    if here[1:] == catalog[1:]:
        raise RestoreError(
            f"database {target} holds respaldo's catalog; restoring into it is refused",
            hint="restore under another name; the catalog is respaldo's, not a database it "
            "backs up ([catalog] url)",
        )


def check_not_scratch_name(target: str) -> None:
    """Raise RestoreError if ``target`` has the form of respaldo's scratch database
    names (:func:`~respaldo.postgres.scratchdb.is_scratch_name`): every restore and drill
    drops such a database as abandoned when no respaldo process holds it, so a restore
    into one would be lost later. A name that only starts like one
    (``respaldo_staging_ventas``) is never dropped, and is an ordinary target."""
    if not is_scratch_name(target):
        return
    raise RestoreError(
        f"{target!r} has the form of respaldo's scratch database names (respaldo_staging_ "
        "or respaldo_drill_ and hex digits); restoring into it is refused",
        hint="restore under another name: the next restore or drill would drop a database "
        "of this form as abandoned",
    )


def match_locale(
    admin: ConnInfo,
    name: str,
    locale: Sequence[tuple[str, str]],
    *,
    conn: Connection | None = None,
) -> None:
    """Make the new, empty database ``name`` have the backed-up database's encoding and
    locale (``locale``: :attr:`DatabaseProperties.create_options`): it was created with
    the server's defaults, and is created again if they differ (text would otherwise
    sort, compare and convert differently from the backed-up database). Raises
    RestoreError if this server cannot create such a database (a locale it lacks).

    A dump without a locale provider (pg_dump before 15) is created as libc on a 15+
    server (:func:`~respaldo.postgres.dbprops.create_options_for`). Asked on ``conn``
    (a session of ``admin``) if given."""
    locale = create_options_for(locale, server_major(admin, conn))
    differing = locale_differences(admin, name, locale, conn)
    if not differing:
        return
    drop_database(admin, name)
    try:
        create_empty_database(admin, name, locale=locale, conn=conn)
    except QueryFailed as exc:
        raise RestoreError(
            f"this server cannot create a database with the backed-up one's "
            f"{', '.join(differing)}: {exc}",
            hint="install that locale on the server (locale-gen, then restart PostgreSQL) "
            "and restore again; nothing was changed",
        ) from None


def create_empty_database(
    admin: ConnInfo,
    name: str,
    *,
    locale: Sequence[tuple[str, str]] = (),
    conn: Connection | None = None,
) -> None:
    """Create database ``name`` from template0 (with the encoding and locale ``locale``
    gives, see :func:`match_locale`) and make sure it holds nothing.

    A template0 that someone connected to and changed would put its objects, replaced
    built-ins and changed privileges into the restored database, unnoticed (row counts
    cover the backup's tables only) or as a confusing pg_restore error. Raises
    RestoreError naming what it holds (the new database is dropped again), or the errors
    of creating it. Created on ``conn`` (a session of ``admin``) if given; the check is
    a session in the new database.
    """
    create_database(admin, name, template="template0", locale=locale, conn=conn)
    try:
        found = unexpected_objects(admin.with_dbname(name))
    except BaseException:
        drop_quietly(admin, name)
        raise
    if not found:
        return
    drop_quietly(admin, name)
    shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
    raise RestoreError(
        f"template0 is not empty: a database created from it holds {shown}",
        hint="nothing was restored; template0 must stay as initdb made it: allow connections "
        "to it (ALTER DATABASE template0 ALLOW_CONNECTIONS true), drop those objects and "
        "revoke those privileges, then disallow connections again; a built-in replaced in "
        "place cannot be put back exactly: recreate template0 from an untouched template1 "
        "(or the cluster)",
    )


_SCRATCH_DRAWS = 5
"""Scratch names tried before giving up: one taken already is a collision of random names
(or a database someone made under such a name), never to happen twice in a row."""


def create_scratch(
    hold: contextlib.ExitStack,
    admin: ConnInfo,
    name: str,
    draw: Callable[[], str],
    *,
    conn: Connection | None = None,
) -> str:
    """Create scratch database ``name`` empty (:func:`create_empty_database`), held (see
    :func:`~respaldo.postgres.scratchdb.held_database`) until ``hold`` closes; return the
    name created.

    A database of that name that exists already is someone else's (another restore or
    drill drew the same name): it is left alone, and another name is drawn from ``draw``.
    The caller drops the returned name and no other. Raises RestoreError when every name
    drawn was taken (nothing created), or what creating it raises. Created on ``conn``
    (a session of ``admin``) if given; the hold is a session of its own.
    """
    for _ in range(_SCRATCH_DRAWS):
        held = contextlib.ExitStack()
        held.enter_context(held_database(admin, name))
        try:
            create_empty_database(admin, name, conn=conn)
        except DatabaseExists:
            held.close()
            log.info("a database named %s exists already: another name drawn", name)
            name = draw()
            continue
        except BaseException:
            held.close()
            raise
        hold.enter_context(held)
        return name
    raise RestoreError(
        f"{_SCRATCH_DRAWS} scratch database names drawn were all taken, the last {name}",
        hint="nothing was changed; drop the databases named like it that are not "
        "respaldo's, and retry",
    )


def check_work_dir(work_dir: Path) -> None:
    """Raise ConfigError unless ``work_dir`` is a directory we can write the spool into.

    Checked before anything is created, so that a typo costs nothing.
    """
    hint = (
        f"give {option('work_dir')} an existing directory with room for one dump (or leave it out)"
    )
    if not work_dir.exists():
        raise ConfigError(f"work directory {work_dir} does not exist", hint=hint)
    if not work_dir.is_dir():
        raise ConfigError(f"work directory {work_dir} is not a directory", hint=hint)
    if not os.access(work_dir, os.W_OK | os.X_OK):
        raise ConfigError(f"work directory {work_dir} is not writable", hint=hint)


def restore_stream_into(
    ctx: Context,
    reader: StreamReader,
    manifest: Manifest,
    conninfo: ConnInfo,
    jobs: int,
    no_owner: bool,
    work_dir: Path | None,
    tools: Tools,
    *,
    selection: Selection | None = None,
    check_rows: RowCheck | None = None,
) -> int:
    """Stream the backup's dump into pg_restore into ``conninfo``'s database; returns the
    bytes read. With ``jobs`` > 1, each worker checks its tables' row counts by
    ``check_rows`` (:class:`~respaldo.operations.restore_parallel.RowCheck`) once they
    are loaded. With ``selection``, only its entries are restored (one job) and the
    stream is read only as far as pg_restore needs it (:func:`_restore_selection`). A
    directory-format backup is written back into a directory first
    (operations/pardump.py). Raises RestoreError when the work directory (``work_dir``,
    else the system's temporary directory), where the dump is spooled, runs out of room.
    """
    try:
        return _restore_stream_into(
            ctx,
            reader,
            manifest,
            conninfo,
            jobs,
            no_owner,
            work_dir,
            tools,
            selection=selection,
            check_rows=check_rows,
        )
    except OSError as exc:
        # The spool is the only file a restore writes: a full disk there raised the bare
        # OSError, printed as a traceback, the staging database dropped as for any error.
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise
        where = work_dir if work_dir is not None else Path(tempfile.gettempdir())
        raise RestoreError(
            f"the restore's work directory {where} ran out of room for the spooled dump: "
            f"{exc.strerror or exc}",
            hint=f"nothing was restored; free room there (the dump takes about "
            f"{manifest.size} bytes), or give {option('work_dir')} a directory on a disk "
            "that has it, and restore again",
        ) from None


def _restore_stream_into(
    ctx: Context,
    reader: StreamReader,
    manifest: Manifest,
    conninfo: ConnInfo,
    jobs: int,
    no_owner: bool,
    work_dir: Path | None,
    tools: Tools,
    *,
    selection: Selection | None = None,
    check_rows: RowCheck | None = None,
) -> int:
    if is_directory_dump(manifest):
        size = sum(s.size for s in manifest.streams if s.name.startswith(FILE_PREFIX))
        if selection is None:
            # Every table's data loads as soon as its file is complete and checked
            # (operations/restore_parallel.py).
            with private_directory("spool", work_dir) as tmp:
                (tmp / "dump").mkdir()
                return restore_directory_arriving(
                    reader.batches,
                    manifest,
                    conninfo,
                    directory=tmp / "dump",
                    jobs=jobs,
                    no_owner=no_owner,
                    bindir=tools.bindir,
                    progress=stepped(lambda done: ctx.progress("restore", done, size), size),
                    check_rows=check_rows,
                )
        return restore_directory(
            reader.stream,
            manifest,
            conninfo,
            jobs=jobs,
            no_owner=no_owner,
            work_dir=work_dir,
            tools=tools,
            use_list=selection.use_list(),
            entries={e.dump_id for e in selection.entries},
            # Large objects' entries are BLOBS (LARGE OBJECTS from pg_dump 17 on).
            blobs=any("BLOB" in e.kind or "LARGE" in e.kind for e in selection.entries),
            progress=stepped(lambda done: ctx.progress("restore", done, size), size),
        )
    total = manifest.stream(DUMP_STREAM).size
    done = 0
    bindir = tools.bindir
    if selection is not None:
        return _restore_selection(
            ctx, reader, manifest, conninfo, no_owner, work_dir, bindir, selection
        )
    progress = stepped(lambda n: ctx.progress("restore", n, total), total)
    if jobs == 1:
        with pg_restore(conninfo, no_owner=no_owner, bindir=bindir) as restore:
            fd = restore.stdin.fileno()
            widen_pipe(fd)  # fewer, longer writes: fewer wake-ups
            for batch in reader.batches(manifest, DUMP_STREAM):
                # A window's chunks in one writev, not one write (and wake-up of
                # pg_restore) per chunk; a reader that has gone raises BrokenPipeError.
                done += sum(map(len, batch))
                write_all(fd, batch)
                progress(done)
        return done
    # The tables' data loads into the staging database while the dump still arrives;
    # only the workers' own indexes and keys (in staging) start before the stream's
    # checksum has matched
    # (operations/restore_parallel.py, docs/disaster-recovery.md). A directory named after
    # this process holds the plaintext spool: if it is killed, the next restore (with the
    # same work directory) removes what it left. The spool stays 0600 in a 0700
    # directory: pg_restore is this process's own child, running as the same user.
    with private_directory("spool", work_dir) as tmp:
        done = restore_arriving(
            reader.batches(manifest, DUMP_STREAM),
            total,
            manifest.meta.get(DUMP_BLOCKS),
            conninfo,
            directory=tmp,
            jobs=jobs,
            no_owner=no_owner,
            bindir=bindir,
            progress=progress,
            rows=rows_of(manifest.meta),
            check_rows=check_rows,
        )
    return done


def _restore_selection(
    ctx: Context,
    reader: StreamReader,
    manifest: Manifest,
    conninfo: ConnInfo,
    no_owner: bool,
    work_dir: Path | None,
    bindir: Path | None,
    selection: Selection,
) -> int:
    """:func:`restore_stream_into` for some tables: pg_restore gets the selected entries
    as ``--use-list`` and, of the dump's data, only their blocks (:func:`only_blocks`),
    so that it neither reads nor skips the other tables' rows. Returns the bytes read:
    the stream ends after the last block needed."""
    total = manifest.stream(DUMP_STREAM).size
    done = 0
    ranges = _block_ranges(manifest, selection)
    if ranges is not None:
        stream = reader.ranges(manifest, DUMP_STREAM, ranges)
    else:
        stream = reader.stream(manifest, DUMP_STREAM)

    progress = stepped(lambda n: ctx.progress("restore", n, total), total)

    def counted() -> Iterator[bytes]:
        nonlocal done
        for data in stream:
            done += len(data)
            progress(done)
            yield data

    read = counted()
    fed = read
    if ranges is None and selection.blocks is not None:
        fed = only_blocks(read, selection.blocks)
    with private_directory("selection", work_dir) as tmp:
        use_list = tmp / "use.list"
        use_list.write_text(selection.use_list(), encoding="utf-8")
        with pg_restore(conninfo, no_owner=no_owner, use_list=use_list, bindir=bindir) as restore:
            try:
                for data in fed:
                    restore.stdin.write(data)
            except BrokenPipeError:
                # It read the last entry it needs and exited: leaving the block waits
                # for it and raises if it failed.
                pass
            finally:
                for generator in (fed, read, stream):
                    close = getattr(generator, "close", None)
                    if callable(close):
                        close()
    return done


def _block_ranges(manifest: Manifest, selection: Selection) -> list[tuple[int, int]] | None:
    """The parts of the dump pg_restore needs for ``selection``: its start up to the first
    data block, and the wanted tables' blocks, from where the backup noted the blocks to
    start; None if it did not (an older backup) or not for every block needed."""
    noted = manifest.meta.get(DUMP_BLOCKS)
    blocks = selection.blocks
    if not isinstance(noted, dict) or blocks is None or not blocks.order:
        return None
    starts = {int(dump_id): int(at) for dump_id, at in noted.items()}
    if any(dump_id not in starts for dump_id in (blocks.order[0], *blocks.wanted)):
        return None
    tables = [starts[i] for i in blocks.order if i in starts]
    if any(a >= b for a, b in pairwise(tables)):
        return None  # not in the archive's order: not what pg_dump wrote
    # A block ends where the next table's starts, or the large objects' after the last
    # one. (What the backup noted before the first block is its table of contents
    # looking like a block start, and is no end.)
    last_table = max(starts.get(dump_id, -1) for dump_id in blocks.order)
    every = sorted(
        {starts[i] for i in blocks.order if i in starts}
        | {at for at in starts.values() if at > last_table}
    )
    end_of_stream = manifest.stream(DUMP_STREAM).size
    ranges = [(0, starts[blocks.order[0]])]
    for dump_id in blocks.order:
        if dump_id in blocks.wanted:
            at = starts[dump_id]
            end = next((other for other in every if other > at), end_of_stream)
            ranges.append((at, end))
    if any(b > c for (_, b), (c, _) in pairwise(ranges)):
        return None  # not in the archive's order: not what pg_dump wrote
    return [(a, b) for a, b in ranges if a < b]


class StreamReader:
    """Reads streams from the primary, taking damaged or missing chunks from mirrors,
    and notes each chunk read elsewhere as a warning."""

    def __init__(self, repo: Repository, fallbacks: list[Repository], warnings: list[str]):
        self.repo = repo
        self.fallbacks = fallbacks
        self.warnings = warnings

    def stream(self, manifest: Manifest, name: str) -> Iterator[bytes]:
        return iter_stream(
            self.repo, manifest, name, fallbacks=self.fallbacks, on_fallback=self._note
        )

    def batches(self, manifest: Manifest, name: str) -> Iterator[list[bytes]]:
        """A stream's chunks a window at a time (see
        :func:`~respaldo.repository.iter_stream_batches`)."""
        return iter_stream_batches(
            self.repo, manifest, name, fallbacks=self.fallbacks, on_fallback=self._note
        )

    def ranges(
        self, manifest: Manifest, name: str, ranges: list[tuple[int, int]]
    ) -> Iterator[bytes]:
        """Only ``ranges`` of a stream (see :func:`~respaldo.repository.iter_ranges`)."""
        return iter_ranges(
            self.repo, manifest, name, ranges, fallbacks=self.fallbacks, on_fallback=self._note
        )

    def _note(self, failed: ChunkResult, good: ChunkResult) -> None:
        self.warnings.append(
            f"chunk {failed.chunk_id.hex()[:16]}: {failed.problem} in "
            f"{self.repo.storage.location} ({failed.obj or 'index'}); "
            f"{READ_ELSEWHERE} {good.repository}"
        )


@dataclass(frozen=True)
class GlobalsScript:
    """A backup's roles (and tablespaces): its ``pg_dumpall --globals-only`` script."""

    text: str
    """The script as text, in the encoding it declares (UTF-8 if none)."""
    size: int
    """Its bytes, as the backup holds them."""


def read_globals(reader: StreamReader, manifest: Manifest) -> GlobalsScript:
    """The backup's globals stream read whole (every chunk authenticated, from a mirror
    where the primary's copy is bad, the stream's checksum) and decoded as pg_dumpall
    wrote it: in its client encoding, the encoding of the database it started in (role
    names and comments of a LATIN1 database in LATIN1). What ``restore --globals`` runs
    and the drill's roles check reads.

    Raises what reading the stream raises (RespaldoError), and UnicodeDecodeError for
    bytes that are not in the encoding the script declares: each caller says what that
    means for it. Changes nothing."""
    raw = b"".join(reader.stream(manifest, GLOBALS_STREAM))
    return GlobalsScript(decode_script(raw), len(raw))


READ_ELSEWHERE = "read from"
"""How a warning of :class:`StreamReader` ends: a chunk the primary lacks or holds
damaged was read from the repository named after it."""


def read_elsewhere(warnings: Sequence[str]) -> list[str]:
    """The warnings of ``warnings`` that say a chunk was read from another repository."""
    return [w for w in warnings if w.startswith("chunk ") and f"; {READ_ELSEWHERE} " in w]


def open_with_fallbacks(
    ctx: Context,
    leases: contextlib.ExitStack | None = None,
    purpose: str = "restore",
    errors: dict[str, RespaldoError] | None = None,
    *,
    only: str | None = None,
) -> tuple[Repository, list[Repository], list[str]]:
    """Every configured repository that opens, the first one to read from and the rest
    as fallbacks; one that does not open is a warning (a lost local disk must not stop a
    restore from the offsite copy). Raises the first error if none opens.

    With ``only`` (a repository's name: ``restore --repository``), that repository alone
    and no fallbacks: its damage is an error rather than mended from another copy, and
    its failure to open is raised. ConfigError for a name that is not configured.

    With ``leases``, each opened repository gets a shared lease, held until ``leases``
    closes (readers that must not see packs repacked under them); a repository that
    refuses writes is read without one, and a warning says so. ``errors``, if given,
    receives each repository that did not open -> why."""
    opened: list[Repository] = []
    warnings: list[str] = []
    first_error: RespaldoError | None = None
    chosen = [ctx.settings.repository(only)] if only is not None else ctx.settings.repositories
    for repo_settings in chosen:
        try:
            repo = ctx.repository(repo_settings.name)
            if leases is not None:
                leases.enter_context(reading_lease(repo, purpose, warnings.append))
            opened.append(repo)
        except RespaldoError as exc:
            if only is not None:
                raise
            first_error = first_error or exc
            if errors is not None:
                errors[repo_settings.name] = exc
            warnings.append(f"repository {repo_settings.name} cannot be read: {exc}")
    if not opened:
        if first_error is None:
            ctx.settings.repository()  # raises the "no repository configured" error
        assert first_error is not None
        raise first_error
    return opened[0], opened[1:], warnings


def load_manifest_any(repo: Repository, fallbacks: list[Repository], backup_id: str) -> Manifest:
    """The backup's manifest from the first repository that has it whole.

    Raises BackupNotFound, or IntegrityError for a damaged manifest or for a backup that
    ``respaldo repair`` found to have lost chunks (no good copy anywhere): such a restore
    is refused before it touches anything, rather than failing halfway.
    """
    return load_manifest_where(repo, fallbacks, backup_id)[0]


def load_manifest_where(
    repo: Repository, fallbacks: list[Repository], backup_id: str
) -> tuple[Manifest, Repository, bool]:
    """:func:`load_manifest_any`, the repository the manifest was read from, and whether
    ``repo`` (read first) holds it damaged rather than lacking it."""
    source = repo
    damaged = False
    try:
        manifest = repo.load_manifest(backup_id)
    except (BackupNotFound, IntegrityError) as exc:
        damaged = isinstance(exc, IntegrityError)
        for other in fallbacks:
            try:
                manifest = other.load_manifest(backup_id)
                source = other
                break
            except (BackupNotFound, IntegrityError):
                continue
        else:
            raise
    refuse_lost(repo, fallbacks, backup_id)
    return manifest, source, damaged


def only_elsewhere(
    backup_id: str, first: Repository, source: Repository, *, damaged: bool = False
) -> str:
    """The warning for a backup whose manifest the repository read first lacks, or holds
    ``damaged``: read from ``source``. Every chunk of it then comes from there too."""
    where = (
        f"backup {backup_id} has a damaged manifest in {first.storage.location}"
        if damaged
        else f"backup {backup_id} is not in {first.storage.location}"
    )
    return f"{where}, the repository read first: {READ_ELSEWHERE} {source.storage.location}"


def read_only_elsewhere(warnings: Sequence[str], backup_id: str) -> tuple[str, bool] | None:
    """Where backup ``backup_id`` was read from when ``warnings`` hold its
    :func:`only_elsewhere` warning, and whether the repository read first holds its
    manifest damaged (rather than lacking it); else None."""
    lacks = f"backup {backup_id} is not in "
    damaged = f"backup {backup_id} has a damaged manifest in "
    for warning in warnings:
        if warning.startswith((lacks, damaged)) and f": {READ_ELSEWHERE} " in warning:
            return warning.rpartition(f": {READ_ELSEWHERE} ")[2], warning.startswith(damaged)
    return None


def load_manifest_told(
    ctx: Context, repo: Repository, fallbacks: list[Repository], backup_id: str
) -> Manifest:
    """:func:`load_manifest_any`, its refusals told for what the user asked: a backup
    the catalog records as failed or unfinished is said to be that (not to be missing,
    with 'respaldo list', which shows it, as the hint), one deleted from its primary
    while a mirror waits (by a prune or by hand) to be that; a damaged manifest gets a hint. Every
    kind of restore (logical, physical, files), ``ls`` and drills read the manifest here
    (or through :func:`load_manifest_where_told`), so that each says the same. Raises
    what load_manifest_any raises."""
    return load_manifest_where_told(ctx, repo, fallbacks, backup_id)[0]


def load_manifest_where_told(
    ctx: Context, repo: Repository, fallbacks: list[Repository], backup_id: str
) -> tuple[Manifest, Repository, bool]:
    """:func:`load_manifest_where`, its refusals told as by :func:`load_manifest_told`."""
    try:
        found = load_manifest_where(repo, fallbacks, backup_id)
    except BackupNotFound as exc:
        record = _recorded(ctx, backup_id)
        status = None if record is None else record.status
        if status is None and _catalog_lacks(ctx, backup_id):
            # Chosen from a list, then deleted before the restore started (a prune in the
            # moment between its last look at the queue and the deletion): 'no backup
            # ... in file:///...' alone said nothing of why.
            raise BackupNotFound(
                f"{exc}, and the catalog does not list it either: it was deleted after it "
                "was chosen (it expired and a prune deleted it, or it was deleted by hand), "
                "or the id is wrong; nothing was changed",
                hint="'respaldo list' shows the backups there are; restore one of them",
            ) from None
        if record is not None and record.primary_deleted_at is not None:
            # Not "no backup in file:///...": its record stays only for a mirror that a
            # prune or a deletion by hand could not reach (not read now, or lacking it by
            # now too).
            raise BackupNotFound(
                f"{expired_said(record)}, and no repository read holds it; its record "
                "stays until it is deleted from the mirror it was copied to too (by a "
                "later prune that reaches it, or by deleting it again)",
                hint="'respaldo list' shows the backups there are; restore one of them",
            ) from None
        if status is None or status == BackupStatus.COMPLETED:
            raise
        what = "failed" if status == BackupStatus.FAILED else f"has not finished ({status})"
        raise BackupNotFound(
            f"backup {backup_id} {what}: it holds nothing to list or restore",
            hint="'respaldo list' shows the completed backups; 'respaldo show "
            f"{backup_id}' says what happened to this one",
        ) from None
    except IntegrityError as exc:
        if not exc.hint:
            exc.hint = (
                "nothing was changed; restore another backup ('respaldo list'), and run "
                "'respaldo verify' to see what else is damaged"
            )
        raise
    if not fallbacks:
        _refuse_lost_copy(ctx, repo, backup_id)
    return found


def _refuse_lost_copy(ctx: Context, repo: Repository, backup_id: str) -> None:
    """Raise IntegrityError if ``repo``, read alone (``--repository NAME``, or the one
    repository that opened), holds a copy of ``backup_id`` that the catalog records as
    having lost data (:mod:`~respaldo.operations.lost_packs`): its manifest is there,
    and the restore failed halfway at the first chunk it lost."""
    name = ctx.repository_name(repo)
    if name is None:
        return
    try:
        with ctx.catalog.read() as session:
            lost = BackupCopies(session).lost_data(backup_id, name)
    except RuntimeError:  # a context without catalog (restore from a bare repository)
        return
    if lost is not None:
        raise IntegrityError(
            f"the copy of backup {backup_id} in repository {name} cannot be restored: {lost}",
            backup=backup_id,
            hint=f"nothing was changed; restore it from another repository that holds it, "
            f"or run 'respaldo copy --all --to {name}' (it sends what the copy lost), then "
            "restore it again",
        )


def _recorded(ctx: Context, backup_id: str) -> BackupRecord | None:
    """The catalog's record of ``backup_id``; None without a catalog or a record."""
    try:
        return ctx.record(backup_id)
    except (RecordNotFound, RuntimeError):  # RuntimeError: a context without catalog
        return None


def _catalog_lacks(ctx: Context, backup_id: str) -> bool:
    """True if the context has a catalog and it has no record of ``backup_id``."""
    try:
        ctx.record(backup_id)
    except RecordNotFound:
        return True
    except RuntimeError:  # a context without catalog (restore from a bare repository)
        return False
    return False


def refuse_lost(repo: Repository, fallbacks: list[Repository], backup_id: str) -> None:
    """Raise IntegrityError if ``backup_id`` lost chunks that no repository holds."""
    lost = lost_chunks_of(repo, backup_id, fallbacks)
    if lost:
        when = min(chunk.recorded for chunk in lost)
        raise IntegrityError(
            f"the backup is damaged: {len(lost)} of its chunks have no good copy in "
            f"any repository ('respaldo repair' found this on {when:%Y-%m-%d %H:%M} UTC)",
            backup=backup_id,
            hint="restore another backup ('respaldo list' shows damaged ones as verified "
            "'failed'); if a repository holding a copy turns up, configure it and run "
            "'respaldo repair'",
        )


_UNCOUNTED = "the backup recorded no row count for it"


def row_count_differences(
    manifest: Manifest,
    conninfo: ConnInfo,
    *,
    only: Sequence[tuple[str, str]] | None = None,
    checked: Collection[str] = (),
) -> tuple[int, list[str]]:
    """Compare every table's row count (or those of the tables ``only`` names, as
    (schema, table)) with the count the backup's snapshot recorded, counted and keyed in
    the backup's own format (:mod:`respaldo.postgres.counts`).

    A table of ``only`` whose count the backup did not record differs too: it would
    otherwise go unchecked (a backup without any counts, from before they were taken,
    checks nothing). Tables whose keys are in ``checked`` were counted and matched
    already (:class:`~respaldo.operations.restore_parallel.RowCheck`): when no other is
    left, nothing is counted. Returns (tables compared, one line per table that differs).
    """
    recorded: dict[str, int] = manifest.meta.get("row_counts") or {}
    if not recorded:
        return 0, []
    fmt = counts_format(manifest.meta)
    expected: dict[str, int | None] = dict(recorded)
    if only is not None:
        # Names from the dump's table of contents: matched to the recorded ones.
        keys = {count_key(schema, table, fmt) for schema, table in only}
        found = {key: find_recorded(recorded, key) for key in keys}
        expected = {
            real or key: recorded.get(real) if real else None for key, real in found.items()
        }
    if not expected:
        return 0, []
    if all(table in checked for table in expected):
        return len(expected), []
    with exported_snapshot(conninfo, fmt=fmt) as snapshot:
        actual = snapshot.row_counts
    differ = {t for t, count in expected.items() if count is not None and actual.get(t) != count}
    if differ:
        differ -= rerouted(recorded, actual, hash_partition_leaves(conninfo, fmt=fmt), differ)
    wrong = [
        count_difference(table, actual.get(table), count)
        if count is not None
        else f"{table}: {_UNCOUNTED}"
        for table, count in sorted(expected.items())
        if count is None or table in differ
    ]
    return len(expected), wrong


def rerouted(
    recorded: Mapping[str, int],
    actual: Mapping[str, int],
    leaves: Mapping[str, str],
    differ: Collection[str],
) -> set[str]:
    """Of the tables whose counts ``differ``, the leaf partitions whose hash-partitioned
    tree holds, leaf by leaf summed, what the backup recorded: pg_dump loads such a
    tree's rows through its root where the hash follows an enum's values, which a new
    database numbers anew, and the rows then land in other leaves of the same tree
    (:func:`~respaldo.postgres.server.hash_partition_leaves`). Every leaf of the tree
    must have a recorded count. Pure."""
    roots = {leaves[table] for table in differ if table in leaves}
    whole: set[str] = set()
    for root in roots:
        tree = [leaf for leaf, of in leaves.items() if of == root]
        if all(leaf in recorded for leaf in tree) and sum(recorded[leaf] for leaf in tree) == sum(
            actual.get(leaf, 0) for leaf in tree
        ):
            whole.update(tree)
    return whole


def check_row_counts(
    manifest: Manifest,
    conninfo: ConnInfo,
    *,
    only: Sequence[tuple[str, str]] | None = None,
    checked: Collection[str] = (),
) -> int:
    """Raise RestoreError unless every table's row count (or those of ``only``) matches
    (those of ``checked`` matched already); returns tables compared."""
    compared, wrong = row_count_differences(manifest, conninfo, only=only, checked=checked)
    if wrong:
        uncounted = any(line.endswith(_UNCOUNTED) for line in wrong)
        raise counts_differ(
            wrong,
            "a table whose rows cannot be checked is never called restored: restore "
            "the whole backup (every table is checked), or its schema"
            if uncounted
            else None,
        )
    return compared


LARGE_OBJECTS_NOT_RECORDED = (
    "the backup holds no record of its large objects that this respaldo reads (it "
    "predates the record, or a newer respaldo wrote it): they were not checked"
)
"""What a restore or restore test of such a backup says."""


def large_object_differences(
    manifest: Manifest, conninfo: ConnInfo
) -> tuple[LargeObjects | None, list[str]]:
    """The backup's record of its large objects (None for a backup that predates it:
    nothing is read then) and what differs in ``conninfo``'s database, one phrase each
    (:mod:`respaldo.postgres.largeobjects`). Raises ConnectionFailed, QueryFailed."""
    expected = recorded_large_objects(manifest.meta)
    if expected is None:
        return None, []
    actual = large_objects(conninfo, part_size=expected.part_size)
    return expected, large_objects_differ(expected, actual)


def check_large_objects(manifest: Manifest, conninfo: ConnInfo) -> int | None:
    """Raise RestoreError unless ``conninfo``'s database holds the large objects the
    backup recorded (count, bytes, contents); returns how many, or None when the backup
    recorded none (it predates the record: nothing checked)."""
    expected, wrong = large_object_differences(manifest, conninfo)
    if wrong:
        raise RestoreError(
            f"restored large objects differ from the backup's: {'; '.join(wrong)}",
            hint="the backup may be damaged; try another backup and run 'respaldo verify'",
        )
    return None if expected is None else expected.count


def _swap(
    ctx: Context,
    db: DatabaseSettings,
    admin: ConnInfo,
    staging: str,
    target: str,
    started: datetime,
    notes: list[str],
) -> str:
    """Swap ``staging`` in place of ``target``; the name the replaced one is kept under.
    What went wrong once the swap was done is appended to ``notes``."""
    # Cut by bytes, not characters: 40 characters of another script can exceed
    # PostgreSQL's 63 bytes, and it would silently rename to a truncated other name.
    old = _unused_name(admin, f"{truncate_name(target, 40)}_old_{started.strftime('%Y%m%d%H%M%S')}")
    _run_hook(
        db.pre_restore_hook,
        "pre-restore",
        hint=f"nothing was changed: {target} is as it was; fix pre_restore_hook and retry",
    )
    terminate_connections(admin, target)
    # An application's connection pool reconnects within milliseconds of its sessions
    # being ended, and a database with sessions cannot be renamed: every --replace of a
    # database in use failed. So it refuses new ones while it is swapped (if it accepted
    # them), and accepts them again once it is out of the way, under its old name.
    blocked = allows_connections(admin, target)
    # Durably, before the first change: a process killed between the two renames leaves
    # the user's database under ``old`` (shut, too), and only this note says so
    # (restore_swap).
    note_swap(ctx, db.name, target, old, datetime.now(UTC), blocked=blocked)
    if blocked:
        allow_connections(admin, target, False)
    try:
        # Not cleared if this fails: it may have happened all the same (a connection lost
        # after the commit); the status clears the note once it finds the target.
        rename_database(admin, target, old)
    except BaseException as failed:
        if blocked:
            _reopen(admin, target, target, failed)
        raise
    try:
        rename_database(admin, staging, target)
    except BaseException as failed:
        try:
            rename_database(admin, old, target)
            if blocked:
                allow_connections(admin, target, True)
            clear_swap(ctx, db.name, target)
        except BaseException as back:
            # The live data is whole, under another name: that is what must be said.
            reopen = f' and ALTER DATABASE "{target}" ALLOW_CONNECTIONS true' if blocked else ""
            raise RestoreError(
                f"the swap failed half-way: database {target} is now named {old} and could "
                f"not be renamed back ({first_line(back)}); the restored copy was not "
                f"swapped in ({first_line(failed)})",
                hint=f"nothing is lost: rename it back with ALTER DATABASE "
                f'"{old}" RENAME TO "{target}" (after ending the sessions connected to '
                f"{old}){reopen}, then restore again",
            ) from failed
        raise
    if blocked:
        # The kept copy as it was; the restored one has the backup's own setting. Said,
        # not raised: the restored copy is in place, the restore happened.
        try:
            _reopen(admin, old, target)
        except RestoreError as exc:
            notes.append(f"{exc} — {exc.hint}")
    clear_swap(ctx, db.name, target)
    # Too late to undo: the caller must hear that the swap itself happened.
    _run_hook(
        db.post_restore_hook,
        "post-restore",
        hint=f"the restore itself is done: {target} holds the backup and the previous "
        f"database is kept as {old}; finish the post-restore steps by hand",
    )
    return old


def _reopen(admin: ConnInfo, name: str, target: str, failed: BaseException | None = None) -> None:
    """Let database ``name`` (the swapped target, under its name or its old one) accept
    connections again; if that fails, say so: it refuses every one (and, with ``failed``,
    why the swap stopped: that error is not raised then, and must not be lost)."""
    try:
        allow_connections(admin, name, True)
    except RespaldoError as exc:
        why = f"; the swap stopped because {first_line(failed)}" if failed is not None else ""
        raise RestoreError(
            f"database {name} refuses every connection: it was shut for the swap of {target} "
            f"and could not be opened again ({first_line(exc)}){why}",
            hint=f'allow them with ALTER DATABASE "{name}" ALLOW_CONNECTIONS true',
        ) from None


def _replication_left_behind(admin: ConnInfo, old: str, target: str) -> list[str]:
    """A warning when the replaced database, now ``old``, still subscribes to another
    (logical replication): its subscriptions go on applying the publisher's changes to
    it, while pg_restore made ``target``'s copies disabled. Nothing else says that the
    database the application now uses stopped receiving them. Never raises: the
    restore is done."""
    try:
        enabled = [name for name, on in subscriptions_of(admin, old) if on]
    except RespaldoError as exc:
        log.warning("cannot read the subscriptions of %s: %s", old, first_line(exc))
        return []
    if not enabled:
        return []
    names = ", ".join(enabled)
    return [
        f"the replaced database, kept as {old}, still subscribes ({names}) and receives the "
        f"publisher's changes; {target} has them restored disabled. To replicate into "
        f"{target}: in {old}, ALTER SUBSCRIPTION … DISABLE, ALTER SUBSCRIPTION … SET "
        f"(slot_name = NONE) and DROP SUBSCRIPTION; then in {target}, ALTER SUBSCRIPTION "
        "… ENABLE (it goes on from where the slot is: what the old database received "
        "since the backup is not sent again)"
    ]


def _slots_left_behind(admin: ConnInfo, old: str) -> list[str]:
    """The logical replication slots of the replaced database, now ``old``: a publisher's
    subscribers'. Never raises: the restore is done."""
    try:
        return logical_slots_of(admin, old)
    except RespaldoError as exc:
        log.warning("cannot read the replication slots of %s: %s", old, first_line(exc))
        return []


def _publisher_note(slots: Sequence[str], old: str, target: str, kept: str | None) -> str:
    """The warning when the replaced database published to subscribers through ``slots``.
    A slot belongs to its database by OID, not by name: the subscribers, which connect to
    ``target`` by name, reach the restored database, which has no such slot, and receive
    nothing (retrying every few seconds), while the slot, kept in ``old`` (``kept``) or
    dropped with it, is no use to them. Each kept slot holds this server's WAL from the
    subscriber's last position on: nothing recycles it, and the disk fills. And the
    subscribers hold what was written since the backup, which ``target`` does not: only
    copying the tables again makes them match. Their server is not respaldo's to touch:
    the statements are said."""
    names = ", ".join(slots)
    if kept:
        said = (
            f"the replaced database, kept as {kept}, holds the logical replication slots of "
            f"its subscribers ({names}): they stay with it (a slot belongs to its database, "
            f"not its name), so the subscribers that connect to {target} fail ('replication "
            "slot … was not created in this database') and receive nothing, and each slot "
            "keeps this server from recycling WAL until it is dropped: the disk fills"
        )
        # Slot names are lower-case letters, digits and underscores: nothing to escape.
        statements = "; ".join(f"SELECT pg_drop_replication_slot('{slot}')" for slot in slots)
        drop = f"; then, on this server: {statements} (or drop {kept})"
    else:
        said = (
            f"the replaced database's logical replication slots ({names}) were dropped with "
            f"it: the subscribers that connect to {target} fail ('replication slot … does "
            "not exist') and receive nothing"
        )
        drop = ""
    return (
        f"{said}. The subscribers also hold what was written since the backup, which "
        f"{target} does not: on each subscriber, ALTER SUBSCRIPTION … DISABLE, ALTER "
        "SUBSCRIPTION … SET (slot_name = NONE) and DROP SUBSCRIPTION, empty its copies of "
        f"the published tables, and CREATE SUBSCRIPTION again (it copies them from {target}, "
        f"with a slot of its own there){drop}"
    )


def _copied_subscriptions(
    admin: ConnInfo, target: str, conn: Connection | None = None
) -> list[str]:
    """A warning when ``target``, restored under a name of its own, holds the backed-up
    database's logical replication subscriptions: pg_restore made them disabled, naming the
    replication slot on the publisher that the original subscriber uses. PostgreSQL
    refuses to drop the copy while it holds them, and a plain ``DROP SUBSCRIPTION`` in it
    connects to the publisher and drops that slot: the original's replication broken,
    what the publisher wrote meanwhile never sent to it. Never raises: the restore is
    done."""
    try:
        names = [name for name, _ in subscriptions_of(admin, target, conn)]
    except RespaldoError as exc:
        log.warning("cannot read the subscriptions of %s: %s", target, first_line(exc))
        return []
    if not names:
        return []
    return [
        f"{target} holds the backed-up database's subscriptions ({', '.join(names)}), "
        "disabled, naming the replication slots the original subscriber uses on the "
        f"publisher: before dropping them (or {target}, which PostgreSQL refuses until "
        f"then), in {target}: ALTER SUBSCRIPTION … SET (slot_name = NONE), else DROP "
        "SUBSCRIPTION drops the original's slot on the publisher"
    ]


def _unused_name(admin: ConnInfo, name: str) -> str:
    """``name``, or ``name_2``, ``name_3``…: the first no database has. A second replace of
    the same target within one second must not fail on the name of the old copy."""
    candidate, n = name, 1
    while database_exists(admin, candidate):
        n += 1
        candidate = f"{name}_{n}"
    return candidate


def _run_hook(argv: Sequence[str], what: str, *, hint: str) -> None:
    """Run a hook with :func:`~respaldo.childenv.hook_environment`: the operator's program
    gets no passphrase, no password, nothing of respaldo's own configuration."""
    if not argv:
        return
    try:
        done = subprocess.run(
            list(argv),
            env=hook_environment(),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RestoreError(f"{what} hook {argv[0]} could not run: {exc}", hint=hint) from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        detail = f": {' / '.join(tail)}" if tail else ""
        raise RestoreError(
            f"{what} hook {argv[0]} failed with status {done.returncode}{detail}", hint=hint
        )


def _restore_globals(
    reader: StreamReader, manifest: Manifest, admin: ConnInfo, tools: Tools
) -> tuple[list[str], list[str]]:
    """Create the roles (and tablespaces) of the backup that the server lacks; returns
    warnings, and what was created (role names, "tablespace NAME"), sorted.

    Roles that exist already are left exactly as they are: re-applying the backup's
    ``ALTER ROLE … PASSWORD`` would silently reset today's passwords (the restoring
    superuser's included) to those of the backup's day. Raises
    RestoreError, before any role is created, for a script with bytes that are not in the
    encoding it declares.
    """
    # psql is sent UTF-8, whatever pg_dumpall wrote the script in.
    try:
        script = utf8_client(read_globals(reader, manifest).text)
    except UnicodeDecodeError as exc:
        # Role names are stored in the encoding of the database each was created from.
        raise RestoreError(
            f"the backup's roles cannot be read in the encoding their script declares: {exc}",
            hint=f"nothing was changed; restore without {option('with_globals')}, and create "
            "the roles it needs by hand",
        ) from None
    before = _globals_present(admin)
    existing = {name for kind, name in before if kind == "role"}
    script, kept = filter_globals(script, existing)
    # ON_ERROR_STOP off: a grant that exists, or a tablespace whose directory is not
    # there, must not stop the roles that are missing. VERBOSITY=verbose: each failure
    # carries its SQLSTATE, so it is found on a server that says "FEHLER" or "ERREUR"
    # (a lost membership or role setting vanished from the warnings there).
    done = psql(
        admin,
        sql=script,
        variables={"ON_ERROR_STOP": "0", "VERBOSITY": "verbose"},
        bindir=tools.bindir,
    )
    warnings = statement_errors(done.stderr)
    # Asked, not read from the script: with ON_ERROR_STOP off a CREATE may have failed.
    # Only what the script creates: a role another session made meanwhile (a deployment,
    # an administrator) is not ours, and a user cleaning up would drop it.
    created = sorted(
        name if kind == "role" else f"{kind} {name}"
        for kind, name in (_globals_present(admin) - before) & script_creates(script)
    )
    if kept:
        warnings.append(kept_roles_warning(kept))
    logins = login_roles(script)
    if manifest.meta.get("globals_role_passwords") is False and logins:
        # The backup's role could not read pg_authid: these roles came back able to log
        # in but with no password, and an application using one fails to connect (with
        # password or scram authentication) with nothing else saying why.
        warnings.append(passwordless_logins_warning(logins))
    return warnings, created


def kept_roles_warning(kept: Collection[str]) -> Phrase:
    """A restore --globals' warning of the backup's roles the server had already."""
    # counted(): one role said "1 roles exist already".
    return counted(
        len(kept),
        N_(
            "{count} role exists already and was left unchanged, without the backup's "
            "memberships and grants for it: {roles}"
        ),
        N_(
            "{count} roles exist already and were left unchanged, without the backup's "
            "memberships and grants for them: {roles}"
        ),
        roles=", ".join(shown_role(name) for name in sorted(kept)),
    )


def shown_role(name: str) -> str:
    """A role's name for a message: as it is, or, with a line break or another control
    character in it, as a Python string literal (``'jefe\\nerp_app'``), whole on the
    message's one line."""
    return name if name.isprintable() else repr(name)


def passwordless_logins_warning(logins: Collection[str]) -> Phrase:
    """A restore --globals' warning of the login roles it created without passwords (the
    backup's role could not read pg_authid)."""
    return counted(
        len(logins),
        N_(
            "{count} login role was created without a password (the backup's role could "
            "not read it: pg_authid needs a superuser): {roles}; if it logs in with a "
            "password, set it again (ALTER ROLE … PASSWORD) before the applications connect"
        ),
        N_(
            "{count} login roles were created without passwords (the backup's role could "
            "not read them: pg_authid needs a superuser): {roles}; those that log in with a "
            "password need it set again (ALTER ROLE … PASSWORD) before the applications "
            "connect"
        ),
        roles=", ".join(shown_role(name) for name in sorted(logins)),
    )


def _globals_present(admin: ConnInfo) -> set[tuple[str, str]]:
    """The server's roles and tablespaces, as ("role", name) and ("tablespace", name)."""
    # Names as values, not as psql's lines: a role named "jefe<newline>role erp_app" was
    # read as the role erp_app, whose CREATE ROLE the backup's script then skipped.
    with connect(admin, autocommit=True) as conn:
        # The names compared with the script's, which psql is sent in UTF-8.
        conn.execute("SET client_encoding TO 'UTF8'")
        rows = conn.execute(
            "SELECT 'role', rolname::text FROM pg_catalog.pg_roles "
            "UNION ALL SELECT 'tablespace', spcname::text FROM pg_catalog.pg_tablespace"
        ).fetchall()
    return {(str(kind), str(name)) for kind, name in rows}


def script_lines(script: str) -> Iterator[str]:
    """The lines of a pg_dumpall globals script as psql reads them, each with its line
    break: a line break inside a quoted name (``CREATE ROLE "jefe<newline>erp_app";``,
    pg_dumpall quotes such names) or a string does not end one; one in a ``--`` comment
    does. Pure.

    pg_dumpall writes each statement on a line of its own, so these are its statements;
    read line by line, the two halves of such a name matched no role, and the existing
    role's CREATE and ALTER ROLE … PASSWORD ran again (today's password set back)."""
    start = 0
    quote = ""  # '"' or "'" while inside one
    comment = False
    i = 0
    while i < len(script):
        char = script[i]
        if comment:
            comment = char != "\n"
        elif quote:
            # A doubled quote is two toggles: out of the name and into it again.
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif script.startswith("--", i):
            comment = True
            i += 1
        if char == "\n" and not quote and not comment:
            yield script[start : i + 1]
            start = i + 1
        i += 1
    if start < len(script):
        yield script[start:]


def _unquoted(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


_LOGIN_ROLE = re.compile(r'ALTER ROLE ((?:"(?:[^"]|"")+")|[^\s;]+) WITH\b[^\n]*?\sLOGIN\b')


def login_roles(script: str) -> set[str]:
    """The roles a pg_dumpall globals script gives ``LOGIN`` (``ALTER ROLE … WITH …
    LOGIN``, as pg_dumpall writes it after each ``CREATE ROLE``). Pure."""
    found = set()
    for line in script_lines(script):
        match = _LOGIN_ROLE.match(line)
        if match:
            found.add(_unquoted(match.group(1)))
    return found


# A quoted name may hold line breaks ([^"] matches them too).
_NAME = r'(?:"(?:[^"]|"")+"|[^\s;"]+)'
"""A role's (or parameter's) name as pg_dumpall writes it: quoted, or bare."""
_ROLE_STATEMENT = re.compile(r'(?:CREATE|ALTER) ROLE ((?:"(?:[^"]|"")+")|[^\s;]+)[\s;]')


_CREATE_STATEMENT = re.compile(r'CREATE (ROLE|TABLESPACE) ((?:"(?:[^"]|"")+")|[^\s;]+)[\s;]')


def script_creates(script: str) -> set[tuple[str, str]]:
    """The roles and tablespaces a pg_dumpall globals script creates, as ("role", name)
    and ("tablespace", name), the names unquoted. Pure."""
    found: set[tuple[str, str]] = set()
    for line in script_lines(script):
        match = _CREATE_STATEMENT.match(line)
        if match:
            found.add((match.group(1).lower(), _unquoted(match.group(2))))
    return found


# What else of a pg_dumpall globals script changes a role that may exist: its comment, its
# memberships (``GRANT g TO m … GRANTED BY …``: the member) and its grants on parameters
# (``GRANT SET ON PARAMETER p TO r``, PostgreSQL 15+) and tablespaces. The group is
# matched by a name without spaces, as pg_dumpall writes it (quoted where need be): "SET
# ON PARAMETER" is not one.
_NAMED_ROLE_STATEMENTS = (
    re.compile(rf"COMMENT ON ROLE ({_NAME})[\s;]"),
    re.compile(rf"GRANT {_NAME} TO ({_NAME})[\s;]"),
    re.compile(
        rf"(?:GRANT|REVOKE) [A-Z][A-Z ,]* ON (?:PARAMETER|TABLESPACE) {_NAME} "
        rf"(?:TO|FROM) ({_NAME})[\s;]"
    ),
)


def filter_globals(script: str, existing: set[str]) -> tuple[str, set[str]]:
    """Drop the statements of a pg_dumpall globals script that change roles in
    ``existing`` (``CREATE ROLE``, ``ALTER ROLE``, ``COMMENT ON ROLE``, their memberships
    and grants on parameters and tablespaces); return the script and the roles it left
    alone. Pure.

    A membership granted again to an existing role gave back what was revoked since the
    backup (a departed employee's role its group's access) while the restore said that
    role was "left unchanged"."""
    kept: set[str] = set()
    lines = []
    for line in script_lines(script):
        match = _ROLE_STATEMENT.match(line) or next(
            (m for m in (r.match(line) for r in _NAMED_ROLE_STATEMENTS) if m), None
        )
        if match:
            name = _unquoted(match.group(1))
            if name in existing:
                kept.add(name)
                continue
        lines.append(line)
    return "".join(lines), kept


def drop_quietly(admin: ConnInfo, name: str) -> str | None:
    """Drop a scratch database after a failure or a drill; if that fails too, say so in
    one line, logged and returned (for a result's warnings).

    The original error matters more than the cleanup's, and no traceback must come before
    it: the database is left to :func:`~respaldo.postgres.scratchdb.drop_abandoned`.
    """
    try:
        drop_scratch(admin, name)
    except KeyboardInterrupt:
        # A second Ctrl-C or SIGTERM while the drop waits (on a lock, a slow server)
        # stops it, as its user asked; the database stays, a whole copy of the data, and
        # the command used to end with only "respaldo: terminated" for the story.
        log.warning(
            "interrupted while dropping %s: it is left on the server; the next restore "
            "or drill on this server drops it",
            describe_scratch(name),
        )
        raise
    except Exception as exc:
        said = (
            f"could not drop {describe_scratch(name)} ({exc}): the next restore or drill on "
            "this server tries again"
        )
        log.warning("%s", said)
        return said
    return None

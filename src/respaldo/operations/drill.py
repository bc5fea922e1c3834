"""Restore tests (drills): prove that a backup restores, not only that its bytes are intact.

A drill restores a logical backup into a throwaway database on the configured server
(``respaldo_drill_<hex>``), measures how long the restore took (the RTO actually
achievable), then checks:

- the restore itself ended cleanly (``pg_restore --exit-on-error``, stream checksum),
  after what a restore does first: the database's own properties read from the dump, the
  throwaway database given its encoding and locale, the properties tried on it;
- every table's exact row count equals the count recorded in the backup's snapshot;
- the large objects' count, total bytes and contents' digest equal those recorded in the
  snapshot (:mod:`respaldo.postgres.largeobjects`; a backup that predates the record
  passes this check, saying that nothing was compared);
- each validation query of the database's config returns its expected value (run
  read-only, with a timeout);
- optionally ``pg_amcheck`` finds no corruption in tables and indexes;
- the backup's roles (the ``globals`` stream, which a restore onto a new server needs with
  ``--globals``) read whole, as the restore reads them (``roles``).

Each run is recorded (``drill_runs``) with every check's result. Success marks the backup
verified (``is_verified``, ``verified_at``); failure marks it unverified. The throwaway
database is always dropped; if the process dies first (or the server restarts under
it), the next drill or restore on that server drops it (:mod:`respaldo.postgres.scratchdb`).

A physical (``incremental``) backup is restored instead into a scratch data directory
(``<tempdir>/respaldo-drill-XXXX/data``), configured to recover to the end of the backup
(``recovery_target = 'immediate'``: its own WAL suffices) and started on a free local
port (another one if a process took it before the server bound it). Its checks: the
restore (bytes and seconds until the server accepts connections, the RTO), the recovery
(consistent state reached, promoted), the validation queries of the configured database
run against the scratch server (after the database's unlogged tables are named: they
come back empty from every physical backup), optionally ``pg_amcheck``, and the WAL archived after
the backup (``wal archive``: no segment missing before later ones, else point-in-time
recovery from the backup cannot go past the gap; an archive that could not be listed, or
a manifest that predates ``stop_lsn``, fails it too: nothing was checked).
The scratch server is always stopped and its directory removed; if the process dies
first, the next drill does it.

A ``files`` backup is restored into a scratch directory of its own
(``<tempdir>/respaldo-drill-XXXX/files``, as a restore with ``--target-dir`` does it:
every member checked, the stream's checksum); its checks are the restore and the
contents (the files, directories, links and bytes that came back against what the
backup counted). The directory is removed as a physical drill's is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from respaldo import cancellation
from respaldo.catalog import BackupRecords, DrillRuns
from respaldo.config import DatabaseSettings
from respaldo.domain import BackupKind, BackupStatus, DrillStatus, validate_backup_id
from respaldo.errors import (
    BackupNotFound,
    ConfigError,
    IntegrityError,
    InvalidBackupId,
    InvalidInput,
    JobCancelled,
    RecordNotFound,
    RecoveryFailed,
    RespaldoError,
    first_line,
)
from respaldo.operations import alerts
from respaldo.operations.backup import GLOBALS_STREAM
from respaldo.operations.context import Context
from respaldo.operations.expired import expired_record
from respaldo.operations.jobs import current_job
from respaldo.operations.models import ResultModel
from respaldo.operations.pardump import table_of_contents
from respaldo.operations.physical_restore import free_port as restore_free_port
from respaldo.operations.physical_restore import restore_datadir
from respaldo.operations.restore import (
    LARGE_OBJECTS_NOT_RECORDED,
    StreamReader,
    create_scratch,
    drop_quietly,
    large_object_differences,
    load_manifest_where_told,
    match_locale,
    only_elsewhere,
    open_with_fallbacks,
    read_elsewhere,
    read_globals,
    read_only_elsewhere,
    restore_stream_into,
    restore_tools,
    row_count_differences,
)
from respaldo.operations.restore_props import check_properties, read_database_properties
from respaldo.operations.targets import remove_tree
from respaldo.operations.tested_kinds import DATABASE_KINDS, relied_on
from respaldo.operations.views import DrillCheckView
from respaldo.operations.wal import read_archived
from respaldo.operations.wal_coverage import archive_check
from respaldo.phrases import N_, Phrase, counted, joined, recorded
from respaldo.postgres import ConnInfo, server_major
from respaldo.postgres.amcheck import pg_amcheck
from respaldo.postgres.datadir import Owner, RecoveryTarget, find_server_bindir, stop_server
from respaldo.postgres.queries import readonly_value
from respaldo.postgres.scratchdb import (
    DRILL_PREFIX,
    drop_abandoned,
    scratch_name,
)
from respaldo.postgres.server import (
    connect,
    own_sessions,
    restore_sessions,
    server_version_num,
    unlogged_relations,
    writable,
)
from respaldo.postgres.toolsets import find_tools
from respaldo.repository import Manifest, Repository

if TYPE_CHECKING:
    from respaldo.operations.files_restore import FilesRestoreResult

log = logging.getLogger(__name__)

SCRATCH_PREFIX = DRILL_PREFIX
DATADIR_PREFIX = "respaldo-drill-"
"""Scratch data directories of physical drills: ``<tempdir>/respaldo-drill-XXXX``."""
SERVER_USER = "postgres"
SCRATCH_SERVER = {"listen_addresses": "127.0.0.1", "lc_messages": "C"}
"""The scratch server listens where the drill connects and nowhere else (the restored
configuration may say '*': a copy of production data open to the network, and a port
taken on 127.0.0.1 would leave it listening on the other addresses only, the drill's
connection going to whoever took it); its log is in English, which respaldo reads."""


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class DrillResult:
    run_id: int
    backup_id: str
    database: str
    passed: bool
    restore_seconds: float | None
    checks: list[Check] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def found_failure(self) -> str | None:
        """What failed, for the job's row (see operations.jobs.Verdict); None if passed."""
        if self.passed:
            return None
        what = _first_failure(self.checks) or "no check ran"
        return f"the restore test failed: {what}"

    def view(self) -> DrillView:
        """The result model that ``drill --json`` prints and the API returns."""
        return DrillView(
            run_id=self.run_id,
            backup_id=self.backup_id,
            database=self.database,
            passed=self.passed,
            restore_seconds=self.restore_seconds,
            checks=[DrillCheckView(name=c.name, ok=c.ok, detail=c.detail) for c in self.checks],
            warnings=list(self.warnings),
        )


class DrillView(ResultModel):
    """A restore test that just ran: passed or not, and each check."""

    run_id: int
    backup_id: str
    database: str
    passed: bool
    restore_seconds: float | None
    checks: list[DrillCheckView]
    warnings: list[str]


def run_drill(
    ctx: Context,
    target: str,
    *,
    amcheck: bool | None = None,
    respaldo_command: str | None = None,
    free_port: Callable[[], int] | None = None,
) -> DrillResult:
    """Restore-test backup ``target`` (an id) or the newest backup of database or file
    set ``target`` (see :func:`backup_to_test`), record the run and its checks, and mark
    the backup (un)verified.

    A physical backup (by id) is restored into a scratch data directory and started;
    ``respaldo_command`` is the respaldo its server runs for ``restore_command``
    (default: this one). Its port is one that ``free_port`` (default: the kernel's
    choice on 127.0.0.1) finds free, and another one if a process took it meanwhile.

    A failed check is a result (``passed`` False), not an exception; so is a backup of
    the catalog that no configured repository can give (manifest gone or damaged, chunks
    lost), every one of them opened: its run is recorded failed, the backup marked
    unverified, the alert sent. A repository that does not open (a disk not mounted, S3
    down) says nothing of the backup: that drill raises its error, and the backup keeps
    its mark. Raises ConfigError or RecordNotFound when there is nothing to test
    (BackupNotFound for an id the catalog does not have either).
    """
    remove_leftovers(ctx)
    backup_id = backup_to_test(ctx, target)
    with contextlib.ExitStack() as leases:
        unopened: dict[str, RespaldoError] = {}
        try:
            repo, fallbacks, warnings = open_with_fallbacks(
                ctx, leases, f"drill of {backup_id}", unopened
            )
            # Told as a restore tells it: one deleted from the primary while a mirror
            # waits is said to be that, not "no backup ... in file:///...".
            manifest, source, damaged = load_manifest_where_told(ctx, repo, fallbacks, backup_id)
            if source is not repo:
                # After a disaster recovery that recreated the primary repository, the
                # older backups are in the mirror alone: said, and in its record
                # (_copies), as that rather than as chunks gone from the primary.
                # A manifest the primary holds damaged is damage, not that: said so.
                warnings.append(only_elsewhere(backup_id, repo, source, damaged=damaged))
        except (BackupNotFound, IntegrityError) as exc:
            # Judged only where every repository was read: the backup may be whole in
            # one that did not open. One deleted from the primary (by a prune or by hand)
            # while a mirror waited is no failed restore test to alert about.
            if unopened or expired_record(ctx, backup_id) is not None:
                raise
            result = _unreadable(ctx, backup_id, exc)
            if result is None:
                raise
            _alert(ctx, result)
            return result
        if manifest.kind == BackupKind.INCREMENTAL.value:
            result = _physical_drill(
                ctx,
                manifest,
                repo,
                warnings,
                amcheck,
                respaldo_command,
                free_port or restore_free_port,
            )
        elif manifest.kind == BackupKind.FILES.value:
            if amcheck:
                raise InvalidInput("amcheck", "only applies to a drill of a database backup")
            result = _files_drill(ctx, manifest, warnings)
        else:
            result = _drill(ctx, manifest, repo, fallbacks, warnings, amcheck)
    if not result.passed:
        _alert(ctx, result)
    return result


def _unreadable(ctx: Context, backup_id: str, exc: RespaldoError) -> DrillResult | None:
    """A backup of the catalog that cannot be read (its manifest gone or damaged, chunks
    lost, in every configured repository): a restore test that failed, recorded as one and marking
    the backup unverified, rather than an error that leaves an earlier pass standing.
    None for an id the catalog does not have (nothing to test)."""
    with ctx.catalog.read() as session:
        try:
            database = BackupRecords(session).get(backup_id).database_name
        except RecordNotFound:
            return None
    result = _started(ctx, backup_id, database or "", "", [])
    result.checks.append(Check("restore", False, str(exc)))
    return _finish(ctx, result, None)


def _alert(ctx: Context, result: DrillResult) -> None:
    """A restore test that ran and failed ends without an exception (its job completes,
    the result says why): the alert is sent here."""
    failed = [c for c in result.checks if not c.ok]
    # Phrases: an alert in Spanish says them in Spanish, each failed check ("NAME:
    # DETAIL", as the run's error reads) by its name and what it found (respaldo.reasons).
    what = joined(recorded(f"{c.name}: {c.detail}" if c.detail else c.name) for c in failed)
    backup = result.backup_id
    error = (
        Phrase(
            N_("restore test of backup {backup} failed ({failures})"), backup=backup, failures=what
        )
        if what
        else Phrase(N_("restore test of backup {backup} failed"), backup=backup)
    )
    alerts.notify_failure(
        ctx,
        "drill",
        error,
        database=result.database,
        repository=ctx.settings.repository().name if ctx.settings.repositories else None,
        hint=Phrase(
            N_(
                "'respaldo drill {backup}' runs it again and shows every check; until a "
                "restore test passes, this backup may not restore"
            ),
            backup=backup,
        ),
    )


def _drill(
    ctx: Context,
    manifest: Manifest,
    repo: Repository,
    fallbacks: list[Repository],
    warnings: list[str],
    amcheck: bool | None,
) -> DrillResult:
    backup_id = manifest.backup_id
    if manifest.kind != BackupKind.FULL.value:
        raise ConfigError(
            f"backup {backup_id} is a {manifest.kind} backup; drills restore logical (full) "
            "backups into a throwaway database and physical (incremental) ones into a "
            "scratch data directory"
        )
    db = ctx.settings.database(manifest.source)
    admin = _admin(ConnInfo.from_settings(db))
    scratch = scratch_name(SCRATCH_PREFIX)
    result = _started(ctx, backup_id, db.name, scratch, warnings)
    error: str | None = None
    created: str | None = None  # the one database this drill may drop
    # The hold ends after the finally clause has dropped the scratch database.
    with contextlib.ExitStack() as hold:
        try:
            # As a restore does (operations.restore): a session of its own for the
            # version, which decides the options of every other session, then one session
            # for every question and step before the load instead of one each (a backend
            # start and its catalog caches: 8 on "postgres" before, docs/benchmarks.md,
            # session 21), closed before the load (``asking``): left idle for as long as
            # the load takes, idle_session_timeout or a firewall's idle cut could end it.
            admin = own_sessions(admin, server_version_num(admin))
            asking = hold.enter_context(contextlib.ExitStack())
            conn = asking.enter_context(connect(admin, autocommit=True))
            result.warnings += drop_abandoned(admin, conn)
            tools = restore_tools(db, admin, manifest, conn)
            started = time.monotonic()
            # A name taken already is another drill's database: another is drawn.
            scratch = created = create_scratch(
                hold, admin, scratch, lambda: scratch_name(SCRATCH_PREFIX), conn=conn
            )
            reader = StreamReader(repo, fallbacks, result.warnings)
            try:
                # What a restore does before it restores, so that a drill fails wherever
                # a restore would: properties it cannot read (in the dump's encoding),
                # a locale this server lacks, a role they name that it lacks.
                with table_of_contents(reader.stream, manifest) as toc:
                    properties, _notes = read_database_properties(
                        toc, no_owner=False, bindir=tools.bindir
                    )
                match_locale(admin, scratch, properties.create_options, conn=conn)
                check_properties(admin, properties, scratch, conn)
                # A restore's own sessions on its database: no login event trigger of the
                # backup's fires for them (and adds rows the counts would not expect).
                scratch_conn = restore_sessions(admin, conn).with_dbname(scratch)
                asking.close()
                size = restore_stream_into(
                    ctx, reader, manifest, scratch_conn, 1, False, None, tools
                )
                result.restore_seconds = time.monotonic() - started
                result.checks.append(
                    Check("restore", True, f"{size} bytes in {result.restore_seconds:.1f} s")
                )
            except RespaldoError as exc:
                result.checks.append(Check("restore", False, str(exc)))
            else:
                result.checks += _checks(ctx, manifest, scratch_conn, db, amcheck)
                result.checks += _roles_check(reader, manifest)
        except RespaldoError as exc:
            error = str(exc)
            result.checks.append(Check("drill", False, error))
        finally:
            if created is not None and (left := drop_quietly(admin, created)) is not None:
                # A whole copy of the database stays on its server: the run says so.
                result.warnings.append(left)
    return _finish(ctx, result, error)


def _started(
    ctx: Context, backup_id: str, database: str, scratch: str, warnings: list[str]
) -> DrillResult:
    """The drill's run recorded as started (its scratch name, for a later sweep to find
    should this process die), and its result so far (passed: not yet)."""
    with ctx.catalog.begin() as session:
        run_id = (
            DrillRuns(session)
            .start(backup_id, database=database, scratch_name=scratch, job_id=current_job())
            .id
        )
    return DrillResult(run_id, backup_id, database, False, None, warnings=warnings)


class _Restored(Protocol):
    warnings: list[str]
    seconds: float
    bytes_restored: int


def _restored(result: DrillResult, restored: _Restored, until: str = "") -> None:
    """A restore that worked, in ``result``: its warnings, time and passed check."""
    result.warnings += restored.warnings
    result.restore_seconds = restored.seconds
    detail = f"{restored.bytes_restored} bytes in {restored.seconds:.1f} s{until}"
    result.checks.append(Check("restore", True, detail))


def _physical_drill(
    ctx: Context,
    manifest: Manifest,
    repo: Repository,
    warnings: list[str],
    amcheck: bool | None,
    respaldo_command: str | None,
    free_port: Callable[[], int],
) -> DrillResult:
    backup_id = manifest.backup_id
    db = ctx.settings.database(manifest.source)
    owner = Owner.lookup(SERVER_USER) if os.geteuid() == 0 else None
    scratch = Path(tempfile.mkdtemp(prefix=DATADIR_PREFIX))
    datadir = scratch / "data"
    result = _started(ctx, backup_id, db.name, str(scratch), warnings)
    error: str | None = None
    try:
        if owner is not None:
            # The server's user must enter the scratch directory (mkdtemp made it 0700).
            os.chown(scratch, owner.uid, owner.gid)
        try:
            restored = restore_datadir(
                ctx,
                backup_id,
                datadir,
                target=RecoveryTarget(immediate=True),
                start=True,
                # Free when chosen, but another process may take it before the server
                # binds it: then the server starts again on another.
                port=free_port(),
                next_port=free_port,
                server_settings=SCRATCH_SERVER,
                os_user=SERVER_USER,
                respaldo_command=respaldo_command,
                # A throwaway copy (and its server syncs the directory as it starts).
                durable=False,
                throwaway=True,
            )
        except RecoveryFailed as exc:
            result.checks.append(Check("restore", True, f"restored into {datadir}"))
            result.checks.append(Check("recovery", False, str(exc)))
        except RespaldoError as exc:
            result.checks.append(Check("restore", False, str(exc)))
        else:
            _restored(result, restored, " (until the server accepted connections)")
            result.checks.append(
                Check(
                    "recovery",
                    restored.started,
                    "; ".join(restored.recovery) or "consistent, promoted",
                )
            )
            port = int(restored.settings["port"])
            conninfo = replace(ConnInfo.from_settings(db), host="127.0.0.1", port=port)
            if restored.started:
                result.checks += _unlogged_check(conninfo, result)
            result.checks += _query_checks(ctx, conninfo, db, amcheck)
        # The backup restores to its end; point-in-time recovery from it needs the WAL
        # archived after it without a hole.
        # Each segment recovery would replay is read whole, as wal-fetch reads it: names
        # alone said "continuous" of an archive holding a damaged segment.
        system_id = str(manifest.meta.get("system_identifier") or "")

        def read(name: str) -> str | None:
            cancellation.check()  # between segments: a drill of an old backup reads many
            return read_archived(ctx.settings, repo, name, system_id=system_id)

        ok, detail, notes = archive_check(repo, manifest, read)
        result.checks.append(Check("wal archive", ok, detail))
        result.warnings += notes
    except (RespaldoError, OSError) as exc:
        error = str(exc)
        result.checks.append(Check("drill", False, error))
    finally:
        _remove_scratch_datadir(scratch, manifest, db.pg_bin_dir)
    return _finish(ctx, result, error)


UNLOGGED_SHOWN = 10
"""How many unlogged tables (sequences) a physical drill's check names (the rest are
counted)."""


def _unlogged_check(conninfo: ConnInfo, result: DrillResult) -> list[Check]:
    """The unlogged tables of the configured database, which a physical backup gives back
    empty whatever they held (PostgreSQL writes no WAL for them, pg_basebackup copies
    none of their rows), and its unlogged sequences, given back reset to their start (a
    logged table numbered from one gets numbers its rows hold): the drill passed green
    without a word while the rows were gone. Said in checks that pass (no physical
    backup can hold them; a logical one does) and warnings; nothing when there are none.
    A database the drill cannot list them in (its pg_hba.conf may let the configured
    role in from elsewhere only) passes too, saying so: a drill without validation
    queries never connected before, and this says nothing of the backup."""
    name = "unlogged tables"
    try:
        found = unlogged_relations(conninfo)
    except RespaldoError as exc:
        detail = (
            f"not listed ({exc}); every unlogged table came back empty, as from every "
            "physical backup"
        )
        result.warnings.append(detail)
        return [Check(name, True, detail)]
    checks = []
    if found.tables:
        # Both sentences whole (counted): respaldo.reasons recognises each as stored.
        detail = counted(
            len(found.tables),
            N_(
                "1 unlogged table came back empty, as from every physical backup: {tables} "
                "(PostgreSQL writes no WAL for them and a physical backup holds none of their "
                "rows; a logical backup holds them)"
            ),
            N_(
                "{count} unlogged tables came back empty, as from every physical backup: "
                "{tables} (PostgreSQL writes no WAL for them and a physical backup holds none "
                "of their rows; a logical backup holds them)"
            ),
            tables=_named(found.tables),
        )
        checks.append(Check(name, True, detail))
    if found.sequences:
        if len(found.sequences) == 1:
            what = "1 unlogged sequence came back reset to its start"
        else:
            what = f"{len(found.sequences)} unlogged sequences came back reset to their start"
        detail = (
            f"{what}, as from every physical backup: {_named(found.sequences)} (a table "
            "numbered from one gets numbers its rows hold; set each with setval to its "
            "table's highest number after a physical restore, or make it logged)"
        )
        checks.append(Check("unlogged sequences", True, detail))
    result.warnings += [check.detail for check in checks]
    return checks


def _named(names: list[str]) -> str:
    shown = ", ".join(names[:UNLOGGED_SHOWN])
    if len(names) > UNLOGGED_SHOWN:
        shown += f"; and {len(names) - UNLOGGED_SHOWN} more"
    return shown


def _files_drill(ctx: Context, manifest: Manifest, warnings: list[str]) -> DrillResult:
    from respaldo.operations.files_restore import restore_files

    backup_id = manifest.backup_id
    scratch = Path(tempfile.mkdtemp(prefix=DATADIR_PREFIX))
    result = _started(ctx, backup_id, manifest.source, str(scratch), warnings)
    error: str | None = None
    try:
        try:
            # A throwaway copy: nothing to make durable (it is removed right after).
            restored = restore_files(ctx, backup_id, scratch / "files", durable=False)
        except RespaldoError as exc:
            result.checks.append(Check("restore", False, str(exc)))
        else:
            _restored(result, restored)
            result.checks.append(_files_contents(manifest, restored))
    except OSError as exc:
        error = str(exc)
        result.checks.append(Check("drill", False, error))
    finally:
        _remove_scratch_datadir(scratch)
    return _finish(ctx, result, error)


def _files_contents(manifest: Manifest, restored: FilesRestoreResult) -> Check:
    """What came back against what the backup counted when it was taken."""
    got = {
        "files": restored.files,
        "directories": restored.directories,
        "symlinks": restored.symlinks,
        "file_bytes": restored.bytes_restored,
    }
    # Each count with its noun agreeing ("1 links" before): phrases of respaldo.reasons.
    said = {
        "files": counted(restored.files, N_("{count} file"), N_("{count} files")),
        "directories": counted(
            restored.directories, N_("{count} directory"), N_("{count} directories")
        ),
        "links": counted(restored.symlinks, N_("{count} link"), N_("{count} links")),
        "bytes": restored.bytes_restored,
    }
    if not all(key in manifest.meta for key in got):
        unrecorded = N_(
            "{files}, {directories}, {links}, {bytes} bytes (the backup recorded no counts "
            "to compare)"
        )
        return Check("contents", True, Phrase(unrecorded, **said))
    wrong = [
        f"{key}: {value} restored, {manifest.meta[key]} backed up"
        for key, value in got.items()
        if value != manifest.meta[key]
    ]
    if wrong:
        return Check("contents", False, "; ".join(wrong))
    return Check(
        "contents",
        True,
        Phrase(N_("{files}, {directories}, {links}, {bytes} bytes, as backed up"), **said),
    )


def _is_scratch_datadir(path: Path) -> bool:
    return path.parent == Path(tempfile.gettempdir()) and path.name.startswith(DATADIR_PREFIX)


def _remove_scratch_datadir(
    scratch: Path, manifest: Manifest | None = None, pg_bin_dir: Path | None = None
) -> None:
    """Stop a server still running in ``scratch/data`` (immediately), remove ``scratch``."""
    if not _is_scratch_datadir(scratch):
        log.warning("not removing %s: not a drill's scratch directory", scratch)
        return
    datadir = scratch / "data"
    if (datadir / "postmaster.pid").exists():
        try:
            if manifest is not None:
                major = int(manifest.meta["server_version_num"]) // 10000
            else:
                major = int((datadir / "PG_VERSION").read_text().strip())
            owner = _owner_of(datadir)
            bindir = find_server_bindir(major, pg_bin_dir)
            stop_server(datadir, bindir=bindir, owner=owner, mode="immediate")
        except (RespaldoError, OSError, ValueError) as exc:
            log.warning("cannot stop the scratch server in %s: %s", datadir, exc)
    remove_tree(scratch)  # also what a files drill restored as 0000 or read-only


def _owner_of(datadir: Path) -> Owner | None:
    if os.geteuid() != 0:
        return None
    uid = datadir.stat().st_uid
    entry = pwd.getpwuid(uid)
    return Owner(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _copies(result: DrillResult) -> None:
    """A drill that passed only thanks to a mirror says so in its record (history,
    report), not only in a warning of the run: the primary's copy is damaged."""
    notes = read_elsewhere(result.warnings)
    elsewhere = read_only_elsewhere(result.warnings, result.backup_id)
    if elsewhere is not None and elsewhere[1]:
        # The primary holds the manifest damaged: damage, not a backup the primary lacks
        # (it was told as "not in the repository read first ... as after a disaster
        # recovery", which made the damage look expected).
        result.checks.append(
            Check(
                "copies",
                True,
                Phrase(
                    N_(
                        "the backup's manifest is damaged in the repository read first; it "
                        "was read from {repository}: run 'respaldo verify --all' to see what "
                        "else is damaged there"
                    ),
                    repository=elsewhere[0],
                ),
            )
        )
        return
    if elsewhere is not None:
        source = elsewhere[0]
        # Not damage to repair: the repository read first does not hold this backup.
        detail: Phrase | str = Phrase(
            N_(
                "the backup is not in the repository read first, only in {repository}, "
                "which it was read from: as after a disaster recovery that recreated the "
                "primary repository (older backups stay in the mirror alone until retention "
                "expires them); if it should be in both, 'respaldo verify --all' names what "
                "is gone"
            ),
            repository=source,
        )
        result.checks.append(Check("copies", True, detail))
        return
    if not notes:
        return
    shown = "; ".join(notes[:3]) + (f"; and {len(notes) - 3} more" if len(notes) > 3 else "")
    detail = counted(
        len(notes),
        N_(
            "1 chunk missing or damaged in the repository read first came from another: "
            "{chunks}; run 'respaldo verify --all' and 'respaldo repair'"
        ),
        N_(
            "{count} chunks missing or damaged in the repository read first came from "
            "another: {chunks}; run 'respaldo verify --all' and 'respaldo repair'"
        ),
        chunks=shown,
    )
    result.checks.append(Check("copies", True, detail))


def _finish(ctx: Context, result: DrillResult, error: str | None) -> DrillResult:
    # A drill cancelled while it ran failed wherever the cancellation stopped it (a
    # pg_restore killed, a connection closed): that says nothing of the backup, so it is
    # not judged. JobCancelled ends the job cancelled, and its run is recorded cancelled
    # (never a failed restore test: not in the history, the status, the report, metrics).
    token = cancellation.current()
    if token is not None and token.cancelled:
        try:
            with ctx.catalog.begin() as session:
                DrillRuns(session).cancel(result.run_id, reason=token.reason or "cancelled")
        except Exception as exc:  # the sweep records it when its job has ended
            log.warning("cannot record drill run %s as cancelled: %s", result.run_id, exc)
        token.check()
    _copies(result)
    backup_id = result.backup_id
    run_id = result.run_id
    result.passed = bool(result.checks) and all(c.ok for c in result.checks)
    now = datetime.now(UTC)
    with ctx.catalog.begin() as session:
        DrillRuns(session).finish(
            run_id,
            passed=result.passed,
            restore_seconds=result.restore_seconds,
            checks=[c.to_json() for c in result.checks],
            error=error or _first_failure(result.checks),
        )
        try:
            BackupRecords(session).set_verified(backup_id, now, verified=result.passed)
        except RecordNotFound:
            result.warnings.append(f"backup {backup_id} is not in the catalog: not marked")
    return result


def _roles_check(reader: StreamReader, manifest: Manifest) -> list[Check]:
    """The backup's roles (``pg_dumpall --globals-only``), read whole (every chunk
    authenticated, from a mirror where the primary's copy is bad, the stream's checksum)
    and decoded as ``restore --globals`` decodes them: a restore onto a new server needs
    them, and the drill, which restores into the server the roles exist on, read only
    the dump: a backup whose roles no repository could give back passed and was marked
    verified. A backup without them (none is written without) has no such check."""
    if GLOBALS_STREAM not in {stream.name for stream in manifest.streams}:
        return []
    try:
        script = read_globals(reader, manifest)
    except RespaldoError as exc:
        return [Check("roles", False, str(exc))]
    except UnicodeDecodeError as exc:
        return [Check("roles", False, f"not in the encoding their script declares: {exc}")]
    return [Check("roles", True, f"{script.size} bytes read whole")]


def _checks(
    ctx: Context,
    manifest: Manifest,
    conninfo: ConnInfo,
    db: DatabaseSettings,
    amcheck: bool | None,
) -> list[Check]:
    checks = []
    compared, wrong = row_count_differences(manifest, conninfo)
    if wrong:
        checks.append(Check("row counts", False, "; ".join(wrong[:10])))
    elif "row_counts" not in manifest.meta:
        # A backup taken before respaldo counted rows: nothing to compare, said so.
        detail = "the backup recorded no row counts (it predates them): nothing compared"
        checks.append(Check("row counts", True, detail))
    else:
        matched = counted(
            compared,
            N_("{count} table matches the snapshot"),
            N_("{count} tables match the snapshot"),
        )
        checks.append(Check("row counts", True, matched))
    checks.append(_large_objects_check(manifest, conninfo))
    return checks + _query_checks(ctx, conninfo, db, amcheck)


def _large_objects_check(manifest: Manifest, conninfo: ConnInfo) -> Check:
    """The restored large objects against the backup's record (count, bytes, contents)."""
    name = "large objects"
    try:
        expected, wrong = large_object_differences(manifest, conninfo)
    except RespaldoError as exc:
        return Check(name, False, str(exc))
    if wrong:
        return Check(name, False, "; ".join(wrong))
    if expected is None:
        return Check(name, True, LARGE_OBJECTS_NOT_RECORDED)
    return Check(
        name,
        True,
        counted(
            expected.count,
            N_("{count} large object, {bytes} bytes, matches the snapshot"),
            N_("{count} large objects, {bytes} bytes, match the snapshot"),
            bytes=expected.bytes,
        ),
    )


def _query_checks(
    ctx: Context, conninfo: ConnInfo, db: DatabaseSettings, amcheck: bool | None
) -> list[Check]:
    checks = []
    timeout = ctx.settings.drill.query_timeout_seconds
    for validation in db.validations:
        name = f"validation: {validation.name}"
        try:
            value = readonly_value(conninfo, validation.sql, timeout_seconds=timeout)
        except RespaldoError as exc:
            checks.append(Check(name, False, str(exc)))
            continue
        ok = value == validation.expect
        checks.append(Check(name, ok, f"got {_shown(value)}, expected {_shown(validation.expect)}"))
    if amcheck if amcheck is not None else ctx.settings.drill.amcheck:
        try:
            # pg_amcheck of the installation that fits the server checked.
            tools = find_tools(
                "logical", server_major(conninfo), pg_bin_dir=db.pg_bin_dir, database=db.name
            )
            found = pg_amcheck(conninfo, bindir=tools.bindir)
            checks.append(Check("pg_amcheck", found.ok, found.report[-500:] or "no corruption"))
        except RespaldoError as exc:
            checks.append(Check("pg_amcheck", False, str(exc)))
    return checks


SHOWN_CHARACTERS = 200
"""How much of a validation's value a check shows: its detail goes into the run's record,
the alert and the monthly report, and a query may well return megabytes."""


def _shown(value: str) -> str:
    if len(value) <= SHOWN_CHARACTERS:
        return repr(value)
    return f"{value[:SHOWN_CHARACTERS]!r}… ({len(value)} characters)"


def _first_failure(checks: list[Check]) -> str | None:
    for check in checks:
        if not check.ok:
            return f"{check.name}: {check.detail}"
    return None


def _admin(conninfo: ConnInfo) -> ConnInfo:
    # Scratch databases are managed from the maintenance database, writing whatever
    # default_transaction_read_only says there or for the role, as a restore does: made
    # read-only, every restore test failed on its CREATE DATABASE while restores passed.
    return writable(conninfo.with_dbname("postgres"))


def backup_to_test(ctx: Context, target: str) -> str:
    """The backup a drill of ``target`` tests: ``target`` itself if it is a backup id;
    for a file set its newest completed files backup; for a database its newest
    completed full (logical) backup, or, if it has none, its newest completed physical
    one. Raises RecordNotFound (nothing to test), ConfigError (no such database)."""
    try:
        return validate_backup_id(target)
    except InvalidBackupId:
        pass
    databases = {db.name for db in ctx.settings.databases}
    if target not in databases and target in {f.name for f in ctx.settings.file_sets}:
        name, kinds, what = target, [BackupKind.FILES], "files"
    else:
        # A database backed up only physically is tested through its physical backups.
        name = ctx.settings.database(target).name
        kinds, what = [BackupKind.FULL, BackupKind.INCREMENTAL], "logical or physical"
    with ctx.catalog.begin() as session:
        for kind in kinds:
            records = BackupRecords(session).list(
                database=name, kind=kind, status=BackupStatus.COMPLETED, limit=1
            )
            if records:
                return records[0].id
    raise RecordNotFound(
        Phrase(
            N_("no completed files backup of {name} to test")
            if what == "files"
            else N_("no completed logical or physical backup of {name} to test"),
            name=name,
        ),
        hint=Phrase(N_("take one with 'respaldo backup {name}'"), name=name),
    )


@dataclass
class DrillRound:
    """A scheduled restore test: one drill for each kind of backup that was due
    (:func:`run_restore_test_round`), in the order they ran."""

    results: list[DrillResult]
    errors: list[tuple[str, RespaldoError]] = field(default_factory=list)
    """The drills that could not run (backup id, error: a repository that did not open),
    in the order they were tried: the round went on to the other kinds."""

    @property
    def backup_id(self) -> str | None:
        """The job's result: the backup of the first drill that failed, else that could
        not run, else of the first."""
        failed = [r.backup_id for r in self.results if not r.passed]
        first = (
            failed or [backup for backup, _ in self.errors] or [r.backup_id for r in self.results]
        )
        return first[0] if first else None

    def found_failure(self) -> str | None:
        """What failed, for the job's row (see operations.jobs.Verdict); None if all passed."""
        found = [f for r in self.results if (f := r.found_failure()) is not None]
        if not found and not self.errors:
            return None
        if len(self.results) == 1 and not self.errors:
            return found[0]
        said = [f"backup {r.backup_id}: {f}" for r in self.results if (f := r.found_failure())]
        said += [
            f"backup {backup}: the restore test could not run: {first_line(str(error))}"
            for backup, error in self.errors
        ]
        return "; ".join(said)

    def audit_note(self) -> str | None:
        """The audit entry's detail of a round of several drills that all passed: each
        backup tested (the entry's target is the first alone; a failure names each
        backup it concerns). None for one drill (the target is that backup)."""
        if len(self.results) < 2 or not self.passed:
            return None
        # Recorded English, read in the page's language by respaldo.reasons.
        backups = ", ".join(r.backup_id for r in self.results)
        return f"restore tests of backups {backups} passed"

    @property
    def passed(self) -> bool:
        """Every drill ran and passed."""
        return not self.errors and all(r.passed for r in self.results)

    def view(self, target: str) -> DrillRoundView:
        """What ``drill DATABASE --json`` prints."""
        return DrillRoundView(
            target=target,
            passed=self.passed,
            drills=[r.view() for r in self.results],
            errors=[
                DrillRoundErrorView(backup_id=backup, error=str(error))
                for backup, error in self.errors
            ],
        )


class DrillRoundErrorView(ResultModel):
    """A restore test of a round that could not run (a repository that did not open)."""

    backup_id: str
    """The backup it was to test."""
    error: str
    """Why it could not run."""


class DrillRoundView(ResultModel):
    """The restore tests of a database that just ran: one for each kind of backup it
    relies on (``drill DATABASE --json``)."""

    target: str
    """The database (or file set) tested."""
    passed: bool
    """Whether every test ran and passed."""
    drills: list[DrillView]
    """Each test that ran, in the order it ran (logical first)."""
    errors: list[DrillRoundErrorView]
    """Each test that could not run."""


def run_restore_test_round(
    ctx: Context,
    target: str,
    *,
    amcheck: bool | None = None,
    respaldo_command: str | None = None,
    retest: bool = False,
    tried: DrillRound | None = None,
) -> DrillRound:
    """The restore test of ``target``: for a database, a drill of the newest backup of
    each kind it relies on (:func:`backups_to_test`), logical first. A file set, or a
    backup id, gets that one drill. ``retest`` is for a test someone asked for ('respaldo
    drill erp', the API's and the page's "test restore"): every kind relied on is tested
    anew; the schedule's round (False) skips a kind whose newest backup passed one.

    A drill that fails does not stop the round (each kind is judged on its own), nor
    does one that cannot run (a repository that does not open for the logical drill
    said nothing of the physical backups, which then went untested that month): the
    others run, and the round's :meth:`DrillRound.found_failure` names each, so the job
    ends failed. A round of one drill raises its error, as a single drill does; so does a
    round none of whose drills could run (the first error), and a cancelled one.

    ``tried`` (empty) is filled in as the round goes, for a caller that shows the round
    even when it raises (``drill DATABASE --json``: each test that could not run is in
    its ``errors``); it stays empty when the round raises before any drill (no backup to
    test)."""
    due = backups_to_test(ctx, target, retest=retest)
    done = tried if tried is not None else DrillRound([])
    for backup in due:
        try:
            done.results.append(
                run_drill(ctx, backup, amcheck=amcheck, respaldo_command=respaldo_command)
            )
        except JobCancelled:
            raise
        except RespaldoError as exc:
            done.errors.append((backup, exc))
            if len(due) < 2:
                raise
            cancellation.check()  # an error a cancellation caused ends the round
            log.warning("restore test of backup %s could not run: %s", backup, first_line(str(exc)))
    if done.errors and not done.results:
        raise done.errors[0][1]
    return done


def backups_to_test(ctx: Context, target: str, *, retest: bool = False) -> list[str]:
    """The backups a restore test of ``target`` drills, in order: for a configured
    database, the newest completed backup of each kind it relies on
    (:mod:`respaldo.operations.tested_kinds`), but for ``retest`` False those that passed
    a restore test already; when that leaves none (or ``target`` is a file set or a
    backup id), the one :func:`backup_to_test` picks. Raises as that does."""
    if target in {db.name for db in ctx.settings.databases}:
        window = ctx.settings.rpo_for(target).restore_test
        now = datetime.now(UTC)
        with ctx.catalog.read() as session:
            records = BackupRecords(session)
            newest = {}
            for kind in DATABASE_KINDS:
                found = records.list(
                    database=target, kind=kind, status=BackupStatus.COMPLETED, limit=1
                )
                if found:
                    newest[kind] = found[0]
            kinds = relied_on({k: r.completed_at for k, r in newest.items()}, now, window)
            runs = DrillRuns(session)
            due = [
                newest[kind].id
                for kind in kinds
                if retest
                or not any(
                    run.status is DrillStatus.PASSED
                    for run in runs.list(backup_id=newest[kind].id, limit=1000)
                )
            ]
        if due:
            return due
    return [backup_to_test(ctx, target)]


def remove_leftovers(ctx: Context) -> list[str]:
    """Stop the servers and remove the scratch data directories that physical drills
    killed on this host left; return their paths.

    The runs of such drills were failed when the catalog was opened (their job lapsed:
    see :mod:`respaldo.operations.reconcile`); any failed run of this host whose scratch
    directory still exists left it. The scratch databases of logical drills are not
    looked for here: one that no session holds any more is dropped by the next drill or
    restore on its server (:func:`respaldo.postgres.scratchdb.drop_abandoned`).
    """
    with ctx.catalog.read() as session:
        names = DrillRuns(session).failed_scratch()
    removed = []
    for name in names:
        scratch = Path(name)
        if _is_scratch_datadir(scratch) and scratch.exists():
            _remove_scratch_datadir(scratch)
            removed.append(name)
    return removed

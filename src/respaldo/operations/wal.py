"""WAL archiving: ``wal-push`` for archive_command, ``wal-fetch`` for restore_command.

Both run once per WAL file, started by the server, so this module stays light: no
catalog (SQLAlchemy), no index load (a WAL file is one sealed object, not chunks), and
no pydantic: the functions take the few settings they use (:class:`WalSettings`, which
``wal_fast`` loads without pydantic) or a loaded ``Settings``.

Push. The file is checked against its name (:func:`respaldo.postgres.wal.read_wal_file`)
and its cluster is known from its own segment header (history files have none: the
``pg_control`` of the data directory it is in tells, else the repository's record). The
repository records which cluster each configured database is (``clusters/<database>``,
written by the first push or physical backup); a file of another cluster is refused,
so that a re-created or foreign server can never mix its WAL into this archive or
believe it is archived. Pushing a file that is archived already succeeds if the content
is the same (the server retries a push whose success it missed) and is refused if not.

Fetch. ``restore_command`` runs ``wal-fetch --system-id ID %f %p``: the file is read
from ``wal/<ID>/<timeline>/<file>`` of the primary repository, or of the one
``--repository NAME`` names (a restore from a mirror fetches from that mirror; with
``--primary-first``, from the primary for each file it can give, the mirror's copy of
the archive lagging behind the primary's), authenticated, checked (a segment's header
must name that cluster) and written to ``%p`` through a temporary name. A file that is
not in the archive raises WalNotFound, which the CLI turns into exit status 1: the
normal "no more WAL" answer. Every other failure must stop recovery rather than end it
early (see :mod:`respaldo.cli.wal_cmd`). A segment that creates a tablespace in a
directory that holds files already, not this server's own tablespace, is refused
(:func:`_check_tablespaces`): replayed, it would write into that directory.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from respaldo.config_core import WalSettings, resolve_secret_file
from respaldo.errors import (
    ConfigError,
    IntegrityError,
    InvalidWalFile,
    ObjectNotFound,
    RespaldoError,
    WalHole,
    WalNotFound,
    WalRefused,
    first_line,
)
from respaldo.operations.wal_said import first_time
from respaldo.postgres.wal import (
    PG_CONTROL,
    WalFile,
    WalKind,
    WalName,
    control_system_identifier,
    format_lsn,
    inherited_segment_problem,
    parse_lsn,
    parse_segment_header,
    parse_timeline_history,
    parse_wal_name,
    read_wal_file,
    recovery_target_set,
    segment_name,
    segment_start,
)
from respaldo.postgres.wal_records import (
    CreatedTablespace,
    created_tablespaces,
    minimal_wal_level,
)
from respaldo.repository.repo import Repository
from respaldo.repository.wal import (
    ClusterRecord,
    PutOutcome,
    get_wal,
    later_segment,
    put_wal,
    read_cluster,
    wal_object,
    write_cluster,
)
from respaldo.storage import open_storage

if TYPE_CHECKING:
    from respaldo.config import Settings

log = logging.getLogger(__name__)


def wal_settings(settings: Settings | WalSettings) -> WalSettings:
    """What the WAL functions use of ``settings``."""
    return settings if isinstance(settings, WalSettings) else settings.wal_settings()


def open_wal_repository(
    given: Settings | WalSettings, name: str | None = None, *, retries: int = 4
) -> Repository:
    """The repository ``name`` (default: the primary, which WAL is archived into), opened
    without its chunk index (WAL does not need it); ``retries`` of a transient storage
    error (see :func:`respaldo.storage.open_storage`). Raises ConfigError for an unknown
    name, and the errors of opening it."""
    settings = wal_settings(given)
    repo_settings = settings.repository(name)
    storage = open_storage(
        repo_settings.url, retries=retries, **resolve_secret_file(repo_settings.options)
    )
    return Repository.open(
        storage,
        settings.repository_passphrase(),
        compression_level=settings.compression_level,
        load_index=False,
        key_cache=settings.cache_dir if settings.key_cache else None,
    )


def wal_database(settings: WalSettings, name: str | None) -> str:
    """The configured database whose cluster's WAL this is: ``name``, or the only one."""
    if name is not None:
        return settings.database(name)
    if len(settings.databases) == 1:
        return settings.databases[0]
    raise ConfigError(
        "say which configured database this server is: wal-push --database NAME",
        hint=f"configured: {', '.join(settings.databases) or 'none'}",
    )


def ensure_cluster_record(
    repo: Repository, database: str, system_identifier: int, recorded_by: str
) -> ClusterRecord:
    """The repository's record of ``database``'s cluster, written now if there is none.

    Raises WalRefused if it names another cluster than ``system_identifier``.
    """
    record = read_cluster(repo, database)
    if record is None:
        record = ClusterRecord(database, str(system_identifier), datetime.now(UTC), recorded_by)
        write_cluster(repo, record)
        log.info("recorded database %s as cluster %s", database, system_identifier)
    elif record.system_identifier != str(system_identifier):
        raise WalRefused(
            f"cluster {system_identifier} is not the cluster the repository records for "
            f"database {database} ({record.system_identifier}, recorded "
            f"{record.recorded_at:%Y-%m-%d %H:%M} UTC by {record.recorded_by})",
            hint=f"if the server was re-created on purpose, run 'respaldo check {database} "
            "--adopt'; otherwise this server must not archive into this repository",
        )
    return record


def _note_minimal_wal_level(repo: Repository, database: str, system_id: str, wal: WalFile) -> None:
    """Record in the cluster record a switch to ``wal_level = minimal`` that segment
    ``wal`` holds (the server ran so for a bulk load, say, with archiving off meanwhile):
    archive recovery stops there with a FATAL error, so point-in-time recovery from every
    base backup older than it ends at it, though the archive has no gap. The status reads
    it (red until a physical backup starts after it); the push itself succeeds."""
    lsn = minimal_wal_level(wal.data)
    if lsn is None:
        return
    record = read_cluster(repo, database)
    if record is None or record.system_identifier != system_id:
        return
    timeline = int(wal.name.timeline, 16)
    if record.minimal_wal is not None:
        # The newest timeline's switch counts (one that branched off before an older
        # timeline's switch never replays it), and on one timeline the last.
        known = (record.minimal_timeline or 0, parse_lsn(record.minimal_wal))
        if known >= (timeline, lsn):
            return  # pushed again, or an older one
    write_cluster(repo, replace(record, minimal_wal=format_lsn(lsn), minimal_timeline=timeline))
    log.warning(
        "%s: the server switched to wal_level = minimal at %s; point-in-time recovery from "
        "physical backups taken before it cannot go past it: take a physical backup now",
        wal.name.name,
        format_lsn(lsn),
    )


def _control_system_identifier(path: Path) -> int | None:
    """The system identifier in the pg_control of the data directory ``path`` is in."""
    datadir = path.absolute().parent.parent
    try:
        with (datadir / PG_CONTROL).open("rb") as fh:
            return control_system_identifier(fh.read(16))[0]
    except (OSError, InvalidWalFile):  # none there, or truncated: we do not know
        return None


@dataclass(frozen=True)
class PushResult:
    file: str
    object: str
    outcome: PutOutcome
    system_identifier: str
    size: int
    seconds: float


def push_wal(
    settings: Settings | WalSettings,
    path: Path,
    *,
    database: str | None = None,
    repo: Repository | None = None,
) -> PushResult:
    """Archive the WAL file at ``path`` (archive_command's ``%p``).

    Idempotent for a file archived already with the same content. Raises
    InvalidWalFile, WalRefused (another cluster, or other content under this name),
    ConfigError, and the errors of opening the repository and of storage; each failure
    is also a critical alert, at most one per database per repeat interval (the server
    retries a failed push every minute).
    """
    try:
        return _push_wal(wal_settings(settings), path, database=database, repo=repo)
    except Exception as exc:
        _alert_push_failed(settings, database, exc)
        raise


def _alert_push_failed(given: Settings | WalSettings, database: str | None, exc: Exception) -> None:
    if isinstance(given, WalSettings):
        if not given.alerts:
            return  # nothing to tell: the catalog is not even opened
        try:
            # The whole configuration (notification targets, catalog) is loaded only now,
            # when there is something to send.
            settings = given.full()
        except Exception as problem:
            log.error("cannot send the alert of the failed push: %s", problem)
            return
    else:
        settings = given
    if not settings.notifications.targets:
        return
    # Imported here: alerts open the catalog (SQLAlchemy), which a push does not need.
    from respaldo.operations.alerts import notify_failure_settings

    if database is None and len(settings.databases) == 1:
        database = settings.databases[0].name
    notify_failure_settings(
        settings, "wal-push", exc, database=database, throttle_key=f"wal-push:{database or '-'}"
    )


def _push_wal(
    settings: WalSettings,
    path: Path,
    *,
    database: str | None,
    repo: Repository | None,
) -> PushResult:
    started = time.monotonic()
    name = wal_database(settings, database)
    try:
        wal = read_wal_file(path)
    except FileNotFoundError:
        raise WalRefused(f"{path} does not exist") from None
    control = _control_system_identifier(path)
    if None not in (wal.system_identifier, control) and wal.system_identifier != control:
        raise WalRefused(
            f"{wal.name.name} is from cluster {wal.system_identifier}, but the data "
            f"directory it is in belongs to cluster {control}"
        )
    repo = repo or open_wal_repository(settings)
    sysid = wal.system_identifier or control
    if sysid is None:
        record = read_cluster(repo, name)
        if record is None:
            raise WalRefused(
                f"cannot tell which cluster {wal.name.name} belongs to: it has no segment "
                "header, no pg_control is beside it, and no segment of this database was "
                "archived yet"
            )
        system_id = record.system_identifier
    else:
        system_id = ensure_cluster_record(repo, name, sysid, "wal-push").system_identifier
    _check_timeline_history(settings, repo, system_id, wal, path, database)
    outcome = put_wal(repo, system_id, wal.name.timeline, wal.name.name, wal.data)
    obj = wal_object(system_id, wal.name.timeline, wal.name.name)
    if outcome is PutOutcome.DIFFERENT:
        raise WalRefused(
            f"{obj} is archived already with other content",
            hint="two servers archive under one name (a restored copy with archiving on?); "
            "nothing was overwritten",
        )
    if wal.system_identifier is not None:
        _note_minimal_wal_level(repo, name, system_id, wal)
    return PushResult(
        wal.name.name, obj, outcome, system_id, len(wal.data), time.monotonic() - started
    )


# Per repository object, the (cluster, timeline) pairs whose history file is known to be
# archived: the background pusher (one process, one repository) asks storage once per
# timeline instead of once per segment. History files are never deleted from the archive.
_archived_histories: weakref.WeakKeyDictionary[Repository, set[tuple[str, str]]] = (
    weakref.WeakKeyDictionary()
)
_archived_histories_lock = threading.Lock()


def _history_known(repo: Repository, system_id: str, timeline: str) -> bool:
    with _archived_histories_lock:
        return (system_id, timeline) in _archived_histories.get(repo, ())


def _remember_history(repo: Repository, system_id: str, timeline: str) -> None:
    with _archived_histories_lock:
        _archived_histories.setdefault(repo, set()).add((system_id, timeline))


def _check_timeline_history(
    settings: WalSettings,
    repo: Repository,
    system_id: str,
    wal: WalFile,
    path: Path,
    database: str | None,
) -> None:
    """Make sure a segment of timeline N > 1 is stored only once ``<N>.history`` is
    archived, and refuse a segment that starts with an earlier timeline's pages unless
    that history file shows it is the timeline's first segment.

    Recovery (PostgreSQL's, and :func:`respaldo.operations.wal_coverage.newest_timeline`)
    follows a timeline only if its history file is archived: without it every segment of
    the timeline is archived in vain. PostgreSQL archives the history file before the
    timeline's segments, but only if archiving was on at the promotion: a copy restored
    without --keep-archiving and made a primary later never queues it, and if it ran a
    while before archiving was turned on, its first segment (the only one starting with
    the parent's pages) is recycled and all the segments it archives start with its own
    timeline's pages. So when the history file is not archived, the one beside the
    segment (``pg_wal``, which the server keeps its history files in) is read and
    archived first, through the whole push of a history file; none there refuses.

    A segment starting with an earlier timeline's pages that is not the timeline's first
    one is another timeline's segment under this name (a pg_wal copied by hand after a
    failover, a faulty archive script): recovery following this timeline would read its
    pages after this timeline's, take that for the end of the WAL and promote without
    what came after.
    """
    if not wal.name.has_header:
        return  # history and backup history files
    timeline = wal.name.timeline
    header = wal.header_timeline
    inherited = header is not None and header < int(timeline, 16)
    if int(timeline, 16) <= 1 or (not inherited and _history_known(repo, system_id, timeline)):
        return
    history_name = f"{timeline}.history"
    if inherited:
        refused = f"{wal.name.name} is not archived: its first page is of timeline {header}"
        why = f"nothing shows it is the first segment of timeline {int(timeline, 16)}"
    else:
        refused = f"{wal.name.name} is not archived"
        why = (
            f"a recovery would never follow timeline {int(timeline, 16)}, so nothing of it "
            "would be replayed"
        )
    copied = (
        "if it was copied under this name from another timeline (a pg_wal copied by hand, "
        "an archive script), remove it from the archive's input; it must not be archived"
    )
    beside: Path | None = None
    try:
        if inherited:
            text = get_wal(repo, system_id, timeline, history_name)
        else:
            # Only whether it is there: a stat, not a read and decryption.
            repo.storage.stat(wal_object(system_id, timeline, history_name))
            _remember_history(repo, system_id, timeline)
            return
        where = "archived"
    except ObjectNotFound:
        beside = path.parent / history_name
        try:
            text = read_wal_file(beside).data
        except FileNotFoundError:
            raise WalRefused(
                f"{refused}, and {history_name} is neither archived nor beside it: {why}",
                hint="PostgreSQL queues a timeline's history file for archiving only if "
                "archiving was on at the promotion; archive it first ('respaldo wal-push "
                f"<pg_wal>/{history_name}' with the server's pg_wal) and the server's next "
                "retry archives this one" + ("; " + copied if inherited else ""),
            ) from None
        where = f"in {path.parent}, not archived"
    try:
        history = parse_timeline_history(text.decode(errors="replace"))
    except InvalidWalFile as exc:
        raise InvalidWalFile(f"{history_name} ({where}): {exc}") from None
    if inherited and header is not None:
        problem = inherited_segment_problem(wal.name.name, header, len(wal.data), history)
        if problem is not None:
            raise WalRefused(
                f"{wal.name.name} is not archived: {problem} ({history_name}, {where})",
                hint=f"a recovery following timeline {int(timeline, 16)} would stop at its "
                "pages as if the WAL ended there; " + copied,
            )
    if beside is not None:
        # Through the whole push of a history file (its cluster, other content under its
        # name refused), so that it is archived before the segment that depends on it.
        pushed = _push_wal(settings, beside, database=database, repo=repo)
        # A warning: a restored copy archiving into production's repository makes its
        # timeline the newest one, which recovery then follows by default.
        log.warning(
            "%s: archived %s first (%s), found beside it in %s: timeline %d is now in "
            "the archive, and recovery follows the newest timeline",
            wal.name.name,
            history_name,
            pushed.outcome.value,
            path.parent,
            int(timeline, 16),
        )
    _remember_history(repo, system_id, timeline)


@dataclass(frozen=True)
class FetchResult:
    file: str
    object: str
    size: int
    seconds: float


def fetch_wal(
    settings: Settings | WalSettings,
    file: str,
    destination: Path,
    *,
    system_id: str | None = None,
    database: str | None = None,
    repository: str | None = None,
    repo: Repository | None = None,
    primary_first: bool = False,
) -> FetchResult:
    """Write archived WAL file ``file`` (restore_command's ``%f``) to ``destination`` (``%p``).

    The file is read from the configured repository ``repository`` (default: the
    primary; a restore from a mirror names the mirror, whose copy of the archive
    :func:`respaldo.operations.copy.copy_wal_to` keeps up to date). With
    ``primary_first`` and a mirror named, the primary is tried first, once, without
    retries: what it holds is read from it (the mirror's copy lags behind it by up to a
    copy interval), and a primary that cannot be opened, lacks the file or holds it
    damaged is a warning, the file then read from the mirror; when the mirror has no
    copy of a file the primary holds but could not give, the primary's error is raised
    (not WalNotFound, which would end recovery early). Without ``repository``, a file
    the primary holds damaged is read from the first mirror with a good copy (a
    warning), as a restore reads a damaged chunk. The cluster is
    ``system_id``, else the one recorded for the database. Raises
    WalNotFound (not archived: the normal end of recovery), InvalidWalFile, WalRefused
    (a segment of another cluster under this name), IntegrityError, storage errors.
    """
    started = time.monotonic()
    wal_name = parse_wal_name(file)
    data: bytes | None = None
    obj = ""
    primary = wal_settings(settings).repository(None).name
    # What the primary said of a file it has (damaged, unreadable): the answer when the
    # mirror has no copy, since "not archived" there would end recovery early.
    primary_error: RespaldoError | OSError | None = None
    if primary_first and repo is None and repository not in (None, primary):
        data, obj, primary_error = _from_primary(
            settings, wal_name, file, system_id, database, repository, destination
        )
    if data is None:
        source = repo or open_wal_repository(settings, repository)
        try:
            data, obj = _read_wal(
                source,
                settings,
                wal_name,
                file,
                system_id=system_id,
                database=database,
            )
        except WalNotFound:
            if primary_error is not None:
                raise primary_error from None
            if wal_name.kind is WalKind.SEGMENT:
                _refuse_a_hole(source, settings, wal_name, destination, system_id, database)
            raise
        except (IntegrityError, WalRefused) as exc:
            # Damaged where it is read: a mirror's copy, as a restore takes a chunk.
            if repo is not None or repository is not None:
                raise
            data, obj = _from_mirrors(settings, wal_name, file, system_id, database, exc)
    if wal_name.kind is WalKind.SEGMENT:
        _check_tablespaces(
            data, file, destination, lambda: _next_segment(settings, repository, obj, data)
        )
    tmp = destination.with_name(f".{destination.name}.respaldo-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        tmp.replace(destination)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return FetchResult(file, obj, len(data), time.monotonic() - started)


def read_archived(
    settings: Settings | WalSettings, repo: Repository, file: str, *, system_id: str
) -> str | None:
    """Read archived WAL file ``file`` of cluster ``system_id`` whole from ``repo`` (each
    chunk authenticated, its header of this cluster), as :func:`fetch_wal` gives it to
    recovery: where ``repo`` holds it damaged, a mirror's good copy (as a restore takes a
    chunk). None, or a note naming the mirror's copy that was read; raises what
    :func:`fetch_wal` raises (IntegrityError: damaged everywhere; WalNotFound)."""
    wal_name = parse_wal_name(file)
    try:
        _read_wal(repo, settings, wal_name, file, system_id=system_id, database=None)
    except (IntegrityError, WalRefused) as exc:
        _data, obj = _from_mirrors(settings, wal_name, file, system_id, None, exc)
        return f"{file} damaged in the repository read first ({first_line(exc)}): read {obj}"
    return None


def _refuse_a_hole(
    repo: Repository,
    settings: Settings | WalSettings,
    wal_name: WalName,
    destination: Path,
    system_id: str | None,
    database: str | None,
) -> None:
    """Raise WalHole if segment ``wal_name``, not archived, is not the end of the WAL:
    the archive holds a later segment of its timeline (a prune deleted the WAL of an
    expired backup after a data directory was restored from it, an object lost or
    deleted). Answered "not archived", the server takes that for the end of the WAL and
    promotes without everything after it, no error said; wal-fetch's fatal status stops
    recovery instead (the server does not start; a restart once the segment is back goes
    on).
    Only for a recovery to the end of the WAL: not with a recovery target (the server
    reads ahead of where it stops, and a target past the end of what it can fetch is an
    error of its own: "recovery ended before configured recovery target was reached"),
    not for a standby (``standby.signal``: it waits for the segment, it never promotes
    on a miss), not for a segment the server has in ``pg_wal`` (it reads it from there
    next)."""
    pg_wal = destination.absolute().parent
    datadir = pg_wal.parent
    if (datadir / "standby.signal").exists() or (pg_wal / wal_name.name).exists():
        return
    if recovery_target_set(datadir) is not False:
        return
    if system_id is None:
        record = read_cluster(repo, wal_database(wal_settings(settings), database))
        if record is None:
            return
        system_id = record.system_identifier
    later = later_segment(repo, system_id, wal_name.timeline, wal_name.name)
    if later is not None:
        raise WalHole(
            f"{wal_name.name} is missing from the archive, which holds later WAL of its "
            f"timeline ({later}): recovery stops here rather than end and promote without "
            "what came after it",
            hint="restore again with --repository naming a mirror that still holds it, or "
            "restore a newer backup; a prune deletes the WAL of the backups it expires: "
            "start a restored server before the next prune, or pin its backup "
            "('respaldo pin')",
        )


def _next_segment(
    settings: Settings | WalSettings, repository: str | None, obj: str, data: bytes
) -> bytes | None:
    """The segment after the one archived as ``obj`` (same timeline), from ``repository``
    or else the primary (a segment read from the primary while ``repository`` names a
    mirror: the mirror may lag), or None when neither has it."""
    header = parse_segment_header(data)
    if header is None:
        return None
    system_id, timeline, name = obj.split("/")[-3:]
    start = segment_start(name, header.segment_size) + header.segment_size
    following = segment_name(int(timeline, 16), start, header.segment_size)
    for source in dict.fromkeys((repository, None)):
        try:
            repo = open_wal_repository(settings, source, retries=0)
            return get_wal(repo, system_id, timeline, following)
        except (RespaldoError, OSError):
            continue
    return None


def _check_tablespaces(
    data: bytes, file: str, destination: Path, next_segment: Callable[[], bytes | None]
) -> None:
    """Refuse segment ``file`` if replaying it would write into a directory in use.

    Replaying ``CREATE TABLESPACE`` links the tablespace to the absolute path it was
    created with; PostgreSQL does not check in recovery whether that directory is in use
    already. On the machine of the server whose WAL this is, it is that server's own
    tablespace: the restored copy would write its tables' files into it (and replaying
    ``DROP TABLESPACE`` would remove them). A directory that is missing (PostgreSQL stops,
    asking for it), empty, or already this server's tablespace (``pg_tblspc/<oid>`` of the
    data directory ``%p`` is in, when recovery fetches the segment again) is let through.
    """
    for created in created_tablespaces(data, next_segment):
        problem = _tablespace_problem(created, destination.absolute().parent.parent)
        if problem is not None:
            raise WalRefused(
                f"{file} creates a tablespace (CREATE TABLESPACE) in {problem}: replaying "
                "it would write into that directory",
                hint="physical backups of clusters with tablespaces are not supported: "
                "recover to a target before the tablespace was created (--target-time, "
                "--target-lsn), or on a machine where that directory is empty or missing",
            )


def _tablespace_problem(created: CreatedTablespace, datadir: Path) -> str | None:
    """What is wrong with the location of ``created`` for a server in ``datadir``."""
    if created.unfinished:
        return (
            "a location respaldo cannot read yet: the record runs into the next segment, "
            "which the repository does not hold (once it is archived, restore again)"
        )
    if created.location is None or created.oid is None:
        return "a location respaldo could not read from the record"
    if not created.location:
        return None  # in place: inside the restored server's own pg_tblspc
    location = Path(created.location)
    try:
        if not location.is_dir() or not any(location.iterdir()):
            return None
    except OSError as exc:
        return f"{location}, which cannot be listed ({exc.strerror})"
    link = datadir / "pg_tblspc" / str(created.oid)
    if link.is_symlink() and os.path.realpath(link) == os.path.realpath(location):
        return None
    return (
        f"{location}, a directory that holds files already (another server's tablespace, "
        "or what an earlier restore replayed into it)"
    )


def _from_primary(
    settings: Settings | WalSettings,
    wal_name: WalName,
    file: str,
    system_id: str | None,
    database: str | None,
    mirror: str | None,
    destination: Path,
) -> tuple[bytes | None, str, RespaldoError | OSError | None]:
    """``file`` from the primary, tried once: (data, object, None), or (None, "", error)
    where error is what the primary said of a file it has (None when it cannot be
    opened or lacks the file). Every failure is a warning: the mirror is read next. A
    primary that cannot be opened, or lacks the file, is said once per recovery
    (:mod:`respaldo.operations.wal_said`): after a primary was lost, every fetch said it."""
    primary = wal_settings(settings).repository(None).name
    try:
        repo = open_wal_repository(settings, None, retries=0)
    except (RespaldoError, OSError) as exc:
        _fell_back(file, mirror, primary, exc, once=destination)
        return None, "", None
    try:
        data, obj = _read_wal(
            repo, settings, wal_name, file, system_id=system_id, database=database
        )
    except WalNotFound as exc:
        _fell_back(file, mirror, primary, exc, once=destination)
        return None, "", None
    except (RespaldoError, OSError) as exc:
        _fell_back(file, mirror, primary, exc)
        return None, "", exc
    return data, obj, None


def _from_mirrors(
    settings: Settings | WalSettings,
    wal_name: WalName,
    file: str,
    system_id: str | None,
    database: str | None,
    damage: IntegrityError | WalRefused,
) -> tuple[bytes, str]:
    """``file`` from the first mirror holding a good copy of it, the primary's being
    damaged (a warning names both); raises ``damage`` when none does."""
    names = [r.name for r in wal_settings(settings).repositories]
    for name in names[1:]:
        try:
            data, obj = _read_wal(
                open_wal_repository(settings, name, retries=0),
                settings,
                wal_name,
                file,
                system_id=system_id,
                database=database,
            )
        except (RespaldoError, OSError):
            continue
        why = first_line(damage)
        log.warning("%s: read from %s: the primary repository %s: %s", file, name, names[0], why)
        return data, obj
    raise damage


def _fell_back(
    file: str, mirror: str | None, primary: str, exc: BaseException, *, once: Path | None = None
) -> None:
    """Warn that ``file`` is read from ``mirror``; with ``once`` (the fetch's destination),
    only at the first fetch of the recovery, later ones at INFO. A damaged or unreadable
    file in the primary is warned of every time (``once`` None): each is news."""
    why = first_line(exc)
    if once is not None and not first_time(once, f"{primary} -> {mirror}"):
        log.info(
            "%s: reading it from %s: the primary repository %s: %s", file, mirror, primary, why
        )
        return
    log.warning(
        "%s: reading it from %s: the primary repository %s: %s%s",
        file,
        mirror,
        primary,
        why,
        ""
        if once is None
        else " (said once per recovery: it tries the primary first for "
        "every file, and reads the mirror's copy where it cannot)",
    )


def _read_wal(
    repo: Repository,
    settings: Settings | WalSettings,
    wal_name: WalName,
    file: str,
    *,
    system_id: str | None,
    database: str | None,
) -> tuple[bytes, str]:
    """The checked contents of archived WAL file ``file`` in ``repo``, and its object."""
    if system_id is None:
        name = wal_database(wal_settings(settings), database)
        record = read_cluster(repo, name)
        if record is None:
            raise WalNotFound(f"no WAL of database {name} was ever archived")
        system_id = record.system_identifier
    obj = wal_object(system_id, wal_name.timeline, wal_name.name)
    try:
        data = get_wal(repo, system_id, wal_name.timeline, wal_name.name)
    except ObjectNotFound:
        raise WalNotFound(f"{file} is not in the archive ({obj})") from None
    if wal_name.has_header:
        header = parse_segment_header(data)
        if header is None or str(header.system_identifier) != system_id:
            raise WalRefused(f"{obj} does not hold a segment of cluster {system_id}")
    return data, obj

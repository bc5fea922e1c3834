"""What ``respaldo status`` asks each database's server: is it there, and is its WAL being
archived (``pg_stat_archiver`` and the segments waiting in ``pg_wal/archive_status``)?

The server's queue of ``.ready`` files is also the backlog of the asynchronous pusher
(:mod:`respaldo.operations.wal_async`): it takes its work from there, so a pusher that
falls behind or fails shows as segments waiting, whatever the statistics say.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from respaldo.config import DatabaseSettings, Rpo
from respaldo.errors import RespaldoError
from respaldo.operations.models import ResultModel, UtcTime
from respaldo.phrases import N_, Phrase, joined
from respaldo.postgres import ConnInfo
from respaldo.postgres.archiver import (
    ArchiverState,
    IdleSlot,
    idle_slots,
    read_archiver,
    server_in_recovery,
    server_system_identifier,
    server_timeline,
    server_version_and_archive_mode,
)
from respaldo.postgres.server import Connection, connect
from respaldo.postgres.standby import StandbyReading, read_standby

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5
"""Seconds to wait for a server: status is polled, and one server down must not hold the
whole report (or a Nagios check) for libpq's default of minutes."""

_ARCHIVING = ("on", "always")

ARCHIVED_ELSEWHERE = "archived elsewhere: "
"""How the reason of a server whose archived WAL does not reach the repository begins."""
ARCHIVING_FAILS = "archiving fails, "
"""How the reason of archiving that is stuck on a failing segment begins."""

Level = Literal["green", "amber", "red"]
"""Green: as it should be. Amber: works, but look (the last attempt failed, it cannot be
told). Red: a threshold is crossed or something is down; ``respaldo status`` exits 3."""


@dataclass(frozen=True)
class ServerReading:
    """One look at a server; ``error`` says why there is nothing else."""

    error: str | None = None
    hint: str | None = None
    version: str | None = None
    archive_mode: str | None = None
    archiver: ArchiverState | None = None
    system_identifier: str | None = None
    """Which cluster the server is (read with its archiving); None: not read."""
    in_recovery: bool = False
    """A standby (read with its archiving)."""
    timeline: int | None = None
    """The timeline a primary writes on (read with its archiving); None: a standby, or
    not read."""
    idle_slots: tuple[IdleSlot, ...] | None = None
    """Its replication slots that nothing uses and that hold WAL; None: not read."""
    server: str | None = None
    """Which server the database's dsn reaches (host and port as the dsn gives them,
    libpq's defaults where it gives none): databases with the same one share its
    replication slots. None where the dsn could not be read."""
    dbname: str | None = None
    """The database's name on that server (a logical slot belongs to one)."""
    standby: StandbyReading | None = None
    """Whether it is a standby and how its replay goes (every database: one whose
    backups are logical only is backed up through it too); None: not read."""


def read_server(db: DatabaseSettings, *, archiver: bool, slots: bool = False) -> ServerReading:
    """Connect to ``db``'s server and read its version and, with ``archiver``, its
    archiving; with ``slots``, its idle replication slots (``[rpo] slot_wal_mb`` set).
    Never raises for a server that cannot be reached or read: that is the ``error`` of
    the reading (one line, no password)."""
    server = dbname = None
    try:
        conninfo = ConnInfo.from_settings(db)
        server, dbname = server_of(conninfo), conninfo.dbname
        with connect(
            conninfo,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT,
            application_name="respaldo status",
        ) as conn:
            version, mode = server_version_and_archive_mode(conn, conninfo)
            replay = read_standby(conninfo, conn)
            state, system, standby, timeline = None, None, False, None
            if archiver:
                state = read_archiver(conn, conninfo, list_waiting=mode in _ARCHIVING)
                system = server_system_identifier(conn, conninfo)
                standby = server_in_recovery(conn, conninfo)
                timeline = None if standby else server_timeline(conn, conninfo)
            idle = _idle_slots(conn, conninfo, server) if slots else None
    except RespaldoError as exc:
        return ServerReading(
            error=_one_line(exc.message), hint=exc.hint, server=server, dbname=dbname
        )
    return ServerReading(
        version=version,
        archive_mode=mode,
        archiver=state,
        system_identifier=system,
        in_recovery=standby,
        timeline=timeline,
        idle_slots=idle,
        server=server,
        dbname=dbname,
        standby=replay,
    )


def server_of(conninfo: ConnInfo) -> str:
    """The server a dsn reaches, as a key: its host (or socket directory) and port, and
    hostaddr where given. The same for two databases of one server reached alike."""
    params = conninfo.libpq_params()
    return " ".join(f"{k}={params.get(k, '')}" for k in ("host", "hostaddr", "port"))


_UNREADABLE_SLOTS: set[str] = set()
"""Servers (and roles) whose slots this process could not read and said so, at info,
once."""
_UNREADABLE_LOCK = threading.Lock()


def _idle_slots(conn: Connection, conninfo: ConnInfo, server: str) -> tuple[IdleSlot, ...] | None:
    """The server's idle slots; None (and a line in the log) if they cannot be read: the
    server item says whether the server answers, and a view this role may not read must
    not turn it red. The line is at info once per server and process, at debug after:
    the page polls the status and the watchdog reads it every few minutes, and a role
    without the privilege wrote the same line on every poll."""
    try:
        return tuple(idle_slots(conn, conninfo))
    except RespaldoError as exc:
        said = f"{server} user={conninfo.user or ''}"  # another role may read them
        with _UNREADABLE_LOCK:
            first = said not in _UNREADABLE_SLOTS
            _UNREADABLE_SLOTS.add(said)
        log.log(
            logging.INFO if first else logging.DEBUG,
            "cannot read the replication slots of %s: %s",
            conninfo.dbname,
            exc,
        )
        return None


class ArchiveView(ResultModel):
    """The server's WAL archiving as status read it. Ages are by the server's clock."""

    archive_mode: str
    """The server's archive_mode."""
    archived_count: int
    """WAL files archived since the statistics were reset."""
    last_archived_wal: str | None
    """The last WAL file archived."""
    last_archived_at: UtcTime | None
    """When it was archived."""
    last_archived_age_seconds: float | None
    """Seconds since then."""
    failed_count: int
    """Failed archive attempts since the statistics were reset."""
    last_failed_wal: str | None
    """The last WAL file whose archiving failed."""
    last_failed_at: UtcTime | None
    """When it failed."""
    waiting: int | None
    """Files waiting in the server's archive queue (the async pusher's backlog); None when
    this role may not list them."""
    oldest_waiting_age_seconds: float | None
    """Age of the oldest file waiting to be archived."""


def archive_view(mode: str, state: ArchiverState) -> ArchiveView:
    def age(when: datetime | None) -> float | None:
        return None if when is None else max(0.0, (state.now - when).total_seconds())

    return ArchiveView(
        archive_mode=mode,
        archived_count=state.archived,
        last_archived_wal=state.last_wal,
        last_archived_at=state.last_time,
        last_archived_age_seconds=age(state.last_time),
        failed_count=state.failed,
        last_failed_wal=state.failed_wal,
        last_failed_at=state.failed_time,
        waiting=state.waiting,
        oldest_waiting_age_seconds=age(state.oldest_waiting) if state.waiting else None,
    )


@dataclass(frozen=True)
class ArchiveVerdict:
    level: Level
    reason: str
    age: timedelta | None = None
    """How long the oldest segment has waited, else how long ago the last was archived."""


def stuck_state(reading: ServerReading) -> str | None:
    """Pure: where the server's archive queue cannot be listed (no ``pg_monitor``), what
    archiving that may be stuck is stuck on: the last file archived (name and time), with
    a failed attempt after it or finished segments behind it. None when nothing says so,
    or the queue can be listed (what waits there says how long), or the server was not
    read. The same state seen again means nothing was archived in between."""
    state = reading.archiver
    if (
        reading.error is not None
        or reading.archive_mode not in _ARCHIVING
        or state is None
        or state.waiting is not None
        or not (_failed_since_success(state) or state.unarchived)
    ):
        return None
    when = state.last_time.isoformat() if state.last_time is not None else "never"
    return f"{state.last_wal or 'none'} archived at {when}"


def _failed_since_success(state: ArchiverState) -> bool:
    return state.failed_time is not None and (
        state.last_time is None or state.failed_time > state.last_time
    )


def judge_archive(
    reading: ServerReading,
    rpo: Rpo,
    *,
    stored: bool | None = None,
    stuck_for: timedelta | None = None,
    gap: tuple[str, str] | None = None,
    recorded: str | None = None,
    database: str = "",
    minimal: tuple[str, str] | None = None,
    unbacked: tuple[str, str] | None = None,
    stray: tuple[int, int] | None = None,
) -> ArchiveVerdict:
    """Pure: green, amber or red for the WAL archiving of one server, with the reason.

    ``stored``: whether the primary repository holds the last segment the server says it
    archived (None: not known). ``stuck_for``: how long the same :func:`stuck_state` has
    been seen (None: first seen now). ``gap``: the first segment missing from the
    repository since the newest base backup's start, and the next one there
    (:func:`respaldo.operations.status_wal.find_gap`; None: none, or not known).
    ``recorded``: the cluster the repository records for ``database`` where the server
    is another one (re-created: ``initdb``, ``pg_upgrade``, a logical restore onto a new
    server); None: the same, or not known. ``minimal``: where the server switched to
    ``wal_level = minimal`` after the newest physical backup started, the LSN and that
    backup (:class:`respaldo.operations.status_wal.PrimaryWal`); None: it did not, or
    not known. ``unbacked``: the newest good physical backup and its cluster, where that
    is another cluster than the one archiving (re-created and adopted since); None: not
    so, or not known. ``stray``: the timeline the server archives on and a later one
    the repository holds the history file of (another server promoted from this
    cluster's history archives there); None: none, or not known.

    Red: the server is another cluster than the repository records (wal-push refuses
    its WAL, and an ``archive_command`` that stores nothing, ``true`` say, archives names
    the old cluster holds too: none of them is this server's), ``archive_mode`` off,
    that segment missing from the repository, a segment
    missing before it since the newest base backup (``gap``), the server switched to
    ``wal_level = minimal`` since that backup began (``minimal``), that backup is of
    another cluster (``unbacked``), another server archives a later timeline of this
    cluster (``stray``), a segment has
    waited longer than ``rpo.archive_lag`` (what a physical restore would lose), or,
    where the waiting files cannot be listed, the same stuck state was seen for longer
    than that. The last success alone does not say it: on a quiet database it can be an
    hour old while the segment after it finished a second ago. Amber: the server cannot
    be read (the server item says why), it is a standby with ``archive_mode = on``
    (it archives nothing; its primary is not watched), the last attempt failed, more than
    ``rpo.archive_backlog`` files wait, archiving may be stuck (not seen for long
    enough yet), or the waiting files cannot be listed.
    """
    # Each sentence is a Phrase (respaldo.phrases): the page says it in its language.
    if reading.error is not None:
        return ArchiveVerdict("amber", Phrase(N_("unknown: the server cannot be reached")))
    state = reading.archiver
    if reading.archive_mode not in _ARCHIVING or state is None:
        return ArchiveVerdict(
            "red",
            Phrase(
                N_(
                    "archive_mode is {mode} on the server: no WAL is archived "
                    "(respaldo check says how to turn it on)"
                ),
                mode=str(reading.archive_mode),
            ),
        )
    if reading.in_recovery and reading.archive_mode != "always":
        # A standby with archive_mode = on archives nothing (its primary does, or not):
        # its statistics stay at "nothing archived, nothing waiting", which said green.
        return ArchiveVerdict(
            "amber",
            Phrase(
                N_(
                    "the server is a standby: it archives no WAL (archive_mode = on "
                    "archives on a primary only), and whether its primary archives into the "
                    "repository cannot be told from here; set the database's dsn to the "
                    "primary ('respaldo check' says so)"
                )
            ),
        )
    last: str = (
        Phrase(
            N_("last archived {age} ago ({segment})"),
            age=human_age(state.now - state.last_time),
            segment=str(state.last_wal),
        )
        if state.last_time is not None
        else Phrase(N_("nothing archived yet"))
    )
    failed = _failed_since_success(state)
    if failed and state.failed_time is not None:
        last = joined(
            [
                last,
                Phrase(
                    N_("the last attempt failed ({segment}, {age} ago; the server log says why)"),
                    segment=str(state.failed_wal),
                    age=human_age(state.now - state.failed_time),
                ),
            ]
        )
    since_last = state.now - state.last_time if state.last_time is not None else None
    if recorded is not None:
        return ArchiveVerdict(
            "red",
            Phrase(
                N_(
                    "the server is cluster {server}, but the repository records cluster "
                    "{recorded} for {database}: none of this server's WAL is archived and "
                    "its physical backups are refused; if the server was re-created on "
                    "purpose, run 'respaldo check {database} --adopt' ({last})"
                ),
                server=str(reading.system_identifier),
                recorded=recorded,
                database=database,
                last=last,
            ),
            since_last,
        )
    if stray is not None:
        return ArchiveVerdict(
            "red",
            Phrase(
                N_(
                    "the server archives timeline {timeline}, but timeline {newer} of this "
                    "cluster is archived too: another server promoted from its history (a "
                    "restored copy with archiving on?) archives into the repository, and "
                    "recovery to the end of the WAL follows that server's timeline, not this "
                    "one's; turn archiving off on that server and remove the files of timeline "
                    "{newer} and later from the archive, or, if it is the new primary, set the "
                    "database's dsn to it ({last})"
                ),
                timeline=str(stray[0]),
                newer=str(stray[1]),
                last=last,
            ),
            since_last,
        )
    if stored is False:
        return ArchiveVerdict(
            "red",
            Phrase(
                N_(
                    "archived elsewhere: {last}, but it is not in the repository: "
                    "archive_command does not store WAL through respaldo ('respaldo check' "
                    "prints the one to set)"
                ),
                last=last,
            ),
            since_last,
        )
    if gap is not None:
        return ArchiveVerdict(
            "red",
            Phrase(
                N_(
                    "WAL segment {segment} is not in the repository (archived again from "
                    "{resumes} on): recovery from the newest physical backup stops there, "
                    "without what came after; take a physical backup now, from which "
                    "point-in-time recovery reaches the present again ({last})"
                ),
                segment=gap[0],
                resumes=gap[1],
                last=last,
            ),
            since_last,
        )
    if unbacked is not None:
        return ArchiveVerdict(
            "red",
            Phrase(
                N_(
                    "no physical backup of this cluster yet: the newest, {backup}, is of "
                    "cluster {cluster}, which this server's archived WAL cannot be replayed "
                    "onto (point-in-time recovery ends where that cluster ended); take a "
                    "physical backup now ({last})"
                ),
                backup=unbacked[0],
                cluster=unbacked[1],
                last=last,
            ),
            since_last,
        )
    if minimal is not None:
        return ArchiveVerdict(
            "red",
            Phrase(
                N_(
                    "the server ran with wal_level = minimal (switched at {lsn}): recovery "
                    "from the newest physical backup {backup} stops there with an error, "
                    "without what came after; take a physical backup now, from which "
                    "point-in-time recovery reaches the present again ({last})"
                ),
                lsn=minimal[0],
                backup=minimal[1],
                last=last,
            ),
            since_last,
        )
    if state.waiting and state.oldest_waiting is not None:
        waited = state.now - state.oldest_waiting
        waiting = Phrase(
            N_("1 file waiting to be archived")
            if state.waiting == 1
            else N_("{count} files waiting to be archived"),
            count=state.waiting,
        )
        if waited > rpo.archive_lag:
            over = Phrase(
                N_("{waiting}, the oldest for {age} (limit {limit})"),
                waiting=waiting,
                age=human_age(waited),
                limit=human_age(rpo.archive_lag),
            )
            return ArchiveVerdict("red", joined([over, last]), waited)
        if state.waiting > rpo.archive_backlog:
            behind_said = Phrase(
                N_("{waiting} (more than {backlog}): archiving is behind"),
                waiting=waiting,
                backlog=rpo.archive_backlog,
            )
            return ArchiveVerdict("amber", joined([behind_said, last]), waited)
    behind = state.unarchived or 0
    unseen: str = (
        Phrase(
            N_(
                "cannot see the files waiting to be archived ({why}): GRANT pg_monitor to this role"
            ),
            why=state.unknown_why,
        )
        if state.unknown_why
        else ""
    )
    if stuck_state(reading) is not None:
        # The queue cannot be listed (no pg_monitor), so no file's wait is known. The
        # archiver retries the segment that failed until it goes (or, for a program that
        # cannot run at all, fails without counting it while finished segments pile up),
        # so a state that stays the same is archiving that is stuck: what a restore would
        # lose. Since when it is so, only the looks at it tell (the last success can be
        # long before the segment after it finished).
        seen = stuck_for if stuck_for is not None and stuck_for > timedelta(0) else timedelta(0)
        limit = human_age(rpo.archive_lag)
        pending: str = (
            Phrase(
                N_("1 finished segment not archived")
                if behind == 1
                else N_("{count} finished segments not archived"),
                count=behind,
            )
            if behind
            else ""
        )
        if seen > rpo.archive_lag:
            stuck = Phrase(
                N_("archiving fails, stuck for {age} at least (limit {limit})"),
                age=human_age(seen),
                limit=limit,
            )
            return ArchiveVerdict("red", joined([stuck, pending, last, unseen]), since_last)
        maybe = Phrase(
            N_("{pending}, seen so far {age} (red after {limit})"),
            pending=pending or Phrase(N_("archiving may be stuck")),
            age=human_age(seen),
            limit=limit,
        )
        return ArchiveVerdict("amber", joined([maybe, last, unseen]), since_last)
    if failed:
        return ArchiveVerdict("amber", last, since_last)
    if state.waiting is None and state.unknown_why:
        return ArchiveVerdict("amber", joined([last, unseen]), since_last)
    waiting_now = (
        Phrase(N_("{count} waiting"), count=state.waiting)
        if state.waiting is not None
        else Phrase(N_("queue unknown"))
    )
    return ArchiveVerdict("green", joined([last, waiting_now]), since_last)


def human_age(delta: timedelta) -> str:
    """``45 s``, ``12 min``, ``26 h 30 min``, ``3 d 4 h``: whole units, never negative."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 72:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _one_line(text: str) -> str:
    return " ".join(text.split())

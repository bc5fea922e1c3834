"""The health picture: is every configured database protected as its RPO says?

``respaldo status`` prints it, the watchdog of ``respaldo serve`` alerts on it
(:mod:`respaldo.operations.watchdog`) and ``/metrics`` exports it. Per configured
database, one :class:`StatusItem` per thing that can go quietly wrong, each green, amber
or red with the reason in words:

- ``rpo:<db>:full`` and, where WAL is archived, ``rpo:<db>:incremental``: the age of
  the newest completed backup of that kind against its RPO (``[rpo]``);
- ``size:<db>:<kind>``: the newest completed backup against the one before it (much
  smaller: red);
- ``server:<db>``: whether the server answers;
- ``archive:<db>`` (where WAL is archived): ``pg_stat_archiver`` and the files waiting
  in the server's archive queue (:mod:`respaldo.operations.status_server`), and whether
  the last segment archived is in the repository (:mod:`respaldo.operations.status_wal`);
  where the queue cannot be listed, since when it looks stuck
  (:mod:`respaldo.operations.status_stuck`, noted in the catalog);
- ``restore_test:<db>``: the newest passed restore test against ``restore_test_days``,
  of each kind of backup the database relies on (:mod:`respaldo.operations.tested_kinds`);
- ``copy:<db>:<repository>``: per secondary repository, backups not copied there yet
  (not those deleted from the primary meanwhile: they can never be copied);
- ``walcopy:<db>:<repository>`` (where WAL is archived and ``[schedules] wal_copy`` is
  on): per secondary repository, since when it lacks archived WAL the primary holds
  (:mod:`respaldo.operations.status_mirror`);
- ``verify:<repository>`` (general, while ``[schedules] verify`` is on): since when each
  repository was last checked by a verify (:mod:`respaldo.operations.status_verify`)
  against ``[rpo] verify_hours``;
- ``notify:<target>`` (general): red while the newest message to a notification target
  failed (:mod:`respaldo.operations.status_notify`);
- ``swap:<db>:<target>`` (general): a ``restore --replace`` that died half-way through its
  swap, the target missing and its previous contents under the ``_old_`` name
  (:mod:`respaldo.operations.restore_swap`), until resolved;
- ``prune:<repository>`` (general): amber while the newest prune could not reach that
  secondary repository, what it needs there deferred
  (:mod:`respaldo.operations.status_prune`).

Everything is computed against an explicit ``now`` (tests move the clock). Nothing here
raises for what it finds: an unreachable server or catalog is a red item with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Literal

import sqlalchemy as sa
from pydantic import PrivateAttr
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from respaldo.catalog import (
    BackupCopy,
    BackupRecord,
    DrillRun,
    failed_verification,
)
from respaldo.catalog.copies import COPY_LOST_DATA
from respaldo.config import DatabaseSettings, Rpo, Settings
from respaldo.domain import BackupKind, BackupStatus, CopyStatus, DrillStatus
from respaldo.errors import RespaldoError, first_line
from respaldo.operations import stall
from respaldo.operations.context import Context
from respaldo.operations.models import ResultModel, Said, UtcTime
from respaldo.operations.status_drills import read_drills
from respaldo.operations.status_mirror import MirrorLag, mirror_lags
from respaldo.operations.status_prune import deferred_prunes
from respaldo.operations.status_server import (
    ArchiveView,
    Level,
    ServerReading,
    archive_view,
    human_age,
    judge_archive,
    read_server,
    stuck_state,
)
from respaldo.operations.status_stuck import stuck_since
from respaldo.operations.status_verify import last_verified
from respaldo.operations.status_wal import PrimaryWal, read_primary_wal
from respaldo.operations.tested_kinds import DATABASE_KINDS, KIND_NAMES, relied_on
from respaldo.operations.wal import open_wal_repository
from respaldo.phrases import N_, Phrase, Quantity, joined, minute
from respaldo.postgres.archiver import IdleSlot
from respaldo.postgres.standby import stale_reason
from respaldo.repository.wal import read_cluster

log = logging.getLogger(__name__)

Check = Literal[
    "rpo",
    "size",
    "server",
    "archive",
    "restore_test",
    "copy",
    "walcopy",
    "catalog",
    "repository",
    "queue",
    "swap",
    "verify",
    "notify",
    "stuck",
    "slot",
    "prune",
]
_RANK: dict[str, int] = {"green": 0, "amber": 1, "red": 2}
_OFF = "off"
# One word for each kind wherever respaldo says it (the restore-test reasons, the alerts,
# tested_kinds.KIND_NAMES): logical and physical, not "full" beside "physical" (the
# kinds' names in --type, the API and the metrics' labels stay full and incremental).
_KIND_WORDS = {
    BackupKind.FULL: N_("logical backup"),
    BackupKind.INCREMENTAL: N_("physical backup"),
    BackupKind.FILES: N_("files backup"),
}
# How far in the future a backup's time may be and still count (another machine's clock
# a little ahead). Further than that, a clock was wrong when it was taken: its real age
# is unknown, and it must not pass for a fresh backup until that date comes.
CLOCK_SKEW = timedelta(minutes=5)


class StatusItem(ResultModel):
    """One thing checked. ``key`` names it for alerts (``rpo:erp:full``); ``at`` is when
    what was measured happened (the newest backup completed, the last segment was
    archived...), ``age_seconds`` how long before ``now`` and ``limit_seconds`` the
    threshold it is held against."""

    key: str
    """What was checked, as alerts name it, e.g. rpo:erp:full."""
    check: Check
    """rpo, size, server, archive, restore_test, copy, walcopy, catalog, repository or
    queue (PostgreSQL catalog: jobs wait that no live worker takes) or swap (a restore
    --replace stopped half-way: the database is under its ``_old_`` name) or verify (when
    a verify last checked a repository) or notify (whether a notification target took the
    last message) or stuck (``respaldo serve``'s watchdog or sweep for lost jobs has run
    longer than ``[rpo] watchdog_stuck_minutes``) or slot (an inactive replication slot
    of the server holds more WAL than ``[rpo] slot_wal_mb``; amber; one item per such
    slot, none when there is none) or prune (the newest prune could not reach a secondary
    repository: what it needs there waits; amber; one item per such repository)."""
    database: str | None = None
    """The configured database it is about, if one."""
    kind: BackupKind | None = None
    """The backup type it is about, if one."""
    repository: str | None = None
    """The repository it is about, if one."""
    level: Level
    """green, amber or red."""
    reason: Said
    """Why, in words, with what to do when not green."""
    at: UtcTime | None = None
    """When what was measured happened (the newest backup completed...)."""
    age_seconds: float | None = None
    """Seconds from then to the check."""
    limit_seconds: float | None = None
    """The threshold the age is held against."""
    backup_id: str | None = None
    """The backup it is about, if one."""
    count: int | None = None
    """How many: backups not copied (``copy``), files waiting to be archived (``archive``),
    jobs waiting (``queue``)."""


class DatabaseStatus(ResultModel):
    """Every item of one configured database (or file set); ``level`` is the worst."""

    database: str
    """The configured database, or file set."""
    level: Level
    """The worst level of its items."""
    physical: bool
    """Whether physical backups and WAL archiving are expected (its WAL is archived)."""
    server_version: str | None
    """Its server's PostgreSQL version, when the server was read."""
    archive: ArchiveView | None
    """Its server's WAL archiving, when the server was read."""
    items: list[StatusItem]
    """Everything checked for it."""


class StatusReport(ResultModel):
    """The whole picture at ``checked_at``; ``level`` is the worst item's."""

    checked_at: UtcTime
    """When the status was computed (every age is counted to it)."""
    level: Level
    """The worst level of every item: green, amber or red."""
    general: list[StatusItem]
    """Items of no one database: the catalog, the primary repository."""
    databases: list[DatabaseStatus]
    """Every configured database, then every file set, in configuration order."""

    _unread: frozenset[str] = PrivateAttr(default=frozenset())
    """The checks whose items could not be read this time (``queue``, ``swap``)."""

    @property
    def items(self) -> list[StatusItem]:
        return [*self.general, *(i for db in self.databases for i in db.items)]

    def was_read(self, check: str) -> bool:
        """Whether the items of ``check`` (``queue``, ``swap``) were read: one such item
        absent from the report is then a condition that is met (a swap whose database
        exists again, a queue no job waits in), not one that could not be looked at."""
        return "catalog" not in {i.check for i in self.general} and check not in self._unread

    @property
    def red(self) -> bool:
        return self.level == "red"


def worst(levels: Iterable[str]) -> Level:
    found: Level = "green"
    for level in levels:
        if _RANK[level] > _RANK[found]:
            found = level  # type: ignore[assignment]  # a key of _RANK
    return found


def compute_status(
    ctx: Context,
    now: datetime,
    *,
    wal_archived: Collection[str] | None = None,
    servers: bool = True,
) -> StatusReport:
    """The status of every configured database at ``now`` (aware).

    ``wal_archived``: the databases whose WAL the primary repository archives (the
    service knows them from its start-up); None reads them from the repository here.
    ``servers=False`` leaves the servers alone (no ``server`` or ``archive`` items): what
    the catalog alone says. Never raises for what it finds.
    """
    settings = ctx.settings
    general: list[StatusItem] = []
    unread: set[str] = set()
    if wal_archived is None:
        wal_archived, problem = _clusters_recorded(settings)
        if problem is not None:
            general.append(problem)
    general += _stuck_items(settings, now)
    stall.at(stall.CATALOG)
    try:
        with ctx.catalog.read() as session:
            secondaries = [repo.name for repo in settings.repositories[1:]]
            history = {
                db.name: _History.read(
                    session,
                    db.name,
                    secondaries,
                    now,
                    window=settings.rpo_for(db.name).restore_test,
                )
                for db in settings.databases
            }
            files = (BackupKind.FILES,)
            file_history = {
                f.name: _History.read(session, f.name, secondaries, now, files)
                for f in settings.file_sets
            }
    except (SQLAlchemyError, RespaldoError) as exc:
        general.append(
            StatusItem(
                key="catalog",
                check="catalog",
                level="red",
                reason=Phrase(N_("the catalog cannot be read: {error}"), error=first_line(exc)),
            )
        )
        history, file_history = {}, {}
    else:
        # Imported here: they build on this module's StatusItem.
        from respaldo.operations.restore_swap import swap_items
        from respaldo.operations.status_notify import notify_items
        from respaldo.operations.status_queue import queue_items

        try:
            general += queue_items(ctx, now)
        except (SQLAlchemyError, RespaldoError) as exc:  # a read that failed just now
            log.warning("could not read the queue for the status: %s", first_line(exc))
            unread.add("queue")
        try:
            general += swap_items(ctx, settings, servers=servers)
        except (SQLAlchemyError, RespaldoError) as exc:
            log.warning("could not read the restores' swaps for the status: %s", first_line(exc))
            unread.add("swap")
        general += _verify_items(ctx, settings, now)
        try:
            general += _prune_items(ctx, now)
        except (SQLAlchemyError, RespaldoError) as exc:
            log.warning("could not read the prunes for the status: %s", first_line(exc))
        try:
            general += notify_items(ctx, settings, now)
        except (SQLAlchemyError, RespaldoError) as exc:
            log.warning("could not read the messages sent for the status: %s", first_line(exc))
    physical = {
        db.name: _physical_expected(settings, db, db.name in wal_archived, history.get(db.name))
        for db in settings.databases
    }
    readings: dict[str, ServerReading] = {}
    if servers and settings.databases:
        stall.at(stall.SERVERS)
        # At once: each unreachable server costs a connect timeout.
        with ThreadPoolExecutor(min(8, len(settings.databases))) as pool:
            found = pool.map(
                lambda db: read_server(
                    db, archiver=physical[db.name], slots=bool(settings.rpo.slot_wal_mb)
                ),
                settings.databases,
            )
            readings = {db.name: r for db, r in zip(settings.databases, found, strict=True)}
    slots = slots_by_database([db.name for db in settings.databases], readings)
    archived = {
        name: r.archiver.last_wal
        for name, r in readings.items()
        if physical[name] and r.archiver is not None and r.archiver.last_wal
    }
    sizes = {
        name: r.archiver.segment_size
        for name, r in readings.items()
        if name in archived and r.archiver is not None and r.archiver.segment_size
    }
    newest_physical = {
        name: newest.id
        for name in archived
        if (h := history.get(name)) is not None
        and (newest := h.newest.get(BackupKind.INCREMENTAL)) is not None
    }
    if archived and settings.repositories:
        stall.at(stall.REPOSITORY, repository=settings.repositories[0].name)
    # Which cluster each archiving server is, to compare with the repository's record
    # even before it archived anything (a re-created server whose pushes are refused).
    systems = {
        name: r.system_identifier
        for name, r in readings.items()
        if physical[name] and r.system_identifier is not None
    }
    timelines = {name: r.timeline for name, r in readings.items() if physical[name] and r.timeline}
    primary = (
        read_primary_wal(settings, archived, sizes, newest_physical, systems, timelines)
        if archived or systems
        else PrimaryWal()
    )
    stored = primary.stored
    lags: dict[tuple[str, str], MirrorLag] = {}
    if settings.schedules.wal_copy.strip().lower() != _OFF:
        lags = mirror_lags(
            ctx,
            {
                name: (r.archiver.last_wal, r.archiver.last_time)
                for name, r in readings.items()
                if name in archived and r.archiver is not None and r.archiver.last_wal
            },
            now,
            primary.systems,
        )
    stall.at(stall.CATALOG)
    stuck = stuck_since(
        ctx,
        {
            name: stuck_state(r)
            for name, r in readings.items()
            if physical[name] and r.error is None
        },
        now,
    )
    databases = [
        _database_status(
            settings,
            db,
            now,
            physical=physical[db.name],
            history=history.get(db.name),
            reading=readings.get(db.name),
            stored=stored.get(db.name),
            gap=primary.gaps.get(db.name),
            recorded=primary.others.get(db.name),
            minimal=primary.minimal.get(db.name),
            stray=primary.strays.get(db.name),
            unbacked=primary.unbacked.get(db.name),
            stuck_for=now - stuck[db.name] if db.name in stuck else None,
            lags={repo: lag for (name, repo), lag in lags.items() if name == db.name},
            slots=slots.get(db.name, ()),
        )
        for db in settings.databases
    ]
    databases += [
        _file_set_status(settings, f.name, now, file_history.get(f.name))
        for f in settings.file_sets
    ]
    level = worst([*(i.level for i in general), *(d.level for d in databases)])
    report = StatusReport(checked_at=now, level=level, general=general, databases=databases)
    report._unread = frozenset(unread)
    return report


class _History:
    """What the catalog says about one database, read in one session."""

    def __init__(self) -> None:
        self.newest: dict[BackupKind, BackupRecord | None] = {}
        """The newest good backup of each kind (completed, not known to fail
        verification: the recovery point), not dated in the future."""
        self.unusable: dict[BackupKind, BackupRecord | None] = {}
        """The newest completed backup of each kind that failed verification (lost chunks,
        a failed restore test), if newer than the newest good one: said in the reason."""
        self.sized: dict[BackupKind, list[BackupRecord]] = {}
        """The two newest completed backups of each kind whose sizes compare (newest
        first; fewer while there are not two): a physical backup taken incrementally
        (``parent_id`` set) holds only what changed, so only whole ones count."""
        self.ahead: dict[BackupKind, BackupRecord | None] = {}
        """The newest completed backup of each kind dated in the future (see CLOCK_SKEW)."""
        self.last_attempt: dict[BackupKind, BackupRecord | None] = {}
        self.passed_drill: DrillRun | None = None
        self.drill_ahead: DrillRun | None = None
        """The newest finished restore test dated in the future (see CLOCK_SKEW)."""
        self.last_drill: DrillRun | None = None
        self.failed_drill: DrillRun | None = None
        """The newest failed restore test that no later pass settled (see
        :mod:`respaldo.operations.status_drills`)."""
        self.drills_by_kind: dict[BackupKind, tuple[DrillRun | None, DrillRun | None]] = {}
        """Of each kind's backups, where the database relies on more than one (see
        :mod:`respaldo.operations.tested_kinds`): the newest passed restore test, and the
        newest failed one no later pass of that kind settled."""
        self.completed: list[BackupRecord] = []
        """Completed backups, newest first, down to the newest one every secondary holds."""
        self.lost_copies: list[BackupRecord] = []
        """Completed backups, newest first, whose copy in a secondary was found to have
        lost data (:data:`~respaldo.catalog.copies.COPY_LOST_DATA`):
        not copied, however old (copied once, they are not retried as never-copied ones
        are until one is, and retention takes them as held nowhere else)."""
        self.copies: dict[tuple[str, str], BackupCopy] = {}

    @classmethod
    def read(
        cls,
        session: Session,
        database: str,
        secondaries: list[str],
        now: datetime,
        kinds: tuple[BackupKind, ...] = (BackupKind.FULL, BackupKind.INCREMENTAL),
        window: timedelta | None = None,
    ) -> _History:
        """``database``'s history (a file set's: ``kinds`` FILES alone); ``window``: its
        ``[rpo] restore_test_days``, which says the kinds its restore tests are judged by
        one by one (:attr:`drills_by_kind`)."""
        found = cls()
        mine = BackupRecord.database_name == database
        believable = BackupRecord.completed_at <= now + CLOCK_SKEW
        for kind in kinds:
            of_kind = sa.select(BackupRecord).where(mine, BackupRecord.backup_type == kind)
            completed = of_kind.where(BackupRecord.status == BackupStatus.COMPLETED).order_by(
                BackupRecord.completed_at.desc(), BackupRecord.id.desc()
            )
            good = completed.where(believable, ~failed_verification())
            found.newest[kind] = newest = session.scalars(good.limit(1)).first()
            bad = completed.where(believable, failed_verification())
            if newest is not None and newest.completed_at is not None:
                bad = bad.where(BackupRecord.completed_at > newest.completed_at)
            found.unusable[kind] = session.scalars(bad.limit(1)).first()
            whole = completed.where(believable, BackupRecord.parent_id.is_(None))
            found.sized[kind] = list(session.scalars(whole.limit(2)))
            found.ahead[kind] = session.scalars(completed.where(~believable).limit(1)).first()
            found.last_attempt[kind] = session.scalars(
                of_kind.where(
                    BackupRecord.status.in_([BackupStatus.COMPLETED, BackupStatus.FAILED])
                )
                .order_by(BackupRecord.created_at.desc(), BackupRecord.id.desc())
                .limit(1)
            ).first()
        # A cancelled run is no restore test: neither the last one nor a failed one.
        finished = sa.select(DrillRun).where(
            DrillRun.database_name == database,
            DrillRun.status.in_((DrillStatus.PASSED, DrillStatus.FAILED)),
        )
        order = (DrillRun.finished_at.desc(), DrillRun.id.desc())
        # As for backups: one dated in the future (a clock was ahead) is no recent test.
        future = DrillRun.finished_at > now + CLOCK_SKEW
        found.drill_ahead = session.scalars(
            finished.where(future).order_by(*order).limit(1)
        ).first()
        drills = finished.where(sa.or_(DrillRun.finished_at.is_(None), ~future))
        found.passed_drill = session.scalars(
            drills.where(DrillRun.status == DrillStatus.PASSED).order_by(*order).limit(1)
        ).first()
        # Only the kinds the item judges one by one (_kinds_item): a database relying on
        # one kind has its item judged by the newest runs of any.
        relied = _relied_on(found, now, window) if window is not None else []
        facts = read_drills(session, database, now + CLOCK_SKEW, relied if len(relied) > 1 else ())
        found.last_drill, found.failed_drill = facts.last, facts.failed
        found.drills_by_kind = facts.by_kind
        if secondaries:
            found._read_copies(session, mine, secondaries)
        return found

    def _read_copies(
        self, session: Session, mine: sa.ColumnElement[bool], secondaries: list[str]
    ) -> None:
        # Newest first, in pages, until one is copied everywhere: older ones are not
        # "behind" (copies go newest last, and each backup retries every missing one).
        completed = (
            sa.select(BackupRecord)
            .where(mine, BackupRecord.status == BackupStatus.COMPLETED)
            .order_by(BackupRecord.completed_at.desc(), BackupRecord.id.desc())
        )
        offset, page = 0, 200
        while True:
            records = list(session.scalars(completed.offset(offset).limit(page)))
            if not records:
                break
            ids = [r.id for r in records]
            copies = session.scalars(sa.select(BackupCopy).where(BackupCopy.backup_id.in_(ids)))
            for copy in copies:
                self.copies[(copy.backup_id, copy.repository)] = copy
            self.completed.extend(records)
            if any(self._copied_everywhere(r, secondaries) for r in records):
                break
            offset += page
        # Rarely any: one query of the failed rows, not a page of every older backup.
        lost = session.execute(
            sa.select(BackupRecord, BackupCopy)
            .join(BackupCopy, BackupCopy.backup_id == BackupRecord.id)
            .where(
                mine,
                BackupRecord.status == BackupStatus.COMPLETED,
                BackupCopy.repository.in_(secondaries),
                BackupCopy.status == CopyStatus.FAILED,
                BackupCopy.error_message.startswith(COPY_LOST_DATA, autoescape=True),
            )
            .order_by(BackupRecord.completed_at.desc(), BackupRecord.id.desc())
        )
        seen = set()
        for record, copy in lost:
            self.copies[(copy.backup_id, copy.repository)] = copy
            if record.id not in seen:
                seen.add(record.id)
                self.lost_copies.append(record)

    def _copied_everywhere(self, record: BackupRecord, secondaries: list[str]) -> bool:
        for repository in secondaries:
            copy = self.copies.get((record.id, repository))
            held = record.repository == repository or (
                copy is not None and copy.status is CopyStatus.COMPLETED
            )
            if not held:
                return False
        return True


def _physical_expected(
    settings: Settings, db: DatabaseSettings, archived: bool, history: _History | None
) -> bool:
    """As the schedule decides (operations/schedule.py): the database's own incremental
    schedule, else the default one where its WAL is archived; ``off`` is off. A physical
    backup in the catalog counts as archived (the repository may be unreadable)."""
    had_physical = history is not None and history.last_attempt[BackupKind.INCREMENTAL] is not None
    own = db.schedules.incremental
    cron = own or (settings.schedules.incremental if archived or had_physical else None)
    return cron is not None and cron.strip().lower() != _OFF


def _clusters_recorded(settings: Settings) -> tuple[set[str], StatusItem | None]:
    """The databases whose cluster the primary repository records (the ones whose WAL it
    archives), opened without its index; an amber item if it cannot be read."""
    if not settings.databases or not settings.repositories:
        return set(), None
    try:
        repo = open_wal_repository(settings)
        try:
            return {db.name for db in settings.databases if read_cluster(repo, db.name)}, None
        finally:
            repo.close()
    except RespaldoError as exc:
        name = settings.repository().name
        return set(), StatusItem(
            key=f"repository:{name}",
            check="repository",
            repository=name,
            level="amber",
            reason=Phrase(
                N_("cannot read which databases archive WAL from repository {name}: {error}"),
                name=name,
                error=first_line(exc),
            ),
        )


def _database_status(
    settings: Settings,
    db: DatabaseSettings,
    now: datetime,
    *,
    physical: bool,
    history: _History | None,
    reading: ServerReading | None,
    stored: bool | None = None,
    gap: tuple[str, str] | None = None,
    recorded: str | None = None,
    minimal: tuple[str, str] | None = None,
    unbacked: tuple[str, str] | None = None,
    stray: tuple[int, int] | None = None,
    stuck_for: timedelta | None = None,
    lags: dict[str, MirrorLag] | None = None,
    slots: Sequence[IdleSlot] = (),
) -> DatabaseStatus:
    rpo = settings.rpo_for(db.name)
    items: list[StatusItem] = []
    if history is not None:
        items.append(_backup_item(db.name, BackupKind.FULL, rpo.full, history, now))
        if physical:
            items.append(_backup_item(db.name, BackupKind.INCREMENTAL, rpo.physical, history, now))
        for kind in (BackupKind.FULL, BackupKind.INCREMENTAL) if physical else (BackupKind.FULL,):
            size = _size_item(db.name, kind, rpo.shrink, history)
            if size is not None:
                items.append(size)
    archive = None
    if reading is not None:
        items.append(_server_item(db.name, reading, rpo.standby_lag))
        items += _slot_items(db.name, slots, settings.rpo.slot_wal_mb)
        if physical:
            items.append(
                _archive_item(
                    db.name,
                    reading,
                    rpo,
                    stored,
                    stuck_for,
                    gap,
                    recorded,
                    minimal,
                    unbacked,
                    stray,
                )
            )
            if reading.archiver is not None and reading.archive_mode is not None:
                archive = archive_view(reading.archive_mode, reading.archiver)
    if history is not None:
        kinds = _relied_on(history, now, rpo.restore_test)
        items.append(_drill_item(db.name, rpo, history, now, kinds))
        for repo in settings.repositories[1:]:
            items.append(_copy_item(db.name, repo.name, rpo, history, now))
    for repo_name, lag in (lags or {}).items():
        items.append(_walcopy_item(db.name, repo_name, rpo, lag, now))
    return DatabaseStatus(
        database=db.name,
        level=worst(i.level for i in items),
        physical=physical,
        server_version=reading.version if reading is not None else None,
        archive=archive,
        items=items,
    )


def _file_set_status(
    settings: Settings, name: str, now: datetime, history: _History | None
) -> DatabaseStatus:
    """A file set's items: its files backups' age and size, its restore tests and its
    copies (thresholds: ``[rpo]`` and its own ``[file_sets.rpo]``)."""
    rpo = settings.rpo_for_file_set(name)
    items: list[StatusItem] = []
    if history is not None:
        items.append(_backup_item(name, BackupKind.FILES, rpo.files, history, now))
        size = _size_item(name, BackupKind.FILES, rpo.shrink, history)
        if size is not None:
            items.append(size)
        items.append(_drill_item(name, rpo, history, now))
        for repo in settings.repositories[1:]:
            items.append(_copy_item(name, repo.name, rpo, history, now))
    return DatabaseStatus(
        database=name,
        level=worst(i.level for i in items),
        physical=False,
        server_version=None,
        archive=None,
        items=items,
    )


def _backup_item(
    database: str, kind: BackupKind, limit: timedelta, history: _History, now: datetime
) -> StatusItem:
    # Each sentence is a Phrase (respaldo.phrases): the page says it in its language.
    what = Phrase(_KIND_WORDS[kind])
    newest = history.newest[kind]
    attempt = history.last_attempt[kind]
    failed = ""
    if attempt is not None and attempt.status is BackupStatus.FAILED:
        when = attempt.completed_at or attempt.created_at
        failed = Phrase(
            N_("the last attempt failed {age} ago: {error}"),
            age=human_age(now - when),
            error=first_line(attempt.error_message)
            if attempt.error_message
            else Phrase(N_("no reason recorded")),
        )
    base = StatusItem(
        key=f"rpo:{database}:{kind.value}",
        check="rpo",
        database=database,
        kind=kind,
        level="red",
        reason="",
        limit_seconds=limit.total_seconds(),
    )
    unusable = history.unusable[kind]
    if unusable is not None and unusable.completed_at is not None:
        # Completed, then found not to restore: no recovery point, and not silently
        # skipped either (green from an older backup would hide it until the RPO passes).
        problem = (
            first_line(unusable.error_message)
            if unusable.error_message
            else Phrase(N_("a restore test of it failed"))
        )
        bad = Phrase(
            N_("backup {backup} ({age} ago) failed verification: {problem}"),
            backup=unusable.id,
            age=human_age(now - unusable.completed_at),
            problem=problem,
        )
        failed = joined([failed, bad])
    moved = _source_moved(history.sized.get(kind, []), what)
    if moved:
        failed = joined([failed, moved])
    good = unusable is not None
    ahead = history.ahead[kind]
    if ahead is not None and ahead.completed_at is not None:
        future = _dated_ahead(
            N_(
                "backup {backup} is dated {age} in the future ({at} UTC): a clock was ahead "
                "when it was taken, its age is unknown"
            ),
            ahead.completed_at,
            now,
            backup=ahead.id,
        )
        failed = joined([failed, future])
    if newest is None or newest.completed_at is None:
        if ahead is not None:
            never = (
                N_("no good {what} was completed before now")
                if good
                else N_("no {what} was completed before now")
            )
        else:
            never = (
                N_("no good {what} was ever completed")
                if good
                else N_("no {what} was ever completed")
            )
        return base.model_copy(update={"reason": joined([Phrase(never, what=what), failed])})
    age = now - newest.completed_at
    facts = {
        "at": newest.completed_at,
        "age_seconds": age.total_seconds(),
        "backup_id": newest.id,
    }
    newest_said = Phrase(
        N_("the newest good {what} completed {age} ago")
        if good
        else N_("the newest {what} completed {age} ago"),
        what=what,
        age=human_age(age),
    )
    rpo = human_age(limit)
    if age > limit:
        over = Phrase(N_("{newest}, more than its RPO of {limit}"), newest=newest_said, limit=rpo)
        return base.model_copy(update={**facts, "reason": joined([over, failed])})
    said = Phrase(N_("{newest} (RPO {limit})"), newest=newest_said, limit=rpo)
    if failed:
        reason = joined([failed, said])
        return base.model_copy(update={**facts, "level": "amber", "reason": reason})
    return base.model_copy(update={**facts, "level": "green", "reason": said})


def _source_moved(newest_two: list[BackupRecord], what: Phrase) -> Phrase | None:
    """Said (amber) when the newest backup was read from another server or database than
    the one before it. Machines that share a catalog each read a database's ``dsn`` from
    their own config: one leading elsewhere (a replica's copy, a staging server) had its
    backups recorded as the database's, and restores gave whichever machine's. A server
    replaced on purpose (pg_upgrade, a move) says it once: green at the next backup."""
    if len(newest_two) < 2:
        return None
    newest, before = newest_two
    if newest.source is None or before.source is None or newest.source == before.source:
        return None
    return Phrase(
        N_(
            "the newest {what} ({backup}) was read from {source}, the one before it from "
            "{was} (system identifier/database): if every machine's dsn for this database "
            "does not lead to one server, its backups are of whichever machine took them; "
            "a server replaced on purpose is green again at the next backup"
        ),
        what=what,
        backup=newest.id,
        source=newest.source,
        was=before.source,
    )


def _dated_ahead(message: str, at: datetime, now: datetime, **record: object) -> Phrase:
    """``message`` about a record dated ``at``, after ``now`` (a clock was ahead): with
    how far ahead (``age``) and when (``at``), and what names the record."""
    return Phrase(message, **record, age=human_age(at - now), at=minute(at))


def _size_item(
    database: str, kind: BackupKind, shrink: float, history: _History
) -> StatusItem | None:
    """The newest completed backup against the one before it (physical: the newest taken
    whole against the one before it, see ``_History.sized``): red when it is smaller than
    ``shrink`` of it (the tables were emptied, the wrong database was restored over it).
    None while there are not two to compare, or with the check off."""
    if shrink <= 0 or len(history.sized[kind]) < 2:
        return None
    newest, before = history.sized[kind]
    what = Phrase(_KIND_WORDS[kind])
    size, was = newest.size_bytes or 0, before.size_bytes or 0
    share = size / was if was else 1.0
    facts = Phrase(
        N_("{size}, {share} of {was}"), size=_bytes(size), share=_share(share), was=_bytes(was)
    )
    red = share < shrink
    reason = (
        Phrase(
            N_("the newest {what} is much smaller than the one before: {facts} (limit {limit})"),
            what=what,
            facts=facts,
            limit=_share(shrink),
        )
        if red
        else Phrase(N_("the newest {what} is {facts} of the one before"), what=what, facts=facts)
    )
    return StatusItem(
        key=f"size:{database}:{kind.value}",
        check="size",
        database=database,
        kind=kind,
        level="red" if red else "green",
        reason=reason,
        at=newest.completed_at,
        backup_id=newest.id,
    )


def _bytes(count: int) -> str:
    # A Quantity: the page writes it for its locale ("1,1 MB"), the CLI as always.
    size = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            text = f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
            return Quantity(text, "bytes", count)
        size /= 1000
    return Quantity(f"{size:.1f} TB", "bytes", count)


def _share(share: float) -> str:
    return Quantity(f"{share:.0%}", "share", share)


def _server_item(
    database: str, reading: ServerReading, standby_lag: timedelta = timedelta(minutes=5)
) -> StatusItem:
    base = StatusItem(
        key=f"server:{database}", check="server", database=database, level="green", reason=""
    )
    if reading.error is not None:
        reason = (
            Phrase(
                N_("the server cannot be reached: {error} ({hint})"),
                error=reading.error,
                hint=reading.hint,
            )
            if reading.hint
            else Phrase(N_("the server cannot be reached: {error}"), error=reading.error)
        )
        return base.model_copy(update={"level": "red", "reason": reason})
    said = Phrase(N_("PostgreSQL {version} answers"), version=str(reading.version))
    standby = reading.standby
    if standby is None or not standby.in_recovery:
        return base.model_copy(update={"reason": said})
    # The dsn leads to a standby: what backups through it hold, for logical-only
    # databases too (the archive item says it only where WAL is archived). The question
    # a backup asks, without its moment's wait for replay to catch up: replay behind
    # may be passing (amber); paused, delayed or cut off, backups are refused (red).
    stale = stale_reason(standby, standby_lag)
    if stale is None:
        replays = Phrase(
            N_("PostgreSQL {version} answers (a standby that replays what it receives)"),
            version=str(reading.version),
        )
        return base.model_copy(update={"reason": replays})
    refused = Phrase(
        N_("PostgreSQL {version} answers, but {why} ({hint})"),
        version=str(reading.version),
        why=stale.message,
        hint=stale.hint,
    )
    level = "amber" if stale.waits else "red"
    return base.model_copy(update={"level": level, "reason": refused})


def slots_by_database(
    databases: Sequence[str], readings: Mapping[str, ServerReading]
) -> dict[str, list[IdleSlot]]:
    """Which configured database's report shows each idle slot: a slot is its server's,
    and every database on that server showed its own copy of it (three databases, the
    same slot three times: three items, page rows and metric series). A logical slot
    goes to the configured database it belongs to on that server, the first in the
    configuration if several; any other slot to the first configured database (in
    ``databases``' order) whose dsn reaches that server and whose reading has the slots.
    The same owner on every call while the configuration stays."""
    owner: dict[str, str] = {}
    named: dict[tuple[str, str], str] = {}
    for name in databases:
        reading = readings.get(name)
        if reading is None or reading.server is None or reading.idle_slots is None:
            continue
        owner.setdefault(reading.server, name)
        if reading.dbname is not None:
            named.setdefault((reading.server, reading.dbname), name)
    shown: dict[str, list[IdleSlot]] = {}
    for server, first in owner.items():
        reading = readings[first]
        for slot in reading.idle_slots or ():
            to = named.get((server, slot.database), first) if slot.database else first
            shown.setdefault(to, []).append(slot)
    return shown


def _slot_items(database: str, slots: Sequence[IdleSlot], limit_mb: float) -> list[StatusItem]:
    """An amber item for each replication slot of the server that nothing uses and that
    holds more than ``limit_mb`` of WAL. PostgreSQL keeps that WAL in pg_wal until the
    slot's consumer comes back: a slot left by a standby taken away, or one a restore
    --replace kept (it warned once), grew until the disk was full and the server
    stopped, while status and check said nothing. respaldo never drops a slot: the
    reason gives the statement, for whoever knows nothing will use it again."""
    if not limit_mb or not slots:
        return []
    limit = int(limit_mb * 1_000_000)
    return [
        StatusItem(
            key=f"slot:{database}:{slot.name}",
            check="slot",
            database=database,
            level="amber",
            reason=_slot_reason(slot, limit),
        )
        for slot in slots
        if slot.retained > limit
    ]


def _slot_reason(slot: IdleSlot, limit: int) -> Phrase:
    values: dict[str, object] = {
        "slot": slot.name,
        "size": _bytes(slot.retained),
        "limit": _bytes(limit),
        # Slot names are lower-case letters, digits and underscores only.
        "statement": f"SELECT pg_drop_replication_slot('{slot.name}')",
    }
    if slot.keep_limit is not None:
        # max_slot_wal_keep_size bounds it: "the disk fills" was untrue there; what is
        # lost is the slot (its consumer, back after that, must be set up again).
        return Phrase(
            N_(
                "replication slot {slot} is not in use and holds {size} of WAL on the "
                "server (more than {limit}): PostgreSQL keeps it up to "
                "max_slot_wal_keep_size ({keep}), then invalidates the slot and its "
                "consumer cannot resume from it; if nothing will use the slot again, "
                "drop it: {statement}"
            ),
            keep=_bytes(slot.keep_limit),
            **values,
        )
    return Phrase(
        N_(
            "replication slot {slot} is not in use and holds {size} of WAL on the "
            "server (more than {limit}): PostgreSQL keeps it until the slot's "
            "consumer comes back, and the disk fills until the server stops; if "
            "nothing will use the slot again, drop it: {statement}"
        ),
        **values,
    )


def _archive_item(
    database: str,
    reading: ServerReading,
    rpo: Rpo,
    stored: bool | None,
    stuck_for: timedelta | None,
    gap: tuple[str, str] | None = None,
    recorded: str | None = None,
    minimal: tuple[str, str] | None = None,
    unbacked: tuple[str, str] | None = None,
    stray: tuple[int, int] | None = None,
) -> StatusItem:
    verdict = judge_archive(
        reading,
        rpo,
        stored=stored,
        stuck_for=stuck_for,
        gap=gap,
        recorded=recorded,
        database=database,
        minimal=minimal,
        unbacked=unbacked,
        stray=stray,
    )
    state = reading.archiver
    return StatusItem(
        key=f"archive:{database}",
        check="archive",
        database=database,
        level=verdict.level,
        reason=verdict.reason,
        at=state.last_time if state is not None else None,
        age_seconds=verdict.age.total_seconds() if verdict.age is not None else None,
        limit_seconds=rpo.archive_lag.total_seconds(),
        count=state.waiting if state is not None else None,
    )


def _relied_on(history: _History, now: datetime, limit: timedelta) -> list[BackupKind]:
    """The kinds of backup whose restore tests the item judges one by one (see
    :mod:`respaldo.operations.tested_kinds`): each kind's newest completed backup, good
    or failed verification, dated no later than now."""
    newest: dict[BackupKind, datetime | None] = {}
    for kind in DATABASE_KINDS:
        dates = [
            r.completed_at
            for r in (history.newest.get(kind), history.unusable.get(kind))
            if r is not None and r.completed_at is not None
        ]
        newest[kind] = max(dates) if dates else None
    return relied_on(newest, now, limit)


def _newest_of(history: _History, kind: BackupKind) -> BackupRecord | None:
    """The newest completed backup of ``kind``, good or failed verification."""
    found: BackupRecord | None = None
    for r in (history.newest.get(kind), history.unusable.get(kind)):
        if r is None or r.completed_at is None:
            continue
        if found is None or found.completed_at is None or r.completed_at > found.completed_at:
            found = r
    return found


def _kinds_item(
    base: StatusItem, kinds: list[BackupKind], history: _History, now: datetime, ahead: str
) -> StatusItem:
    """The restore-test item of a database that relies on more than one kind of backup:
    each kind's newest passed test within the limit (red, naming the kind, when there
    is none), no failed test of a kind that a later pass of that kind did not settle
    (amber). Its ``kind`` and facts are those of the kind that makes it red, else
    amber, else of the kind proven longest ago (the alert names it)."""
    limit = timedelta(seconds=base.limit_seconds or 0)
    red: list[str] = []
    amber: list[str] = []
    green: list[str] = []
    todo: list[str] = []
    judged: list[tuple[int, float, BackupKind, DrillRun | None]] = []
    for kind in kinds:
        passed, failing = history.drills_by_kind.get(kind, (None, None))
        what = Phrase(KIND_NAMES[kind])
        rank, age = 0, 0.0
        if passed is None:
            rank = 2
            red.append(Phrase(N_("no restore test of its {kind} ever passed"), kind=what))
        else:
            when = passed.finished_at or passed.started_at
            age = (now - when).total_seconds()
            said = Phrase(
                N_("the newest passed restore test of its {kind} finished {age} ago"),
                kind=what,
                age=human_age(now - when),
            )
            if now - when > limit:
                rank = 2
                over = Phrase(N_("{said}, more than {limit}"), said=said, limit=human_age(limit))
                red.append(over)
            else:
                green.append(said)
        if failing is not None:
            rank = max(rank, 1)
            when = failing.finished_at or failing.started_at
            error = (
                first_line(failing.error_message)
                if failing.error_message
                else Phrase(N_("a check failed ('respaldo drills' shows which)"))
            )
            amber.append(
                Phrase(
                    N_("a restore test of its {kind} (backup {backup}) failed {age} ago: {error}"),
                    kind=what,
                    backup=failing.backup_id,
                    age=human_age(now - when),
                    error=error,
                )
            )
        newest = _newest_of(history, kind)
        if rank and newest is not None:
            # 'respaldo drill <db>' (the alert's old advice) tests the newest logical
            # backup: run after this, the item stayed red for the physical ones.
            todo.append(
                Phrase(
                    N_("'respaldo drill {backup}' tests the newest of its {kind}"),
                    backup=newest.id,
                    kind=what,
                )
            )
        judged.append((rank, age, kind, passed))
    if ahead:
        amber.append(ahead)
    rank, _, kind, passed = max(judged, key=lambda j: (j[0], j[1]))
    facts: dict[str, object] = {"kind": kind}
    if passed is not None:
        when = passed.finished_at or passed.started_at
        facts |= {
            "at": when,
            "age_seconds": (now - when).total_seconds(),
            "backup_id": passed.backup_id,
        }
    if rank and (newest := _newest_of(history, kind)) is not None:
        # Not green: the backup it is about is the one to test (the alert's hint names it).
        facts["backup_id"] = newest.id
    if red:
        return base.model_copy(update={**facts, "reason": joined(red + amber + todo + green)})
    if amber:
        update = {**facts, "level": "amber", "reason": joined(amber + todo + green)}
        return base.model_copy(update=update)
    reason = Phrase(N_("{said} (limit {limit})"), said=joined(green), limit=human_age(limit))
    return base.model_copy(update={**facts, "level": "green", "reason": reason})


def _drill_item(
    database: str,
    rpo: Rpo,
    history: _History,
    now: datetime,
    kinds: list[BackupKind] | None = None,
) -> StatusItem:
    """``kinds``: the kinds of backup a database relies on (:func:`_relied_on`); with
    more than one, each is judged (:func:`_kinds_item`); else the newest test of any."""
    limit = rpo.restore_test
    passed, failing = history.passed_drill, history.failed_drill
    failed = ""
    if failing is not None:
        when = failing.finished_at or failing.started_at
        error = (
            first_line(failing.error_message)
            if failing.error_message
            else Phrase(N_("a check failed ('respaldo drills' shows which)"))
        )
        if failing is history.last_drill:
            failed = Phrase(
                N_("the last restore test failed {age} ago: {error}"),
                age=human_age(now - when),
                error=error,
            )
        else:
            failed = Phrase(
                N_(
                    "a restore test of backup {backup} failed {age} ago: {error}; the restore "
                    "tests since passed of older backups only"
                ),
                backup=failing.backup_id,
                age=human_age(now - when),
                error=error,
            )
    ahead = history.drill_ahead
    future = ""
    if ahead is not None and ahead.finished_at is not None:
        future = _dated_ahead(
            N_(
                "restore test {drill} is dated {age} in the future ({at} UTC): a clock was "
                "ahead when it ran, its age is unknown"
            ),
            ahead.finished_at,
            now,
            drill=ahead.id,
        )
        failed = joined([failed, future])
    base = StatusItem(
        key=f"restore_test:{database}",
        check="restore_test",
        database=database,
        level="red",
        reason="",
        limit_seconds=limit.total_seconds(),
    )
    if kinds is not None and len(kinds) > 1:
        return _kinds_item(base, kinds, history, now, future)
    if passed is None:
        reason = joined([Phrase(N_("no restore test ever passed")), failed])
        return base.model_copy(update={"reason": reason})
    when = passed.finished_at or passed.started_at
    age = now - when
    facts = {"at": when, "age_seconds": age.total_seconds(), "backup_id": passed.backup_id}
    said = Phrase(N_("the newest passed restore test finished {age} ago"), age=human_age(age))
    if age > limit:
        over = Phrase(N_("{said}, more than {limit}"), said=said, limit=human_age(limit))
        return base.model_copy(update={**facts, "reason": joined([over, failed])})
    if failed:
        return base.model_copy(update={**facts, "level": "amber", "reason": joined([failed, said])})
    green = Phrase(N_("{said} (limit {limit})"), said=said, limit=human_age(limit))
    return base.model_copy(update={**facts, "level": "green", "reason": green})


def _copy_item(
    database: str, repository: str, rpo: Rpo, history: _History, now: datetime
) -> StatusItem:
    limit = rpo.copy
    base = StatusItem(
        key=f"copy:{database}:{repository}",
        check="copy",
        database=database,
        repository=repository,
        level="green",
        reason="",
        limit_seconds=limit.total_seconds(),
    )
    behind: list[BackupRecord] = []
    for record in history.completed:
        if record.repository == repository:
            continue  # written there as its primary: nothing to copy
        copy = history.copies.get((record.id, repository))
        if copy is not None and copy.status is CopyStatus.COMPLETED:
            break
        if record.primary_deleted_at is not None:
            # Deleted from the primary (expired, or by hand) while a mirror could not be
            # reached: it can never be copied ('copy --all' leaves it out), and during a
            # mirror's outage it was counted "not copied" until the mirror was pruned.
            # The prune's item tells what waits for the mirror.
            continue
        behind.append(record)
    # Older than the newest copy, a copy that lost data is missing too (lost_copies).
    counted = {record.id for record in behind}
    behind += [
        record
        for record in history.lost_copies
        if record.id not in counted
        and record.primary_deleted_at is None
        and record.repository != repository
        and (copy := history.copies.get((record.id, repository))) is not None
        and copy.status is CopyStatus.FAILED
    ]
    if not history.completed:
        return base.model_copy(update={"reason": Phrase(N_("no backup to copy yet"))})
    if not behind:
        newest = history.completed[0]
        return base.model_copy(
            update={
                "reason": Phrase(N_("the newest backup ({backup}) is copied"), backup=newest.id),
                "backup_id": newest.id,
            }
        )
    oldest = behind[-1]
    done = oldest.completed_at or oldest.created_at
    waited = now - done
    errors = [
        c.error_message
        for r in behind
        if (c := history.copies.get((r.id, repository))) is not None
        and c.status is CopyStatus.FAILED
        and c.error_message
    ]
    error = (
        Phrase(N_("the last copy failed: {error}"), error=first_line(errors[0])) if errors else ""
    )
    behind_said = Phrase(
        N_("1 backup is not copied to {repository}, the oldest completed {age} ago (limit {limit})")
        if len(behind) == 1
        else N_(
            "{count} backups are not copied to {repository}, the oldest completed {age} ago "
            "(limit {limit})"
        ),
        count=len(behind),
        repository=repository,
        age=human_age(waited),
        limit=human_age(limit),
    )
    reason = joined([behind_said, error])
    return base.model_copy(
        update={
            "level": "red" if waited > limit else "amber",
            "reason": reason,
            "at": done,
            "age_seconds": waited.total_seconds(),
            "backup_id": oldest.id,
            "count": len(behind),
        }
    )


def _stuck_items(settings: Settings, now: datetime) -> list[StatusItem]:
    """One red item per check of this process (``respaldo serve``'s watchdog, its sweep
    for lost jobs) that has run longer than ``[rpo] watchdog_stuck_minutes``: while it
    hangs no alert goes out, and the page must not look fine. Only this process's own
    checks (:mod:`respaldo.operations.stall`): ``respaldo status`` from a shell has none."""
    limit = timedelta(minutes=settings.rpo.watchdog_stuck_minutes)
    return [
        StatusItem(
            key=found.key,
            check="stuck",
            level="red",
            reason=Phrase(found.message(), minutes=found.minutes(now), doing=found.doing),
            at=found.since,
            age_seconds=(now - found.since).total_seconds(),
            limit_seconds=limit.total_seconds(),
        )
        for found in stall.stuck(now, limit)
    ]


def _prune_items(ctx: Context, now: datetime) -> list[StatusItem]:
    """One amber item per secondary repository the newest prune could not reach: its
    expired backups, collection and WAL retention wait (the prune completed, and said
    so in a warning alert once per repeat interval); nothing said so here before."""
    return [
        StatusItem(
            key=f"prune:{d.repository}",
            check="prune",
            repository=d.repository,
            level="amber",
            reason=Phrase(
                N_(
                    "no prune has reached repository {repository} for {age} ({error}): "
                    "its expired backups, garbage collection, WAL retention and object "
                    "lock renewal wait for the next prune that reaches it"
                ),
                repository=d.repository,
                age=human_age(now - d.since),
                error=d.why,
            ),
            at=d.since,
            age_seconds=(now - d.since).total_seconds(),
        )
        for d in deferred_prunes(ctx)
    ]


def _verify_items(ctx: Context, settings: Settings, now: datetime) -> list[StatusItem]:
    """One item per repository while the daily verify is scheduled: red once it was not
    checked for ``[rpo] verify_hours`` (the daily verify skipped it, or did not run)."""
    if settings.schedules.verify.strip().lower() == _OFF:
        return []
    limit = timedelta(hours=settings.rpo.verify_hours)
    names = [repo.name for repo in settings.repositories]
    items = []
    for name, verified in last_verified(ctx, names, now).items():
        age = now - verified.at
        late = age > limit
        said: str
        if verified.scope is None:
            said = Phrase(
                N_(
                    "repository {repository} was never verified in the {age} since the "
                    "status first looked at it (limit {limit})"
                ),
                repository=name,
                age=human_age(age),
                limit=human_age(limit),
            )
        else:
            said = Phrase(
                N_("repository {repository} was last verified {age} ago (limit {limit})"),
                repository=name,
                age=human_age(age),
                limit=human_age(limit),
            )
        if late:
            said = joined(
                [
                    said,
                    Phrase(
                        N_(
                            "the daily verify skips it when it cannot open it or a garbage "
                            "collection holds its lock longer than [locks] wait_seconds: "
                            "its job's warnings say which"
                        )
                    ),
                ]
            )
        items.append(
            StatusItem(
                key=f"verify:{name}",
                check="verify",
                repository=name,
                level="red" if late else "green",
                reason=said,
                at=verified.at if verified.scope is not None else None,
                age_seconds=age.total_seconds(),
                limit_seconds=limit.total_seconds(),
            )
        )
    return items


def _walcopy_item(
    database: str, repository: str, rpo: Rpo, lag: MirrorLag, now: datetime
) -> StatusItem:
    limit = rpo.wal_copy
    base = StatusItem(
        key=f"walcopy:{database}:{repository}",
        check="walcopy",
        database=database,
        repository=repository,
        level="green",
        reason=Phrase(
            N_("{repository} holds the last segment archived ({segment})"),
            repository=repository,
            segment=str(lag.segment),
        ),
        limit_seconds=limit.total_seconds(),
    )
    if lag.held:
        return base
    facts: dict[str, object] = {}
    behind: str = ""
    late = False
    if lag.behind_since is not None:
        waited = now - lag.behind_since
        late = waited > limit
        facts = {"at": lag.behind_since, "age_seconds": waited.total_seconds()}
        behind = Phrase(
            N_(
                "{repository} lacks archived WAL since {age} ago (segment {segment}; limit "
                "{limit}): a recovery from it alone would stop there"
            ),
            repository=repository,
            age=human_age(waited),
            segment=str(lag.lacking),
            limit=human_age(limit),
        )
    if lag.error is not None:
        unread = Phrase(
            N_("repository {repository} cannot be read: {error}"),
            repository=repository,
            error=lag.error,
        )
        if lag.behind_since is not None:
            # Unreadable: what it lacks is not known, only since when it is not known to
            # hold what the primary holds.
            behind = Phrase(
                N_("not known to hold archived WAL for {age} (segment {segment}; limit {limit})"),
                age=human_age(now - lag.behind_since),
                segment=str(lag.lacking),
                limit=human_age(limit),
            )
        reason = joined([unread, behind])
        return base.model_copy(
            update={**facts, "level": "red" if late else "amber", "reason": reason}
        )
    # Behind within the limit is the normal state between two wal_copy runs.
    return base.model_copy(update={**facts, "level": "red" if late else "green", "reason": behind})

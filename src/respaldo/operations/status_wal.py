"""Is the WAL a server says it archived in the primary repository?

``pg_stat_archiver`` counts what ``archive_command`` said it archived. A command that
"succeeds" without storing anything (``true``, the usual quick fix for a full
``pg_wal``, or a copy to some other place) keeps those statistics green while no WAL
reaches the repository: recovery past the newest physical backup is gone, and nothing
else notices. respaldo's own pusher tells the server "archived" only once the file is
in the repository (``--async`` too), so the server's last archived file must be there.

A server can also say a file was archived that no longer reaches the repository for a
while and then archive to it again (``true`` set as the quick fix, then put back): the
last file is in the repository again, yet a segment between the newest physical backup
and it is not, and recovery from that backup stops at the hole and promotes without
what came after. So the segments from the newest good physical backup's start (from
the catalog; where it is on another timeline or unknown, the newest backup history file,
``<segment>.<offset>.backup``, which every base backup archives) to the last archived
one are listed too (:func:`find_gap`; only names, one log id's prefix at a
time: at most :data:`GAP_LOG_IDS` of them, 4 GiB of WAL each, whatever the segment size).
Where that backup is of an older timeline than the last file (a standby promoted since),
the WAL recovery from it needs is followed across the switch, the old timeline's
segments its server never archived included (:func:`gap_across_timelines`).

That file is a segment most of the time, but after each physical backup it is the
backup history file (``<segment>.<offset>.backup``) until the next segment fills, hours
on a quiet database; a promotion archives a ``.partial`` segment and a ``.history``
file. All of them are archived objects like a segment (:func:`archived_object`), here
and in the mirrors' check (:mod:`respaldo.operations.status_mirror`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from respaldo.config import Settings
from respaldo.errors import InvalidWalFile, ObjectNotFound, RespaldoError
from respaldo.operations.wal import open_wal_repository
from respaldo.operations.wal_coverage import archived_after
from respaldo.postgres.wal import (
    WalKind,
    parse_lsn,
    parse_wal_name,
    segment_name,
    segment_start,
    segments_per_id,
)
from respaldo.repository import Manifest, Repository
from respaldo.repository.wal import ClusterRecord, read_cluster, wal_object

GAP_LOG_IDS = 8
"""How many log ids (4 GiB of WAL each) before the last archived segment are listed for
the newest backup history file; without one there, the archive is not checked for gaps."""


def archived_object(system_id: str, file: str) -> str | None:
    """The repository object of WAL file ``file`` of cluster ``system_id`` (any name the
    server archives: a segment, a partial segment, a history or backup history file);
    None for a name that is none of these."""
    try:
        return wal_object(system_id, parse_wal_name(file).timeline, file)
    except (InvalidWalFile, ValueError):
        return None


@dataclass(frozen=True)
class PrimaryWal:
    """What the primary repository says of the databases' last archived WAL files."""

    systems: dict[str, str] = field(default_factory=dict)
    """Database -> the system identifier of its cluster, as the primary records it."""
    stored: dict[str, bool] = field(default_factory=dict)
    """Database -> whether the primary holds the last file its server archived."""
    gaps: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Database -> the first segment missing from the primary between the newest base
    backup's start and the last segment archived, and the next one there
    (:func:`find_gap`)."""
    minimal: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Database -> the LSN where its server switched to ``wal_level = minimal`` (as
    ``wal-push`` found it) and the newest good physical backup, which started before it:
    recovery from that backup cannot replay past it."""
    unbacked: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Database -> the newest good physical backup and its cluster, where that is not the
    cluster the primary records (re-created and adopted, no physical backup taken since):
    the archived WAL cannot be replayed onto it, so no point-in-time recovery reaches
    past the old cluster's end."""
    strays: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Database -> the timeline its server archives on (its last archived file's) and
    the next one, whose history file the primary holds all the same: another server
    promoted from this cluster's history (a restored copy with archiving on) archives
    here, and recovery to the end of the WAL follows that server's timeline."""
    others: dict[str, str] = field(default_factory=dict)
    """Database -> the cluster the primary records for it, where its server is another
    one: re-created (``initdb``, ``pg_upgrade``), its WAL names begin again, and those
    the old cluster archived are no sign that this one's are stored."""


def read_primary_wal(
    settings: Settings,
    last_archived: Mapping[str, str],
    segment_sizes: Mapping[str, int] | None = None,
    newest_backups: Mapping[str, str] | None = None,
    servers: Mapping[str, str] | None = None,
    timelines: Mapping[str, int] | None = None,
) -> PrimaryWal:
    """For each database -> the last WAL file its server archived: its cluster, whether
    the primary repository holds that file (one ``stat`` each) and, where the server's
    segment size is in ``segment_sizes``, a gap before it since the newest base backup
    (:func:`find_gap`; ``newest_backups``: database -> the id of its newest good physical
    backup, whose WAL the archive may not hold yet), in one opening of the primary.
    ``servers``: database -> the system identifier of its server; one the repository
    records another cluster for is in ``others`` and nothing else is said of it (its
    last file is looked for nowhere: the recorded cluster's files of the same names are
    not its own). ``timelines``: database -> the timeline its server writes on, where
    read (a promoted server archives the old timeline's segments its standby never marked
    done, at a checkpoint after the promotion: until its next segment of its own, the
    last file it archived is of an older timeline than its own). Left out (unknown): a
    name that is no WAL file, a database whose cluster the repository does not record or
    cannot be read, and everything when the repository cannot be opened (the backups' own
    items say so). Never raises."""
    servers = servers or {}
    if not servers and not any(_is_wal_name(name) for name in last_archived.values()):
        return PrimaryWal()
    try:
        repo = open_wal_repository(settings)
    except RespaldoError:
        return PrimaryWal()
    found = PrimaryWal()
    # Each database's record and its newest backup's manifest are read once, though
    # several questions below ask them (a repository read each, over the network for S3).
    records: dict[str, ClusterRecord | None] = {}
    manifest = functools.cache(repo.load_manifest)

    def record_of(database: str) -> ClusterRecord | None:
        if database not in records:
            records[database] = read_cluster(repo, database)
        return records[database]

    try:
        for database, server in servers.items():
            try:
                record = record_of(database)
            except RespaldoError:
                continue
            if record is not None and record.system_identifier != server:
                found.others[database] = record.system_identifier
        for database, file in last_archived.items():
            if database in found.others:
                continue
            try:
                record = record_of(database)
                if record is None:
                    continue
                name = archived_object(record.system_identifier, file)
                if name is None:
                    continue
                found.systems[database] = record.system_identifier
                repo.storage.stat(name)
            except ObjectNotFound:
                found.stored[database] = False
            except RespaldoError:
                continue
            else:
                found.stored[database] = True
                on = _timeline_on(file, (timelines or {}).get(database))
                stray = _newer_timeline(repo, record.system_identifier, file, on) if on else None
                if stray is not None:
                    found.strays[database] = stray
                size = (segment_sizes or {}).get(database)
                if size is not None:
                    backup = (newest_backups or {}).get(database)
                    try:
                        system = record.system_identifier
                        meta = manifest(backup).meta if backup else None
                        after = _backup_start(meta, size, system) if meta else None
                        if backup and after and on and after[0] < on:
                            gap = gap_across_timelines(repo, manifest(backup))
                        else:
                            gap = find_gap(repo, system, file, size, after)
                    except (RespaldoError, KeyError, ValueError):
                        gap = None  # unknown, as the listing could not be read
                    if gap is not None:
                        found.gaps[database] = gap
                backup = (newest_backups or {}).get(database)
                if backup is not None:
                    try:
                        of = str(manifest(backup).meta.get("system_identifier"))
                    except RespaldoError:
                        of = record.system_identifier  # unknown: said nothing of
                    if of != record.system_identifier:
                        found.unbacked[database] = (backup, of)
                if record.minimal_wal is not None and backup is not None:
                    try:
                        start = _backup_start_lsn(manifest(backup).meta, record.system_identifier)
                    except (RespaldoError, KeyError, ValueError):
                        start = None  # unknown, as the manifest could not be read
                    # A switch on a timeline older than the backup's is on none of its
                    # paths: that timeline branched off before the backup (so before the
                    # switch, which is after its start), as a restore to a target before
                    # the switch, promoted, does.
                    if (
                        start is not None
                        and start[1] < parse_lsn(record.minimal_wal)
                        and (record.minimal_timeline or start[0]) >= start[0]
                    ):
                        found.minimal[database] = (record.minimal_wal, backup)
    finally:
        repo.close()
    return found


def _timeline_on(file: str, read: int | None) -> str | None:
    """The timeline a server is on: the one it said (``read``), or where not read or
    older, that of ``file``, the last file it archived. None: ``file`` is no WAL name."""
    try:
        of_file = parse_wal_name(file).timeline
    except (InvalidWalFile, ValueError):
        return None
    return max(of_file, f"{read:08X}") if read else of_file


def _newer_timeline(repo: Repository, system_id: str, file: str, on: str) -> tuple[int, int] | None:
    """(the server's timeline ``on``: its own where read, else that of ``file``, the last
    file it archived; the next one) where the repository holds that next timeline's
    history file (one ``stat``), else None.

    A server archives its own timeline's files, and a timeline's history file before any
    of its segments (its promotion queues it first): a history file of a later timeline
    than the server's is another server's, promoted from this cluster's history, such as
    a restored copy started with archiving on. Recovery to the end of the WAL follows the
    newest timeline ('latest'), so a restore of this server's backups would replay that
    server's WAL instead of this one's, and a target time after it began too."""
    try:
        parsed = parse_wal_name(file)
    except (InvalidWalFile, ValueError):
        return None
    timeline = int(on, 16)
    if parsed.kind is WalKind.PARTIAL:
        # A server archives its old timeline's last segment as .partial when it promotes,
        # after the new timeline's history file: it is on that later timeline itself, and
        # its .partial stays its last archived file until its first segment there is
        # (hours on a quiet database). Its own history file is no other server's.
        return None
    newer = f"{timeline + 1:08X}"
    try:
        repo.storage.stat(wal_object(system_id, newer, f"{newer}.history"))
    except RespaldoError:  # ObjectNotFound: none; anything else: unknown
        return None
    return timeline, timeline + 1


def _backup_start(
    meta: Mapping[str, Any], segment_size: int, system_id: str
) -> tuple[str, int] | None:
    """(timeline, number of the first segment recovery of a physical backup reads from
    the archive), from its manifest's ``meta``: its stop segment, as the segments from
    its start to its stop are in the backup itself (pg_basebackup's ``--wal-method=fetch``)
    and one of them missing from the archive stops no recovery (the status said a hole
    there was red); its start segment for a manifest without its stop. None when it is of
    another cluster than ``system_id`` (the database moved to a new server, not backed up
    physically there yet: its LSNs say nothing of this archive). Raises the errors of
    reading it, KeyError or ValueError for a manifest without them."""
    if str(meta.get("system_identifier")) != system_id:
        return None
    timeline = f"{int(meta['timeline']):08X}"
    stop = parse_lsn(str(meta.get("stop_lsn") or "0/0"))
    return timeline, (stop or parse_lsn(str(meta["start_lsn"]))) // segment_size


def _backup_start_lsn(meta: Mapping[str, Any], system_id: str) -> tuple[int, int] | None:
    """The timeline and start LSN of a physical backup, from its manifest's ``meta``;
    None when it is of another cluster than ``system_id``. Raises as
    :func:`_backup_start`."""
    if str(meta.get("system_identifier")) != system_id:
        return None
    return int(meta["timeline"]), parse_lsn(str(meta["start_lsn"]))


def gap_across_timelines(repo: Repository, backup: Manifest) -> tuple[str, str] | None:
    """The first segment missing from ``repo`` along the timelines recovery of physical
    backup ``backup`` follows, and the next one there, for a backup of an older
    timeline than the last file archived: a standby promoted (a failover respaldo did not
    do) archives its own timeline from the switch on, and the segments of the old one its
    primary never archived (archiving behind, or failing, when it died) are a hole that
    recovery of every backup taken before the promotion stops at. :func:`find_gap` looks
    at the last file's timeline alone, which begins after it. None: no hole, or it could
    not be told. Lists the cluster's archived names (:func:`archived_after`, as a restore
    and a restore test do): only until a backup is taken on the new timeline."""
    coverage = archived_after(repo, backup)
    if isinstance(coverage, str) or coverage.missing is None or coverage.resumes is None:
        return None
    return coverage.missing, coverage.resumes


def find_gap(
    repo: Repository,
    system_id: str,
    last: str,
    segment_size: int,
    backup: tuple[str, int] | None = None,
) -> tuple[str, str] | None:
    """The first segment of ``last``'s timeline missing from ``repo`` between the start of
    the newest good physical backup (``backup``: its timeline and first segment; its
    history file is archived after the backup ended, later than its stop segment, and a
    newer history file is of a base backup respaldo cannot restore) or, where that is not
    known on ``last``'s timeline, of the newest base backup history file, and segment
    ``last`` (the last one the server archived, which it archived after all those before
    it; or a backup history file), and the next one there; None when none is missing,
    ``last`` is neither a segment nor a backup history file, or that start is not within
    :data:`GAP_LOG_IDS` log ids of it (not checked). Lists names only. Raises the
    storage's errors."""
    parsed = parse_wal_name(last)
    if parsed.kind not in (WalKind.SEGMENT, WalKind.BACKUP):
        return None
    timeline = parsed.timeline
    # A backup history file is archived after every segment before it (the archiver
    # takes files in name order, and its backup's first segment sorts before it). It is
    # the last file for hours after a base backup on a quiet database, and after one
    # respaldo did not take (a standby built), a hole before it still stops recovery.
    last_no = segment_start(last[:24], segment_size) // segment_size
    # The newest good backup's start, where known: a newer backup history file is of a
    # base backup respaldo cannot restore (a standby built with pg_basebackup, a backup
    # of respaldo's that failed), and a hole before it stops recovery all the same.
    known = backup[1] if backup is not None and backup[0] == timeline else None
    if known is not None and known >= last_no:
        return None  # the newest backup begins at or after it: nothing between to miss
    per_id = segments_per_id(segment_size)
    present: set[int] = set()
    start = known
    reached = False
    log_id = last_no // per_id
    for log in range(log_id, max(-1, log_id - GAP_LOG_IDS), -1):
        prefix = f"{wal_object(system_id, timeline, last)[: -len(last)]}{timeline}{log:08X}"
        for info in repo.storage.list(prefix):
            name = info.name.rsplit("/", 1)[-1]
            try:
                kind = parse_wal_name(name).kind
                number = segment_start(name[:24], segment_size) // segment_size
            except (InvalidWalFile, ValueError):
                continue
            if number > last_no:
                continue  # archived since the server was asked
            if kind is WalKind.SEGMENT:
                present.add(number)
            elif kind is WalKind.BACKUP and known is None and (start is None or number > start):
                start = number
        if start is not None and log <= start // per_id:
            reached = True
            break
    if start is None or not reached:
        return None
    for number in range(start, last_no):
        if number not in present:
            resumes = min(n for n in present if n > number)
            return (
                segment_name(int(timeline, 16), number * segment_size, segment_size),
                segment_name(int(timeline, 16), resumes * segment_size, segment_size),
            )
    return None


def _is_wal_name(file: str) -> bool:
    """Whether ``file`` is a name the server archives (see :func:`archived_object`)."""
    try:
        parse_wal_name(file)
    except InvalidWalFile:
        return False
    return True

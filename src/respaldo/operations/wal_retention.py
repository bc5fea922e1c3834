"""WAL retention: archived WAL follows the oldest physical backup that is kept.

Point-in-time recovery starts from a physical backup and replays WAL from that backup's
start onward, on its timeline and the ones after it. So for each cluster, every segment
(and partial or backup-label file) whose position is before the start segment of the
oldest physical backup left in the repository is removed, whatever its timeline.
Timeline history files are kept: they are tiny and recovery reads them all. A cluster
with no physical backup in the repository keeps all its WAL: with nothing to replay it
onto it is useless, but deleting it is a decision for a person, not for retention.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from respaldo.domain import BackupKind
from respaldo.errors import RespaldoError
from respaldo.postgres.wal import WalKind, parse_lsn, parse_wal_name, segment_name
from respaldo.repository import Repository
from respaldo.repository.wal import delete_wal, wal_objects


@dataclass
class WalPruneReport:
    """What WAL retention removed (or, in a dry run, would remove)."""

    files_deleted: int = 0
    bytes_deleted: int = 0
    kept_from: dict[str, str] = field(default_factory=dict)
    """System identifier -> first segment still needed (its oldest physical backup's)."""
    clusters_without_backup: list[str] = field(default_factory=list)


def oldest_needed(repo: Repository, assume_deleted: Iterable[str] = ()) -> dict[str, str]:
    """System identifier -> start segment of its oldest physical backup in ``repo``."""
    gone = set(assume_deleted)
    oldest: dict[str, str] = {}
    for backup_id in repo.backup_ids():
        if backup_id in gone:
            continue
        manifest = repo.load_manifest(backup_id)
        if manifest.kind != BackupKind.INCREMENTAL.value:
            continue
        meta = manifest.meta
        try:
            system_id = str(meta["system_identifier"])
            first = segment_name(
                int(meta["timeline"]),
                parse_lsn(str(meta["start_lsn"])),
                int(meta["wal_segment_size"]),
            )
        except (KeyError, ValueError, RespaldoError):
            continue  # without WAL positions a backup protects nothing and removes nothing
        # Positions compare across timelines: the 16 hex digits after the timeline.
        if system_id not in oldest or first[8:] < oldest[system_id][8:]:
            oldest[system_id] = first
    return oldest


def prune_wal(
    repo: Repository, *, dry_run: bool = False, assume_deleted: Iterable[str] = ()
) -> WalPruneReport:
    """Delete the archived WAL that no remaining physical backup needs (see module doc).

    Run it under the repository's exclusive lock (garbage collection's), so that no
    backup starts meanwhile. ``assume_deleted`` are backup ids to treat as gone (dry run).
    """
    oldest = oldest_needed(repo, assume_deleted)
    report = WalPruneReport(kept_from=dict(oldest))
    for system_id, timeline, file, size in wal_objects(repo):
        if system_id not in oldest:
            if system_id not in report.clusters_without_backup:
                report.clusters_without_backup.append(system_id)
            continue
        try:
            kind = parse_wal_name(file).kind
        except RespaldoError:
            continue
        if kind is WalKind.HISTORY or file[8:24] >= oldest[system_id][8:]:
            continue
        report.files_deleted += 1
        report.bytes_deleted += size
        if not dry_run:
            delete_wal(repo, system_id, timeline, file)
    return report

"""How far the archived WAL lets a physical backup recover, and targets it cannot reach.

A base backup is consistent only from its end (its stop LSN): a recovery target before
it is refused by PostgreSQL ("requested recovery stop point is before consistent recovery
point"). After it, recovery replays archived segments one after the other and ends at the
first one ``restore_command`` cannot fetch: a segment missing from the archive ends
recovery *there*, and without a target PostgreSQL then promotes a server that lacks
everything after the gap, as though that were all the WAL there is. So before a restore
writes anything, respaldo lists the archive (names only: nothing is read or decrypted)
and refuses what recovery cannot reach (:func:`check_recovery_target`):

- a target LSN before the backup's stop LSN, a target time before the backup ended;
- recovery to the end of the archived WAL when a segment after the backup is missing and
  later ones are archived (a gap);
- a target LSN beyond the continuous archived WAL (behind a gap, or not archived yet).

A target time or restore point cannot be placed in the WAL from names alone: with a gap,
recovery to one of them is only warned about, and PostgreSQL (13 and later) stops with
"recovery ended before configured recovery target was reached" if it lies behind the gap.

Only the backup's own timeline is followed. When the archive holds a later timeline of
the cluster (a promoted copy archived there), recovery follows the newest one
(``recovery_target_timeline = 'latest'``) through history files, which this check does
not read: the gaps are then not looked for, and a warning says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from respaldo.errors import InvalidWalFile, RespaldoError, RestoreError, option
from respaldo.postgres.datadir import RecoveryTarget
from respaldo.postgres.wal import (
    WalKind,
    format_lsn,
    parse_lsn,
    parse_wal_name,
    segment_name,
    segment_start,
)
from respaldo.repository import Manifest, Repository
from respaldo.repository.wal import list_wal


@dataclass(frozen=True)
class WalCoverage:
    """The archived WAL after a backup, on the backup's timeline."""

    end: int
    """The LSN up to which WAL is there without a hole: the backup's own (in its tar),
    then the archived segments that follow it one after the other."""
    missing: str | None
    """The first segment missing although a later one is archived (a gap), or None."""
    resumes: str | None
    """The first archived segment after the gap."""
    later_timeline: str | None
    """The newest history file of a later timeline in the archive, if there is one."""


def wal_coverage(
    names: list[str], *, timeline: int, stop_lsn: int, segment_size: int
) -> WalCoverage:
    """What the archived WAL files ``names`` (bare file names of one cluster) give a
    backup of ``timeline`` that ended at ``stop_lsn``."""
    segments: set[int] = set()
    later: list[str] = []
    for name in names:
        try:
            parsed = parse_wal_name(name)
        except InvalidWalFile:
            continue  # not a WAL file: nothing recovery would ask for
        tli = int(parsed.timeline, 16)
        if parsed.kind is WalKind.HISTORY and tli > timeline:
            later.append(name)
        elif parsed.kind is WalKind.SEGMENT and tli == timeline:
            segments.add(segment_start(name, segment_size) // segment_size)
    # The backup's tar holds its WAL up to the segment of its last byte.
    number = max(stop_lsn - 1, 0) // segment_size + 1
    while number in segments:
        number += 1
    beyond = sorted(n for n in segments if n > number)

    def name_of(segno: int) -> str:
        return segment_name(timeline, segno * segment_size, segment_size)

    return WalCoverage(
        end=max(number * segment_size, stop_lsn),
        missing=name_of(number) if beyond else None,
        resumes=name_of(beyond[0]) if beyond else None,
        later_timeline=max(later) if later else None,
    )


def backup_end_time(manifest: Manifest) -> datetime:
    """When the backup ended on the server's clock (``stop_time``, recorded since
    respaldo reads it after pg_basebackup), else when respaldo completed it (later)."""
    stop = manifest.meta.get("stop_time")
    return datetime.fromisoformat(str(stop)) if stop else manifest.completed_at


def archived_after(repo: Repository, manifest: Manifest) -> WalCoverage | str:
    """The archived WAL after physical backup ``manifest`` on its timeline, or why it
    could not be looked at (an old manifest, a listing that failed, a later timeline)."""
    meta = manifest.meta
    stop_lsn = parse_lsn(str(meta.get("stop_lsn") or "0/0"))
    if not stop_lsn or "wal_segment_size" not in meta:
        return "the backup's manifest does not say where its WAL ends: the archive was not checked"
    try:
        names = [name.rsplit("/", 1)[-1] for name in list_wal(repo, str(meta["system_identifier"]))]
    except RespaldoError as exc:
        return f"could not list the archived WAL to check it for gaps: {exc}"
    coverage = wal_coverage(
        names,
        timeline=int(meta["timeline"]),
        stop_lsn=stop_lsn,
        segment_size=int(meta["wal_segment_size"]),
    )
    if coverage.later_timeline is not None:
        return (
            f"the archive holds a later timeline of this cluster ({coverage.later_timeline}): "
            "recovery follows the newest timeline, and its WAL was not checked for gaps"
        )
    return coverage


def _gap(coverage: WalCoverage) -> str:
    return (
        f"WAL segment {coverage.missing} is missing from the archive (archived again from "
        f"{coverage.resumes} on): recovery cannot go past {format_lsn(coverage.end)}"
    )


def archive_check(repo: Repository, manifest: Manifest) -> tuple[bool, str]:
    """A restore test's verdict on the archived WAL after the backup: False when a
    segment is missing (point-in-time recovery from this backup cannot go past it)."""
    coverage = archived_after(repo, manifest)
    if isinstance(coverage, str):
        return True, coverage
    if coverage.missing is not None:
        return False, _gap(coverage)
    return True, f"continuous from the backup's end to {format_lsn(coverage.end)}"


def check_recovery_target(
    repo: Repository, manifest: Manifest, target: RecoveryTarget
) -> list[str]:
    """Raise RestoreError if recovery of ``manifest`` (a physical backup) cannot reach
    ``target`` with the WAL archived in ``repo``; return warnings. Reads names only."""
    backup_id = manifest.backup_id
    meta = manifest.meta
    stop_lsn = parse_lsn(str(meta.get("stop_lsn") or "0/0"))
    if target.lsn is not None and parse_lsn(target.lsn) < stop_lsn:
        raise RestoreError(
            f"the recovery target {target.lsn} is before backup {backup_id} is consistent "
            f"(its end, at LSN {format_lsn(stop_lsn)})",
            hint="choose a backup that ended before the target ('respaldo list'), or a later "
            "target",
        )
    if target.time is not None and target.time < (ended := backup_end_time(manifest)):
        raise RestoreError(
            f"the recovery target {target.time.isoformat()} is before backup {backup_id} "
            f"ended ({ended.isoformat()}): recovery cannot stop before a backup's end",
            hint="choose a backup that ended before the target time ('respaldo list')",
        )
    if target.immediate:
        return []  # the backup's own WAL suffices
    coverage = archived_after(repo, manifest)
    if isinstance(coverage, str):
        return [coverage]
    end = format_lsn(coverage.end)
    gap = _gap(coverage)
    gap_hint = (
        f"put the segment back (from a mirror, or 'respaldo wal-push' from the server's "
        f"pg_wal), or recover knowingly to a target before the gap ({option('target_lsn')} "
        f"before {end}, {option('target_time')}, {option('immediate')})"
    )
    if target.lsn is not None and parse_lsn(target.lsn) > coverage.end:
        if coverage.missing is not None:
            raise RestoreError(
                f"{gap}, and the recovery target {target.lsn} is behind it", hint=gap_hint
            )
        raise RestoreError(
            f"the recovery target {target.lsn} is not archived: the archived WAL after "
            f"backup {backup_id} ends at {end}",
            hint="on the server, SELECT pg_switch_wal() and wait until its segment is archived "
            "('respaldo check' tells), or choose an earlier target",
        )
    if coverage.missing is None or target.lsn is not None:
        return []
    if target.time is None and target.name is None:
        raise RestoreError(
            f"{gap}: recovery to the end of the archived WAL would stop there and promote "
            "without what came after",
            hint=gap_hint,
        )
    return [f"{gap}; a target behind the gap stops recovery with an error"]

"""What ``verify`` says of the archived WAL after the physical backups it reads: holes.

A physical backup holds the WAL it needs to be consistent: ``pg_basebackup
--wal-method=fetch`` puts every segment from its start to its end in its tar's
``pg_wal``, with the timelines' history files, checked as the backup was taken
(:mod:`respaldo.postgres.basetar`) and read back with its chunks by verify. A segment
of that range missing from the archive costs nothing: recovery takes the tar's copy.

Recovery past the backup's end replays the archived WAL and ends at the first segment
missing (:mod:`~respaldo.operations.wal_coverage`): a hole after a backup cuts its
point-in-time recovery there, though it still restores to its end. The status looks
for holes after the newest physical backup only; a hole between an older backup and the
next was found by nothing but that older backup's restore test (its ``wal archive``
check failed) while verify said "ok". So each physical backup verify reads is looked
at as a restore looks at it (:func:`~respaldo.operations.wal_coverage.archived_after`:
the archive's names, listed once per cluster, and the history files of newer timelines
where there are some), and each hole is a warning naming it and the backups whose
recovery it cuts. A warning, not a problem: nothing stored is damaged, and each of those
backups restores to its end and to any target before the hole.
"""

from __future__ import annotations

from collections.abc import Iterable

from respaldo.domain import BackupKind
from respaldo.errors import RespaldoError, first_line
from respaldo.operations.wal_coverage import archived_after, gap_said
from respaldo.repository import Manifest, Repository
from respaldo.repository.wal import list_wal

NAMED = 5
"""How many backups a warning names before "and N more"."""


def is_physical(manifest: Manifest) -> bool:
    """Whether ``manifest`` is of a physical backup, whose recovery replays archived WAL."""
    return manifest.kind == BackupKind.INCREMENTAL.value


def wal_gap_warnings(repo: Repository, manifests: Iterable[Manifest]) -> list[str]:
    """A warning for each hole in ``repo``'s archived WAL after the physical backups of
    ``manifests`` (others are passed over), naming the backups whose point-in-time
    recovery stops at it, and one for each reason backups could not be checked (an old
    manifest, a listing that failed). Lists each cluster's archive once; never raises."""
    holes, unchecked = wal_gaps(repo, manifests)
    return holes + unchecked


def wal_gaps(repo: Repository, manifests: Iterable[Manifest]) -> tuple[list[str], list[str]]:
    """:func:`wal_gap_warnings` in two: the warnings of holes, and those of backups that
    could not be checked (a hole found, not a check that could not be made, is what the
    daily verify alerts on)."""
    listings: dict[str, list[str] | str] = {}
    cut: dict[str, list[str]] = {}  # what the hole is -> the backups it cuts, in order
    unchecked: dict[str, list[str]] = {}  # why -> the backups not checked
    for manifest in manifests:
        if not is_physical(manifest):
            continue
        system_id = str(manifest.meta.get("system_identifier") or "")
        if system_id and system_id not in listings:
            try:
                listings[system_id] = [
                    name.rsplit("/", 1)[-1] for name in list_wal(repo, system_id)
                ]
            except RespaldoError as exc:
                listings[system_id] = (
                    f"could not list the archived WAL to check it for gaps: {first_line(exc)}"
                )
        names = listings.get(system_id, "the backup's manifest does not name its cluster")
        try:
            coverage = (
                names if isinstance(names, str) else archived_after(repo, manifest, names=names)
            )
        except (RespaldoError, KeyError, ValueError) as exc:  # a manifest's meta malformed
            coverage = f"its manifest's WAL positions cannot be read ({exc!r})"
        if isinstance(coverage, str):
            unchecked.setdefault(coverage, []).append(manifest.backup_id)
        elif coverage.missing is not None:
            cut.setdefault(gap_said(coverage), []).append(manifest.backup_id)
    if cut:
        # A prune meanwhile deletes a backup with the WAL before the next one's start: the
        # segments after a backup it deleted are no hole of any backup left.
        held = set(repo.backup_ids())
        cut = {gap: kept for gap, ids in cut.items() if (kept := [i for i in ids if i in held])}
    warnings = [
        f"{gap}; point-in-time recovery of {_backups(ids)} stops there: "
        + (
            "it restores to its end and to a target before the gap, but recovery to the "
            "end of the archived WAL is refused and its restore test fails its wal archive "
            "check"
            if len(ids) == 1
            else "each restores to its end and to a target before the gap, but recovery to "
            "the end of the archived WAL is refused and their restore tests fail their wal "
            "archive check"
        )
        + " (put the segment back: from a mirror, or 'respaldo wal-push' from the server's "
        "pg_wal while it is there)"
        for gap, ids in cut.items()
    ]
    return warnings, [
        f"the archived WAL after {_backups(ids)} was not checked for gaps: {why}"
        for why, ids in unchecked.items()
    ]


def _backups(ids: list[str]) -> str:
    named = ", ".join(ids[:NAMED])
    if len(ids) > NAMED:
        named += f" and {len(ids) - NAMED} more"
    return f"backup {named}" if len(ids) == 1 else f"backups {named}"

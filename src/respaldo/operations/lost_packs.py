"""A backup that found packs lost: the earlier backups that use them are marked damaged.

The check of a backup's packs before its manifest (:mod:`respaldo.repository.pack_check`)
fails the backup when a pack it references is missing or cut short, and quarantines the
chunk copies the pack lost. The earlier backups that use those chunks cannot restore
either; left ``completed`` and unverified in the catalog, retention counted them as good
backups (with ``min_keep`` met by them, an older restorable one could expire) and the
status and the page showed them as fine, until someone ran ``verify --all`` or
``repair``. So here, on that failure only, they are found and marked as ``repair`` marks
a backup that lost data (:func:`respaldo.operations.repair.mark_damaged`): only those
with no good copy of a lost chunk elsewhere (in another pack of the repository, or in a
configured mirror, which restore reads from), as ``repair`` decides it
(:func:`respaldo.repository.repair.record_lost_backups`).

The cost stays with the failure and with the backups it can concern: the catalog's
completed backups of this repository not already known to be damaged, each manifest and
each of its chunk lists read once, a list at a time.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import sqlalchemy as sa

from respaldo.catalog import BackupRecord, failed_verification
from respaldo.domain import BackupStatus
from respaldo.errors import RespaldoError
from respaldo.operations.context import Context
from respaldo.operations.repair import lost_packs_problem, mark_damaged
from respaldo.repository import Repository
from respaldo.repository.pack_check import LostPacks
from respaldo.repository.repair import record_lost_backups

log = logging.getLogger(__name__)

NAMED_AT_MOST = 5
"""Backups named in the error's hint (and so in the alert); the rest are counted."""


def mark_lost_packs(ctx: Context, repo: Repository, name: str, exc: LostPacks) -> list[str]:
    """Mark damaged, in the catalog, the backups of repository ``name`` (``repo``) that
    use a chunk copy ``exc`` quarantined and have no good copy of it anywhere, and say
    in ``exc``'s hint which (the failed job's alert carries it). Returns their ids.
    Never raises: the backup's own failure is what the caller raises."""
    when = datetime.now(UTC)
    warnings: list[str] = []
    marked: list[str] = []
    try:
        if exc.chunks:
            marked = _mark(ctx, repo, name, exc.chunks, when, warnings)
    except Exception as error:  # the backup's failure must be told, whatever this meets
        log.warning("cannot look for the backups that use the lost packs: %s", error)
        exc.hint = (
            f"{exc.then}; looking for the earlier backups that use them failed ({error}): "
            "'respaldo verify --all' names them, 'respaldo repair' takes good copies from "
            "a mirror"
        )
        return []
    for warning in warnings:
        log.warning("%s", warning)
    if marked:
        log.warning(
            "backups marked damaged, they use chunks of the lost packs: %s", ", ".join(marked)
        )
        exc.hint = f"{exc.then}; {_marked_said(marked)}"
    elif exc.chunks:
        exc.hint = (
            f"{exc.then}; no earlier backup in the catalog uses them without a good copy elsewhere"
        )
    return marked


def _mark(
    ctx: Context,
    repo: Repository,
    name: str,
    chunks: frozenset[bytes],
    when: datetime,
    warnings: list[str],
) -> list[str]:
    # The index without the copies just quarantined: another copy of a chunk in another
    # pack is then found there.
    repo.load_index()
    mirrors = mirrors_of(ctx, repo, name, warnings)
    with ctx.catalog.read() as session:
        candidates = list(
            session.scalars(
                sa.select(BackupRecord.id)
                .where(
                    BackupRecord.repository == name,
                    BackupRecord.status == BackupStatus.COMPLETED,
                    BackupRecord.primary_deleted_at.is_(None),
                    ~failed_verification(),
                )
                .order_by(BackupRecord.completed_at.desc(), BackupRecord.id.desc())
            )
        )
    lost = record_lost_backups(repo, chunks, mirrors, candidates, warnings)
    problems = {b.backup_id: lost_packs_problem(b.chunks_lost, when) for b in lost}
    return [
        backup_id
        for backup_id, problem in problems.items()
        if mark_damaged(ctx, backup_id, problem, when, warnings)
    ]


def mirrors_of(
    ctx: Context, repo: Repository, name: str, warnings: list[str] | None = None
) -> list[Repository]:
    """The configured repositories other than ``name`` that hold copies of ``repo`` (the
    same repository id): where restore reads a chunk ``repo`` lost. One that cannot be
    opened is left out (said in ``warnings``): not read, it counts as holding nothing, and
    a backup marked for it is told to try 'respaldo repair', which reads every mirror."""
    mirrors = []
    for other in ctx.settings.repositories:
        if other.name == name:
            continue
        try:
            mirror = ctx.repository(other.name)
        except RespaldoError as error:
            if warnings is not None:
                warnings.append(f"repository {other.name} cannot be read: {error}")
            continue
        if mirror.id == repo.id:
            mirrors.append(mirror)
    return mirrors


def _marked_said(marked: list[str]) -> str:
    named = ", ".join(marked[:NAMED_AT_MOST])
    if len(marked) > NAMED_AT_MOST:
        named += f" and {len(marked) - NAMED_AT_MOST} more"
    one = len(marked) == 1
    return (
        f"earlier {'backup' if one else 'backups'} {named}, which {'uses' if one else 'use'} "
        f"them and no repository read holds a good copy of, {'is' if one else 'are'} marked "
        "damaged in the catalog (retention no longer counts "
        f"{'it' if one else 'them'} as good): 'respaldo repair' may recover the chunks "
        "from a mirror"
    )

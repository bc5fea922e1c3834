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

A copy to a mirror that finds packs lost *in the mirror* (the same check, before the
copy's manifest) concerns the mirror's copies instead: the earlier backups whose copy
there uses a lost chunk with no good copy in another pack of the mirror are no longer
held there. The primary's copy does not count (``restore --repository`` reads the mirror
alone, and a lost primary leaves only the mirror): their copy rows become failed, saying
what was lost, so that the status's ``copy:`` item, retention's "held in", ``restore
--repository`` and ``copy --all`` no longer count them, and the next copy sends the
chunks again (:func:`respaldo.repository.copy.copy_backup` refills a copy the catalog
does not hold as completed). Nothing is recorded lost in the mirror: a lost record says
no repository holds a good copy ('repair' gives up on it), and the primary does.
``verify --repository MIRROR`` that finds damage marks them so too
(:func:`mark_lost_chunks`).

The cost stays with the failure and with the backups it can concern: the catalog's
completed backups of this repository (or copies in this mirror) not already known to be
damaged, each manifest and each of its chunk lists read once, a list at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import UTC, datetime

import sqlalchemy as sa

from respaldo.catalog import BackupCopies, BackupCopy, BackupRecord, failed_verification
from respaldo.catalog.copies import COPY_LOST_DATA
from respaldo.domain import BackupStatus, CopyStatus
from respaldo.errors import RecordNotFound, RespaldoError
from respaldo.operations.context import Context
from respaldo.operations.repair import lost_packs_problem, mark_damaged
from respaldo.repository import Repository
from respaldo.repository.pack_check import LostPacks
from respaldo.repository.repair import LostBackup, lost_backups, record_lost_backups

log = logging.getLogger(__name__)

NAMED_AT_MOST = 5
"""Backups named in the error's hint (and so in the alert); the rest are counted."""

LOST_WITH_PACKS = "lost with packs found missing or truncated"
FOUND_DAMAGED = "found damaged by verify"


def mark_lost_packs(ctx: Context, repo: Repository, name: str, exc: LostPacks) -> list[str]:
    """Mark, in the catalog, what the chunk copies ``exc`` quarantined in repository
    ``name`` (``repo``) leave without a good copy: the primary's backups that use one
    and have no good copy of it anywhere are marked damaged; in a mirror, the copies
    there of the backups that use one with no good copy in the mirror are marked failed
    (:func:`mark_lost_chunks`). Says in ``exc``'s hint which (the failed job's or copy's
    alert carries it). Returns their ids. Never raises: the backup's (or copy's) own
    failure is what the caller raises."""
    mirror = _is_mirror(ctx, name)
    warnings: list[str] = []
    marked: list[str] = []
    try:
        if exc.chunks:
            marked = _mark(ctx, repo, name, exc.chunks, warnings, LOST_WITH_PACKS)
    except Exception as error:  # the backup's failure must be told, whatever this meets
        log.warning("cannot look for the backups that use the lost packs: %s", error)
        exc.hint = (
            f"{exc.then}; looking for the earlier backups that use them failed ({error}): "
            + (
                f"'respaldo verify --all --repository {name}' names them"
                if mirror
                else "'respaldo verify --all' names them, 'respaldo repair' takes good copies "
                "from a mirror"
            )
        )
        return []
    for warning in warnings:
        log.warning("%s", warning)
    if marked:
        log.warning(
            "%s, they use chunks of the lost packs: %s",
            f"copies in {name} marked failed" if mirror else "backups marked damaged",
            ", ".join(marked),
        )
        exc.hint = f"{exc.then}; {_copies_said(marked, name) if mirror else _marked_said(marked)}"
    elif exc.chunks:
        elsewhere = f"in {name}" if mirror else "elsewhere"
        exc.hint = (
            f"{exc.then}; no earlier backup in the catalog uses them without a good copy "
            f"{elsewhere}"
        )
    return marked


def mark_lost_chunks(
    ctx: Context, repo: Repository, name: str, chunks: Collection[bytes], warnings: list[str]
) -> list[str]:
    """:func:`mark_lost_packs` for chunks found damaged by other means (``verify
    --repository MIRROR``): the copies in mirror ``name`` (``repo``, its index loaded
    since they were quarantined) of the backups that use one of ``chunks`` with no good
    copy in the mirror are marked failed, saying what was lost. Returns their ids; what
    cannot be read is said in ``warnings``. Raises the catalog's and storage's errors.
    The primary's backups are not marked here: ``respaldo repair`` does that."""
    if not chunks or not _is_mirror(ctx, name):
        return []
    return _mark(ctx, repo, name, frozenset(chunks), warnings, FOUND_DAMAGED, reload=False)


def _is_mirror(ctx: Context, name: str) -> bool:
    return name != ctx.settings.repository().name


def _mark(
    ctx: Context,
    repo: Repository,
    name: str,
    chunks: frozenset[bytes],
    warnings: list[str],
    how: str,
    *,
    reload: bool = True,
) -> list[str]:
    when = datetime.now(UTC)
    if reload:
        # The index without the copies just quarantined: another copy of a chunk in
        # another pack is then found there (and a copy to a mirror, in this process or a
        # later one, sends the chunks anew instead of failing on the lost pack again).
        repo.load_index()
    if _is_mirror(ctx, name):
        # Only the mirror's own packs count: the primary's copy does not make the
        # mirror's restorable (restore --repository reads it alone; a lost primary
        # leaves only the mirror).
        # Not recorded lost in the mirror: the primary can still mend them ('repair
        # MIRROR', the next copy), and a lost record says nothing anywhere can.
        lost, _ = lost_backups(repo, chunks, [], _copied_into(ctx, name), warnings)
        return [
            b.backup_id
            for b in lost
            if _fail_copy(ctx, b.backup_id, name, _copy_problem(b, how, name, when))
        ]
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


def _copied_into(ctx: Context, name: str) -> list[str]:
    """The completed backups with a copy row for mirror ``name``, newest first: not
    only the completed copies; a failed one whose manifest is there already (failed by
    an earlier loss, say) must have this loss recorded too, or the copy that retries it
    would find its manifest there and take it as whole (a manifest not there is passed
    over as the repair's reading passes over a backup a prune deleted)."""
    with ctx.catalog.read() as session:
        return list(
            session.scalars(
                sa.select(BackupRecord.id)
                .join(BackupCopy, BackupCopy.backup_id == BackupRecord.id)
                .where(BackupCopy.repository == name, BackupRecord.status == BackupStatus.COMPLETED)
                .order_by(BackupRecord.completed_at.desc(), BackupRecord.id.desc())
            )
        )


def _copy_problem(backup: LostBackup, how: str, name: str, when: datetime) -> str:
    """The failed copy row's words for the copy of ``backup`` in mirror ``name`` (its
    ``error_message``, which the status's ``copy:`` item says; ``COPY_LOST_DATA``
    first, by which the status finds it however old)."""
    one = backup.chunks_lost == 1
    return (
        f"{COPY_LOST_DATA}{backup.chunks_lost} {'chunk' if one else 'chunks'} the copy of "
        f"{backup.backup_id} uses {'was' if one else 'were'} {how} in {name} "
        f"({when:%Y-%m-%d %H:%M} UTC) and no other pack there holds a good copy; it cannot "
        f"be restored from {name} until the next copy sends them again"
    )


def _fail_copy(ctx: Context, backup_id: str, name: str, problem: str) -> bool:
    """Mark the copy of ``backup_id`` in ``name`` failed with ``problem``; whether it
    was (not when its record went meanwhile: a prune expired it)."""
    try:
        with ctx.catalog.begin() as session:
            BackupCopies(session).mark(backup_id, name, CopyStatus.FAILED, error=problem)
    except RecordNotFound:
        return False
    return True


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


def named_ids(ids: list[str]) -> str:
    """The first :data:`NAMED_AT_MOST` of ``ids``, and how many more."""
    named = ", ".join(ids[:NAMED_AT_MOST])
    if len(ids) > NAMED_AT_MOST:
        named += f" and {len(ids) - NAMED_AT_MOST} more"
    return named


def _marked_said(marked: list[str]) -> str:
    named = named_ids(marked)
    one = len(marked) == 1
    return (
        f"earlier {'backup' if one else 'backups'} {named}, which {'uses' if one else 'use'} "
        f"them and no repository read holds a good copy of, {'is' if one else 'are'} marked "
        "damaged in the catalog (retention no longer counts "
        f"{'it' if one else 'them'} as good): 'respaldo repair' may recover the chunks "
        "from a mirror"
    )


def _copies_said(marked: list[str], name: str) -> str:
    named = named_ids(marked)
    one = len(marked) == 1
    return (
        f"the {'copy' if one else 'copies'} in {name} of earlier "
        f"{'backup' if one else 'backups'} {named}, which {'uses' if one else 'use'} them "
        f"and no other pack of {name} holds a good copy of, {'is' if one else 'are'} "
        f"marked failed in the catalog (retention and the status no longer count "
        f"{'it' if one else 'them'} as held there): the next copy sends the lost chunks "
        "again"
    )

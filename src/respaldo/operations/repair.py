"""``respaldo repair``: rewrite quarantined chunks (and damaged archived WAL) from a
mirror, or account for the loss.

Verification quarantines the chunk copies it finds damaged (see
:mod:`respaldo.repository.quarantine`). Repair takes each one in the repository being
repaired (the primary by default) and looks for a good copy in every other configured
repository (mirrors share keys and chunk ids); see :mod:`respaldo.repository.repair` for
the order of writes. A chunk with no good copy anywhere is *lost*: the backups that
reference it are named in the result and marked in the catalog as having failed
verification (with what was lost), so that ``list``/``show`` say so, retention counts
them as damaged, and restore refuses them with a clear message.

With ``--wal``, archived WAL is read whole (``verify`` reports a damaged file but does
not quarantine it): each damaged file is replaced by a mirror's good copy, or named as
lost. Not by default: it downloads the whole archive.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from respaldo.catalog import BackupCopies, BackupRecords
from respaldo.catalog.backups import has_failed_verification
from respaldo.domain import AuditAction, AuditOutcome, BackupStatus, CopyStatus
from respaldo.errors import InvalidTransition, RecordNotFound, RespaldoError
from respaldo.operations import audit
from respaldo.operations.context import Context
from respaldo.operations.principal import Principal, local_principal
from respaldo.phrases import N_, Phrase, counted
from respaldo.repository import Repository
from respaldo.repository.locks import shared_lease
from respaldo.repository.reader import read_list
from respaldo.repository.repair import repair_repository
from respaldo.repository.wal import WalRepair, repair_wal


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class LostBackupResult(_Model):
    """A backup that lost data: what a person needs to decide what to do about it."""

    backup_id: str
    database: str
    kind: str
    completed_at: datetime
    chunks_lost: int
    streams: list[str]
    marked_in_catalog: bool


class RepairResult(_Model):
    """What ``repair`` found and did (with ``dry_run``: would do)."""

    repository: str
    dry_run: bool
    quarantined_chunks: int = Field(description="Chunks with a damaged copy.")
    already_good: int = Field(description="Of those, chunks with a good copy indexed.")
    unreadable_records_replaced: list[str] = Field(
        default_factory=list,
        description="Unreadable quarantine records deleted after every chunk copy was "
        "re-read and the damaged ones recorded anew.",
    )
    damaged_copies_found: int = Field(
        default=0, description="Damaged chunk copies that re-reading recorded anew."
    )
    repaired: int = Field(description="Chunks rewritten from a mirror.")
    repaired_from: dict[str, int]
    lost_chunks: list[str] = Field(description="Ids of chunks with no good copy anywhere.")
    lost_backups: list[LostBackupResult]
    whole_again: list[str] = Field(
        default_factory=list,
        description="Backups marked damaged that the repository holds every chunk of "
        "again: marked as repaired, they still count as failed verification until a "
        "restore test of each passes.",
    )
    packs_written: int
    bytes_written: int
    problems: list[str]
    warnings: list[str]
    wal_damaged: list[str] = Field(
        default_factory=list, description="Archived WAL files found damaged (read twice)."
    )
    wal_repaired_from: dict[str, int] = Field(
        default_factory=dict, description="Of those, how many each mirror's copy replaced."
    )
    wal_lost: list[str] = Field(
        default_factory=list,
        description="Damaged WAL files no mirror holds a good copy of: recovery cannot "
        "replay past them.",
    )
    copies_completed: list[str] = Field(
        default_factory=list,
        description="Backups whose copy in this repository (a mirror) the catalog had "
        "marked failed for lost data, whole there again after the repair: completed.",
    )

    @property
    def clean(self) -> bool:
        """Nothing is lost and nothing went wrong."""
        return not self.lost_chunks and not self.problems and not self.wal_lost


def repair(
    ctx: Context,
    repository: str | None = None,
    *,
    dry_run: bool = False,
    wal: bool = False,
    actor: Principal | None = None,
) -> RepairResult:
    """:func:`_repair`, audited unless ``dry_run`` (``repair``, by ``actor``, the OS user
    by default): it rewrites repository data and marks backups damaged, which restore
    then refuses."""
    if dry_run:
        return _repair(ctx, repository, dry_run=True, wal=wal)
    who = actor or local_principal()
    try:
        result = _repair(ctx, repository, wal=wal)
    except RespaldoError as exc:
        audit.record(ctx, who, AuditAction.REPAIR, repository, AuditOutcome.FAILURE, str(exc))
        raise
    outcome = AuditOutcome.SUCCESS if result.clean else AuditOutcome.FAILURE
    audit.record(ctx, who, AuditAction.REPAIR, result.repository, outcome, _audit_detail(result))
    return result


def _audit_detail(result: RepairResult) -> str:
    detail = f"rewrote {result.repaired} of {result.quarantined_chunks} quarantined chunks"
    if result.wal_damaged:
        detail += f", replaced {sum(result.wal_repaired_from.values())} WAL files"
    if result.lost_chunks or result.wal_lost:
        detail += (
            f"; lost: {len(result.lost_chunks)} chunks ({len(result.lost_backups)} backups "
            f"marked damaged), {len(result.wal_lost)} WAL files"
        )
    return detail


def _repair(
    ctx: Context, repository: str | None = None, *, dry_run: bool = False, wal: bool = False
) -> RepairResult:
    """Repair the quarantined chunks of ``repository`` (default: the primary) from every
    other configured repository that opens; with ``wal``, also its damaged archived WAL
    files (reading every one: the whole archive is downloaded).

    Raises ConfigError (no such repository), the errors of opening the repository to
    repair, and storage errors. A mirror that does not open is a warning.
    """
    target_settings = ctx.settings.repository(repository)
    repo = ctx.repository(target_settings.name)
    warnings: list[str] = []
    mirrors: list[Repository] = []
    for other in ctx.settings.repositories:
        if other.name == target_settings.name:
            continue
        try:
            mirrors.append(ctx.repository(other.name))
        except RespaldoError as exc:
            warnings.append(f"repository {other.name} cannot be read: {exc}")
    with contextlib.ExitStack() as leases:
        if not dry_run:
            # Packs read from mirrors and written here must not be collected meanwhile.
            for each in (repo, *mirrors):
                leases.enter_context(shared_lease(each, "repair"))
        report = repair_repository(repo, mirrors, dry_run=dry_run)
    lost = []
    now = datetime.now(UTC)
    for backup in report.lost_backups:
        marked = False
        if not dry_run:
            problem = damage_problem(backup.chunks_lost, now)
            marked = mark_damaged(ctx, backup.backup_id, problem, now, warnings)
        lost.append(
            LostBackupResult(
                backup_id=backup.backup_id,
                database=backup.source,
                kind=backup.kind,
                completed_at=backup.completed_at,
                chunks_lost=backup.chunks_lost,
                streams=list(backup.streams),
                marked_in_catalog=marked,
            )
        )
    whole = [] if dry_run else _whole_again(ctx, repo, target_settings.name, now)
    if whole:
        warnings.append(
            counted(
                len(whole),
                N_(
                    "backup {backups} is whole again but still counts as failed "
                    "verification: a restore test that passes clears the mark ('respaldo "
                    "drill ID')"
                ),
                N_(
                    "backups {backups} are whole again but still count as failed "
                    "verification: a restore test of each that passes clears its mark "
                    "('respaldo drill ID')"
                ),
                backups=", ".join(whole),
            )
        )
    problems = list(report.problems)
    completed = [] if dry_run else copies_whole_again(ctx, repo, target_settings.name)
    wal_report = WalRepair()
    if wal:
        # After the chunks' losses are marked: a WAL archive that cannot be read to its
        # end (a mirror gone meanwhile) must not leave those unmarked.
        try:
            with contextlib.ExitStack() as leases:
                if not dry_run:
                    for each in (repo, *mirrors):
                        leases.enter_context(shared_lease(each, "repair"))
                wal_report = repair_wal(repo, mirrors, dry_run=dry_run)
        except RespaldoError as exc:
            problems.append(f"the archived WAL was not repaired to its end: {exc}")
    return RepairResult(
        repository=target_settings.name,
        dry_run=dry_run,
        quarantined_chunks=report.quarantined,
        unreadable_records_replaced=report.records_replaced,
        damaged_copies_found=report.damaged_found,
        already_good=report.already_good,
        repaired=report.repaired_total,
        repaired_from=report.repaired,
        lost_chunks=[cid.hex() for cid in report.lost_chunks],
        lost_backups=lost,
        whole_again=whole,
        packs_written=report.packs_written,
        bytes_written=report.bytes_written,
        problems=problems,
        warnings=warnings,
        wal_damaged=wal_report.damaged,
        wal_repaired_from=wal_report.repaired,
        wal_lost=wal_report.lost,
        copies_completed=completed,
    )


def copies_whole_again(ctx: Context, repo: Repository, name: str) -> list[str]:
    """Mark completed the copies in ``repo`` (repository ``name``, a mirror) that the
    catalog records as having lost data (:mod:`~respaldo.operations.lost_packs`) and
    whose every chunk it holds a good copy of again (:func:`_holds_every_chunk`, the
    rule :func:`_whole_again` applies to a primary's backups): 'repair NAME' took the
    chunks from another repository, and the copy restores again (left failed, restore
    --repository refused it, the status counted it missing until a copy sent the chunks
    once more). Reads the chunk lists of those copies only; one that cannot be read
    stays failed. Returns their ids."""
    with ctx.catalog.read() as session:
        marked = sorted(BackupCopies(session).lost_in().get(name, set()))
    if not marked:
        return []
    present = set(repo.backup_ids())
    whole = [b for b in marked if b in present and _holds_every_chunk(repo, b)]
    for backup_id in whole:
        with contextlib.suppress(RecordNotFound), ctx.catalog.begin() as session:
            BackupCopies(session).mark(backup_id, name, CopyStatus.COMPLETED)
    return whole


DAMAGED = "damaged: "
"""How the catalog's words for a backup that lost data begin (:func:`damage_problem`,
:func:`lost_packs_problem`, :func:`quarantined_problem`)."""


def _whole_again(ctx: Context, repo: Repository, name: str, now: datetime) -> list[str]:
    """The backups of repository ``name`` marked as having lost data whose every chunk
    ``repo`` (repaired) holds a good copy of again, each marked now as repaired
    (:func:`repaired_problem`). The mark stays a failed verification: what repair checked
    is that each chunk is there and indexed, not that the backup restores, which only a
    restore test shows (its pass clears the mark). Left as it was, the mark said "it
    cannot be restored" of a backup that could, and nothing said what would clear it."""
    with ctx.catalog.read() as session:
        marked = [
            record.id
            for record in BackupRecords(session).list(status=BackupStatus.COMPLETED)
            if record.repository == name
            and has_failed_verification(record)
            and (record.error_message or "").startswith(DAMAGED)
        ]
    whole = []
    for backup_id in marked:
        if not _holds_every_chunk(repo, backup_id):
            continue
        try:
            with ctx.catalog.begin() as session:
                BackupRecords(session).set_verified(
                    backup_id, now, verified=False, problem=repaired_problem(name, now)
                )
        except (RecordNotFound, InvalidTransition):
            continue  # deleted, or no longer completed, meanwhile
        whole.append(backup_id)
    return whole


def _holds_every_chunk(repo: Repository, backup_id: str) -> bool:
    """Whether ``repo``'s index (quarantined copies left out) holds every chunk of
    ``backup_id``, its chunk lists included; False when its manifest or a chunk list
    cannot be read."""
    try:
        manifest = repo.load_manifest(backup_id)
        for stream in manifest.streams:
            for list_id in stream.lists:
                if bytes.fromhex(list_id) not in repo.index:
                    return False
                if any(chunk_id not in repo.index for chunk_id, _ in read_list(repo, list_id)):
                    return False
    except Exception:  # the repository layer keeps a list's failure type private
        return False
    return True


def repaired_problem(repository: str, when: datetime) -> str:
    """The catalog's words for a backup that had lost data and that repository
    ``repository`` holds whole again since a repair at ``when`` (``error_message``)."""
    return str(
        Phrase(
            N_(
                "repaired: every chunk it had lost is in repository {repository} again "
                "('respaldo repair', {when} UTC); it counts as failed verification until a "
                "restore test of it passes"
            ),
            repository=repository,
            when=f"{when:%Y-%m-%d %H:%M}",
        )
    )


def mark_damaged(
    ctx: Context, backup_id: str, problem: str, when: datetime, warnings: list[str]
) -> bool:
    """Mark a backup's record as having failed verification at ``when``, ``problem``
    saying what it lost (:func:`damage_problem`, :func:`lost_packs_problem`): retention
    counts it as no good backup, the status and ``list`` say so. Returns whether it was
    marked (a backup not completed, or not in the catalog, is not: the latter said in
    ``warnings``). Repair uses it, and a backup that found packs lost
    (:mod:`respaldo.operations.lost_packs`)."""
    try:
        with ctx.catalog.begin() as session:
            records = BackupRecords(session)
            if records.get(backup_id).status is not BackupStatus.COMPLETED:
                return False
            records.set_verified(backup_id, when, verified=False, problem=problem)
    except RecordNotFound:
        warnings.append(
            f"backup {backup_id} is not in the catalog ('respaldo catalog rebuild' adds it)"
        )
        return False
    return True


def damage_problem(chunks: int, when: datetime) -> str:
    """The catalog's words for a backup that lost chunks (``error_message``)."""
    return counted(
        chunks,
        N_(
            "damaged: {count} chunk has no good copy in any repository (respaldo repair, "
            "{when} UTC); it cannot be restored"
        ),
        N_(
            "damaged: {count} chunks have no good copy in any repository (respaldo repair, "
            "{when} UTC); it cannot be restored"
        ),
        when=f"{when:%Y-%m-%d %H:%M}",
    )


def quarantined_problem(chunks: int, when: datetime) -> str:
    """The catalog's words for a backup that uses chunks whose copies ``verify`` found
    corrupt and quarantined (the earliest at ``when``) and that no repository holds a good
    copy of (``error_message``): said apart from :func:`lost_packs_problem`, whose reader
    goes looking for a pack deleted or cut short, while these packs are all there."""
    return counted(
        chunks,
        N_(
            "damaged: {count} chunk it uses was found corrupt and quarantined by 'respaldo "
            "verify' ({when} UTC) and no repository read holds a good copy; it cannot be "
            "restored unless 'respaldo repair' finds one in a mirror"
        ),
        N_(
            "damaged: {count} chunks it uses were found corrupt and quarantined by "
            "'respaldo verify' ({when} UTC) and no repository read holds a good copy; it "
            "cannot be restored unless 'respaldo repair' finds them in a mirror"
        ),
        when=f"{when:%Y-%m-%d %H:%M}",
    )


def lost_packs_problem(chunks: int, when: datetime) -> str:
    """The catalog's words for a backup that uses chunks a later backup found lost with
    their packs (missing or cut short in the repository) and that no repository holds a
    good copy of (``error_message``)."""
    return counted(
        chunks,
        N_(
            "damaged: {count} chunk it uses was lost with a pack found missing or truncated "
            "({when} UTC) and no repository read holds a good copy; it cannot be restored "
            "unless 'respaldo repair' finds one in a mirror"
        ),
        N_(
            "damaged: {count} chunks it uses were lost with packs found missing or truncated "
            "({when} UTC) and no repository read holds a good copy; it cannot be restored "
            "unless 'respaldo repair' finds them in a mirror"
        ),
        when=f"{when:%Y-%m-%d %H:%M}",
    )

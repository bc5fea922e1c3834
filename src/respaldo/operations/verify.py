"""``verify``: read back chunks and check them, then quarantine the copies found damaged.

Three scopes, exactly one at a time: the given backups, everything (index, packs and
every backup), or slice ``n/t`` of all chunks (``t`` runs, one per slice, cover all).
A shared lease keeps garbage collection from repacking what is being read (a repack
meanwhile would show as damage); on read-only media there is none, and a warning says so.
A hole in the archived WAL after a physical backup read (the given ones, or every one;
with a slice, every physical backup the repository holds) is a warning naming the backups
whose point-in-time recovery it cuts (:mod:`~respaldo.operations.verify_wal`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from respaldo import cancellation
from respaldo.catalog import BackupRecords
from respaldo.catalog.copies import BackupCopies
from respaldo.domain import BackupKind
from respaldo.errors import (
    BackupNotFound,
    ConfigError,
    IntegrityError,
    InvalidInput,
    RespaldoError,
    StorageError,
)
from respaldo.operations.context import Context
from respaldo.operations.lost_packs import mark_lost_chunks, named_ids
from respaldo.operations.models import ResultModel
from respaldo.operations.status_verify import note_verified
from respaldo.operations.verify_wal import is_physical, wal_gap_warnings, wal_gaps
from respaldo.phrases import N_, counted
from respaldo.repository import Manifest, Repository, verify_backups, verify_repository
from respaldo.repository.locks import reading_lease
from respaldo.repository.manifest import manifest_name
from respaldo.repository.verify import (
    Problem,
    VerifyReport,
    parse_subset,
    quarantine_damaged,
    verify_presence,
    verify_subset,
)


class VerifyResult(ResultModel):
    """What verification read and found."""

    repository: str
    backups: int
    chunks: int
    bytes: int
    packs: int
    packs_checked: bool
    unreferenced_packs: int
    damaged_index_files: int
    problems: list[str]
    quarantined: int
    warnings: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def found_failure(self) -> str | None:
        """What was found, for the job's row (see operations.jobs.Verdict); None if ok."""
        if self.ok:
            return None
        return counted(
            len(self.problems),
            N_("verify found {count} problem: {problem}"),
            N_("verify found {count} problems: {problem}"),
            problem=self.problems[0],
        )


def verify(
    ctx: Context,
    *,
    backup_ids: list[str] | None = None,
    everything: bool = False,
    subset: str | None = None,
    repository: str | None = None,
    advance: Callable[[int], None] | None = None,
) -> VerifyResult:
    """Verify ``backup_ids``, or ``everything``, or the ``subset`` ``"n/t"`` of all chunks
    of ``repository`` (default: the primary); ``advance(bytes)`` reports progress.

    Raises ConfigError unless exactly one scope is given, InvalidInput for a malformed
    subset, JobCancelled when the job running it is cancelled, and the errors of opening
    the repository. Problems found are in the result, not raised, and alerted (one
    critical alert naming the first). Damaged copies found are quarantined (no backup
    uses them again); a store that cannot be written loses only that record, with a
    warning. A subset or everything read is noted as the repository's last check
    (:mod:`~respaldo.operations.status_verify`); RepositoryLocked is raised when a
    garbage collection holds the repository for longer than ``[locks] wait_seconds``.
    """
    if sum((bool(backup_ids), everything, subset is not None)) != 1:
        raise ConfigError("verify takes backup ids, everything, or a subset: exactly one")
    slice_ = None
    if subset is not None:
        try:
            slice_ = parse_subset(subset)
        except ValueError as exc:
            raise InvalidInput("subset", str(exc)) from None
    name = ctx.settings.repository(repository).name
    repo = ctx.repository(name)
    warnings: list[str] = []
    holes: list[str] = []
    unchecked: list[str] = []

    def step(n: int) -> None:
        if advance is not None:
            advance(n)
        cancellation.check()  # between chunks: a cancelled job stops here

    with reading_lease(repo, "verify", warnings.append):
        if slice_ is not None:
            report = verify_subset(repo, *slice_, step)
            # The daily verify is a slice: without this, a hole appearing in the archive
            # after a physical backup was seen by nothing scheduled but that backup's
            # restore test. Their manifests and one listing per cluster: no data read.
            holes, unchecked = wal_gaps(repo, _physical_manifests(ctx, repo))
            warnings += holes + unchecked
        elif everything:
            chains: dict[str, list[str]] = {}
            physical: list[Manifest] = []

            def seen(manifest: Manifest) -> None:
                chains[manifest.backup_id] = chain_of(manifest)
                if is_physical(manifest):
                    physical.append(manifest)

            report = verify_repository(repo, step, seen=seen)
            report.problems += _recorded_but_missing(ctx, name, repo)
            report.problems += _chains_gone(name, repo, chains)
            holes, unchecked = wal_gaps(repo, physical)
            warnings += holes + unchecked
        else:
            ids, gone = _with_chains(name, repo, backup_ids or [])
            # The WAL after the backups asked for, not after the chains they restore on.
            asked = set(backup_ids or [])
            read: list[Manifest] = []
            report = verify_backups(
                repo, ids, step, seen=lambda m: read.append(m) if m.backup_id in asked else None
            )
            report.problems += gone
            warnings += wal_gap_warnings(repo, read)
    if slice_ is not None or everything:
        # Read as a whole (a slice of it, or all): what the status's verify item counts.
        scope = f"subset {subset}" if slice_ is not None else "all"
        now = datetime.now(UTC)
        note_verified(ctx, name, scope, now)
        # Every physical backup was looked at: a hole is told, and told mended, here.
        if holes or not unchecked:  # a listing that failed mends nothing
            _watch_wal_gaps(ctx, name, holes, now)
    return _settle(ctx, name, repo, report, warnings, packs_checked=everything)


def check_presence(ctx: Context, repository: str) -> VerifyResult:
    """Check that repository ``repository`` holds every pack its index names and every
    backup the catalog records there (listings only, no data read): what the daily
    verify asks of each mirror, whose data it does not read. Problems found are in the
    result and alerted, as :func:`verify`'s are; the check is noted for the status
    (:mod:`~respaldo.operations.status_verify`). Raises the errors of opening the
    repository and RepositoryLocked when a garbage collection holds it for longer than
    ``[locks] wait_seconds``."""
    name = ctx.settings.repository(repository).name
    repo = ctx.repository(name)
    warnings: list[str] = []
    # Shared, as verify's: a garbage collection meanwhile would delete packs it listed.
    with reading_lease(repo, "verify", warnings.append):
        report = verify_presence(repo)
        report.problems += _recorded_but_missing(ctx, name, repo)
    note_verified(ctx, name, "presence", datetime.now(UTC))
    return _settle(ctx, name, repo, report, warnings, packs_checked=False)


def _settle(
    ctx: Context,
    name: str,
    repo: Repository,
    report: VerifyReport,
    warnings: list[str],
    *,
    packs_checked: bool,
) -> VerifyResult:
    """Quarantine what ``report`` found damaged, alert on its problems and return the
    result."""
    try:
        quarantined = quarantine_damaged(repo, report)
    except StorageError as exc:
        warnings.append(f"cannot record the damaged chunks in the repository: {exc}")
        quarantined = 0
    marked = _mark_copies(ctx, name, repo, report, warnings)
    result = VerifyResult(
        repository=name,
        backups=report.backups,
        chunks=report.chunks,
        bytes=report.bytes,
        packs=report.packs,
        packs_checked=packs_checked,
        unreferenced_packs=report.unreferenced_packs,
        damaged_index_files=report.damaged_index_files,
        problems=[str(p) for p in report.problems],
        quarantined=quarantined,
        warnings=warnings,
    )
    if result.problems:
        _alert(ctx, result, marked)
    return result


def _mark_copies(
    ctx: Context, name: str, repo: Repository, report: VerifyReport, warnings: list[str]
) -> list[str]:
    """In a mirror with problems: mark failed the copies there of the backups that use a
    quarantined chunk with no good copy in the mirror, as a copy that finds the mirror's
    packs lost does (:func:`~respaldo.operations.lost_packs.mark_lost_chunks`; the next
    copy sends the chunks again). Said in ``warnings``; returns their ids. Costs
    nothing when nothing was found (each completed copy's manifest is read otherwise)."""
    if not report.problems:
        return []
    try:
        marked = mark_lost_chunks(ctx, repo, name, repo.quarantine.chunk_ids(), warnings)
    except RespaldoError as exc:
        warnings.append(f"cannot look for the copies in {name} that use the damaged chunks: {exc}")
        return []
    if marked:
        warnings.append(
            f"the copies in {name} of {named_ids(marked)} use chunks with no good copy "
            f"there: marked failed in the catalog, the next copy sends them again "
            f"('respaldo copy --all --to {name}')"
        )
    return marked


def _physical_manifests(ctx: Context, repo: Repository) -> Iterator[Manifest]:
    """The manifests of the physical backups ``repo`` holds, oldest first. The catalog
    tells which are physical, so a slice reads no logical backup's manifest; one it does
    not record (a catalog rebuilt from another repository) is read to tell. One that
    cannot be read is passed over: a slice judges chunks, and ``verify ID`` or ``--all``
    say what is wrong with a manifest."""
    with ctx.catalog.read() as session:
        kinds = {record.id: record.backup_type for record in BackupRecords(session).list()}
    for backup_id in repo.backup_ids():
        if kinds.get(backup_id, BackupKind.INCREMENTAL) is not BackupKind.INCREMENTAL:
            continue
        try:
            manifest = repo.load_manifest(backup_id)
        except (BackupNotFound, IntegrityError):
            continue  # pruned meanwhile, or damaged: see above
        if is_physical(manifest):
            yield manifest


def _recorded_but_missing(ctx: Context, name: str, repo: Repository) -> list[Problem]:
    """A problem for each completed backup the catalog places in repository ``name``
    (written or copied there) whose manifest is not there: verifying only the manifests
    present found a repository whole that had lost backups (deleted by someone holding
    the bucket's credentials, a bucket rolled back, a repository made anew)."""
    with ctx.catalog.begin() as session:
        expected = BackupCopies(session).held_in(name)
    missing = sorted(expected - set(repo.backup_ids()))
    if not missing:
        return []
    # 'prune' and 'delete' remove a manifest before the record: a record gone by now was
    # being deleted, not lost.
    with ctx.catalog.begin() as session:
        still = BackupCopies(session).held_in(name)
    return [
        Problem(
            f"the catalog records this backup as completed in repository {name}, but its "
            "manifest is not there: the backup is gone from this repository (restore it "
            "from another that holds it; if none does, the next 'respaldo prune' expires "
            "it once retention no longer keeps it, or DELETE /admin/backups/ID deletes it)",
            manifest_name(backup_id),
            backup_id,
        )
        for backup_id in missing
        if backup_id in still
    ]


def chain_of(manifest: Manifest) -> list[str]:
    """The backups an incremental physical backup restores on top of, oldest first
    (``meta.chain``, docs/repository-format.md; :mod:`respaldo.operations.physical_chain`
    writes it); none for every other backup."""
    return [str(member) for member in manifest.meta.get("chain") or []]


def _with_chains(
    name: str, repo: Repository, backup_ids: list[str]
) -> tuple[list[str], list[Problem]]:
    """``backup_ids``, each incremental one preceded by its chain (once each), and a
    problem for each backup of a chain gone from ``repo``. An incremental backup
    restores only combined with its chain's: reading its own chunks alone, verify said
    "ok" of one whose parent was lost or damaged, which no restore could combine (a
    restore refused it, its restore test failed)."""
    chains: dict[str, list[str]] = {}
    for backup_id in backup_ids:
        try:
            chains[backup_id] = chain_of(repo.load_manifest(backup_id))
        except (BackupNotFound, IntegrityError):
            chains[backup_id] = []  # said when it is verified
    gone = _chains_gone(name, repo, chains)
    missing = {problem.obj for problem in gone}
    ordered: dict[str, None] = {}
    for backup_id in backup_ids:
        for member in chains[backup_id]:
            if manifest_name(member) not in missing:
                ordered.setdefault(member)
        ordered.setdefault(backup_id)
    return list(ordered), gone


def _chains_gone(name: str, repo: Repository, chains: dict[str, list[str]]) -> list[Problem]:
    """A problem for each member of ``chains`` (backup -> its chain) that ``repo`` (named
    ``name``) does not hold, for backups it still holds (one a prune deleted meanwhile,
    with its chain, is no problem). A restore combines a chain from every configured
    repository, so another that holds the member may still restore the backup."""
    if not any(chains.values()):
        return []
    held = set(repo.backup_ids())
    return [
        Problem(
            f"backup {member}, which this incremental backup restores on top of, is gone "
            f"from repository {name}: this backup restores only where a repository holds "
            "that one too",
            manifest_name(member),
            backup_id,
        )
        for backup_id, chain in chains.items()
        if backup_id in held
        for member in chain
        if member not in held
    ]


WAL_GAPS = "walgap:"
"""The key of the condition "the archived WAL of a repository has a hole after a physical
backup", with the repository's name after it (:func:`_watch_wal_gaps`)."""


def _(message: str) -> str:
    """Marks a message for extraction; :func:`alerts.set_condition` translates it."""
    return message


def _watch_wal_gaps(ctx: Context, name: str, holes: list[str], now: datetime) -> None:
    """Fire the warning condition ``walgap:<name>`` while ``holes`` (what a verify that
    looked after every physical backup of repository ``name`` found) is not empty, and
    resolve it once one finds none. A warning left in the daily verify's result was read
    by nobody: its job completes, and the status looks after the newest backup only."""
    from respaldo.operations import alerts

    alerts.set_condition(
        ctx,
        WAL_GAPS + name,
        bool(holes),
        message=_(
            "the archived WAL in repository {repository} has a gap after a physical backup: {gap}"
        )
        if holes
        else _("the archived WAL in repository {repository} has no gap after a physical backup"),
        args={"repository": name, "gap": holes[0] if holes else ""},
        level="warning",
        kind="verify",
        repository=name,
        hint="'respaldo verify --all' lists every gap; put the segment back (from a mirror, "
        "or 'respaldo wal-push' from the server's pg_wal while it is there), or take a "
        "physical backup: the backups after the gap are not cut by it",
        now=now,
    )


def _alert(ctx: Context, result: VerifyResult, marked: list[str]) -> None:
    """Damage found is a result (the command prints it and exits 3), not an exception,
    wherever the verify ran: the alert is sent here, as a failed restore test's is."""
    from respaldo.operations import alerts, jobs

    count = len(result.problems)
    more = f" (and {count - 1} more: 'respaldo verify' lists them)" if count > 1 else ""
    alerts.notify_failure(
        ctx,
        "verify",
        counted(
            count,
            N_("verify of repository {repository} found {count} problem: {problem}"),
            N_("verify of repository {repository} found {count} problems: {problem}"),
            repository=result.repository,
            problem=result.problems[0],
        )
        + more,
        repository=result.repository,
        job_id=jobs.current_job(),
        hint=(
            f"the damaged copies are quarantined; the copies in {result.repository} of "
            f"{named_ids(marked)} are marked failed: 'respaldo copy --all --to "
            f"{result.repository}' sends what they lost again"
            if marked
            else "the damaged copies are quarantined: run 'respaldo repair' to take good "
            "copies from a mirror, then 'respaldo verify --all'"
        ),
    )

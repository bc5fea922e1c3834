"""Copies of backups in the secondary repositories (offsite S3, a second disk).

Every backup is written to the primary repository; secondaries are *mirrors* of it
(same repository id and keys, see :meth:`Repository.init_mirror`), so a copy moves only
the sealed chunks a secondary lacks, manifest last. A failed copy is recorded in the
catalog (``backup_copies``) and reported, and never fails the backup: the next backup,
or ``respaldo copy --all``, retries every backup still missing there. Its alert goes out
once per repeat interval per repository (``backup-copy:<repository>``): every backup
retries every copy still missing, so during an outage of an offsite store one alert per
failed attempt became more alerts with every backup (9 in 6 seconds, 20 minutes into a
mirror outage with a backup a minute, each backup's copy told again at each retry). The
watchdog's ``copy:<database>:<repository>`` items tell that copies are missing, and when
they are there again.

Archived WAL goes along (:func:`copy_wal_to`, after the backups): every WAL object and
cluster record the secondary lacks, so that point-in-time recovery works from a mirror
alone once the primary is lost. A failed WAL copy is reported and alerted, never fails
the backup, and the next copy catches up (it copies whatever is missing).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from respaldo.catalog import BackupCopies, BackupRecord, BackupRecords
from respaldo.config import RepositorySettings, Settings
from respaldo.domain import CopyStatus
from respaldo.errors import ConfigError, IntegrityError, RecordNotFound, RespaldoError
from respaldo.operations.context import Context
from respaldo.operations.expired import expired_record, expired_said, still_held_in
from respaldo.operations.lost_packs import mark_lost_packs
from respaldo.repository import Repository
from respaldo.repository.copy import CopyStats, copied, copy_backup
from respaldo.repository.pack_check import LostPacks
from respaldo.repository.wal import WalCopyStats, copy_wal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CopyOutcome:
    backup_id: str
    repository: str
    stats: CopyStats | None
    error: str | None = None
    refused: bool = False
    """Not copied because the backup was deleted from its primary while a mirror could
    not be reached (a prune expired it, or it was deleted by hand), before it was tried
    or while it was copied (``error`` says when, and where it still is)."""

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class WalCopyOutcome:
    """The archived WAL copied to one secondary. ``stats`` is None when nothing could be
    copied; a copy that skipped damaged files has both ``stats`` and ``error``."""

    repository: str
    stats: WalCopyStats | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def secondaries(settings: Settings) -> list[RepositorySettings]:
    return settings.repositories[1:]


def offsite_location(repo: RepositorySettings, backup_id: str) -> tuple[str | None, str | None]:
    """(s3_url, storage_tier) for the catalog when ``repo`` is an S3 repository."""
    if not repo.url.startswith("s3://"):
        return None, None
    return f"{repo.url.rstrip('/')}/manifests/{backup_id}", repo.storage_class or "STANDARD_IA"


def copy_to(
    ctx: Context,
    backup_ids: list[str],
    repository: str,
    *,
    primary: Repository | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[CopyOutcome]:
    """Copy each backup to the named secondary, recording each outcome in the catalog.

    Errors of one backup are recorded and reported in its outcome; the others go on.
    Raises ConfigError if ``repository`` is the primary or not configured, and the
    error that prevents opening either repository (recorded as a failed copy of every
    backup but those the catalog says it holds already).
    """
    target = _secondary(ctx.settings, repository)
    try:
        source = primary or ctx.repository()
        destination = ctx.repository(target.name)
    except RespaldoError as exc:
        # A completed copy stays completed: an attempt that could not even open the
        # mirror says nothing of what it holds, and a failed row over it ('copy ID --to
        # NAME' of a copied backup while NAME was down) made retention, the status and
        # 'copy --all' count the mirror's copy as lost. The alert tells of the attempt.
        with ctx.catalog.read() as session:
            held = BackupCopies(session).held_in(target.name)
        for backup_id in backup_ids:
            if backup_id in held:
                log.warning("copy of %s to %s failed: %s", backup_id, target.name, exc)
                continue
            _record(ctx, backup_id, target.name, CopyStatus.FAILED, str(exc))
        # One alert for the repository, not one per backup it could not take.
        from respaldo.operations import alerts  # only when there is one (see jobs)

        alerts.notify_failure(
            ctx, "copy", exc, repository=target.name, throttle_key=copy_throttle(target.name)
        )
        alerts.mark_alerted(exc)
        raise
    with ctx.catalog.read() as session:
        held = BackupCopies(session).held_in(target.name)
    outcomes = []
    for backup_id in backup_ids:
        try:
            # A completed copy stays completed while it is copied again ('copy ID --to
            # NAME' of a copied backup): marked pending, an attempt that failed or was
            # killed left the mirror counted as lacking it (retention, the status, 'copy
            # --all'), though copy_backup writes nothing where the manifest is.
            if backup_id not in held:
                _record(ctx, backup_id, target.name, CopyStatus.PENDING, None)
            # Not held (its copy failed: a pack of the mirror lost chunks it uses,
            # lost_packs), a manifest there does not prove the chunks are: refilled.
            stats = copy_backup(
                source, destination, backup_id, progress, refill=backup_id not in held
            )
            _record_completed(ctx, target, backup_id)
        except KeyboardInterrupt as exc:
            # A signal (Ctrl-C, SIGTERM, SIGHUP) cut this copy: its row must not say
            # pending for ever with nothing running. Not shielded: a second signal stops
            # this as it stops a restore's cleanup (a stat of a hung S3 endpoint may
            # wait), leaving the row to the next backup or copy --all.
            _record_interrupted(ctx, destination, target, backup_id, exc)
            raise
        except RespaldoError as exc:
            gone = _deleted(ctx, backup_id)
            # A prune (or a deletion by hand) that deleted it from the primary meanwhile,
            # while it could not reach some mirror, keeps its record (primary_deleted_at):
            # refused as by copy_backups, not a failed copy to record and alert.
            expired = None if gone else expired_record(ctx, backup_id)
            if expired is not None:
                log.info(
                    "backup %s was deleted from its primary while it was copied to %s",
                    backup_id,
                    target.name,
                )
                _record_expired(ctx, destination, target, backup_id, held=backup_id in held)
                outcomes.append(_expired(ctx, expired, target.name))
                continue
            error = str(exc)
            # Packs of the mirror are gone: the copies there of earlier backups that use
            # their chunks cannot restore either, and must not stay completed (the
            # status, retention's "held in", 'copy --all'); marked failed, the next copy
            # sends the chunks again. The row and the alert name them.
            if (
                isinstance(exc, LostPacks)
                and not gone
                and mark_lost_packs(ctx, destination, target.name, exc)
            ):
                error = f"{exc}; {exc.hint}"
            if not gone and not (backup_id in held and _still_held(destination, backup_id)):
                try:
                    _record(ctx, backup_id, target.name, CopyStatus.FAILED, error)
                except RecordNotFound:
                    gone = True  # deleted just after the look
            if gone:
                # Expired by a prune meanwhile (copy_backup removed what it had copied):
                # not a failure to record or alert about, and no record to record it in.
                log.info("backup %s was deleted while it was copied to %s", backup_id, target.name)
                message = f"backup {backup_id} was deleted meanwhile: {exc}"
                outcomes.append(CopyOutcome(backup_id, target.name, None, message))
                continue
            log.warning("copy of %s to %s failed: %s", backup_id, target.name, exc)
            _alert(ctx, backup_id, target.name, exc)
            outcomes.append(CopyOutcome(backup_id, target.name, None, str(exc)))
            continue
        outcomes.append(CopyOutcome(backup_id, target.name, stats))
    return outcomes


def _secondary(settings: Settings, repository: str) -> RepositorySettings:
    """The settings of the secondary ``repository``. Raises ConfigError if it is the
    primary or not configured."""
    target = settings.repository(repository)
    if target.name == settings.repository().name:
        raise ConfigError(f"{repository!r} is the primary repository: backups are written there")
    return target


def _expired(ctx: Context, record: BackupRecord, repository: str) -> CopyOutcome:
    """The refusal to copy a backup deleted from the primary (by a prune that expired it,
    or by hand) while a mirror waited: it is copied nowhere (a later prune that reaches
    a mirror holding it, or deleting it again, deletes it there); tried, it failed "no
    object manifests/...", was recorded as a failed copy and alerted. Where it can
    still be read is said."""
    held = still_held_in(ctx, record.id)
    if len(held) > 1:
        where = f"repositories {', '.join(held)} still hold it until it is deleted there too"
    elif held:
        where = f"repository {held[0]} still holds it until it is deleted there too"
    else:
        where = "no repository holds it any more"
    said = f"{expired_said(record)}; it is not copied, and {where}"
    return CopyOutcome(record.id, repository, None, said, refused=True)


def replicate(ctx: Context, primary: Repository | None = None) -> list[CopyOutcome]:
    """Bring every secondary up to date: copy each completed backup it does not hold.

    Never raises for a secondary's failure (unreachable S3, say): that is recorded in
    the catalog and returned as a failed outcome, so the local backup stands.
    """
    outcomes: list[CopyOutcome] = []
    for repo in secondaries(ctx.settings):
        with ctx.catalog.begin() as session:
            missing = BackupCopies(session).missing_in(repo.name)
        if not missing:
            continue
        try:
            outcomes += copy_to(ctx, missing, repo.name, primary=primary)
        except RespaldoError as exc:
            log.warning("repository %s unavailable: %s", repo.name, exc)
            outcomes += [CopyOutcome(b, repo.name, None, str(exc)) for b in missing]
    return outcomes


def _alert(ctx: Context, backup_id: str, repository: str, exc: RespaldoError) -> None:
    try:
        database = ctx.record(backup_id).database_name
    except RespaldoError:
        database = None
    from respaldo.operations import alerts  # only when there is one (see jobs)

    alerts.notify_failure(
        ctx,
        "copy",
        f"backup {backup_id}: {exc}",
        database=database,
        repository=repository,
        hint=exc.hint or "'respaldo copy --all --to REPOSITORY' retries every missing copy",
        # Damage the copy found in the source is news of that backup, whatever was told
        # of the repository before: under the repository's throttle, an outage alerted
        # an hour earlier kept a damaged backup quiet for the repeat interval (6 h).
        throttle_key=copy_throttle(
            repository, backup_id if isinstance(exc, IntegrityError) else None
        ),
    )


def copy_throttle(repository: str, damaged: str | None = None) -> str:
    """The throttle of the alerts of failed copies of backups to ``repository``: every
    backup retries every missing copy, so one alert per attempt repeated itself. A
    backup whose data the copy found ``damaged`` (its id) has a throttle of its own."""
    return f"backup-copy:{repository}" + (f":damaged:{damaged}" if damaged else "")


def _record_interrupted(
    ctx: Context,
    destination: Repository,
    target: RepositorySettings,
    backup_id: str,
    exc: KeyboardInterrupt,
) -> None:
    """The row of a copy a signal cut: completed if its manifest, written last (once
    every chunk it names is stored), is in the destination; else failed with the
    signal's reason ("terminated by SIGTERM", "interrupted"), as the backup's record
    would say. The next backup or ``copy --all`` copies what it lacks either way.
    Best effort: an error here is logged, and the signal goes on ending the command."""
    try:
        if copied(destination, backup_id):
            _record_completed(ctx, target, backup_id)
        else:
            _record(ctx, backup_id, target.name, CopyStatus.FAILED, str(exc) or "interrupted")
    except Exception as error:  # the catalog or the destination failing too
        log.warning(
            "the copy of %s to %s was stopped and cannot be recorded: %s",
            backup_id,
            target.name,
            error,
        )


def _record_expired(
    ctx: Context,
    destination: Repository,
    target: RepositorySettings,
    backup_id: str,
    *,
    held: bool,
) -> None:
    """The row of the copy of a backup deleted from its primary while it was copied
    (marked pending as the copy began, unless ``held``: completed before): completed if
    the mirror holds its manifest, else none (as for a copy refused for that,
    :func:`copy_backups`). If the mirror cannot tell: a completed row stays (a failed one
    over it made retention and the status count the mirror's copy as lost), any other is
    failed, without an alert: never pending with nothing running."""
    try:
        if copied(destination, backup_id):
            _record_completed(ctx, target, backup_id)
            return
        with ctx.catalog.begin() as session:
            BackupCopies(session).forget(backup_id, target.name)
    except RespaldoError as exc:
        if held:
            log.warning("cannot tell whether %s holds %s: %s", target.name, backup_id, exc)
            return
        error = f"deleted from its primary meanwhile: {exc}"
        _record(ctx, backup_id, target.name, CopyStatus.FAILED, error)


def _record_completed(ctx: Context, target: RepositorySettings, backup_id: str) -> None:
    """The row of a copy whose manifest is in ``target``: completed, with where it is
    when that is S3."""
    _record(ctx, backup_id, target.name, CopyStatus.COMPLETED, None)
    s3_url, tier = offsite_location(target, backup_id)
    if s3_url is not None:
        with ctx.catalog.begin() as session:
            BackupCopies(session).set_offsite_location(backup_id, s3_url=s3_url, storage_tier=tier)


def _still_held(destination: Repository, backup_id: str) -> bool:
    """Whether a mirror whose copy of ``backup_id`` the catalog records as completed may
    still hold it after a failed attempt to copy it again: yes unless its manifest is
    seen missing there (a mirror that cannot be read says nothing of what it holds, as
    one that cannot be opened, :func:`copy_to`). Seen missing, the mirror lost it and
    the failed row says so."""
    try:
        return copied(destination, backup_id)
    except RespaldoError:
        return True


def _deleted(ctx: Context, backup_id: str) -> bool:
    """Whether the backup's record is gone (prune expired it, or it was deleted by hand)."""
    with ctx.catalog.read() as session:
        try:
            BackupRecords(session).get(backup_id)
        except RecordNotFound:
            return True
    return False


def _record(
    ctx: Context, backup_id: str, repository: str, status: CopyStatus, error: str | None
) -> None:
    with ctx.catalog.begin() as session:
        BackupCopies(session).mark(backup_id, repository, status, error=error)


def copy_backups(ctx: Context, backup_ids: list[str] | None, repository: str) -> list[CopyOutcome]:
    """``copy``: copy the given backups, or (``backup_ids`` None) every completed backup
    that the secondary ``repository`` lacks, to it. Raises what :func:`copy_to` raises;
    an empty list when there is nothing to copy. A given backup deleted from its primary
    while a mirror waited (``primary_deleted_at``) is refused
    (:attr:`CopyOutcome.refused`)."""
    if backup_ids is None:
        with ctx.catalog.read() as session:
            backup_ids = BackupCopies(session).missing_in(repository)
        return copy_to(ctx, backup_ids, repository)
    # Asked for by id: one deleted from the primary is refused (missing_in
    # leaves those out), before any repository is opened, so that a mirror down
    # meanwhile records no failed copy of it.
    target = _secondary(ctx.settings, repository)
    refused = []
    for backup_id in backup_ids:
        record = expired_record(ctx, backup_id)
        if record is not None:
            refused.append(_expired(ctx, record, target.name))
    skip = {r.backup_id for r in refused}
    rest = [b for b in backup_ids if b not in skip]
    return refused + (copy_to(ctx, rest, repository) if rest else [])


def copy_wal_to(
    ctx: Context, repository: str, *, primary: Repository | None = None
) -> WalCopyOutcome:
    """Copy the archived WAL (and cluster records) that the secondary ``repository``
    lacks from the primary; see :func:`respaldo.repository.wal.copy_wal`.

    Raises ConfigError if ``repository`` is the primary or not configured. Every other
    failure (a repository that does not open, storage errors, damaged WAL in the
    primary) is returned in the outcome and alerted, at most once per repeat interval
    per repository: the next copy retries what is still missing.
    """
    settings = ctx.settings
    target = settings.repository(repository)
    if target.name == settings.repository().name:
        raise ConfigError(f"{repository!r} is the primary repository: WAL is archived there")
    from respaldo.operations import alerts  # only when there is one (see jobs)

    try:
        stats = copy_wal(primary or ctx.repository(), ctx.repository(target.name))
    except RespaldoError as exc:
        log.warning("copy of archived WAL to %s failed: %s", target.name, exc)
        message = f"archived WAL not copied to {target.name}: {exc}"
        alerts.notify_failure(
            ctx,
            "copy",
            message,
            repository=target.name,
            hint=exc.hint
            or f"'respaldo copy --all --to {target.name}' copies what is missing once it "
            "is reachable (so does the copy after every backup)",
            # Every backup's copy retries: one alert per repeat interval, not one each.
            throttle_key=f"wal-copy:{target.name}",
        )
        return WalCopyOutcome(target.name, None, message)
    if not stats.damaged:
        return WalCopyOutcome(target.name, stats)
    message = (
        f"{len(stats.damaged)} archived WAL files are damaged in the primary repository "
        f"and were not copied to {target.name} (first: {stats.damaged[0]})"
    )
    log.warning("%s", message)
    alerts.notify_failure(
        ctx,
        "copy",
        message,
        repository=target.name,
        hint="recovery cannot replay past a damaged file: take a new physical backup so "
        "that later recoveries do not need it",
        throttle_key=f"wal-copy-damaged:{target.name}",
    )
    return WalCopyOutcome(target.name, stats, message)


def replicate_wal(ctx: Context, primary: Repository | None = None) -> list[WalCopyOutcome]:
    """Copy the archived WAL every secondary lacks (after :func:`replicate`: the backups
    first). Never raises for a secondary's failure; see :func:`copy_wal_to`."""
    return [copy_wal_to(ctx, repo.name, primary=primary) for repo in secondaries(ctx.settings)]

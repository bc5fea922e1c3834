"""The API's changes, each recorded in the audit log: who (the principal), what, on
what, and whether it was done (``success``) or refused (``failure``, with the reason).

One function per change, which the route calls: it runs the application function that
does the work (started in the background where it takes minutes) and records the
outcome. A change refused before anything happened (a wrong confirmation, a protected
backup) is recorded as a failure and the error goes on to the client.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from respaldo.domain import AuditAction, AuditOutcome, BackupKind, Permission
from respaldo.errors import PermissionDenied, RespaldoError
from respaldo.operations import audit, jobs
from respaldo.operations.background import (
    StartedBackup,
    StartedJob,
    start_backup,
    start_restore,
    start_restore_test,
)
from respaldo.operations.context import Context
from respaldo.operations.deletion import DeletedBackup, delete_backup
from respaldo.operations.jobs import JobInfo
from respaldo.operations.principal import Principal
from respaldo.operations.scrub import Scrubber
from respaldo.operations.snapshot import set_pinned
from respaldo.operations.views import BackupView
from respaldo.operations.workers import Workers
from respaldo.phrases import N_, Phrase

T = TypeVar("T")


def _audited(
    ctx: Context,
    actor: Principal,
    action: AuditAction,
    target: str | None,
    change: Callable[[], T],
    detail: Callable[[T], str | None] = lambda _: None,
    *,
    target_of: Callable[[T], str | None] | None = None,
) -> T:
    """Run ``change``; record its outcome on ``target`` (once it succeeded:
    ``target_of(result)``, when the target is known only then)."""
    try:
        result = change()
    except RespaldoError as exc:
        # The reason as the client reads it: without a secret the error may echo, or
        # the path of a file holding one.
        reason = Scrubber(ctx.settings)(str(exc))
        audit.record(ctx, actor, action, target, AuditOutcome.FAILURE, reason)
        raise
    done = target_of(result) if target_of is not None else target
    audit.record(ctx, actor, action, done, AuditOutcome.SUCCESS, detail(result))
    return result


# The audit entry of a backup a request started, its kind said as everything else says it
# (logical, physical: the entry said "incremental backup of erp" beside a status and
# alerts that said "physical"). Rows stored before say full/incremental: respaldo.reasons
# says them with these words.
_STARTED = {
    BackupKind.FULL: N_("logical backup of {database}, job {job}"),
    BackupKind.INCREMENTAL: N_("physical backup of {database}, job {job}"),
    BackupKind.FILES: N_("files backup of {database}, job {job}"),
    BackupKind.SNAPSHOT: N_("snapshot backup of {database}, job {job}"),
}


def create_backup(
    ctx: Context, workers: Workers, actor: Principal, kind: BackupKind, database: str | None
) -> StartedBackup:
    """:func:`~respaldo.operations.background.start_backup`, audited (target: the new
    backup's id, or the database asked for if refused). A snapshot is a pinned backup,
    and pinning needs ``admin:approve``: PermissionDenied (audited ``denied``) without it."""
    if kind is BackupKind.SNAPSHOT and not actor.can(Permission.APPROVE):
        reason = f"a snapshot is pinned: needs {Permission.APPROVE}"
        audit.record(ctx, actor, AuditAction.BACKUP_CREATE, database, AuditOutcome.DENIED, reason)
        raise PermissionDenied(f"{actor.name} lacks the permission {Permission.APPROVE}: {reason}")
    return _audited(
        ctx,
        actor,
        AuditAction.BACKUP_CREATE,
        database,
        lambda: start_backup(ctx, workers, kind, database, requested_by=actor.name),
        lambda b: Phrase(_STARTED[b.backup_type], database=b.database_name, job=b.job_id),
        target_of=lambda b: b.id,
    )


def restore(
    ctx: Context,
    workers: Workers,
    actor: Principal,
    backup_id: str,
    *,
    replace: bool,
    confirm: str | None,
    target_database: str | None = None,
    repository: str | None = None,
) -> StartedJob:
    """:func:`~respaldo.operations.background.start_restore`, audited (target: the
    backup id)."""
    return _audited(
        ctx,
        actor,
        AuditAction.RESTORE,
        backup_id,
        lambda: start_restore(
            ctx,
            workers,
            backup_id,
            replace=replace,
            confirm=confirm,
            target_database=target_database,
            repository=repository,
            requested_by=actor.name,
        ),
        lambda s: f"{s.message}; job {s.job_id}",
    )


def restore_test(
    ctx: Context,
    workers: Workers,
    actor: Principal,
    backup_id: str | None,
    database: str | None,
) -> StartedJob:
    """:func:`~respaldo.operations.background.start_restore_test`, audited (target: the
    backup id, or the database whose newest backup is tested)."""
    return _audited(
        ctx,
        actor,
        AuditAction.RESTORE_TEST,
        backup_id or database or "newest backup",
        lambda: start_restore_test(ctx, workers, backup_id, database, requested_by=actor.name),
        lambda s: f"{s.message}; job {s.job_id}",
    )


def delete(ctx: Context, actor: Principal, backup_id: str) -> DeletedBackup:
    """:func:`~respaldo.operations.deletion.delete_backup`, audited."""
    return _audited(
        ctx,
        actor,
        AuditAction.BACKUP_DELETE,
        backup_id,
        lambda: delete_backup(ctx, backup_id),
        lambda d: f"manifests deleted from {', '.join(d.manifests_deleted_from) or 'none'}",
    )


def pin(ctx: Context, actor: Principal, backup_id: str, pinned: bool) -> BackupView:
    """:func:`~respaldo.operations.snapshot.set_pinned`, audited."""
    action = AuditAction.BACKUP_PIN if pinned else AuditAction.BACKUP_UNPIN
    return _audited(ctx, actor, action, backup_id, lambda: set_pinned(ctx, backup_id, pinned))


def cancel_job(ctx: Context, actor: Principal, job_id: int) -> JobInfo:
    """:func:`~respaldo.operations.jobs.cancel`, audited (target: ``job N``)."""
    return _audited(
        ctx,
        actor,
        AuditAction.JOB_CANCEL,
        f"job {job_id}",
        lambda: jobs.cancel(ctx, job_id),
        lambda j: f"{j.kind.value} of {j.target}: {j.status.value}",
    )

"""Deleting one backup by hand (``DELETE /admin/backups/{id}``).

What may not be deleted is what retention never expires, by the same rule
(:func:`respaldo.retention.protected`): the newest completed, the newest verified and
the newest good backup of its database and kind (not good: failed verification, or
held by no repository, which are listed first), the newest good one a repository holds
(a mirror whose copies of the newer ones failed), pinned backups (unpin first),
running ones and ones a running restore or restore test reads; and, as retention keeps
a kept backup's parent, a backup another one is incremental on (that one restores only
on top of it: delete the newest of a chain first). The deletion itself is prune's, in
the same order: the manifest from every repository, then the catalog record; the data
goes with the next garbage collection (``prune``).
"""

from __future__ import annotations

from respaldo.catalog import BackupRecords
from respaldo.domain import BackupStatus
from respaldo.errors import BackupProtected, RespaldoError
from respaldo.operations.context import Context
from respaldo.operations.models import ResultModel
from respaldo.operations.prune import (
    being_restored,
    delete_manifests,
    deleted_elsewhere,
    facts_of,
    held_anywhere,
    holders_known,
    list_backups,
    mark_missing,
    open_repositories,
    stored_in,
    with_holders,
)
from respaldo.retention import newest_in, protected


class DeletedBackup(ResultModel):
    """A backup deleted: its id and the repositories its manifest was deleted from
    (the space is reclaimed by the next prune's garbage collection)."""

    id: str
    """The deleted backup's id."""
    manifests_deleted_from: list[str]
    """The repositories its manifest was deleted from."""


def delete_backup(ctx: Context, backup_id: str) -> DeletedBackup:
    """Delete backup ``backup_id`` from every repository and the catalog.

    Raises RecordNotFound, InvalidBackupId, BackupProtected (nothing deleted), and
    RespaldoError when a repository could not delete its manifest: then the record
    stays, and deleting again finishes the job.
    """
    with ctx.catalog.read() as session:
        records = BackupRecords(session)
        restoring = being_restored(session)
        target = facts_of(records.get(backup_id), restoring)
        listed = [
            r for r in records.list(database=target.database) if r.backup_type.value == target.kind
        ]
        group = [facts_of(r, restoring) for r in listed]
        stored = {r.id: stored_in(r) for r in listed if r.status is BackupStatus.COMPLETED}
    repos = open_repositories(ctx) if target.completed else []
    if target.completed:
        # As prune does: a backup no repository holds is not good, and must not make the
        # last one that restores look deletable; nor must the newest a mirror holds.
        present = list_backups(repos)
        group = with_holders(group, holders_known(present, stored, repos))
        group = mark_missing(group, held_anywhere(present, repos, stored))
    reasons = protected(group).get(target.id)
    if reasons:
        mirrors = [name for name in map(newest_in, reasons) if name is not None]
        if reasons == ["pinned"]:
            hint = "unpin it first"
        elif reasons == ["being restored"]:
            hint = (
                "a restore or restore test reads it ('respaldo jobs' shows it): delete it "
                "once it ends"
            )
        elif len(mirrors) == len(reasons):
            commands = ", ".join(f"'respaldo copy --all --to {name}'" for name in mirrors)
            hint = (
                f"it is the newest backup {', '.join(mirrors)} holds: copy the newer ones "
                f"there first ({commands})"
            )
        else:
            hint = (
                "retention never deletes the newest completed, verified or good backup "
                "of a database (nor the newest a repository holds), nor a running one; "
                "take a newer backup first"
            )
        raise BackupProtected(
            f"backup {target.id} is kept by retention ({', '.join(reasons)})", hint=hint
        )
    children = sorted(b.id for b in group if b.parent == target.id)
    if children:
        raise BackupProtected(
            f"backup {target.id} is the parent of {', '.join(children)}, which restore only "
            "on top of it",
            hint="delete the backups built on it first (the newest of a chain first)",
        )
    left = delete_manifests(target.id, repos)
    if left:
        deleted_elsewhere(ctx, target.id, left)
        problems = "; ".join(
            f"{o.name}: {o.error or o.deferred}" for o, _ in repos if o.error or o.deferred
        )
        raise RespaldoError(
            f"backup {target.id} could not be deleted everywhere: {problems}",
            hint="its record stays; delete it again once every repository is reachable",
        )
    with ctx.catalog.begin() as session:
        BackupRecords(session).delete(target.id)
    return DeletedBackup(
        id=target.id, manifests_deleted_from=[o.name for o, _ in repos if o.manifests_deleted]
    )

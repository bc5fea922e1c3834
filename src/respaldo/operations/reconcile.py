"""Settling the records of backups whose process died: completed if the manifest exists.

A backup exists once its manifest is written; the catalog record is completed just after.
A process killed between the two (kill -9, power loss, OOM) leaves a complete backup whose
record says ``in_progress``. At the next start such a record must not be marked
``failed``: its manifest is looked for in the repository it was written to, and if it is
there the record is completed from it (sizes, checksum, times, versions), as ``catalog
rebuild`` would. Only records without a manifest are failed.

The look is cheap: one ``stat`` per abandoned record, and the repository is opened (the
passphrase, the index) only for a record whose manifest exists.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from respaldo.catalog import BackupRecords
from respaldo.domain import BackupStatus
from respaldo.errors import ConfigError, IntegrityError, ObjectNotFound, RespaldoError
from respaldo.operations.catalog_rebuild import manifest_values, sealed_size
from respaldo.operations.context import Context
from respaldo.operations.repositories import open_store
from respaldo.repository.manifest import manifest_name

log = logging.getLogger(__name__)


class _Found(Enum):
    MANIFEST = "manifest"  # the backup completed: the record was completed from it
    NOTHING = "nothing"  # no manifest (or none that can ever be read): fail the record
    UNKNOWN = "unknown"  # cannot tell now: leave the record as it is, look again next time


@dataclass
class Settled:
    """What :func:`settle_abandoned` did, by backup id."""

    completed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    undecided: list[str] = field(default_factory=list)


def settle_abandoned(ctx: Context, now: datetime) -> Settled:
    """Complete the abandoned records whose manifest exists, fail the others.

    "Abandoned" is :meth:`BackupRecords.abandoned`: pending or in_progress, its process
    dead. Looking for them is a read that waits for no writer; only when there are some
    is the catalog written. A record whose repository cannot be asked now (unreachable,
    no passphrase for reading the manifest) is left ``in_progress`` with a warning, and
    settled by a later command: marking it failed could be wrong, and nothing else
    depends on it meanwhile (prune keeps running backups). A repository opened to read a
    manifest stays open in ``ctx`` for the command.
    """
    with ctx.catalog.read() as session:
        abandoned = BackupRecords(session).abandoned(now)
        candidates = [
            (record.id, record.repository)
            for record, _ in abandoned
            if record.status is BackupStatus.IN_PROGRESS  # pending ones wrote nothing
        ]
    settled = Settled()
    if not abandoned:
        return settled
    for backup_id, repository in candidates:
        found = _complete_from_manifest(ctx, backup_id, repository)
        if found is _Found.MANIFEST:
            settled.completed.append(backup_id)
        elif found is _Found.UNKNOWN:
            settled.undecided.append(backup_id)
    with ctx.catalog.begin() as session:
        failed = BackupRecords(session).fail_abandoned(now, spare=settled.undecided)
        settled.failed = [record.id for record in failed]
    return settled


def _complete_from_manifest(ctx: Context, backup_id: str, repository: str) -> _Found:
    settings = ctx.settings
    try:
        repo_settings = settings.repository(repository)
    except ConfigError:
        return _Found.NOTHING  # no longer configured: no manifest can ever be found
    name = manifest_name(backup_id)
    try:
        store = open_store(repo_settings)
        try:
            store.stat(name)
        finally:
            store.close()
    except ObjectNotFound:
        return _Found.NOTHING
    except RespaldoError as exc:
        log.warning(
            "backup %s: its process died; whether it completed is not known until "
            "repository %s can be read (%s)",
            backup_id,
            repository,
            exc,
        )
        return _Found.UNKNOWN
    try:
        repo = ctx.repository(repo_settings.name)
        manifest = repo.load_manifest(backup_id)
    except IntegrityError as exc:
        log.warning("backup %s: its process died and its manifest is damaged (%s)", backup_id, exc)
        return _Found.NOTHING
    except RespaldoError as exc:
        log.warning(
            "backup %s: its process died after writing its manifest, which cannot be read "
            "now (%s); a command that can open repository %s will complete its record",
            backup_id,
            exc,
            repository,
        )
        return _Found.UNKNOWN
    values = manifest_values(
        manifest, repo_settings.name, repo.storage.location, sealed_size(repo, manifest)
    )
    with ctx.catalog.begin() as session:
        BackupRecords(session).upsert_from_manifest(values)
    log.warning(
        "backup %s: its process died after the backup was complete; its record is completed "
        "from its manifest (copies to other repositories follow with the next backup)",
        backup_id,
    )
    return _Found.MANIFEST

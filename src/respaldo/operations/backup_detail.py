"""One backup in full (``GET /admin/backups/{id}``): its record, its manifest's summary
and streams, where copies of it are, and its restore tests."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from respaldo.catalog import BackupCopies
from respaldo.domain import BackupStatus
from respaldo.errors import RespaldoError
from respaldo.operations.context import Context
from respaldo.operations.listing import list_drills, show_backup
from respaldo.operations.models import ResultModel, UtcTime
from respaldo.operations.views import BackupView, DrillRunView
from respaldo.postgres.largeobjects import recorded as recorded_large_objects
from respaldo.postgres.standby import STANDBY_META
from respaldo.repository import Manifest

log = logging.getLogger(__name__)


class StreamView(ResultModel):
    """One stream of a backup (``dump``, ``globals``, ``base``, ``files``)."""

    name: str = Field(description="The stream's name: dump, globals, base or files.")
    size: int = Field(description="Bytes of the stream as the source produced it.")
    sha256: str = Field(description="SHA-256 of the stream, checked on every restore.")
    chunks: int = Field(description="How many chunks the stream was cut into.")


class ManifestSummary(ResultModel):
    """What the backup's manifest (in the repository, authenticated) says."""

    kind: str = Field(description="The backup's type as its manifest records it.")
    source: str = Field(description="The configured database or file set it was taken of.")
    started_at: UtcTime = Field(description="When the backup started.")
    completed_at: UtcTime = Field(description="When its manifest was written.")
    tool_version: str = Field(description="The respaldo version that took it.")
    server_version: str | None = Field(description="PostgreSQL version of the source.")
    schema_version: str | None = Field(description="The application's schema version.")
    snapshot: str | None = Field(description="The snapshot id, if taken as part of one.")
    tables: int | None = Field(description="Tables whose row counts the backup recorded.")
    rows: int | None = Field(description="Sum of those row counts.")
    large_objects: int | None = Field(
        description="Large objects recorded in the backup's snapshot, which a full restore "
        "and a restore test compare by count, size and contents; null when the backup holds "
        "no record of them (a physical or file backup, or one older than the record)."
    )
    large_object_bytes: int | None = Field(description="Their total size in bytes.")
    from_standby: bool = Field(
        description="Whether it was taken through a standby (a server in recovery), whose "
        "data is a moment behind its primary's; false for a primary's, and for a backup "
        "older than this record."
    )
    standby_data_as_of: UtcTime | None = Field(
        description="For one taken through a standby: when the last transaction the standby "
        "had replayed as the backup began committed (on the primary), the time its data is "
        "of; null otherwise, and when the standby had replayed none since it started."
    )
    warnings: list[str] = Field(description="What the backup noted as not quite right.")
    streams: list[StreamView] = Field(description="The backup's streams.")


DELETED = "deleted"
"""The status of the primary's part of a backup deleted from there (by a prune or by
hand) while a mirror could not be reached."""


class CopyView(ResultModel):
    """The backup in one repository."""

    repository: str = Field(description="The configured repository's name.")
    role: str = Field(description="primary (written by the backup) or mirror (copied).")
    status: str = Field(
        description="The backup's status in its primary (deleted: deleted from there, by a "
        "prune or by hand, while a mirror waited, see primaryDeletedAt); completed, pending "
        "or failed in a mirror."
    )
    error_message: str | None = Field(description="Why the copy failed, if it did.")
    updated_at: UtcTime | None = Field(description="When the copy's status last changed.")


class BackupDetail(ResultModel):
    """One backup: its record, manifest, copies and restore tests."""

    backup: BackupView = Field(description="The record, as in the list of backups.")
    manifest: ManifestSummary | None = Field(
        description="The manifest's summary; null until the backup completed, and once a "
        "prune deleted it from its primary (backup.primaryDeletedAt)."
    )
    copies: list[CopyView] = Field(description="Where the backup is, per repository.")
    restore_tests: list[DrillRunView] = Field(
        description="Its restore tests, newest first, with their checks."
    )


def backup_detail(ctx: Context, backup_id: str, *, tests: int = 20) -> BackupDetail:
    """Backup ``backup_id`` in full; its manifest is read from the repository that holds
    it. Raises RecordNotFound, InvalidBackupId, and what reading the manifest raises
    (repository unreachable, IntegrityError)."""
    record = show_backup(ctx, backup_id)
    gone = record.primary_deleted_at  # its record waits for a mirror
    manifest = None
    if record.status is BackupStatus.COMPLETED and gone is None:
        # Not for one deleted there (its page failed, "no backup ... in file:///..."): the
        # mirror still holding it is the one a prune could not reach, maybe still down.
        manifest = _summary(ctx, record)
    copies = [
        CopyView(
            repository=record.repository,
            role="primary",
            status=record.status.value if gone is None else DELETED,
            error_message=None,
            updated_at=record.completed_at if gone is None else gone,
        )
    ]
    with ctx.catalog.read() as session:
        for copy in BackupCopies(session).for_backup(record.id):
            copies.append(
                CopyView(
                    repository=copy.repository,
                    role="mirror",
                    status=copy.status.value,
                    error_message=copy.error_message,
                    updated_at=copy.updated_at,
                )
            )
    return BackupDetail(
        backup=record,
        manifest=manifest,
        copies=copies,
        restore_tests=list_drills(ctx, backup_id=record.id, limit=tests),
    )


def _summary(ctx: Context, record: BackupView) -> ManifestSummary:
    m = _manifest(ctx, record)
    meta: dict[str, Any] = m.meta
    counts = meta.get("row_counts")
    large = recorded_large_objects(meta)
    from_standby, data_as_of = standby_said(meta)
    return ManifestSummary(
        kind=m.kind,
        source=m.source,
        started_at=m.started_at,
        completed_at=m.completed_at,
        tool_version=m.tool_version,
        server_version=_text(meta.get("server_version")),
        schema_version=_text(meta.get("schema_version")),
        snapshot=_text(meta.get("snapshot")),
        tables=len(counts) if isinstance(counts, dict) else None,
        rows=sum(int(v) for v in counts.values()) if isinstance(counts, dict) else None,
        large_objects=None if large is None else large.count,
        large_object_bytes=None if large is None else large.bytes,
        from_standby=from_standby,
        standby_data_as_of=data_as_of,
        warnings=[str(w) for w in meta.get("warnings") or []],
        streams=[
            StreamView(name=s.name, size=s.size, sha256=s.sha256, chunks=s.chunks)
            for s in m.streams
        ],
    )


def standby_said(meta: dict[str, Any]) -> tuple[bool, datetime | None]:
    """What a manifest's ``meta`` says of a standby it was taken through
    (:data:`~respaldo.postgres.standby.STANDBY_META`): whether it was, and its last
    replayed transaction's time (None: none replayed, or not a standby). A backup of a
    primary, or one recorded before the key existed, says (False, None). Pure."""
    said = meta.get(STANDBY_META)
    if not isinstance(said, dict):
        return False, None
    when = said.get("replayed_at")
    return True, datetime.fromisoformat(when) if isinstance(when, str) else None


def _manifest(ctx: Context, record: BackupView) -> Manifest:
    configured = {r.name for r in ctx.settings.repositories}
    repo = ctx.repository(record.repository if record.repository in configured else None)
    return repo.load_manifest(record.id)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def standby_note(from_standby: bool, data_as_of: datetime | None) -> str | None:
    """``respaldo show``'s words for a backup taken through a standby (as the page's, in
    English); None for one of a primary. Pure."""
    if not from_standby:
        return None
    if data_as_of is None:
        return "taken from a standby, which had replayed no transaction since it started"
    when = data_as_of.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"taken from a standby, data as of {when}"


def source_note(ctx: Context, record: BackupView) -> str | None:
    """``respaldo show``'s ``source`` line of backup ``record``: :func:`standby_note` of its
    manifest, read from the repository that holds it. None for a primary's backup, one not
    completed or deleted from its primary, and when the manifest cannot be read (the
    record is shown all the same: 'verify' says what is wrong with the repository)."""
    if record.status is not BackupStatus.COMPLETED or record.primary_deleted_at is not None:
        return None
    try:
        meta = _manifest(ctx, record).meta
    except RespaldoError as exc:
        log.debug("could not read the manifest of %s: %s", record.id, exc)
        return None
    return standby_note(*standby_said(meta))

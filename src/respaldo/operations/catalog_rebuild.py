"""Rebuilding the catalog from a repository's manifests (the repository is the truth)."""

from __future__ import annotations

from dataclasses import dataclass, field

from respaldo.catalog import BackupRecords, ManifestValues
from respaldo.domain import BackupKind
from respaldo.errors import IntegrityError
from respaldo.operations.context import Context
from respaldo.operations.repositories import open_repository
from respaldo.repository import Manifest


@dataclass
class RebuildResult:
    created: int = 0
    updated: int = 0
    damaged: list[str] = field(default_factory=list)


def manifest_values(manifest: Manifest, repository: str, location: str) -> ManifestValues:
    """What a manifest tells the catalog about its backup."""
    meta = manifest.meta
    checksum = manifest.streams[0].sha256 if manifest.streams else None
    return ManifestValues(
        id=manifest.backup_id,
        backup_type=BackupKind(manifest.kind),
        repository=repository,
        manifest=f"manifests/{manifest.backup_id}",
        started_at=manifest.started_at,
        completed_at=manifest.completed_at,
        database_name=manifest.source,
        size_bytes=manifest.size,
        checksum=checksum,
        database_version=meta.get("server_version"),
        schema_version=meta.get("schema_version"),
        tool_version=manifest.tool_version,
        retention_days=meta.get("retention_days"),
        storage_path=location,
    )


def rebuild_catalog(ctx: Context, repository: str | None = None) -> RebuildResult:
    """Insert or update a catalog record for every manifest in the repository.

    Idempotent. Damaged manifests are reported (by backup id) and skipped.
    """
    repo_settings = ctx.settings.repository(repository)
    repo = open_repository(ctx.settings, repository)
    result = RebuildResult()
    for backup_id in repo.backup_ids():
        try:
            manifest = repo.load_manifest(backup_id)
        except IntegrityError:
            result.damaged.append(backup_id)
            continue
        values = manifest_values(manifest, repo_settings.name, repo.storage.location)
        with ctx.catalog.begin() as session:
            _, created = BackupRecords(session).upsert_from_manifest(values)
        if created:
            result.created += 1
        else:
            result.updated += 1
    return result

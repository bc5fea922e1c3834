"""``files`` backups: a configured file set as one tar stream through the chunker.

The stream (:class:`respaldo.files.TreeTarStream`) lists names in sorted order and gives
unchanged files the same header and content bytes every time, so a backup of a tree that
did not change stores nothing new, and one where a few files changed stores those files
and the chunks around them. Files that vanished or were replaced before they were
read, and special files (never backed up), do not fail the backup: they are named in the manifest
(``meta.warnings``) and reported. Paths that could not be read or listed, and files
that changed on every read, do: such a backup lacks files it was told to keep, or holds
a torn copy, and must not be called good (:func:`_refuse_incomplete`).
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from respaldo.catalog import BackupRecords
from respaldo.config import FileSetSettings
from respaldo.domain import BackupKind, BackupStatus, TriggeredBy
from respaldo.errors import RespaldoError, SourceError
from respaldo.files import TreeTarStream
from respaldo.files.tree import reached, unmounted
from respaldo.operations.context import Context
from respaldo.operations.recorded import BackupResult, Heartbeat, recorded_backup
from respaldo.phrases import N_, counted
from respaldo.repository import BackupWriter, Manifest, Repository, WriteStats
from respaldo.storage.registry import local_path

FILES_STREAM = "files"
WARNINGS_KEPT = 100
ERRORS_SHOWN = 5


def backup_files(
    ctx: Context,
    name: str,
    *,
    triggered_by: TriggeredBy = TriggeredBy.CLI,
    snapshot: str | None = None,
    reserved: str | None = None,
) -> BackupResult:
    """Back up the configured file set ``name``.

    ``snapshot`` pins the backup and records the snapshot id in its manifest;
    ``reserved`` is a pending record made for it beforehand. Raises
    ConfigError (not configured), SourceError (a configured path does not exist),
    SourceError also for paths that could not be read or listed and for files that
    changed on every read (after the whole tree was read, naming them), StorageError,
    RepositoryError; the catalog record is failed first.
    """
    file_set = ctx.settings.file_set(name)

    def body(
        repo: Repository, backup_id: str, started_at: datetime, heartbeat: Heartbeat
    ) -> tuple[Manifest, WriteStats]:
        _refuse_unmounted(ctx, repo, file_set, backup_id)
        stream = TreeTarStream(file_set.paths, file_set.exclude, own=_own_paths(ctx))
        with BackupWriter(repo, backup_id) as writer:
            writer.write_stream(FILES_STREAM, stream, heartbeat.phase("files"))
            stats = stream.stats
            _refuse_incomplete(file_set.name, stats.errors)
            problems = [
                *stats.warnings,
                *(f"{p}: special file, skipped" for p in stats.skipped),
                *(f"{p}: respaldo's own {what}, left out" for p, what in stats.own),
            ]
            meta: dict[str, Any] = {
                "file_set": file_set.name,
                "paths": [str(p) for p in file_set.paths],
                "exclude": list(file_set.exclude),
                "files": stats.files,
                "directories": stats.directories,
                "symlinks": stats.symlinks,
                "file_bytes": stats.file_bytes,
                "excluded": stats.excluded,
                "mounts": stats.mounts,
                "warning_count": len(problems),
                "warnings": problems[:WARNINGS_KEPT],
                "retention_days": file_set.retention_days,
            }
            if snapshot is not None:
                meta["snapshot"] = snapshot
                meta["pinned"] = True
            manifest = writer.commit(
                kind=BackupKind.FILES.value,
                source=file_set.name,
                started_at=started_at,
                meta=meta,
            )
            return manifest, writer.stats

    return recorded_backup(
        ctx,
        kind=BackupKind.FILES,
        source=file_set.name,
        retention_days=file_set.retention_days,
        triggered_by=triggered_by,
        pinned=snapshot is not None,
        body=body,
        reserved=reserved,
    )


def _refuse_unmounted(
    ctx: Context, repo: Repository, file_set: FileSetSettings, backup_id: str
) -> None:
    """Raise SourceError if a directory where the previous completed backup of
    ``file_set`` found a file system mounted (its manifest's ``meta.mounts``) is now empty
    and not mounted: a share or disk that did not come back (a reboot, an expired
    credential). Walked, it is an empty directory and the backup completed with none of
    its files; the status's size check was red for that one backup only (the next is
    compared with it), and once retention counted the empty backups good, it expired
    every backup that held the files. Only those the file set still reaches are judged: a
    share excluded since, or whose configured path was removed, is left out on purpose
    (its mount point may stay, an fstab entry), and failed every backup naming it."""
    name = file_set.name
    with ctx.catalog.read() as session:
        records = BackupRecords(session).list(
            database=name, kind=BackupKind.FILES, status=BackupStatus.COMPLETED, limit=2
        )
        previous = next((r.id for r in records if r.id != backup_id), None)
    if previous is None:
        return
    try:
        mounts = repo.load_manifest(previous).meta.get("mounts") or []
    except RespaldoError:
        return  # not in this repository (its copy elsewhere), or unreadable: verify says
    gone = unmounted(
        (str(m) for m in mounts if reached(str(m), file_set.paths, file_set.exclude)),
        file_set.paths,
    )
    if gone:
        listed = ", ".join(gone[:ERRORS_SHOWN])
        raise SourceError(
            f"file set {name}: {listed} is an empty directory, where backup {previous} found "
            "a file system mounted: its share or disk is not mounted (a backup now would "
            "hold none of its files)",
            hint="mount it and back up again; if it was emptied for good, remove the empty "
            "directory (or put its files there) and back up again",
        )


def _refuse_incomplete(name: str, errors: list[str]) -> None:
    """Raise SourceError naming the first few ``errors``, if there are any."""
    if not errors:
        return
    shown = "; ".join(errors[:ERRORS_SHOWN])
    more = f" (and {len(errors) - ERRORS_SHOWN} more)" if len(errors) > ERRORS_SHOWN else ""
    raise SourceError(
        # counted(): one said "1 paths could not"; both are phrases of respaldo.reasons
        # (the job's stored error, said in Spanish on the page and in the alert).
        counted(
            len(errors),
            N_("file set {name}: {count} path could not be backed up whole: {paths}"),
            N_("file set {name}: {count} paths could not be backed up whole: {paths}"),
            name=name,
            paths=f"{shown}{more}",
        ),
        hint="give respaldo's user read access to them, exclude them (exclude = [...] in "
        "the file set), or back up while nothing rewrites them; this backup is recorded "
        "as failed",
    )


def _own_paths(ctx: Context) -> dict[Path, str]:
    """respaldo's own files that a file set may hold (``paths = ["/srv"]`` with the
    repository in /srv/backups): path -> what it is. Backing them up would store each
    backup in the next (a repository growing with its own square), and a catalog or
    cache being written while read."""
    settings = ctx.settings
    own: dict[Path, str] = {}
    for repo in settings.repositories:
        with contextlib.suppress(RespaldoError):
            root = local_path(repo.url)
            if root is not None:
                own[root] = f"repository {repo.name}"
    own[settings.cache_dir] = "cache"
    with contextlib.suppress(ArgumentError):
        url = make_url(settings.catalog.url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            catalog = Path(url.database)
            for suffix in ("", "-wal", "-shm", "-journal"):
                own[catalog.with_name(catalog.name + suffix)] = "catalog"
    return own

"""Restoring a ``files`` backup into a directory.

The target must be empty or not exist: a restore never mixes its files with others, and
a failed one can then be undone completely (whatever it wrote is removed). Members are
extracted as the verified chunks stream in (:func:`respaldo.files.extract_tar`), with
their modes and times, and their owners when respaldo runs as root. A member that would
land outside the target stops the restore (UnsafePath) and the target is emptied again.
Each file is written under a temporary name (``.respaldo-part-*``) and renamed once it
is whole, and the target holds the marker ``respaldo-restore-incomplete`` until the
restore is complete: a killed restore leaves no truncated file under a real name, and
the next restore into that directory removes what it left. Every file and directory is
fsynced before the marker is removed (:func:`~respaldo.operations.targets.sync_tree`):
after a power cut, a tree without the marker is whole on disk.
"""

from __future__ import annotations

import contextlib
import errno
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from respaldo.domain import BackupKind, validate_backup_id
from respaldo.errors import ConfigError, RestoreError, option
from respaldo.files import extract_tar
from respaldo.operations.context import Context
from respaldo.operations.files_backup import FILES_STREAM
from respaldo.operations.restore import (
    StreamReader,
    load_manifest_told,
    open_with_fallbacks,
)
from respaldo.operations.targets import (
    abort_restore,
    begin_restore,
    finish_restore,
    sync_tree,
)


@dataclass
class FilesRestoreResult:
    backup_id: str
    target: Path
    files: int = 0
    directories: int = 0
    symlinks: int = 0
    bytes_restored: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


def restore_files(
    ctx: Context,
    backup_id: str,
    target_dir: Path,
    *,
    repository: str | None = None,
    durable: bool = True,
) -> FilesRestoreResult:
    """Restore files backup ``backup_id`` into ``target_dir`` (empty or new).

    Member names are the original absolute paths without their leading ``/``: the
    upload ``/srv/erp/uploads/a.pdf`` comes back as ``TARGET/srv/erp/uploads/a.pdf``.
    ``repository`` names the one repository to read (default: the first that opens, the
    others as fallbacks). ``durable`` (a restore test's throwaway copy says no) has
    every file and directory fsynced before the restore is complete.
    Raises ConfigError (not a files backup), BackupNotFound, RestoreError (target not
    empty), UnsafePath, IntegrityError; after a failure the target is as it was.
    """
    validate_backup_id(backup_id)
    started = time.monotonic()
    with contextlib.ExitStack() as leases:
        # Shared leases: no garbage collection repacks what is being read.
        repo, fallbacks, warnings = open_with_fallbacks(
            ctx, leases, f"restore of {backup_id}", only=repository
        )
        # Told as a logical restore tells it: an expired backup whose record waits for
        # a mirror, a failed or unfinished one, a damaged manifest.
        manifest = load_manifest_told(ctx, repo, fallbacks, backup_id)
        if manifest.kind != BackupKind.FILES.value:
            raise ConfigError(
                f"backup {backup_id} is a {manifest.kind} backup, not a files backup",
                hint=f"{option('target_dir')} restores files backups; use "
                f"{option('target_database')} for logical backups and "
                f"{option('target_datadir')} for physical ones",
            )
        target = target_dir.absolute()
        restore_target = begin_restore(target, backup_id)
        warnings += restore_target.warnings
        result = FilesRestoreResult(backup_id, target, warnings=warnings)
        reader = StreamReader(repo, fallbacks, result.warnings)
        total = manifest.stream(FILES_STREAM).size
        done = 0

        def pieces() -> Iterator[bytes]:
            nonlocal done
            for data in reader.stream(manifest, FILES_STREAM):
                done += len(data)
                ctx.progress("restore", done, total)
                yield data

        try:
            stats = extract_tar(pieces(), target)
            if durable:
                sync_tree(target)  # on disk before the marker goes (a power cut)
            finish_restore(restore_target)
        except BaseException as exc:
            abort_restore(restore_target)
            if isinstance(exc, OSError):
                where = f" ({exc.filename})" if exc.filename else ""
                room = exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
                raise RestoreError(
                    f"cannot write into {target}: {exc.strerror or exc}{where}",
                    hint="the restore stopped and nothing of it was kept; "
                    + (
                        f"free room (the tree takes about {total} bytes) or restore elsewhere"
                        if room
                        else "restore elsewhere"
                    ),
                ) from exc
            raise
        result.files, result.directories = stats.files, stats.directories
        result.symlinks, result.bytes_restored = stats.symlinks, stats.file_bytes
        result.seconds = time.monotonic() - started
        return result

"""Target directories of restores: new or empty, and emptied again when a restore fails."""

from __future__ import annotations

import shutil
from pathlib import Path

from respaldo.errors import RestoreError


def prepare_target(target: Path) -> bool:
    """Make sure ``target`` is an empty directory; create it (0700) if it does not exist.

    Returns whether it was created. Raises RestoreError for a file, or a directory that
    is not empty: a restore never mixes its files with others.
    """
    if target.exists() or target.is_symlink():
        if not target.is_dir() or target.is_symlink():
            raise RestoreError(f"{target} exists and is not a directory")
        if any(target.iterdir()):
            raise RestoreError(
                f"{target} is not empty",
                hint="restore into a new or empty directory; nothing was changed",
            )
        return False
    target.mkdir(mode=0o700, parents=True)
    return True


def clear_target(target: Path, created: bool) -> None:
    """Undo a failed restore: remove what it wrote (and the directory, if it made it)."""
    if created:
        shutil.rmtree(target, ignore_errors=True)
        return
    for child in target.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)

"""Target directories of restores: new or empty, marked while incomplete, emptied on failure.

A restore into a directory (a physical backup's data directory, a files backup's tree)
first writes a marker file, ``respaldo-restore-incomplete``, naming its process, and
removes it as its very last step. A restore that fails removes what it wrote; one that
is killed (SIGKILL, a power cut) cannot, and the marker is what stays to say that the
directory holds a partial restore. A later restore into that directory removes the
partial one and starts afresh (saying so), unless the process named in the marker still
runs on this machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from respaldo.errors import RestoreError
from respaldo.privatedir import owner_alive, this_process

MARKER = "respaldo-restore-incomplete"


@dataclass
class RestoreTarget:
    """A directory a restore writes into: whether the restore made it, and what it found."""

    path: Path
    created: bool
    warnings: list[str] = field(default_factory=list)

    @property
    def marker(self) -> Path:
        return self.path / MARKER


def begin_restore(target: Path, backup_id: str) -> RestoreTarget:
    """Make ``target`` an empty directory marked as holding an incomplete restore.

    Creates it (0700) if it does not exist. A directory holding only an earlier
    incomplete restore (its marker) is emptied first, with a warning. Raises
    RestoreError for a file, for a directory that is not empty, for one that a
    restore still running on this machine is writing into, and for one this user
    cannot create, read or write into (nothing was written then).
    """
    try:
        return _begin(target, backup_id)
    except OSError as exc:
        raise RestoreError(
            f"cannot write into {target}: {exc.strerror}"
            if _exists(target)
            else f"cannot create {target}: {exc.strerror}",
            hint="restore where the user respaldo runs as may create and write files, "
            "or run the restore as a user that may",
        ) from None


def _exists(path: Path) -> bool:
    try:
        path.lstat()
    except OSError:
        return False
    return True


def _begin(target: Path, backup_id: str) -> RestoreTarget:
    if target.exists() or target.is_symlink():
        if target.is_symlink():
            # Not followed: what a restore empties and marks is the directory named.
            raise RestoreError(
                f"{target} is a symbolic link (to {target.resolve()})",
                hint=f"give the directory itself ({target.resolve()}) as the target",
            )
        if not target.is_dir():
            raise RestoreError(f"{target} exists and is not a directory")
        if (target / MARKER).is_file():
            found = _earlier_restore(target)
            # The marker goes last: killed in between, the next restore still knows.
            _empty(target, keep=MARKER)
            (target / MARKER).unlink()
            result = RestoreTarget(target, created=False, warnings=[found])
        elif any(target.iterdir()):
            raise RestoreError(
                f"{target} is not empty",
                hint="restore into a new or empty directory; nothing was changed",
            )
        else:
            result = RestoreTarget(target, created=False)
    else:
        target.mkdir(mode=0o700, parents=True)
        result = RestoreTarget(target, created=True)
    _write_marker(result.marker, backup_id)
    return result


def finish_restore(target: RestoreTarget) -> None:
    """Remove the marker: the restore is complete. Its removal is made durable."""
    target.marker.unlink()
    _fsync_dir(target.path)


def abort_restore(target: RestoreTarget) -> None:
    """Undo a failed restore: remove what it wrote (and the directory, if it made it)."""
    if target.created:
        remove_tree(target.path)
        return
    _empty(target.path)


def _write_marker(path: Path, backup_id: str) -> None:
    pid, start = this_process()
    record = {
        "backup": backup_id,
        "pid": pid,
        "start": start,
        "host": socket.gethostname(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    # The marker must be on disk before anything it vouches for is.
    _fsync_dir(path.parent)


def _earlier_restore(target: Path) -> str:
    """What the marker in ``target`` says; raises RestoreError if its restore still runs."""
    try:
        record = json.loads((target / MARKER).read_text(encoding="utf-8"))
        pid, start = int(record["pid"]), int(record["start"])
        host, backup = str(record["host"]), str(record.get("backup", "?"))
    except (OSError, ValueError, KeyError, TypeError):
        # A marker we cannot read still says "incomplete"; only a live owner could object.
        return f"removed an incomplete restore found in {target}"
    if host != socket.gethostname():
        raise RestoreError(
            f"{target} holds an incomplete restore by process {pid} on {host}",
            hint=f"if no restore runs there any more, empty {target} and retry",
        )
    if owner_alive(pid, start):
        raise RestoreError(
            f"a restore (process {pid}) is writing into {target}",
            hint="wait for it to finish, or restore somewhere else",
        )
    return (
        f"removed the incomplete restore of {backup} found in {target} "
        f"(process {pid} stopped before it finished)"
    )


def _empty(target: Path, keep: str | None = None) -> None:
    for child in target.iterdir():
        if child.name == keep:
            continue
        if child.is_dir() and not child.is_symlink():
            remove_tree(child)
        else:
            child.unlink(missing_ok=True)


def remove_tree(path: Path) -> None:
    """Remove the directory ``path`` and all it holds, as far as this user can.

    A restore gives directories their backed-up modes, and one killed at that point
    leaves directories its own user can no longer list (0000) or empty (0555): each is
    made ``u+rwx`` before it is listed (links are never followed), so that a restore
    running as the same user removes them too. The walk keeps its own stack, not
    Python's: a backed-up tree can be deeper than the recursion limit (which stopped
    ``shutil.rmtree`` there, leaving the tree behind). What cannot be removed stays.
    """
    _open(path)
    stack: list[tuple[Path, bool]] = [(path, False)]
    while stack:
        directory, listed = stack.pop()
        if listed:  # its children are gone (as far as they could be): now itself
            with contextlib.suppress(OSError):
                directory.rmdir()
            continue
        stack.append((directory, True))
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                _open(Path(entry.path))
                stack.append((Path(entry.path), False))
            else:
                with contextlib.suppress(OSError):
                    Path(entry.path).unlink()


def _open(directory: Path) -> None:
    with contextlib.suppress(OSError):
        directory.chmod(stat.S_IMODE(directory.lstat().st_mode) | stat.S_IRWXU)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

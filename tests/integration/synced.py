"""What a real process fsynced before a given system call, seen with strace.

A power cut cannot be played in a test, but whether a restore asked the kernel to put
each file on disk before it called itself done can be watched: the command runs under
``strace -y``, which names the file behind each descriptor, and the log is read back.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

_CALL = re.compile(r"^(?P<pid>\d+)\s+(?P<call>\w+)\((?P<args>.*)\)\s+=\s+(?P<ret>-?\d+)")
# A call another thread's call interrupted is logged in two lines (strace -f).
_UNFINISHED = re.compile(r"^(?P<pid>\d+)\s+(?P<call>\w+)\((?P<args>.*) <unfinished \.\.\.>$")
_RESUMED = re.compile(
    r"^(?P<pid>\d+)\s+<\.\.\. (?P<call>\w+) resumed>(?P<args>.*)\)\s+=\s+(?P<ret>-?\d+)"
)
_FD_PATH = re.compile(r"^\d+<(?P<path>[^>]*)>")


def traced(
    argv: Sequence[str], log: Path, *, refuse: str | None = None, **run: object
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` under strace, logging its (and its children's) fsync, syncfs, unlink
    and rename calls to ``log``. ``refuse`` (``syncfs:EPERM``, say) makes the kernel's
    answer to that call that error, as a seccomp filter or an old kernel would."""
    calls = "fsync,fdatasync,syncfs,unlink,unlinkat,rename,renameat,renameat2"
    strace = ["strace", "-f", "--seccomp-bpf", "-y", "-qq", "-o", str(log), "-e", f"trace={calls}"]
    if refuse is not None:
        call, error = refuse.split(":")
        strace += ["-e", f"inject={call}:error={error}"]
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [*strace, *argv],
        capture_output=True,
        text=True,
        check=False,
        **run,
    )


@dataclass
class Synced:
    """What a traced process had put on disk at some point."""

    files: set[str] = field(default_factory=set)
    """Paths fsynced."""
    filesystems: set[int] = field(default_factory=set)
    """Devices of the file systems synced whole (syncfs of a path on them)."""

    def missing(self, paths: set[str]) -> list[str]:
        """Those of ``paths`` (existing) that were not put on disk, sorted."""
        return sorted(
            p for p in paths if p not in self.files and os.lstat(p).st_dev not in self.filesystems
        )


def synced_before(log: Path, until: str | None) -> Synced:
    """What was fsynced or syncfs'd (successfully) in ``log`` before the first successful
    call whose arguments hold ``until`` (a path's end, quoted as strace writes it, say
    ``/PG_VERSION"``; None: in the whole log); AssertionError if no call does."""
    synced = Synced()
    begun: dict[tuple[str, str], str] = {}  # (pid, call) -> the arguments of its first line
    for line in log.read_text(errors="replace").splitlines():
        if (cut := _UNFINISHED.match(line)) is not None:
            begun[(cut["pid"], cut["call"])] = cut["args"]
            continue
        if (resumed := _RESUMED.match(line)) is not None:
            key = (resumed["pid"], resumed["call"])
            call, args, ret = resumed["call"], begun.pop(key, "") + resumed["args"], resumed["ret"]
        elif (whole := _CALL.match(line)) is not None:
            call, args, ret = whole["call"], whole["args"], whole["ret"]
        else:
            continue
        if ret != "0":
            continue
        if call in ("fsync", "fdatasync", "syncfs"):
            path = _FD_PATH.match(args)
            if path is None:
                continue
            if call == "syncfs":
                synced.filesystems.add(Path(path["path"]).stat().st_dev)
            else:
                synced.files.add(path["path"])
        elif until is not None and until in args:
            return synced
    if until is None:
        return synced
    raise AssertionError(f"no call with {until} in {log}:\n{log.read_text()[-3000:]}")


def tree(root: Path) -> set[str]:
    """Every directory (``root`` too) and regular file below ``root``, as paths (links
    are neither: their directory holds them)."""
    found = {str(root)}
    for path, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            mode = Path(path, name).lstat().st_mode
            if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
                found.add(str(Path(path, name)))
    return found

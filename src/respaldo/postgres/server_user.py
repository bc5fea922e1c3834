"""What the PostgreSQL server's OS user can do on this machine.

``archive_command`` runs as that user (``postgres``), not as whoever runs ``respaldo
check``. A respaldo it cannot execute, or a repository directory it cannot write into,
fails every push; PostgreSQL then only logs it, and exit status 126 is not even counted
in ``pg_stat_archiver``. So ``check``, when it runs on the server's machine, asks the
questions as that user: it runs the program as the user (``runuser``, when root) and
reads the mode bits of what a push reads and writes.
"""

from __future__ import annotations

import grp
import os
import pwd
import shlex
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from respaldo.childenv import base_environment

# Enough to list, not to drown the report: the first problems say what to fix.
MAX_PROBLEMS = 5


@dataclass(frozen=True)
class ServerUser:
    """The OS user that owns (and runs) the server's data directory."""

    name: str
    uid: int
    groups: frozenset[int]


def local_server_user(data_directory: str | None) -> ServerUser | None:
    """The owner of ``data_directory`` if it exists on this machine, else None.

    A data directory this process cannot see (another machine, or no permission to
    stat it) means the question cannot be asked here.
    """
    if not data_directory:
        return None
    try:
        st = Path(data_directory).stat()
        entry = pwd.getpwuid(st.st_uid)
    except (OSError, KeyError):
        return None
    groups = frozenset(os.getgrouplist(entry.pw_name, entry.pw_gid))
    return ServerUser(entry.pw_name, entry.pw_uid, groups)


def can_ask_as(user: ServerUser) -> bool:
    """Whether this process can run a program as ``user`` (it is root, or it is the user)."""
    return os.geteuid() in (0, user.uid)


def program_problem(archive_command: str, user: ServerUser) -> str | None:
    """Why ``user`` cannot run the respaldo of ``archive_command``, or None if it can.

    Runs ``PROGRAM --help`` as the user: the only test that also catches an interpreter
    the user cannot read behind an executable script. Call only when :func:`can_ask_as`.
    """
    try:
        program = shlex.split(archive_command)[0]
    except (ValueError, IndexError):
        return f"cannot read the program out of {archive_command!r}"
    argv = [program, "--help"]
    if os.geteuid() != user.uid:
        argv = ["runuser", "-u", user.name, "--", *argv]
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=base_environment(),
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{program}: {exc}"
    if done.returncode == 0:
        return None
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else f"{program} exited with status {done.returncode}"


def _allowed(st: os.stat_result, user: ServerUser, want: int) -> bool:
    """Whether mode bits give ``user`` every access in ``want`` (a mask of R, W, X)."""
    if user.uid == 0:
        return True
    if st.st_uid == user.uid:
        bits = (st.st_mode >> 6) & 7
    elif st.st_gid in user.groups:
        bits = (st.st_mode >> 3) & 7
    else:
        bits = st.st_mode & 7
    return bits & want == want


R, W, X = 4, 2, 1


def _describe(path: Path, st: os.stat_result) -> str:
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"{path} ({stat.filemode(st.st_mode)} {owner}:{group})"


def blocked_directory(path: Path, user: ServerUser) -> tuple[Path, os.stat_result] | None:
    """The first parent directory of ``path`` that ``user`` cannot enter, if any."""
    for parent in reversed(path.parents):
        try:
            st = parent.stat()
        except OSError:
            return None
        if not _allowed(st, user, X):
            return parent, st
    return None


def _reach_problem(path: Path, user: ServerUser) -> str | None:
    """Why ``user`` cannot reach ``path`` (a parent directory it cannot enter), if it cannot."""
    blocked = blocked_directory(path, user)
    return None if blocked is None else f"cannot enter {_describe(*blocked)}"


def read_problems(paths: list[Path], user: ServerUser) -> list[str]:
    """What ``user`` cannot read of ``paths`` (files; a missing file is not a problem)."""
    problems: list[str] = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            continue
        problem = _reach_problem(path, user)
        if problem is None and not _allowed(st, user, R):
            problem = f"cannot read {_describe(path, st)}"
        if problem is not None:
            problems.append(problem)
    return problems[:MAX_PROBLEMS]


def repository_problems(root: Path, user: ServerUser) -> list[str]:
    """What ``user`` cannot do of what ``wal-push`` does in a local repository at ``root``:
    read ``config`` and ``keys/``, create files and directories in the root, ``wal/``
    (all the way down) and ``clusters/``. Packs and indexes are not walked: a push never
    touches them.
    """
    problems: list[str] = []
    reach = _reach_problem(root, user)
    if reach is not None:
        return [reach]

    def need(path: Path, want: int, verb: str) -> None:
        try:
            st = path.stat()
        except OSError:
            return  # made by the first push, in a directory checked here
        if not _allowed(st, user, want):
            problems.append(f"cannot {verb} {_describe(path, st)}")

    need(root, R | W | X, "write into")
    need(root / "config", R, "read")
    need(root / "keys", R | X, "list")
    keys = root / "keys"
    if keys.is_dir():
        for key in sorted(keys.iterdir()):
            need(key, R, "read")
    for top in ("wal", "clusters"):
        start = root / top
        if not start.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(start):
            need(Path(dirpath), R | W | X, "write into")
            dirnames.sort()
            if top == "clusters":
                for name in sorted(filenames):
                    need(Path(dirpath, name), R, "read")
            if len(problems) >= MAX_PROBLEMS:
                break
    return problems[:MAX_PROBLEMS]

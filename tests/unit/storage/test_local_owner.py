"""A local repository belongs to the owner of its root directory, whoever writes to it.

The server's ``archive_command`` runs as ``postgres``; a backup an administrator runs as
root must not leave directories and files that ``postgres`` can no longer write into.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

from respaldo.storage.local import LocalStorage

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(os.geteuid() != 0, reason="only root writes as another user"),
]

OS_USER = "postgres"


def _postgres() -> tuple[int, int]:
    entry = pwd.getpwnam(OS_USER)
    return entry.pw_uid, entry.pw_gid


def test_root_writes_as_the_owner_of_the_repository(tmp_path: Path) -> None:
    uid, gid = _postgres()
    root = tmp_path / "repo"
    root.mkdir()
    os.chown(root, uid, gid)
    LocalStorage(root).put("clusters/erp", b"record")
    LocalStorage(root).put("wal/7/00000001/000000010000000000000001", b"segment")
    for path in (
        root / "clusters",
        root / "clusters" / "erp",
        root / "wal",
        root / "wal" / "7",
        root / "wal" / "7" / "00000001",
        root / "wal" / "7" / "00000001" / "000000010000000000000001",
    ):
        st = path.stat()
        assert (st.st_uid, st.st_gid) == (uid, gid), path


def test_the_owner_can_write_where_root_wrote_first(enterable_dir: Path) -> None:
    """The bug this prevents: root's backup made ``clusters/`` first, and every later
    push by the server's user failed with "Permission denied"."""
    uid, gid = _postgres()
    root = enterable_dir / "repo"
    root.mkdir()
    os.chown(root, uid, gid)
    LocalStorage(root).put("clusters/erp", b"by root")
    code = (
        "import sys; from respaldo.storage.local import LocalStorage; "
        "LocalStorage(sys.argv[1]).put('clusters/erp', b'by the server')"
    )
    done = subprocess.run(
        ["runuser", "-u", OS_USER, "--", sys.executable, "-c", code, str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (root / "clusters" / "erp").read_bytes() == b"by the server"


def test_a_repository_owned_by_root_stays_as_it_was(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    LocalStorage(root).put("packs/ab/x", b"data")
    assert (root / "packs" / "ab" / "x").stat().st_uid == 0

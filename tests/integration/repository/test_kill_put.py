"""The temporary file of a put killed half-way is removed by the next garbage collection.

A local store writes each object to a temporary file named after its process
(``.tmp-<pid>-<start time>-<host>-<random>``) and renames it into place; a writer killed
in between leaves the temporary file. Collection (which holds the repository's
exclusive lock) removes those whose process is gone from this machine at once, and any
other (another machine's, an older version's) once it is older than the lease expiry,
``lock_stale_after``. A live writer's is never touched, and every backup still restores.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from respaldo.repository import (
    BackupWriter,
    ChunkerParams,
    KdfParams,
    Repository,
    collect_garbage,
    iter_stream,
    verify_repository,
)
from respaldo.storage.local import LocalStorage

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CHILD = Path(__file__).with_name("half_put.py")
PASSPHRASE = "killed put test passphrase"


def _half_put(root: Path, name: str) -> tuple[subprocess.Popen[str], Path]:
    """Start a put of ``name`` that stops half-way; return it and its temporary file."""
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(root), name, str(200_000)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "half\n"
    target = root / name
    (tmp,) = target.parent.glob(".tmp-*")
    assert tmp.stat().st_size == 100_000 and not target.exists()
    return child, tmp


def _kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL


def test_a_killed_puts_temporary_file_is_collected(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    repo = Repository.init(
        LocalStorage(root),
        PASSPHRASE,
        chunker=ChunkerParams(min_size=256, avg_size=1024, max_size=4096),
        kdf=KdfParams(time_cost=1, memory_cost=1024, parallelism=1),
        pack_size=16 * 1024,
    )
    data = os.urandom(50_000)
    with BackupWriter(repo, "kept") as writer:
        writer.write_stream("dump", io.BytesIO(data))
        writer.commit(kind="full", source="test", started_at=datetime.now(UTC))

    killed, killed_tmp = _half_put(root, "packs/ab/" + "ab" * 32)
    _kill(killed)
    live, live_tmp = _half_put(root, "index/" + "cd" * 32)
    try:
        # Written by another machine (or an older respaldo): only its age can tell.
        foreign_old = root / "packs" / "ef" / (".tmp-" + "ef" * 32 + ".0123456789ab")
        foreign_new = root / "manifests" / ".tmp-20260101T000000Z-00000000.ba9876543210"
        for path in (foreign_old, foreign_new):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"half a write")
        long_ago = time.time() - 2 * repo.lock_stale_after
        os.utime(foreign_old, (long_ago, long_ago))

        report = collect_garbage(repo)
        assert not killed_tmp.exists()  # its process is gone: at once
        assert not foreign_old.exists()  # older than any live lease
        assert live_tmp.exists()  # a live writer's
        assert foreign_new.exists()  # it might be a live writer's elsewhere
        assert report.temporaries_removed == 2
    finally:
        _kill(live)
    assert b"".join(iter_stream(repo, repo.load_manifest("kept"), "dump")) == data
    assert verify_repository(repo).ok

"""The temporary file of a put killed half-way is removed by the next garbage collection.

A local store writes each object to ``.tmp-<name>.<random>`` and renames it into place;
a writer killed in between leaves the temporary file. Collection (which holds the
repository's exclusive lock) removes those older than the lease expiry,
``lock_stale_after``: an older one cannot belong to a writer that is still alive. A
younger one is kept, and every backup still restores.
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


def _killed_half_put(root: Path, name: str) -> Path:
    """Run a put of ``name`` that is killed half-way; return the temporary file it left."""
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(root), name, str(200_000)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "half\n"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    target = root / name
    (tmp,) = target.parent.glob(f".tmp-{target.name}.*")
    assert tmp.stat().st_size == 100_000 and not target.exists()
    return tmp


def test_a_killed_puts_temporary_file_is_collected_once_it_is_old(tmp_path: Path) -> None:
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

    old = _killed_half_put(root, "packs/ab/" + "ab" * 32)
    young = _killed_half_put(root, "index/" + "cd" * 32)
    # The first writer died longer ago than a lease lives; the second one just now.
    long_ago = time.time() - 2 * repo.lock_stale_after
    os.utime(old, (long_ago, long_ago))

    report = collect_garbage(repo)
    assert not old.exists()
    assert young.exists()  # it might still be a live writer's
    assert report.temporaries_removed == 1
    assert b"".join(iter_stream(repo, repo.load_manifest("kept"), "dump")) == data
    assert verify_repository(repo).ok

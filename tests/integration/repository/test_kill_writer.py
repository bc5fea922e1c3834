"""A writer process killed with SIGKILL mid-stream leaves a repository that is still
sound: no half backup, every stored object whole, earlier backups intact, new backups
possible (the crash-safety promise of docs/repository-format.md)."""

from __future__ import annotations

import hashlib
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
    iter_stream,
    rebuild_index,
    verify_repository,
)
from respaldo.storage.local import LocalStorage

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CHILD = Path(__file__).with_name("slow_writer.py")
PASSPHRASE = "killed writer test passphrase"
PACK_SIZE = 16 * 1024
PACKS_BEFORE_KILL = 5


def _pack_files(root: Path) -> list[Path]:
    """Pack objects on disk (not the '.tmp-' files of writes in progress)."""
    packs = root / "packs"
    if not packs.is_dir():
        return []
    return sorted(p for p in packs.rglob("*") if p.is_file() and not p.name.startswith("."))


def _write(repo: Repository, backup_id: str, data: bytes) -> None:
    with BackupWriter(repo, backup_id) as writer:
        writer.write_stream("dump", io.BytesIO(data))
        writer.commit(kind="full", source="test", started_at=datetime.now(UTC))


def _read(repo: Repository, backup_id: str) -> bytes:
    return b"".join(iter_stream(repo, repo.load_manifest(backup_id), "dump"))


def _open(root: Path) -> Repository:
    return Repository.open(LocalStorage(root), PASSPHRASE, pack_size=PACK_SIZE)


def test_writer_killed_mid_stream(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    repo = Repository.init(
        LocalStorage(root),
        PASSPHRASE,
        chunker=ChunkerParams(min_size=256, avg_size=1024, max_size=4096),
        kdf=KdfParams(time_cost=1, memory_cost=1024, parallelism=1),
        pack_size=PACK_SIZE,
    )
    earlier = os.urandom(100_000)
    _write(repo, "earlier", earlier)
    packs_before = len(_pack_files(root))

    env = {**os.environ, "RESPALDO_PASSPHRASE": PASSPHRASE}
    child = subprocess.Popen(
        # 200 MB at ~0.8 MB/s: minutes of work; it is killed long before the end.
        [sys.executable, str(CHILD), str(root), "killed", str(200_000_000)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert PASSPHRASE not in " ".join(str(a) for a in child.args)  # type: ignore[union-attr]
        deadline = time.monotonic() + 60
        while len(_pack_files(root)) < packs_before + PACKS_BEFORE_KILL:
            if child.poll() is not None:
                out, err = child.communicate()
                pytest.fail(f"the writer exited early ({child.returncode}): {out!r} {err!r}")
            assert time.monotonic() < deadline, "the writer stored no packs in time"
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    assert out.decode().split() == ["started"]

    # No backup, not even half of one.
    assert not (root / "manifests" / "killed").exists()
    # Every pack on disk is whole: its name is the SHA-256 of its bytes (atomic puts).
    packs = _pack_files(root)
    assert len(packs) >= packs_before + PACKS_BEFORE_KILL
    for pack in packs:
        assert hashlib.sha256(pack.read_bytes()).hexdigest() == pack.name

    reopened = _open(root)
    assert reopened.backup_ids() == ["earlier"]
    report = verify_repository(reopened)
    assert report.ok, report.problems
    assert report.backups == 1
    # The killed writer never wrote the index for its packs: they are garbage.
    assert report.unreferenced_packs >= PACKS_BEFORE_KILL
    assert _read(reopened, "earlier") == earlier

    # Life goes on: a new backup is written and read back.
    later = os.urandom(150_000)
    _write(reopened, "later", later)
    again = _open(root)
    assert _read(again, "later") == later
    assert _read(again, "earlier") == earlier
    assert verify_repository(again).ok

    # And the index can take in the orphaned packs without complaint.
    rebuilt = rebuild_index(again)
    assert rebuilt.problems == []
    final = verify_repository(_open(root))
    assert final.ok, final.problems
    assert final.unreferenced_packs == 0
    assert final.backups == 2

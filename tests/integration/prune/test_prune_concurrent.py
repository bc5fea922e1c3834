"""Backups and prune at the same time: two writer threads and a writer process keep
taking backups (each with a Repository whose index was loaded at its start) while the
test expires old backups and collects garbage as often as it can. No backup that
remains ever loses a chunk; collection runs only between backups and waits or refuses
otherwise; writers wait while it runs."""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from respaldo.errors import RepositoryLocked
from respaldo.repository import (
    BackupWriter,
    ChunkerParams,
    KdfParams,
    Repository,
    collect_garbage,
    iter_stream,
    verify_backups,
    verify_repository,
)
from respaldo.storage.local import LocalStorage
from tests.integration.prune.concurrent_data import PACK_SIZE, data_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

CHILD = Path(__file__).with_name("writer_child.py")
PROJECT = Path(__file__).parents[3]
PASSPHRASE = "concurrent prune test passphrase"
PER_WRITER = 8
KEEP = 2


def open_repo(root: Path) -> Repository:
    repo = Repository.open(LocalStorage(root), PASSPHRASE, pack_size=PACK_SIZE)
    repo.lock_wait = 5
    return repo


def writer_thread(root: Path, name: str, committed: list[str], errors: list[BaseException]) -> None:
    try:
        repo = open_repo(root)  # loaded once: collection happens behind its back
        rng = random.Random(name)
        for i in range(PER_WRITER):
            backup_id = f"{name}-{i:03d}"
            while True:
                try:
                    with BackupWriter(repo, backup_id) as writer:
                        writer.write_stream("dump", io.BytesIO(data_for(backup_id)))
                        writer.commit(kind="full", source=name, started_at=datetime.now(UTC))
                    break
                except RepositoryLocked:
                    continue  # collection held the lock longer than lock_wait
            committed.append(backup_id)
            time.sleep(rng.uniform(0.05, 0.4))
    except BaseException as exc:  # reported in the test's thread
        errors.append(exc)


def expire(repo: Repository) -> list[str]:
    """Delete the manifests of all but the newest KEEP backups of each writer."""
    by_writer: dict[str, list[str]] = {}
    for backup_id in repo.backup_ids():
        by_writer.setdefault(backup_id.rsplit("-", 1)[0], []).append(backup_id)
    gone = []
    for ids in by_writer.values():
        for backup_id in sorted(ids)[:-KEEP]:
            repo.storage.delete(f"manifests/{backup_id}")
            gone.append(backup_id)
    return gone


def test_backups_and_prune_at_the_same_time(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    Repository.init(
        LocalStorage(root),
        PASSPHRASE,
        chunker=ChunkerParams(min_size=256, avg_size=1024, max_size=4096),
        kdf=KdfParams(time_cost=1, memory_cost=1024, parallelism=1),
        pack_size=PACK_SIZE,
    )
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(root), "proc", str(PER_WRITER)],
        env={**os.environ, "RESPALDO_PASSPHRASE": PASSPHRASE, "PYTHONPATH": str(PROJECT)},
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    committed: dict[str, list[str]] = {"t1": [], "t2": []}
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=writer_thread, args=(root, name, ids, errors))
        for name, ids in committed.items()
    ]
    for thread in threads:
        thread.start()

    pruner = open_repo(root)
    collections = refusals = 0
    expired: list[str] = []
    while any(t.is_alive() for t in threads) or child.poll() is None:
        expired += expire(pruner)
        try:
            report = collect_garbage(pruner, wait=0)
        except RepositoryLocked:
            refusals += 1
        else:
            collections += report.changed
            # Right after a collection, every backup that exists is whole.
            check = verify_backups(pruner, pruner.backup_ids())
            assert check.ok, check.problems
        time.sleep(0.03)

    for thread in threads:
        thread.join(timeout=60)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert not errors, errors
    committed["proc"] = [
        line.split()[1] for line in out.splitlines() if line.startswith("committed")
    ]
    for ids in committed.values():
        assert len(ids) == PER_WRITER
    # Collection really ran between backups, and really was turned away during them.
    assert collections >= 1 and refusals >= 1, (collections, refusals)

    expired += expire(pruner)
    collect_garbage(pruner, wait=30)
    final = open_repo(root)
    survivors = sorted(final.backup_ids())
    assert survivors == sorted(i for ids in committed.values() for i in sorted(ids)[-KEEP:])
    verified = verify_repository(final)
    assert verified.ok, verified.problems
    assert verified.unreferenced_packs == 0
    for backup_id in survivors:
        stream = b"".join(iter_stream(final, final.load_manifest(backup_id), "dump"))
        assert stream == data_for(backup_id)
    assert set(expired) | set(survivors) == {i for ids in committed.values() for i in ids}
    assert list((root / "locks").iterdir()) == []

"""A repository whose disk a failed backup filled: garbage collection frees it.

A backup that fills the disk fails with "the file system holding the repository is full:
free space (respaldo prune, or a bigger disk)", and leaves the packs it stored before
that: no index file describes them and no manifest needs them. The prune that the message
sends the operator to expires old backups and collects garbage, and that has to write (a
new index describing what remains) before it deletes. On a disk that is still full the
write failed, the collection stopped before it deleted anything, and every prune after it
did the same: the packs of the failed backup, the very space that was needed, stayed.
Packs that no index file describes are deleted first now (under the exclusive lock, no
writer runs, and nothing can ever have deduplicated against them), so the write finds
room.

The repository is a tmpfs of a few MiB (mounting needs root, as the suite runs).
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from respaldo.errors import PermanentStorageError
from respaldo.repository import collect_garbage, verify_repository
from respaldo.storage.local import LocalStorage
from tests.unit.repository.helpers import (
    init_repo,
    open_repo,
    random_bytes,
    read_stream,
    write_backup,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    assert os.geteuid() == 0, "the full-disk tests mount a tmpfs: run the suite as root"
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def _fill(path: Path) -> None:
    """Fill the file system of ``path`` to its last byte (another program's data), if
    there is a byte left."""
    try:
        with path.open("wb") as out:
            while True:
                out.write(b"\0" * 4096)
                out.flush()
    except OSError as exc:
        assert exc.errno == errno.ENOSPC


def test_prune_frees_a_disk_that_a_failed_backup_filled(small_disk: Path) -> None:
    store = LocalStorage(small_disk / "repo")
    repo = init_repo(store)
    write_backup(repo, "old", {"dump": random_bytes(500_000, seed=1)})
    kept = random_bytes(500_000, seed=2)
    manifest, _ = write_backup(repo, "kept", {"dump": kept})
    with pytest.raises(PermanentStorageError, match="No space left on device") as info:
        write_backup(repo, "too-big", {"dump": random_bytes(4_000_000, seed=3)})
    assert "full" in info.value.hint and "prune" in info.value.hint
    # Where: the pack's temporary file by its path, not a bare ".tmp-…" name.
    assert f"cannot write {small_disk}/repo/packs/.tmp-" in str(info.value)
    _fill(small_disk / "other-data")
    store.delete("manifests/old")  # prune expires it (deleting a manifest takes no lock)

    report = collect_garbage(open_repo(store))

    assert report.packs_unindexed > 0 and report.packs_deleted >= report.packs_unindexed
    reopened = open_repo(store)
    assert verify_repository(reopened).ok
    assert reopened.backup_ids() == ["kept"]
    assert read_stream(reopened, manifest) == kept

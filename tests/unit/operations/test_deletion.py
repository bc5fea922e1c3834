"""Deleting one backup by hand (``DELETE /admin/backups/{id}``) over a real SQLite catalog
and two real local repositories: refused for what retention keeps, whatever keeps it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from respaldo.domain import BackupKind
from respaldo.errors import BackupProtected
from respaldo.operations.copy import copy_to
from respaldo.operations.deletion import delete_backup
from respaldo.repository import verify_repository
from tests.unit.operations.support import Installation, data_for

pytestmark = pytest.mark.unit

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
PHYSICAL = BackupKind.INCREMENTAL


@pytest.fixture
def inst(tmp_path: Path) -> Iterator[Installation]:
    installation = Installation.create(tmp_path)
    yield installation
    installation.close()


def test_the_chain_of_a_kept_incremental_backup_cannot_be_deleted(inst: Installation) -> None:
    # A full physical backup, an incremental on it and one on that: the newest restores
    # only on top of both (pg_combinebackup), so neither may go while it is kept.
    root = inst.backup(3 * DAY, kind=PHYSICAL)
    middle = inst.backup(2 * DAY, kind=PHYSICAL, parent=root)
    newest = inst.backup(1 * DAY, kind=PHYSICAL, parent=middle)
    inst.replicate()
    for needed, child in ((middle, newest), (root, middle)):
        with pytest.raises(BackupProtected) as refused:
            delete_backup(inst.ctx, needed)
        assert f"parent of {child}" in refused.value.message
        assert refused.value.hint
    assert inst.record_ids() == {root, middle, newest}
    for name in (None, "second"):
        assert inst.manifests(name) == {root, middle, newest}
        assert verify_repository(inst.repository(name)).ok


def test_a_backup_no_kept_one_needs_is_deleted(inst: Installation) -> None:
    # A full chain of its own, older than the newest chain: nothing kept needs it.
    old = inst.backup(3 * DAY, kind=PHYSICAL)
    root = inst.backup(2 * DAY, kind=PHYSICAL)
    newest = inst.backup(1 * DAY, kind=PHYSICAL, parent=root)
    inst.replicate()
    deleted = delete_backup(inst.ctx, old)
    assert deleted.manifests_deleted_from == ["local", "second"]
    assert inst.record_ids() == {root, newest}
    assert inst.manifests() == {root, newest}


def test_the_last_good_backup_cannot_be_deleted(inst: Installation) -> None:
    # The newest backup failed its restore test; the one before it is the last good one
    # (never tested, as most are): retention keeps it (min_keep counts good ones first),
    # and so a deletion by hand must refuse it too.
    good = inst.backup(2 * DAY)
    bad = inst.backup(1 * DAY, verified=False)
    with pytest.raises(BackupProtected) as refused:
        delete_backup(inst.ctx, good)
    assert "newest good" in refused.value.message
    assert inst.record_ids() == {good, bad}
    assert inst.manifests() == {good, bad}
    assert inst.read(good) == data_for(good)
    # A good backup newer than it: now it may go.
    inst.backup(12 * HOUR)
    assert delete_backup(inst.ctx, good).id == good


def test_the_last_backup_a_repository_holds_cannot_be_deleted(inst: Installation) -> None:
    # The newest backup's manifest is gone from every repository (lost with a bucket's
    # objects, deleted by hand): the older one is the last that restores.
    survivor = inst.backup(2 * DAY)
    lost = inst.backup(1 * DAY)
    inst.replicate()
    for name in ("repo", "second"):
        (inst.root / name / "manifests" / lost).unlink()
    with pytest.raises(BackupProtected) as refused:
        delete_backup(inst.ctx, survivor)
    assert "newest good" in refused.value.message
    assert inst.record_ids() == {survivor, lost}
    assert inst.manifests() == inst.manifests("second") == {survivor}
    assert inst.read(survivor) == data_for(survivor)


def test_the_newest_backup_a_mirror_holds_cannot_be_deleted(inst: Installation) -> None:
    # The mirror holds the older backup only (the copies of the newer ones failed while
    # it was away): deleting that one would leave the mirror with nothing to restore.
    mirrored = inst.backup(3 * DAY)
    newer = [inst.backup(2 * DAY), inst.backup(1 * DAY)]
    assert all(o.ok for o in copy_to(inst.ctx, [mirrored], "second"))
    assert inst.manifests("second") == {mirrored}
    with pytest.raises(BackupProtected) as refused:
        delete_backup(inst.ctx, mirrored)
    assert "newest in second" in refused.value.message
    assert refused.value.hint is not None
    assert "respaldo copy --all --to second" in refused.value.hint
    assert inst.manifests() == {mirrored, *newer}
    assert inst.manifests("second") == {mirrored}
    # Once the mirror holds a newer one, the old backup may go.
    inst.replicate()
    assert delete_backup(inst.ctx, mirrored).manifests_deleted_from == ["local", "second"]

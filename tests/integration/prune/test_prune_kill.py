"""``prune`` killed with SIGKILL at many points: every time both repositories verify, every
backup the catalog still lists as completed is restorable or is being expired, no
repository holds a backup the catalog has forgotten, and a later run finishes the work
with catalog and repositories in agreement."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from respaldo.repository import verify_repository
from tests.unit.operations.support import NOW, PASSPHRASE, Installation, data_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

CHILD = Path(__file__).with_name("prune_child.py")
DAY = timedelta(days=1)

# (what the child is about to do, which occurrence) when it is killed, in order.
KILL_POINTS = [
    ("catalog delete", 2),  # a failed record went, the next is about to
    ("delete manifests/", 2),  # a backup gone from the primary, not yet the secondary
    ("catalog delete", 1),  # a backup gone from both repositories, its record not yet
    ("put locks/", 1),  # about to take the collector's lock
    ("put packs/", 1),  # holding the lock, before the first repacked pack
    ("put index/", 1),  # new packs stored, no index for them yet
    ("delete index/", 2),  # new index stored, old ones partly deleted
    ("delete packs/", 2),  # old index gone, old packs partly deleted
    ("put index/", 1),  # the primary finished, the secondary is next
]


@pytest.fixture
def inst(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Installation]:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    installation = Installation.create(tmp_path)
    yield installation
    installation.close()


def run_child(inst: Installation, pattern: str, nth: int) -> str:
    done = subprocess.run(
        [sys.executable, str(CHILD), str(inst.config), pattern, str(nth), NOW.isoformat()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).parents[3],
    )
    last = (done.stdout.strip().splitlines() or [""])[-1]
    if last.startswith("killed"):
        assert done.returncode == -9, done
    else:
        assert done.returncode == 0 and last.startswith("done"), done
    return last


def check_sound(inst: Installation, expected_kept: set[str]) -> None:
    records = inst.record_ids()
    for name in (None, "second"):
        report = verify_repository(inst.repository(name))
        assert report.ok, (name, report.problems)
        # Manifests go before records: a repository never holds a forgotten backup.
        assert inst.manifests(name) <= records
        assert expected_kept <= inst.manifests(name)


def test_prune_killed_at_many_points(inst: Installation) -> None:
    expired = [inst.backup(age * DAY) for age in (30, 25, 20, 15, 12, 10)]
    expired += [inst.backup(age * DAY, failed=True) for age in (14, 9)]
    kept = {inst.backup(age * DAY) for age in (5, 3, 2, 1)}
    inst.replicate()
    check_sound(inst, kept)

    # Each run starts from what the killed one before it left.
    kills = []
    for pattern, nth in KILL_POINTS:
        outcome = run_child(inst, pattern, nth)
        assert outcome.startswith(f"killed before {pattern}"), (pattern, nth, outcome)
        kills.append(outcome)
        check_sound(inst, kept)
    assert len(kills) == len(KILL_POINTS)

    # A last, uninterrupted run finishes the work; then everything agrees.
    assert run_child(inst, "nothing matches this", 1).startswith("done")
    assert inst.record_ids() == kept
    assert inst.completed_ids() == kept
    for name in (None, "second"):
        assert inst.manifests(name) == kept
        report = verify_repository(inst.repository(name))
        assert report.ok and report.unreferenced_packs == 0
        assert list((inst.root / ("second" if name else "repo") / "locks").iterdir()) == []
    for backup_id in kept:
        assert inst.read(backup_id) == data_for(backup_id)
        assert inst.read(backup_id, "second") == data_for(backup_id)

"""The copy to a secondary repository carries the archived WAL: incrementally, sealed
as it is, never propagating a damaged file, and catching up after the secondary was
unreachable. Retention then applies in the mirror as in the primary."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from respaldo.cli.main import invoke
from respaldo.operations.copy import copy_wal_to, replicate_wal
from respaldo.operations.prune import prune
from respaldo.repository import BackupWriter, Repository
from respaldo.repository.copy import copy_backup
from respaldo.repository.wal import (
    ClusterRecord,
    get_wal,
    put_wal,
    read_cluster,
    wal_objects,
    write_cluster,
)
from tests.unit.operations.support import NOW, Installation

pytestmark = pytest.mark.unit
SYSTEM = "7312345678901234567"
SEGMENT = 16 * 1024 * 1024


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Installation]:
    installation = Installation.create(tmp_path)
    try:
        yield installation
    finally:
        installation.close()


def _segment(n: int) -> str:
    return f"00000001{n:016X}"


def _archive(repo: Repository, *numbers: int) -> None:
    write_cluster(repo, ClusterRecord("erp", SYSTEM, NOW, "wal-push"))
    for n in numbers:
        put_wal(repo, SYSTEM, "00000001", _segment(n), f"segment {n}".encode())


def _names(repo: Repository) -> list[str]:
    return [file for _, _, file, _ in wal_objects(repo)]


def test_the_copy_carries_what_the_mirror_lacks_of_the_archived_wal(
    setup: Installation,
) -> None:
    _archive(setup.repository(), 1, 2, 3)
    put_wal(setup.repository(), SYSTEM, "00000002", "00000002.history", b"1\t0/3000000\tx\n")
    (outcome,) = replicate_wal(setup.ctx)
    assert outcome.ok and outcome.stats is not None
    assert (outcome.stats.files, outcome.stats.copied) == (4, 4)
    assert outcome.stats.clusters_copied == 1
    mirror = setup.repository("second")
    assert _names(mirror) == [_segment(1), _segment(2), _segment(3), "00000002.history"]
    assert get_wal(mirror, SYSTEM, "00000001", _segment(2)) == b"segment 2"
    record = read_cluster(mirror, "erp")
    assert record is not None and record.system_identifier == SYSTEM
    # Incremental: the next copy moves only the one segment archived since.
    _archive(setup.repository(), 4)
    (outcome,) = replicate_wal(setup.ctx)
    assert outcome.stats is not None
    assert (outcome.stats.files, outcome.stats.copied, outcome.stats.clusters_copied) == (5, 1, 0)
    (outcome,) = replicate_wal(setup.ctx)
    assert outcome.stats is not None and outcome.stats.copied == 0


def test_respaldo_copy_carries_the_wal_when_every_backup_is_there_already(
    setup: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    _archive(setup.repository(), 1, 2)
    code = invoke(["--config", str(setup.config), "copy", "--all", "--to", "second"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "nothing to copy" in err
    assert "archived WAL: 2 of 2 files new in second" in err
    assert _names(setup.repository("second")) == [_segment(1), _segment(2)]


def test_an_unreachable_mirror_fails_the_wal_copy_clearly_and_the_next_one_catches_up(
    setup: Installation,
) -> None:
    _archive(setup.repository(), 1, 2)
    mirror_dir = setup.root / "second"
    aside = setup.root / "second-away"
    mirror_dir.rename(aside)  # the offsite storage cannot be reached
    (outcome,) = replicate_wal(setup.ctx)
    assert not outcome.ok and outcome.stats is None
    assert outcome.error is not None
    assert outcome.error.startswith("archived WAL not copied to second: ")
    assert _names(setup.repository()) == [_segment(1), _segment(2)]  # nothing lost
    aside.rename(mirror_dir)
    _archive(setup.repository(), 3)
    (outcome,) = replicate_wal(setup.ctx)
    assert outcome.ok and outcome.stats is not None and outcome.stats.copied == 3
    assert _names(setup.repository("second")) == [_segment(1), _segment(2), _segment(3)]


def test_a_damaged_file_is_not_copied_and_the_others_are(setup: Installation) -> None:
    _archive(setup.repository(), 1, 2, 3)
    damaged = setup.root / "repo" / "wal" / SYSTEM / "00000001" / _segment(2)
    blob = bytearray(damaged.read_bytes())
    blob[-1] ^= 1
    damaged.write_bytes(bytes(blob))
    outcome = copy_wal_to(setup.ctx, "second")
    assert not outcome.ok and outcome.stats is not None
    assert outcome.stats.damaged == [f"wal/{SYSTEM}/00000001/{_segment(2)}"]
    assert outcome.error is not None and "1 archived WAL files are damaged" in outcome.error
    assert _names(setup.repository("second")) == [_segment(1), _segment(3)]


def _physical(repo: Repository, backup_id: str, start_lsn: str) -> None:
    with BackupWriter(repo, backup_id) as writer:
        writer.write_stream("base", io.BytesIO(b"base backup " * 100))
        writer.commit(
            kind="incremental",
            source="erp",
            started_at=NOW - timedelta(hours=1),
            meta={
                "system_identifier": SYSTEM,
                "timeline": 1,
                "start_lsn": start_lsn,
                "wal_segment_size": SEGMENT,
            },
        )


def test_prune_applies_wal_retention_in_the_mirror_too(setup: Installation) -> None:
    primary = setup.repository()
    _archive(primary, 1, 2, 3, 4, 5)
    _physical(primary, "20261128T110000Z-physical", "0/3000028")  # needs segment 3 onward
    copy_backup(primary, setup.repository("second"), "20261128T110000Z-physical")
    (outcome,) = replicate_wal(setup.ctx)
    assert outcome.ok
    assert len(_names(setup.repository("second"))) == 5
    result = prune(setup.ctx, now=NOW)
    by_name = {r.name: r for r in result.repositories}
    for name in ("local", "second"):
        report = by_name[name].wal
        assert report is not None and report.files_deleted == 2, name
    kept = [_segment(3), _segment(4), _segment(5)]
    assert _names(setup.repository()) == kept
    assert _names(setup.repository("second")) == kept

"""``verify`` warns of a hole in the archived WAL after the physical backups it reads.

A hole between an older physical backup and the next one cuts the older one's
point-in-time recovery: its restore test failed its ``wal archive`` check while verify
said "ok", and the status looks after the newest backup only. The segments from a
backup's start to its end are in its own tar: one of them missing from the archive is no
hole. Here the backups' manifests carry the positions a physical backup records, and the
archive is sealed files of the right names (verify lists names; it reads none of them
for this).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from respaldo.domain import BackupKind
from respaldo.errors import StorageError
from respaldo.operations import alerts, verify_wal
from respaldo.operations.verify import WAL_GAPS, verify
from respaldo.repository.wal import put_wal
from tests.unit.operations.support import PASSPHRASE, Installation, run_cli

pytestmark = pytest.mark.unit

SYSTEM = "7716158196002574082"
MIB16 = 16 * 1024 * 1024


def seg(number: int) -> str:
    return f"00000001{number // 256:08X}{number % 256:08X}"


def _physical(inst: Installation, age: timedelta, segment: int) -> str:
    """A physical backup that began and ended in ``segment`` (timeline 1)."""
    return inst.backup(
        age,
        kind=BackupKind.INCREMENTAL,
        meta={
            "system_identifier": SYSTEM,
            "timeline": 1,
            "start_lsn": f"0/{segment:X}000028",
            "stop_lsn": f"0/{segment:X}000100",
            "wal_segment_size": MIB16,
        },
    )


@pytest.fixture
def inst(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Installation]:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    installation = Installation.create(tmp_path, secondary=False)
    yield installation
    installation.close()


def test_a_hole_after_a_backup_is_a_warning_naming_it_and_the_backups_it_cuts(
    inst: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    # An older physical backup (in segment 2), a logical one, a newer physical one (in
    # segment 6); archived: 1, 3, 5, 6, 7. Segment 2 is in the older backup's tar; 4 is a
    # hole after it, before the newer one, which the status does not look for.
    older = _physical(inst, timedelta(days=2), 2)
    inst.backup(timedelta(days=1, hours=12))
    newer = _physical(inst, timedelta(days=1), 6)
    repo = inst.repository()
    for number in (1, 3, 5, 6, 7):
        put_wal(repo, SYSTEM, "00000001", seg(number), b"segment %d" % number)
    with inst.context() as ctx:
        everything = verify(ctx, everything=True)
        asked = verify(ctx, backup_ids=[older])
        after = verify(ctx, backup_ids=[newer])
    for result in (everything, asked):
        assert result.ok, result.problems
        [warning] = result.warnings
        assert f"WAL segment {seg(4)} is missing from the archive" in warning
        assert f"archived again from {seg(5)} on" in warning
        assert f"point-in-time recovery of backup {older} stops there" in warning
        assert newer not in warning
        assert seg(2) not in warning
    assert after.ok and after.warnings == []

    # The hole filled, another after both backups: one warning names both.
    put_wal(repo, SYSTEM, "00000001", seg(4), b"segment 4")
    put_wal(repo, SYSTEM, "00000001", seg(9), b"segment 9")
    code, _, err = run_cli(capsys, "--config", str(inst.config), "verify", "--all")
    said = " ".join(err.split())
    assert code == 0, err
    assert said.count("warning:") == 1, err
    assert f"warning: WAL segment {seg(8)} is missing from the archive" in said
    assert f"point-in-time recovery of backups {older}, {newer} stops there" in said


def test_the_daily_slice_looks_too_and_keeps_a_condition_a_failed_listing_does_not_mend(
    inst: Installation, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A slice reads some chunks, and looks after every physical backup all the same: the
    # daily verify is one. Its warning fires walgap:<repository>; a verify that could not
    # list the archive leaves it firing, one that finds the hole filled resolves it.
    older = _physical(inst, timedelta(days=2), 2)
    _physical(inst, timedelta(days=1), 6)
    repo = inst.repository()
    for number in (1, 3, 5, 6):
        put_wal(repo, SYSTEM, "00000001", seg(number), b"segment %d" % number)
    with inst.context() as ctx:
        found = verify(ctx, subset="1/7")
        assert found.ok, found.problems
        [warning] = found.warnings
        assert f"WAL segment {seg(4)} is missing" in warning and older in warning
        assert alerts.firing_keys(ctx, WAL_GAPS) == [WAL_GAPS + "local"]

        def unlistable(*_: object) -> list[str]:
            raise StorageError("the bucket did not answer")

        put_wal(repo, SYSTEM, "00000001", seg(4), b"segment 4")
        with monkeypatch.context() as patched:
            patched.setattr(verify_wal, "list_wal", unlistable)
            blind = verify(ctx, subset="2/7")
        assert ["was not checked for gaps" in w for w in blind.warnings] == [True]
        assert alerts.firing_keys(ctx, WAL_GAPS) == [WAL_GAPS + "local"]
        mended = verify(ctx, subset="3/7")
        assert mended.warnings == []
        assert alerts.firing_keys(ctx, WAL_GAPS) == []

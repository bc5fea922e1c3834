"""``verify --all`` checks that every backup the catalog records in a repository is there.

Verification reads back what a repository's manifests reference. A backup whose manifest
is gone (deleted by someone holding the bucket's credentials, a bucket rolled back, a
repository recreated) references nothing: without this check ``verify --all`` found the
repository whole (exit 0) while ``list`` still showed the backup completed and retention
counted it as good.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from respaldo.cli.main import invoke
from respaldo.domain import BackupKind
from respaldo.operations.verify import verify
from tests.unit.operations.support import PASSPHRASE, Installation

pytestmark = pytest.mark.unit


@pytest.fixture
def inst(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Installation]:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    installation = Installation.create(tmp_path)
    yield installation
    installation.close()


def test_a_backup_whose_manifest_vanished_fails_verify_all(
    inst: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    kept = inst.backup(timedelta(days=2))
    gone = inst.backup(timedelta(days=1))
    inst.replicate()
    (inst.root / "repo" / "manifests" / gone).unlink()
    with inst.context() as ctx:
        result = verify(ctx, everything=True)
    assert not result.ok
    [problem] = result.problems
    assert gone in problem and "manifest" in problem and "local" in problem
    assert kept not in " ".join(result.problems)
    capsys.readouterr()
    assert invoke(["--config", str(inst.config), "verify", "--all"]) == 3
    assert gone in capsys.readouterr().err
    # The mirror still holds it: verifying the mirror finds it whole.
    with inst.context() as ctx:
        assert verify(ctx, everything=True, repository="second").ok


def test_a_copy_whose_manifest_vanished_from_the_mirror_fails_verify_all(
    inst: Installation,
) -> None:
    copied = inst.backup(timedelta(days=1))
    inst.replicate()
    (inst.root / "second" / "manifests" / copied).unlink()
    with inst.context() as ctx:
        result = verify(ctx, everything=True, repository="second")
        assert verify(ctx, everything=True).ok
    assert not result.ok
    [problem] = result.problems
    assert copied in problem and "second" in problem


def test_failed_and_not_yet_copied_backups_are_not_expected(inst: Installation) -> None:
    inst.backup(timedelta(days=3), failed=True)
    inst.backup(timedelta(days=1))  # never copied to the mirror
    with inst.context() as ctx:
        assert verify(ctx, everything=True).ok
        assert verify(ctx, everything=True, repository="second").ok


def test_a_manifest_that_vanishes_while_verify_all_reads_is_reported_if_still_recorded(
    inst: Installation,
) -> None:
    # verify --all passes over a listed manifest gone when its turn comes (a prune
    # deletes manifests, then records, while it reads): one deleted otherwise, whose
    # record is still there, must still fail the verify, not be passed over in silence.
    first = inst.backup(timedelta(days=2))
    gone = inst.backup(timedelta(days=1))
    deleted: list[str] = []

    def delete_once(_bytes: int) -> None:
        # As the first backup is read (every manifest listed already).
        if not deleted:
            (inst.root / "repo" / "manifests" / gone).unlink()
            deleted.append(gone)

    with inst.context() as ctx:
        result = verify(ctx, everything=True, advance=delete_once)
    assert deleted == [gone]
    assert result.backups == 1, first
    [problem] = result.problems
    assert gone in problem and "manifest is not there" in problem


def test_an_incremental_is_verified_with_its_chain_and_fails_once_a_parent_is_gone(
    inst: Installation,
) -> None:
    # An incremental backup restores only combined with the backups it builds on: its
    # own chunks whole, verify said "ok" (exit 0) of one whose parent was gone.
    root = inst.backup(timedelta(days=3), kind=BackupKind.INCREMENTAL)
    middle = inst.backup(timedelta(days=2), kind=BackupKind.INCREMENTAL, parent=root)
    newest = inst.backup(timedelta(days=1), kind=BackupKind.INCREMENTAL, parent=middle)
    with inst.context() as ctx:
        whole = verify(ctx, backup_ids=[newest])
    assert whole.ok and whole.backups == 3, whole
    (inst.root / "repo" / "manifests" / middle).unlink()
    with inst.context() as ctx:
        one = verify(ctx, backup_ids=[newest])
        everything = verify(ctx, everything=True)
    [problem] = one.problems
    assert f"backup {middle}, which this incremental backup restores on top of, is gone" in (
        problem
    )
    assert f"[backup {newest} object manifests/{middle}]" in problem
    assert one.backups == 2  # the root still read
    # --all: the chain's problem besides the catalog's record of the lost manifest.
    assert problem in everything.problems, everything.problems
    assert len(everything.problems) == 2, everything.problems

"""What reads every manifest while a prune deletes backups: ``verify --all``,
``catalog rebuild`` and ``repair``'s search for the backups that lose data. The backups
it deleted are no longer the repository's: the others are still read, and none of the
deleted ones comes back as a record."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest

from respaldo.errors import BackupProtected
from respaldo.operations.catalog_rebuild import rebuild_catalog
from respaldo.operations.context import Context
from respaldo.operations.deletion import delete_backup
from respaldo.operations.verify import verify
from respaldo.repository.locks import shared_lease
from respaldo.repository.repair import repair_repository
from tests.integration.logical.conftest import Respaldo, Run
from tests.manifest_hook import after_manifest_read

pytestmark = pytest.mark.integration


def _expire_all_but_the_newest(respaldo: Respaldo) -> None:
    with respaldo.config.open("a") as fh:
        fh.write("\n[retention]\nkeep_until_expires = false\nkeep_last = 1\nmin_keep = 1\n")


def _prune_waiting_for_none(respaldo: Respaldo) -> Callable[[], Run]:
    """A real ``respaldo prune`` in its own process whose collection gives up at once
    when a lease holds it off (``--wait 0``), as it would have waited."""
    return partial(respaldo.run_process, "prune", "--wait", "0")


def test_verify_all_skips_the_backups_a_prune_deletes_while_it_reads(
    respaldo: Respaldo,
) -> None:
    _expire_all_but_the_newest(respaldo)
    first, second, newest = (respaldo.backup()["id"] for _ in range(3))
    pruned: list[int] = []

    def prune_once(_bytes: int) -> None:
        # As verify reads the first backup it listed (the other manifests listed
        # already), a real prune, in its own process, deletes the two older ones. Its
        # collection then finds verify's lease and gives up at once (--wait 0), as it
        # would have waited.
        if not pruned:
            run = respaldo.run_process("prune", "--wait", "0")
            pruned.append(run.code)
            assert "2 backups deleted" in run.err, str(run)

    ctx = Context.open(respaldo.settings())
    try:
        result = verify(ctx, everything=True, advance=prune_once)
    finally:
        ctx.close()

    assert pruned == [1]  # its collection was held off by verify's lease
    manifests = {p.name for p in (respaldo.repo_dir / "manifests").iterdir()}
    assert manifests == {newest}, (first, second)
    # The first listed was read whole (its manifest was loaded before the prune), a
    # deleted one after it was gone when its turn came, and the newest was verified:
    # before, verify stopped at the deleted one with "no backup ... in file://..." and
    # verified nothing more. Verify reads in name order, and ids of one second sort by
    # their random part: the first listed may be any of the three.
    assert result.ok, result.problems
    assert result.backups == len({min(first, second, newest), newest})
    # The prune finishes its work once verify is done, and what is left is whole.
    assert respaldo.run("prune").code == 0
    run = respaldo.run("verify", "--all")
    assert run.code == 0, str(run)


def test_catalog_rebuild_brings_back_no_record_of_a_backup_a_prune_deletes(
    respaldo: Respaldo,
) -> None:
    _expire_all_but_the_newest(respaldo)
    first, second, newest = (respaldo.backup()["id"] for _ in range(3))
    # Only when it happens: the first manifest is read (whichever: ids of one second sort
    # by their random part), then a real prune, in its own process, deletes the two
    # older backups (manifests, then records).
    with (
        Context.open(respaldo.settings()) as ctx,
        after_manifest_read(None, partial(respaldo.run_process, "prune")) as pruned,
    ):
        result = rebuild_catalog(ctx)

    assert [p.code for p in pruned] == [0]
    assert "2 backups deleted" in pruned[0].err, str(pruned[0])
    # Before: the first came back as a completed record of a backup that no longer
    # exists, and the rebuild then stopped at the second ("no backup ... in file://").
    assert [r.id for r in respaldo.records()] == [newest], (first, second)
    assert (result.created, result.updated) == (0, 1)
    run = respaldo.run("verify", "--all")
    assert run.code == 0, str(run)


def test_catalog_rebuild_names_no_lost_data_of_a_backup_a_prune_deletes(respaldo: Respaldo) -> None:
    _expire_all_but_the_newest(respaldo)
    first, second, newest = (respaldo.backup()["id"] for _ in range(3))
    # A chunk every backup shares (the data did not change) with no good copy anywhere:
    # repair records it as lost, for the three.
    respaldo.damage_dump(newest)
    assert respaldo.run("verify", newest).code == 3
    respaldo.run("repair")
    assert {first, second, newest} <= {
        b for lost in respaldo.repository().quarantine.lost.values() for b in lost.backups
    }
    # The first manifest is read (whichever), then a real prune deletes the two older
    # backups (its collection held off by the lease below, so what repair recorded stays).
    with (
        Context.open(respaldo.settings()) as ctx,
        after_manifest_read(None, _prune_waiting_for_none(respaldo)) as pruned,
        shared_lease(ctx.repository("local"), "test"),
    ):
        result = rebuild_catalog(ctx)

    assert [p.code for p in pruned] == [1]
    assert "2 backups deleted" in pruned[0].err, str(pruned[0])
    assert [r.id for r in respaldo.records()] == [newest], (first, second)
    # Before: "damaged: <first> lost chunks ...; marked as failed verification" was
    # printed for a backup whose record the rebuild had just removed again.
    assert first not in result.lost_data, result.lost_data
    assert second not in result.lost_data


def test_repair_names_the_backups_that_lose_data_while_a_prune_deletes_another(
    respaldo: Respaldo, monkeypatch: pytest.MonkeyPatch
) -> None:
    _expire_all_but_the_newest(respaldo)
    first, second, newest = (respaldo.backup()["id"] for _ in range(3))
    # A chunk of the newest dump with no good copy anywhere (no mirror): repair then
    # reads every manifest for the backups that reference it.
    respaldo.damage_dump(newest)
    assert respaldo.run("verify", newest).code == 3
    repo = respaldo.repository()
    listed = repo.backup_ids
    pruned: list[int] = []

    def list_then_prune() -> list[str]:
        # Right after repair listed the manifests, a real prune, in its own process,
        # deletes the two older ones; its collection finds the repair's lease and gives
        # up.
        ids = listed()
        if not pruned:
            run = respaldo.run_process("prune", "--wait", "0")
            pruned.append(run.code)
            assert "2 backups deleted" in run.err, str(run)
        return ids

    monkeypatch.setattr(repo, "backup_ids", list_then_prune)
    with shared_lease(repo, "repair"):
        report = repair_repository(repo, [])

    assert pruned == [1]
    manifests = {p.name for p in (respaldo.repo_dir / "manifests").iterdir()}
    assert manifests == {newest}, (first, second)
    # Before: repair stopped at the deleted one with "no backup ... in file://..." and
    # named none of the backups that lose data.
    assert len(report.lost_chunks) == 1
    named = {b.backup_id for b in report.lost_backups}
    assert named == {newest}, (first, second, newest, named)
    assert report.problems == []


@pytest.mark.parametrize("options", [(), ("--table", "finanzas.facturas")], ids=["all", "table"])
def test_a_restore_keeps_the_backup_it_reads_from_a_prune_meanwhile(
    respaldo: Respaldo, options: tuple[str, ...]
) -> None:
    _expire_all_but_the_newest(respaldo)
    older, newest = (respaldo.backup()["id"] for _ in range(2))
    # The restore has its manifest: a real prune, in its own process, decides then (the
    # restore's job is running), as a nightly prune does in the middle of the restore of
    # the last good backup before a disaster.
    with after_manifest_read(older, _prune_waiting_for_none(respaldo)) as pruned:
        run = respaldo.run("restore", older, "--target-database", "erp_copy", *options)

    assert run.code == 0, str(run)
    assert len(pruned) == 1
    # Before: "1 backups deleted": the backup just restored was gone, its record too,
    # and the next restore of it (the first went wrong, or another copy is needed) failed.
    assert "0 backups deleted, 2 kept" in pruned[0].err, str(pruned[0])
    assert "being restored" in pruned[0].out, str(pruned[0])
    assert {r.id for r in respaldo.records()} == {older, newest}
    assert respaldo.run("verify", older).code == 0
    # Once the restore is over, the next prune expires it as its rules say.
    run = respaldo.run("prune")
    assert run.code == 0, str(run)
    assert [r.id for r in respaldo.records()] == [newest]


def test_a_restore_test_keeps_the_backup_it_reads_from_a_prune_meanwhile(
    respaldo: Respaldo,
) -> None:
    _expire_all_but_the_newest(respaldo)
    older, newest = (respaldo.backup()["id"] for _ in range(2))
    # The drill has read the manifest, and not yet recorded its run.
    with after_manifest_read(older, _prune_waiting_for_none(respaldo)) as pruned:
        run = respaldo.run("drill", older)

    assert run.code == 0, str(run)
    assert len(pruned) == 1
    # Before: "1 backups deleted": the drill passed and marked verified a backup that
    # was gone.
    assert "0 backups deleted, 2 kept" in pruned[0].err, str(pruned[0])
    assert "being restored" in pruned[0].out, str(pruned[0])
    assert {r.id for r in respaldo.records()} == {older, newest}
    # It passed: now the newest verified, which retention keeps anyway.
    run = respaldo.run("prune", "--dry-run")
    assert run.code == 0, str(run)
    assert "newest verified" in run.out, str(run)


def test_a_backup_being_restored_is_not_deleted_by_hand(respaldo: Respaldo) -> None:
    older, newest = (respaldo.backup()["id"] for _ in range(2))

    def delete_by_hand() -> BackupProtected:
        # As the restore has read the manifest, someone deletes the backup by hand
        # (DELETE /admin/backups/ID), in a session of its own.
        with Context.open(respaldo.settings()) as ctx, pytest.raises(BackupProtected) as exc:
            delete_backup(ctx, older)
        return exc.value

    with after_manifest_read(older, delete_by_hand) as refused:
        run = respaldo.run("restore", older, "--target-database", "erp_copy")

    assert run.code == 0, str(run)
    # Before: deleted (its manifest and record) while the restore read it.
    assert "being restored" in str(refused[0]), refused
    assert "once it ends" in (refused[0].hint or ""), refused[0].hint
    assert {r.id for r in respaldo.records()} == {older, newest}
    with Context.open(respaldo.settings()) as ctx:
        delete_backup(ctx, older)
    assert [r.id for r in respaldo.records()] == [newest]

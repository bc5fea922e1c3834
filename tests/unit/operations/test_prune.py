"""The prune operation over a real SQLite catalog and two real local repositories."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from respaldo.catalog import BackupCopies, DrillRuns, Jobs
from respaldo.config import RepositorySettings
from respaldo.domain import BackupKind, BackupStatus, CopyStatus, JobKind, TriggeredBy
from respaldo.errors import (
    BackupNotFound,
    ClockAhead,
    PermanentStorageError,
    RespaldoError,
    StorageError,
)
from respaldo.operations import copy as copy_module
from respaldo.operations import repositories
from respaldo.operations.copy import copy_backups, replicate
from respaldo.operations.deletion import delete_backup
from respaldo.operations.drill import run_drill
from respaldo.operations.listing import list_backups
from respaldo.operations.prune import PruneResult, plan, prune
from respaldo.operations.restore_request import RestoreRequest, restore
from respaldo.processes import this_host
from respaldo.repository import Lease, LockKind, verify_repository
from respaldo.repository.copy import copy_backup as copy_backup_of_repository
from respaldo.storage.base import Storage
from tests.unit.operations.support import NOW, Installation, data_for, run_cli
from tests.unit.repository.helpers import flip_byte, pack_of_chunk, stream_entries

# Histories of many backups: written without flushing each to the disk (conftest.py).
pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("no_disk_sync")]

DAY = timedelta(days=1)
PHYSICAL = BackupKind.INCREMENTAL


def tree(root: Path) -> dict[str, bytes]:
    """Every object of the repositories: proof that nothing changed there."""
    out = {}
    for directory in (root / "repo", root / "second"):
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                out[str(path.relative_to(root))] = path.read_bytes()
    return out


@pytest.fixture
def inst(tmp_path: Path) -> Iterator[Installation]:
    installation = Installation.create(tmp_path)
    yield installation
    installation.close()


def run_prune(inst: Installation, **options: Any) -> PruneResult:
    """One ``respaldo prune`` run: its own context, as the CLI opens one."""
    ctx = inst.context()
    try:
        return prune(ctx, now=NOW, **options)
    finally:
        ctx.close()


def assert_agree(inst: Installation) -> None:
    """Catalog and both repositories hold the same completed backups, which verify."""
    completed = inst.completed_ids()
    for name in (None, "second"):
        assert inst.manifests(name) == completed
        report = verify_repository(inst.repository(name))
        assert report.ok, report.problems
        assert report.unreferenced_packs == 0


def test_dry_run_names_rules_and_changes_nothing(inst: Installation) -> None:
    ids = [inst.backup(age * DAY) for age in (12, 10, 8, 6, 3, 1)]
    inst.replicate()
    before = tree(inst.root)
    result = run_prune(inst, dry_run=True)
    assert tree(inst.root) == before
    assert inst.record_ids() == set(ids)
    decisions = {d.backup.id: d for d in result.decisions}
    assert decisions[ids[-1]].reasons[0] == "newest completed"
    assert decisions[ids[3]].rule.startswith("retention until")
    assert {i for i, d in decisions.items() if not d.keep} == set(ids[:3])
    assert "expired" in decisions[ids[0]].rule
    for outcome in result.repositories:
        assert outcome.gc is not None and outcome.gc.dry_run
        assert outcome.gc.bytes_reclaimed > 0 and outcome.manifests_deleted == 0
    assert result.deleted == []


def test_prune_deletes_everywhere_and_reclaims(inst: Installation) -> None:
    ids = [inst.backup(age * DAY) for age in (12, 10, 8, 6, 3, 1)]
    inst.replicate()
    preview = plan(inst.ctx, now=NOW)
    result = run_prune(inst)
    assert result.ok, [r.error for r in result.repositories]
    assert sorted(result.deleted) == sorted(ids[:3])
    assert [d.action for d in result.decisions] == [d.action for d in preview.decisions]
    assert inst.record_ids() == set(ids[3:])
    for outcome in result.repositories:
        assert outcome.manifests_deleted == 3
        assert outcome.gc is not None and outcome.bytes_reclaimed > 0
    assert_agree(inst)
    for backup_id in ids[3:]:
        assert inst.read(backup_id) == data_for(backup_id)
        assert inst.read(backup_id, "second") == data_for(backup_id)
    # Nothing more to do.
    again = run_prune(inst)
    assert again.deleted == [] and again.bytes_reclaimed == 0


def test_a_week_of_failed_backups_keeps_the_last_good_ones(inst: Installation) -> None:
    good = [inst.backup(age * DAY) for age in (20, 15, 11, 10)]
    failed = [inst.backup(age * DAY, failed=True) for age in (9, 8, 6, 4, 2, 1)]
    inst.replicate()
    # No backup has completed for 10 days, more than [retention] clock_check_days (7),
    # and the one 15 days old expired since: the prune refuses and changes nothing, as
    # for a clock stepped ahead (tests/integration/prune/test_prune_cli.py).
    with pytest.raises(ClockAhead, match="10 days after the newest backup completed"):
        run_prune(inst)
    assert inst.completed_ids() == set(good)
    assert inst.record_ids() == set(good) | set(failed)
    result = run_prune(inst, trust_clock=True)
    decisions = {d.backup.id: d for d in result.decisions}
    assert decisions[good[-1]].reasons[0] == "newest completed"
    assert decisions[good[-2]].reasons == ("minimum 2 good backups",)
    assert inst.completed_ids() == set(good[-2:])
    # Failed records older than failed_days (7) went; they held no data.
    assert inst.record_ids() == set(good[-2:]) | set(failed[2:])
    assert_agree(inst)


def test_newest_verified_survives(inst: Installation) -> None:
    verified = inst.backup(40 * DAY, verified=True)
    others = [inst.backup(age * DAY) for age in (30, 20, 10)]
    bad = inst.backup(9 * DAY, verified=False)
    inst.replicate()
    result = run_prune(inst)
    decisions = {d.backup.id: d for d in result.decisions}
    assert decisions[verified].reasons == ("newest verified",)
    # The newest backup failed verification: min_keep counts the good ones first.
    assert decisions[bad].reasons == ("newest completed",)
    assert decisions[others[-1]].reasons == ("newest good", "minimum 2 good backups")
    assert inst.completed_ids() == {verified, others[-1], others[-2], bad}
    assert_agree(inst)


def test_policy_from_config_overrides(tmp_path: Path) -> None:
    inst = Installation.create(
        tmp_path,
        extra="""
[retention]
min_keep = 1

[[retention.overrides]]
database = "erp"
keep_until_expires = false
keep_last = 2
""",
    )
    erp = [inst.backup(age * DAY) for age in (5, 4, 3, 2)]
    crm = [inst.backup(age * DAY, database="crm") for age in (5, 4)]
    pinned = inst.backup(60 * DAY, pinned=True)
    inst.replicate()
    try:
        result = run_prune(inst, database="erp")
        assert sorted(result.deleted) == sorted(erp[:2])
        assert inst.completed_ids() == set(erp[2:]) | set(crm) | {pinned}
        assert_agree(inst)
    finally:
        inst.close()


class _Refusing:
    """A store that refuses every request with ``error`` (its location still known)."""

    def __init__(self, inner: Storage, error: StorageError) -> None:
        self.location = inner.location
        self.error = error

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def refuse(*args: object, **kwargs: object) -> Any:
            raise self.error

        return refuse


def test_unreachable_secondary_keeps_the_record_until_done(
    inst: Installation, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # 8 days: no silence longer than [retention] clock_check_days before the
    # newer ones, which prune would take for a step of the clock.
    old = inst.backup(8 * DAY)
    new = [inst.backup(age * DAY) for age in (2, 1)]
    inst.replicate()
    # A mirror that answers but refuses (its credentials rejected, access denied: the
    # S3 store's permanent errors) is no outage to wait out: prune fails there, as
    # before; deferred, it was a throttled warning of a prune that completed nightly.
    real_open_store = repositories.open_store
    denied = PermanentStorageError("cannot list s3://b/m: AccessDenied (HTTP 403)")

    def open_store(repo: RepositorySettings, *, retries: int = 4) -> Storage:
        store = real_open_store(repo, retries=retries)
        return cast(Storage, _Refusing(store, denied)) if repo.name == "second" else store

    monkeypatch.setattr(repositories, "open_store", open_store)
    result = run_prune(inst)
    monkeypatch.setattr(repositories, "open_store", real_open_store)
    assert not result.ok and result.repositories[1].deferred is None
    assert "AccessDenied" in (result.repositories[1].error or "")
    assert old in inst.record_ids()
    second = inst.root / "second"
    shutil.move(second, inst.root / "second.away")
    result = run_prune(inst)
    # Deferred, not failed: the primary was pruned, the mirror's part waits.
    assert result.ok, result.repositories
    deferred = result.repositories[1]
    assert deferred.error is None and "cannot open" in (deferred.deferred or "")
    said = " ".join(result.warnings)
    assert "repository second could not be reached" in said
    assert "1 expired backup keeps its record until it is deleted there" in said
    # Gone from the primary, still recorded: the next run must finish the job.
    assert old not in inst.manifests() and old in inst.record_ids()
    assert result.deleted == []
    # The record says it: the mirror alone holds it, and it is not listed or copied.
    with inst.ctx.catalog.read() as session:
        copies = BackupCopies(session)
        assert old not in copies.held_in("local") and old in copies.held_in("second")
        assert copies.missing_in("second") == []
    assert old not in {b.id for b in list_backups(inst.ctx).backups}
    # A restore of it says that it expired, whatever its kind (into a data directory or
    # a directory: "no backup ... in file:///..." before, with 'respaldo list' as hint).
    ctx = inst.context()  # as the command opens one (the mirror is not open already)
    try:
        requests = (
            RestoreRequest(old, target_datadir=inst.root / "pgdata"),
            RestoreRequest(old, target_dir=inst.root / "f"),
        )
        for request in requests:
            with pytest.raises(BackupNotFound) as refused:
                restore(ctx, request)
            said = str(refused.value)
            assert f"backup {old} was deleted from repository local on " in said
        # A copy of it asked for by id is refused as expired, before the mirror (down)
        # is opened: it failed "no object manifests/...", alerted, and recorded a failed
        # copy over the one the mirror holds.
        (refusal,) = copy_backups(ctx, [old], "second")
        assert refusal.refused and "repository second still holds it" in (refusal.error or "")
        # A copy of a copied backup that cannot open the mirror fails, but leaves its
        # completed copy alone: a failed row over it made the mirror count as lacking it
        # (retention, the status, copy --all).
        with pytest.raises(RespaldoError):
            copy_backups(ctx, [new[1]], "second")
        # So does a restore test of it by id ("no backup ... in file:///..." before).
        with pytest.raises(BackupNotFound, match=f"backup {old} was deleted from repository local"):
            run_drill(ctx, old)
    finally:
        ctx.close()
    with inst.ctx.catalog.read() as session:
        copies = BackupCopies(session)
        assert {old, new[1]} <= copies.held_in("second")
        assert copies.missing_in("second") == []
    # So does a deletion by hand meanwhile, which the mirror fails.
    ctx = inst.context()
    try:
        with pytest.raises(RespaldoError, match="could not be deleted everywhere"):
            delete_backup(ctx, new[0])
    finally:
        ctx.close()
    with inst.ctx.catalog.read() as session:
        assert BackupCopies(session).held_in("local") == {new[1]}
    # Recorded as a prune's deletion is (primary_deleted_at), it is said to be deleted
    # from the primary, by a prune or by hand: it was "expired: a prune deleted it".
    ctx = inst.context()
    try:
        (refusal,) = copy_backups(ctx, [new[0]], "second")
    finally:
        ctx.close()
    said = refusal.error or ""
    assert refusal.refused and f"backup {new[0]} was deleted from repository local on " in said
    assert "(expired by a prune, or by hand) while a mirror could not be reached" in said
    assert "expired:" not in said and "a prune deleted" not in said
    shutil.move(inst.root / "second.away", second)
    # Read everywhere and held nowhere (the mirror lost it too): it expired all the
    # same, not a failed restore test to record and alert about.
    held = second / "manifests" / old
    held.rename(inst.root / "held")
    ctx = inst.context()
    try:
        with pytest.raises(BackupNotFound, match=f"backup {old} was deleted from repository local"):
            run_drill(ctx, old)
    finally:
        ctx.close()
    (inst.root / "held").rename(held)
    with inst.ctx.catalog.read() as session:
        assert DrillRuns(session).list(backup_id=old) == []
    code, _, err = run_cli(capsys, "--config", str(inst.config), "copy", old, "--to", "second")
    said = " ".join(err.split())
    assert code == 1 and f"not copied {old}: backup {old} was deleted from repository" in said
    result = run_prune(inst)
    assert result.ok and result.deleted == [old]
    delete_backup(inst.ctx, new[0])  # again, as its error said
    assert inst.record_ids() == {new[1]}
    assert_agree(inst)


def test_collection_refused_while_a_backup_runs(inst: Installation) -> None:
    # 8 days: no silence longer than [retention] clock_check_days before the
    # newer ones, which prune would take for a step of the clock.
    old = inst.backup(8 * DAY)
    new = [inst.backup(age * DAY) for age in (2, 1)]
    inst.replicate()
    storage = inst.repository().storage
    lease = Lease.acquire(storage, LockKind.SHARED, "backup in another process")
    try:
        result = run_prune(inst, wait=0)
    finally:
        lease.release()
    assert not result.ok
    assert "in use" in (result.repositories[0].error or "")
    assert result.repositories[1].error is None  # the secondary was collected
    # The backup itself is gone everywhere (manifests need no lock), the space not yet.
    assert result.deleted == [old] and inst.record_ids() == set(new)
    result = run_prune(inst)
    # Now the primary is collected too, against the surviving backups only. (Whether
    # space comes back depends on where the old backup's few unique chunks were cut,
    # which depends on the random repository key: packs still mostly live are kept.)
    primary = result.repositories[0]
    assert result.ok and primary.error is None and primary.gc is not None
    assert primary.gc.backups == len(new) and not primary.gc.dry_run
    assert_agree(inst)


def test_a_failed_record_with_a_manifest_is_left_alone(inst: Installation) -> None:
    """The process died between the manifest and the catalog, and the record was marked
    failed: the backup exists, so prune must not expire it as a failure."""
    backup_id = inst.backup(30 * DAY)
    inst.backup(2 * DAY)
    inst.backup(1 * DAY)
    inst.replicate()
    with sqlite3.connect(inst.root / "catalog.db") as db:
        db.execute(
            "UPDATE backup_records SET status = ? WHERE id = ?",
            (BackupStatus.FAILED.value, backup_id),
        )
    result = run_prune(inst)
    assert backup_id not in result.deleted
    assert any(backup_id in w and "catalog rebuild" in w for w in result.warnings)
    assert backup_id in inst.manifests()


def test_a_damaged_chunk_found_by_collection_fails_prune_and_is_quarantined(
    tmp_path: Path,
) -> None:
    """Repacking authenticates every live chunk it copies. A kept backup's chunk found
    damaged there is news nobody had: prune must fail (and alert) rather than report
    success, and the damaged copy must be quarantined so that no backup deduplicates
    against it meanwhile. Nothing a kept backup needs is deleted."""
    # Every pack counts as small: all of them are repacked, so every live chunk is read.
    inst = Installation.create(tmp_path, secondary=False, extra="[gc]\nsmall_pack_fraction = 1.0")
    try:
        # 8 days: no silence longer than [retention] clock_check_days before the
        # newer ones, which prune would take for a step of the clock.
        old = inst.backup(8 * DAY)
        kept = [inst.backup(age * DAY) for age in (2, 1)]
        repo = inst.repository()
        others = {
            cid for b in (old, kept[0]) for cid, _ in stream_entries(repo, repo.load_manifest(b))
        }
        cid = next(
            c for c, _ in stream_entries(repo, repo.load_manifest(kept[1])) if c not in others
        )
        name, offset, _ = pack_of_chunk(repo, cid)
        flip_byte(repo.storage, name, offset + 20)

        result = run_prune(inst)
        assert result.deleted == [old]
        (outcome,) = result.repositories
        assert not result.ok
        assert outcome.error is not None and "damaged" in outcome.error, outcome.error
        assert "verify --all" in outcome.error
        assert inst.manifests() == set(kept)
        assert name.rsplit("/", 1)[1] in {p.name for p in (tmp_path / "repo" / "packs").rglob("*")}
        # Quarantined: a fresh open leaves the damaged copy out of the index.
        assert inst.repository().index.get(cid) is None
        assert inst.read(kept[0]) == data_for(kept[0])
    finally:
        inst.close()


def test_backups_no_repository_holds_do_not_count_as_good(tmp_path: Path) -> None:
    """The two newest backups' manifests are gone from the repository (deleted by hand,
    lost with a bucket's objects): they cannot be restored, so the older backup, the only
    one left, is the last good one and must not be expired in their favour."""
    inst = Installation.create(tmp_path, secondary=False)
    try:
        survivor = inst.backup(10 * DAY)  # expired by date; kept only by min_keep
        gone = [inst.backup(age * DAY) for age in (2, 1)]
        for backup_id in gone:
            (tmp_path / "repo" / "manifests" / backup_id).unlink()
        result = run_prune(inst)
        decisions = {d.backup.id: d for d in result.decisions}
        assert decisions[survivor].keep, decisions[survivor].rule
        assert survivor not in result.deleted
        assert inst.manifests() == {survivor}
        assert inst.read(survivor) == data_for(survivor)
        assert sum("no repository holds its manifest" in w for w in result.warnings) == 2
    finally:
        inst.close()


def test_backups_lost_while_a_mirror_is_down_do_not_count_as_good(tmp_path: Path) -> None:
    """As above, with the mirror unreachable. The four newest backups never reached it
    (the catalog records no copy there) and the two newest are gone from the primary, so
    no repository can hold them: the mirror's outage must not make them count toward
    ``min_keep`` (2) and expire the older of the two backups that still restore (the
    newer is kept anyway, as the newest the primary holds)."""
    inst = Installation.create(tmp_path)
    try:
        mirrored = inst.backup(13 * DAY)
        inst.replicate()
        good = [inst.backup(age * DAY) for age in (9, 8)]  # expired by date
        gone = [inst.backup(age * DAY) for age in (2, 1)]
        for backup_id in gone:
            (tmp_path / "repo" / "manifests" / backup_id).unlink()
        shutil.move(tmp_path / "second", tmp_path / "second.away")
        result = run_prune(inst)
        decisions = {d.backup.id: d for d in result.decisions}
        for backup_id in good:
            assert decisions[backup_id].keep, decisions[backup_id].rule
            assert inst.read(backup_id) == data_for(backup_id)
        assert inst.manifests() == {mirrored, *good}
    finally:
        inst.close()


class _Interleaved:
    """A real store that runs ``before_delete(name)`` before deleting an object (and
    ``before_delete("put <name>")`` before writing one): another process's work,
    interleaved at exactly that point."""

    def __init__(self, inner: Storage, before_delete: Callable[[str], None]) -> None:
        self.inner = inner
        self.before_delete = before_delete

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.inner, attr)

    def delete(self, name: str) -> None:
        self.before_delete(name)
        self.inner.delete(name)

    def put(self, name: str, data: bytes) -> None:
        self.before_delete(f"put {name}")
        self.inner.put(name, data)


def test_a_backup_deleted_by_someone_else_meanwhile_does_not_stop_prune(
    inst: Installation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two prunes (or a prune and a deletion by hand) at once: both expire the same old
    backup; the other one deletes its record while this one deletes its manifests. This
    one must carry on (collect garbage, renew locks), not fail on the missing record."""
    # 8 days: no silence longer than [retention] clock_check_days before the
    # newer ones, which prune would take for a step of the clock.
    old = inst.backup(8 * DAY)
    kept = [inst.backup(age * DAY) for age in (2, 1)]
    inst.replicate()
    other = inst.context()
    busy = False

    def concurrently(name: str) -> None:
        nonlocal busy
        if name == f"manifests/{old}" and not busy:
            busy = True
            delete_backup(other, old)

    real_open_store = repositories.open_store

    def open_store(repo: RepositorySettings, *, retries: int = 4) -> Storage:
        return cast(Storage, _Interleaved(real_open_store(repo, retries=retries), concurrently))

    monkeypatch.setattr(repositories, "open_store", open_store)
    try:
        result = run_prune(inst)
    finally:
        other.close()
    assert busy
    assert result.ok, [r.error for r in result.repositories]
    assert all(r.gc is not None and not r.gc.dry_run for r in result.repositories)
    assert inst.record_ids() == set(kept)
    monkeypatch.setattr(repositories, "open_store", real_open_store)
    assert_agree(inst)


def test_a_backup_expired_while_it_is_copied_is_not_left_in_the_mirror(
    inst: Installation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The offsite repository was away for a while; when it is back, the next backup
    copies everything it lacks, old backups too, while the nightly prune expires the
    oldest. The copy must not bring an expired backup back to life in the mirror after
    prune deleted it everywhere (and its record): a backup no record names, kept for ever,
    that 'catalog rebuild' would even adopt again."""
    # 8 days: no silence longer than [retention] clock_check_days before the
    # newer ones, which prune would take for a step of the clock.
    old = inst.backup(8 * DAY)
    kept = [inst.backup(age * DAY) for age in (2, 1)]
    other = inst.context()
    pruned: list[PruneResult] = []

    def concurrently(what: str) -> None:
        if what == f"put manifests/{old}" and not pruned:
            pruned.append(prune(other, now=NOW, wait=0))

    real_open_store = repositories.open_store

    def open_store(repo: RepositorySettings, *, retries: int = 4) -> Storage:
        return cast(Storage, _Interleaved(real_open_store(repo, retries=retries), concurrently))

    monkeypatch.setattr(repositories, "open_store", open_store)
    try:
        copies = replicate(inst.context())
    finally:
        other.close()
    monkeypatch.setattr(repositories, "open_store", real_open_store)
    assert pruned and pruned[0].deleted == [old]
    assert {c.backup_id for c in copies if c.ok} == set(kept)
    (failed,) = [c for c in copies if not c.ok]
    assert failed.backup_id == old and "deleted" in (failed.error or "")
    assert inst.record_ids() == set(kept)
    assert inst.manifests("second") == set(kept)
    result = run_prune(inst)
    assert result.ok and not result.warnings, result.warnings
    assert_agree(inst)


def test_an_incremental_whose_parent_is_gone_does_not_count_as_good(tmp_path: Path) -> None:
    """A chain whose middle backup's manifest is gone from every repository: its newest
    backup restores only on top of it, so it cannot be restored either, and must not
    take the place of the older full backup, the last physical one that restores."""
    inst = Installation.create(tmp_path, secondary=False, extra="[retention]\nmin_keep = 1")
    try:
        full = inst.backup(10 * DAY, kind=PHYSICAL)  # expired by date
        root = inst.backup(3 * DAY, kind=PHYSICAL)
        newest = inst.backup(1 * DAY, kind=PHYSICAL, parent=root)
        (tmp_path / "repo" / "manifests" / root).unlink()
        result = run_prune(inst)
        decisions = {d.backup.id: d for d in result.decisions}
        assert decisions[full].keep, decisions[full].rule
        assert inst.manifests() == {full, newest}
        assert inst.read(full) == data_for(full)
        assert any(newest in w and "cannot be restored" in w for w in result.warnings)
    finally:
        inst.close()


def test_a_kept_backup_gone_from_one_repository_is_warned_about(inst: Installation) -> None:
    """A kept backup's manifest disappeared from the primary (deleted by hand, a partial
    restore of the directory) while the offsite copy still holds it: the collection there
    now removes what only that backup needed. Prune must say so, not stay silent because
    some repository still holds it."""
    kept = [inst.backup(age * DAY) for age in (3, 2, 1)]
    inst.replicate()
    (inst.root / "repo" / "manifests" / kept[0]).unlink()
    result = run_prune(inst)
    assert result.deleted == []
    (warning,) = [w for w in result.warnings if kept[0] in w]
    assert "local" in warning and "second" in warning, warning
    assert inst.read(kept[0], "second") == data_for(kept[0])


def test_a_backup_deleted_as_its_failed_copy_is_recorded_does_not_stop_the_others(
    inst: Installation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy that fails, and a prune that expires that backup between the copy's look at
    its record (still there) and the failure's write to it: the other backups of the run
    are copied all the same, and the expired one is told as deleted, not a failure."""
    # 8 days: no silence longer than [retention] clock_check_days before the
    # newer ones, which prune would take for a step of the clock.
    old = inst.backup(8 * DAY)
    kept = [inst.backup(age * DAY) for age in (2, 1)]
    other = inst.context()
    real_deleted = copy_module._deleted

    def copy_backup(source: Any, destination: Any, backup_id: str, *rest: Any, **kw: Any) -> Any:
        if backup_id == old:
            raise StorageError("the mirror refused the object")
        return copy_backup_of_repository(source, destination, backup_id, *rest, **kw)

    def deleted(ctx: Any, backup_id: str) -> bool:
        answer = real_deleted(ctx, backup_id)
        if backup_id == old:
            prune(other, now=NOW, wait=0)  # just after the look
        return answer

    monkeypatch.setattr(copy_module, "copy_backup", copy_backup)
    monkeypatch.setattr(copy_module, "_deleted", deleted)
    try:
        copies = replicate(inst.context())
    finally:
        other.close()
    assert {c.backup_id for c in copies if c.ok} == set(kept)
    (failed,) = [c for c in copies if not c.ok]
    assert failed.backup_id == old and "deleted" in (failed.error or "")
    assert inst.record_ids() == set(kept)


def test_a_backup_expired_while_a_mirror_waits_as_it_is_copied_is_no_failed_copy(
    inst: Installation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prune that cannot reach the mirror deletes a backup from the primary while 'copy
    ID --to NAME' copies it there: its record stays (primary_deleted_at), so the copy,
    failing on the manifest gone from the primary, took it for a failed copy, recorded
    and alerted. It expired: said so, with no failed row and no alert."""
    # 8 days: no silence longer than [retention] clock_check_days before the
    # newer ones, which prune would take for a step of the clock.
    old = inst.backup(8 * DAY)
    kept = [inst.backup(age * DAY) for age in (2, 1)]
    other = inst.context()
    second = inst.root / "second"
    alerted: list[str] = []

    def copy_backup(source: Any, destination: Any, backup_id: str, *rest: Any, **kw: Any) -> Any:
        shutil.move(second, inst.root / "second.away")
        try:
            pruned = prune(other, now=NOW, wait=0)
        finally:
            shutil.move(inst.root / "second.away", second)
        assert pruned.deleted == [] and old not in inst.manifests()
        return copy_backup_of_repository(source, destination, backup_id, *rest, **kw)

    monkeypatch.setattr(copy_module, "copy_backup", copy_backup)
    monkeypatch.setattr(copy_module, "_alert", lambda ctx, b, r, exc: alerted.append(b))
    try:
        (outcome,) = copy_backups(inst.context(), [old], "second")
    finally:
        other.close()
    assert outcome.refused and f"backup {old} was deleted from" in (outcome.error or "")
    assert "no repository holds it any more" in (outcome.error or "")
    assert alerted == []
    with inst.ctx.catalog.read() as session:
        assert BackupCopies(session).for_backup(old) == []
    assert inst.record_ids() == {old, *kept}


def test_a_copied_backup_expired_while_copied_again_keeps_its_row_if_the_mirror_cannot_tell(
    inst: Installation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'copy ID --to NAME' of a backup the mirror already holds, while a prune that cannot
    reach the mirror deletes it from the primary, and the mirror then cannot say whether
    it holds the manifest: the completed row was overwritten with "failed", so retention
    and the status counted the mirror's copy as lost."""
    old = inst.backup(8 * DAY)
    kept = [inst.backup(age * DAY) for age in (2, 1)]
    # All in the mirror: the old one is not the newest it holds (which retention keeps).
    assert all(c.ok for c in copy_backups(inst.context(), [old, *kept], "second"))
    other = inst.context()
    second = inst.root / "second"

    def copy_backup(source: Any, destination: Any, backup_id: str, *rest: Any, **kw: Any) -> Any:
        shutil.move(second, inst.root / "second.away")
        try:
            prune(other, now=NOW, wait=0)
        finally:
            shutil.move(inst.root / "second.away", second)
        raise StorageError("the mirror stopped answering")

    def copied(destination: Any, backup_id: str) -> bool:
        raise StorageError("the mirror stopped answering")

    monkeypatch.setattr(copy_module, "copy_backup", copy_backup)
    monkeypatch.setattr(copy_module, "copied", copied)
    try:
        (outcome,) = copy_backups(inst.context(), [old], "second")
    finally:
        other.close()
    assert outcome.refused
    with inst.ctx.catalog.read() as session:
        (row,) = BackupCopies(session).for_backup(old)
    assert row.status is CopyStatus.COMPLETED


def test_a_clock_check_of_one_day_says_one_day(tmp_path: Path) -> None:
    """With ``clock_check_days = 1`` the refusal said "for 1 days before", "more than 1
    days" (the output, the job's stored error, the page, the alert). Here after a silence
    of a day and a half, so the newest backup before it is the evidence: 3 days."""
    extra = "[retention]\nclock_check_days = 1\n[rpo]\nfull_hours = 12"
    inst = Installation.create(tmp_path, secondary=False, extra=extra)
    try:
        older = inst.backup(7.5 * DAY)  # expired since the newest completed
        inst.backup(3 * DAY)
        inst.backup(1.5 * DAY)
        before = tree(tmp_path)
        with pytest.raises(ClockAhead) as refused:
            run_prune(inst)
        said = str(refused.value)
        assert "respaldo recorded nothing for 1 day before " in said, said
        assert "(more than 1 day, [retention] clock_check_days = 1)" in said, said
        assert "3 days after the newest backup before that silence" in said, said
        assert f"1 backup would expire by age that had not expired then (e.g. {older})" in said
        assert tree(tmp_path) == before
    finally:
        inst.close()


def test_one_backup_without_a_catalog_record_is_one_backup(inst: Installation) -> None:
    """Its warning said "1 backups in repository local have no catalog record"."""
    orphan = inst.backup(2 * DAY)
    inst.backup(1 * DAY)
    with sqlite3.connect(inst.root / "catalog.db") as db:
        db.execute("DELETE FROM backup_records WHERE id = ?", (orphan,))
    result = run_prune(inst)
    (warning,) = [w for w in result.warnings if orphan in w]
    assert warning == (
        f"1 backup in repository local has no catalog record ({orphan}); it is kept: "
        "'respaldo catalog rebuild' adopts it"
    )
    assert orphan in inst.manifests()


@pytest.mark.parametrize("target", ["erp", "docs"])
def test_a_restore_test_running_by_name_does_not_stop_prune(
    inst: Installation, target: str
) -> None:
    # A restore test asked for by name (the schedule's restore_test:<database or file
    # set>) is a drill job whose target is that name: prune took it for a backup id
    # while it ran ("invalid backup id 'docs'") and failed, every time it had something
    # to delete (seen 13 minutes into a soak of respaldo serve).
    ids = [inst.backup(age * DAY) for age in (12, 10, 8, 6, 3, 1)]
    inst.replicate()
    with inst.ctx.catalog.begin() as session:
        table = Jobs(session)
        job = table.submit(
            JobKind.DRILL,
            target=target,
            triggered_by=TriggeredBy.SCHEDULE,
            requested_by=f"restore_test:{target}",
        )
        table.start(job.id, pid=os.getpid(), host=this_host())
    result = run_prune(inst)
    assert result.ok, [r.error for r in result.repositories]
    assert sorted(result.deleted) == sorted(ids[:3])

"""The restore-test item of a database backed up both logically and physically judges
each kind (operations/tested_kinds.py), and its alert names the kind that went
untested. The catalog is real; no server is asked (servers=False)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from respaldo.domain import BackupKind
from respaldo.operations import watchdog
from respaldo.operations.context import Context
from tests.unit.operations.status_support import NOW, backup, drill, status_settings

pytestmark = pytest.mark.unit

DAY = timedelta(days=1)


def _item_and_alert(ctx: Context) -> tuple[dict[str, object], str]:
    result = watchdog.check(ctx, NOW, wal_archived=("erp",), servers=False)
    item = next(i for i in result.report.items if i.key == "restore_test:erp")
    message, args = watchdog.describe(item)
    return item.model_dump(), message.format(**args)


def _tested_physical_then_a_newer_one(ctx: Context) -> tuple[str, str]:
    """A full backup and an older physical one, each with a passed restore test, then a
    newer physical backup (so retention may delete the tested one): (full, tested)."""
    full = backup(ctx, NOW - DAY)
    tested = backup(ctx, NOW - 3 * DAY, kind=BackupKind.INCREMENTAL)
    drill(ctx, full, NOW - DAY / 2, passed=True)
    drill(ctx, tested, NOW - 2 * DAY, passed=True)
    backup(ctx, NOW - DAY, kind=BackupKind.INCREMENTAL)
    return full, tested


def test_a_physical_chain_never_restore_tested_is_red_and_alerted_by_name(
    tmp_path: Path,
) -> None:
    with Context.open(status_settings(tmp_path), create=True) as ctx:
        full = backup(ctx, NOW - DAY)
        physical = backup(ctx, NOW - DAY, kind=BackupKind.INCREMENTAL)
        drill(ctx, full, NOW - DAY / 2, passed=True)
        item, alert = _item_and_alert(ctx)
        result = watchdog.check(ctx, NOW, wal_archived=("erp",), servers=False)
        hint = next(
            str(watchdog._hint(i)) for i in result.report.items if i.key == "restore_test:erp"
        )
    assert item["level"] == "red", item
    assert str(item["reason"]).startswith("no restore test of its physical backups ever passed")
    assert alert == "no restore test of a physical backup of erp ever passed"
    # The alert's advice was 'respaldo drill erp': a test of the logical backup, after
    # which the item stayed red. Now the backup to test is named.
    assert item["backup_id"] == physical
    assert f"'respaldo drill {physical}' tests the newest of its physical backups" in str(
        item["reason"]
    )
    assert f"'respaldo drill {physical}' tests the backup" in hint, hint


def test_each_kind_tested_within_the_limit_is_green_with_the_oldest_facts(
    tmp_path: Path,
) -> None:
    with Context.open(status_settings(tmp_path), create=True) as ctx:
        full = backup(ctx, NOW - DAY)
        physical = backup(ctx, NOW - DAY, kind=BackupKind.INCREMENTAL)
        drill(ctx, full, NOW - DAY / 2, passed=True)
        drill(ctx, physical, NOW - DAY / 4, passed=True)
        item, _ = _item_and_alert(ctx)
    assert item["level"] == "green", item
    assert item["backup_id"] == full
    assert item["kind"] == BackupKind.FULL


def test_a_physical_test_older_than_the_limit_is_red_saying_its_age(tmp_path: Path) -> None:
    with Context.open(status_settings(tmp_path), create=True) as ctx:
        old = backup(ctx, NOW - 45 * DAY, kind=BackupKind.INCREMENTAL)
        drill(ctx, old, NOW - 44 * DAY, passed=True)
        full = backup(ctx, NOW - DAY)
        backup(ctx, NOW - DAY, kind=BackupKind.INCREMENTAL)
        drill(ctx, full, NOW - DAY / 2, passed=True)
        item, alert = _item_and_alert(ctx)
    assert item["level"] == "red", item
    assert item["kind"] == BackupKind.INCREMENTAL
    assert alert.startswith(
        "no passed restore test of a physical backup of erp for 44 d (limit 38 d)"
    )


def test_a_kind_no_longer_taken_is_not_judged(tmp_path: Path) -> None:
    """Physical backups stopped more than restore_test_days ago: their own rpo item
    says so; the restore-test item judges the logical ones alone, as before."""
    with Context.open(status_settings(tmp_path), create=True) as ctx:
        backup(ctx, NOW - 45 * DAY, kind=BackupKind.INCREMENTAL)
        full = backup(ctx, NOW - DAY)
        drill(ctx, full, NOW - DAY / 2, passed=True)
        item, _ = _item_and_alert(ctx)
    assert item["level"] == "green", item
    assert item["kind"] is None


def test_a_passed_test_of_a_backup_pruned_since_still_proves_its_kind(tmp_path: Path) -> None:
    """The physical backup tested on Sunday was expired by retention on Tuesday (its
    record deleted): the status read a test's kind from the record, so the pass counted
    for no kind, and the item turned red, "no restore test of its physical backups ever
    passed"; the metrics and the monthly report dropped it from the kind too. The run
    now keeps its kind (drill_runs.backup_kind)."""
    from respaldo.catalog import BackupRecords, newest_kind_passes, read_figures
    from respaldo.operations.reports import drill_report

    with Context.open(status_settings(tmp_path), create=True) as ctx:
        _, tested = _tested_physical_then_a_newer_one(ctx)
        with ctx.catalog.begin() as session:
            BackupRecords(session).delete(tested)  # as prune does
        item, _ = _item_and_alert(ctx)
        with ctx.catalog.read() as session:
            passes = newest_kind_passes(session)
            kinds = {f.kind: f for f in read_figures(session).kind_drills if f.database == "erp"}
        report = drill_report(ctx, f"{NOW:%Y-%m}", now=NOW)
    assert item["level"] == "green", item
    assert "physical backups finished 48 h ago" in str(item["reason"]), item
    assert passes[("erp", BackupKind.INCREMENTAL)].backup_id == tested
    assert kinds[BackupKind.INCREMENTAL].last_passed is True
    (erp,) = report.databases
    physical = next(k for k in erp.kinds if k.kind == BackupKind.INCREMENTAL.value)
    assert (physical.runs, physical.passed) == (1, 1)
    assert physical.newest_pass is not None and physical.newest_pass.backup_id == tested


def test_a_test_recorded_without_its_kind_takes_it_when_its_backup_is_pruned(
    tmp_path: Path,
) -> None:
    """During an upgrade to 0015 a worker not yet restarted (the older respaldo) records
    its restore tests without the kind, and the migration ran before them: once
    retention deleted the tested backup, its pass counted for no kind again and the item
    turned red, as before the column. Deleting a record gives its runs without a kind the
    record's."""
    import sqlalchemy as sa

    from respaldo.catalog import BackupRecords, DrillRun

    with Context.open(status_settings(tmp_path), create=True) as ctx:
        full, tested = _tested_physical_then_a_newer_one(ctx)
        with ctx.catalog.begin() as session:
            # As the older respaldo wrote it: no backup_kind.
            session.execute(sa.update(DrillRun).values(backup_kind=None))
            BackupRecords(session).delete(tested)  # as prune does
        item, _ = _item_and_alert(ctx)
        with ctx.catalog.read() as session:
            kinds = {r.backup_id: r.backup_kind for r in session.scalars(sa.select(DrillRun))}
    assert item["level"] == "green", item
    assert kinds == {tested: BackupKind.INCREMENTAL, full: None}

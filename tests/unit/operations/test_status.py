"""The health picture, with the clock in the test's hand and no PostgreSQL: backups,
restore tests and copies from the catalog; servers that cannot be reached."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from respaldo import reasons
from respaldo.catalog import BackupRecords
from respaldo.domain import BackupKind
from respaldo.i18n import translations
from respaldo.operations.context import Context
from respaldo.operations.repair import damage_problem
from respaldo.operations.status import StatusItem, StatusReport, compute_status
from tests.unit.operations.status_support import NOW, backup, copied, drill, status_settings

H = timedelta(hours=1)
D = timedelta(days=1)


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    with Context.open(status_settings(tmp_path, secondary=True), create=True) as context:
        yield context


def items(report: StatusReport) -> dict[str, StatusItem]:
    return {item.key: item for item in report.items}


def catalog_only(ctx: Context, *, archived: tuple[str, ...] = ()) -> dict[str, StatusItem]:
    return items(compute_status(ctx, NOW, wal_archived=archived, servers=False))


def test_a_database_never_backed_up_is_red_with_the_reason(ctx: Context) -> None:
    report = compute_status(ctx, NOW, wal_archived=(), servers=False)
    assert report.level == "red" and report.red
    found = items(report)
    assert found["rpo:erp:full"].level == "red"
    assert found["rpo:erp:full"].reason == "no logical backup was ever completed"
    assert found["restore_test:erp"].reason == "no restore test ever passed"
    assert found["copy:erp:offsite"].level == "green"  # nothing to copy yet
    # No physical item: erp's WAL is not archived.
    assert "rpo:erp:incremental" not in found and "archive:erp" not in found


def test_the_age_of_the_newest_full_backup_against_its_rpo(ctx: Context) -> None:
    backup(ctx, NOW - 30 * H)
    newest = backup(ctx, NOW - 25 * H)
    full = catalog_only(ctx)["rpo:erp:full"]
    assert (full.level, full.backup_id, full.age_seconds) == ("green", newest, 25 * 3600)
    assert full.limit_seconds == 26 * 3600
    assert full.reason == "the newest logical backup completed 25 h ago (RPO 26 h)"

    later = items(compute_status(ctx, NOW + 2 * H, wal_archived=(), servers=False))
    assert later["rpo:erp:full"].level == "red"
    assert later["rpo:erp:full"].reason == (
        "the newest logical backup completed 27 h ago, more than its RPO of 26 h"
    )


def test_a_failed_last_backup_within_the_rpo_is_amber_and_says_why(ctx: Context) -> None:
    backup(ctx, NOW - 20 * H)
    backup(ctx, NOW - 2 * H, failed="pg_dump: error: connection refused\nmore detail")
    full = catalog_only(ctx)["rpo:erp:full"]
    assert full.level == "amber"
    assert full.reason == (
        "the last attempt failed 2 h ago: pg_dump: error: connection refused; "
        "the newest logical backup completed 20 h ago (RPO 26 h)"
    )


def test_physical_backups_are_watched_only_where_wal_is_archived(tmp_path: Path) -> None:
    settings = status_settings(
        tmp_path,
        databases=[
            {"name": "erp", "dsn": "postgresql://r@127.0.0.1:1/erp"},
            {"name": "crm", "dsn": "postgresql://r@127.0.0.1:1/crm", "rpo": {"physical_hours": 1}},
            {
                "name": "nomina",
                "dsn": "postgresql://r@127.0.0.1:1/nomina",
                "schedules": {"incremental": "off"},
            },
        ],
        rpo={"physical_hours": 8},
    )
    with Context.open(settings, create=True) as ctx:
        for name in ("erp", "crm", "nomina"):
            backup(ctx, NOW - H, database=name)
            backup(ctx, NOW - 3 * H, database=name, kind=BackupKind.INCREMENTAL)
        report = compute_status(ctx, NOW, wal_archived={"erp", "nomina"}, servers=False)
    found = items(report)
    by_db = {db.database: db.physical for db in report.databases}
    # erp: archived; crm: not recorded, but it has physical backups; nomina: turned off.
    assert by_db == {"erp": True, "crm": True, "nomina": False}
    assert found["rpo:erp:incremental"].level == "green"
    assert found["rpo:erp:incremental"].limit_seconds == 8 * 3600  # [rpo]
    assert found["rpo:crm:incremental"].level == "red"  # its own 1 h
    assert "rpo:nomina:incremental" not in found


def test_restore_tests_against_38_days(ctx: Context) -> None:
    old = backup(ctx, NOW - 40 * D)
    drill(ctx, old, NOW - 39 * D, passed=True)
    assert catalog_only(ctx)["restore_test:erp"].level == "red"
    assert catalog_only(ctx)["restore_test:erp"].reason == (
        "the newest passed restore test finished 39 d ago, more than 38 d"
    )
    # First Sundays 35 days apart (and an hour across a fall-back): the month's test is
    # still running hours after the last one's age passed 35 days, and nothing is wrong
    # (the old default, 35 days, turned it red and alerted).
    drill(ctx, old, NOW - 35 * D - 5 * H, passed=True)
    assert catalog_only(ctx)["restore_test:erp"].level == "green"
    drill(ctx, old, NOW - 10 * D, passed=True)
    drill(ctx, old, NOW - D, passed=False)
    test = catalog_only(ctx)["restore_test:erp"]
    assert (test.level, test.backup_id) == ("amber", old)
    assert test.reason == (
        "the last restore test failed 24 h ago: row counts differ in 1 table; "
        "the newest passed restore test finished 10 d ago"
    )


def test_a_failed_test_of_a_newer_backup_stands_after_an_older_backup_passes(
    ctx: Context,
) -> None:
    """The newest backup's restore test failed; someone then restore-tested an older
    backup (to see whether that one at least restores), which passed: the item turned
    green, as if the failure were settled, while the backups since are the untested ones
    after a failing one. A failure is settled by a pass of its backup or a newer one."""
    old = backup(ctx, NOW - 20 * D)
    failing = backup(ctx, NOW - 3 * D)
    newest = backup(ctx, NOW - 2 * D)
    drill(ctx, failing, NOW - 2 * D - H, passed=False)
    drill(ctx, old, NOW - H, passed=True)
    test = catalog_only(ctx)["restore_test:erp"]
    assert (test.level, test.backup_id) == ("amber", old)
    assert test.reason == (
        f"a restore test of backup {failing} failed 49 h ago: row counts differ in 1 table; "
        f"the restore tests since passed of older backups only; the newest passed restore "
        f"test finished 60 min ago"
    )
    spanish = reasons.reason(test.reason, translations("es").gettext)
    assert spanish.startswith(f"una prueba de restauración del backup {failing} falló hace 49 h")
    assert "pasaron solo con backups más antiguos" in spanish
    drill(ctx, newest, NOW - 30 * timedelta(minutes=1), passed=True)
    test = catalog_only(ctx)["restore_test:erp"]
    assert (test.level, test.backup_id) == ("green", newest)
    # The failed test of an older backup than one that passed since is settled as before.
    drill(ctx, old, NOW - 20 * timedelta(minutes=1), passed=False)
    drill(ctx, failing, NOW - 10 * timedelta(minutes=1), passed=True)
    assert catalog_only(ctx)["restore_test:erp"].level == "green"


def test_backups_not_copied_offsite_turn_amber_then_red(ctx: Context) -> None:
    first = backup(ctx, NOW - 30 * H)
    copied(ctx, first, NOW - 30 * H)
    assert catalog_only(ctx)["copy:erp:offsite"].level == "green"

    second = backup(ctx, NOW - 7 * H)
    copied(ctx, second, NOW - 7 * H, error="offsite: connection timed out")
    third = backup(ctx, NOW - 2 * H)
    copy = catalog_only(ctx)["copy:erp:offsite"]
    assert (copy.level, copy.backup_id, copy.age_seconds) == ("red", second, 7 * 3600)
    assert copy.reason == (
        "2 backups are not copied to offsite, the oldest completed 7 h ago (limit 6 h); "
        "the last copy failed: offsite: connection timed out"
    )
    copied(ctx, second, NOW - H)
    copy = catalog_only(ctx)["copy:erp:offsite"]
    assert (copy.level, copy.backup_id) == ("amber", third)
    copied(ctx, third, NOW)
    assert catalog_only(ctx)["copy:erp:offsite"].level == "green"


def test_an_unreachable_server_is_red_with_the_reason_never_an_exception(
    ctx: Context,
) -> None:
    backup(ctx, NOW - H)
    backup(ctx, NOW - H, kind=BackupKind.INCREMENTAL)
    report = compute_status(ctx, NOW, wal_archived={"erp"})
    found = items(report)
    server = found["server:erp"]
    assert server.level == "red"
    assert server.reason.startswith("the server cannot be reached: ")
    assert "127.0.0.1" in server.reason and "1" in server.reason
    # Its archiving cannot be told: amber, the server item carries the alarm.
    assert found["archive:erp"].level == "amber"
    assert found["archive:erp"].reason == "unknown: the server cannot be reached"
    assert report.databases[0].archive is None
    assert report.level == "red"


def test_an_unreadable_catalog_is_a_red_item(ctx: Context, tmp_path: Path) -> None:
    ctx.catalog.close()
    (tmp_path / "catalog.db").write_bytes(b"not a database at all" * 100)
    report = compute_status(ctx, NOW, wal_archived=(), servers=False)
    assert [(i.key, i.level) for i in report.general] == [("catalog", "red")]
    assert report.general[0].reason.startswith("the catalog cannot be read: ")
    assert report.level == "red"


def test_the_json_form_is_camel_case_with_utc_times(ctx: Context) -> None:
    backup(ctx, NOW - H)
    data = compute_status(ctx, NOW, wal_archived=(), servers=False).to_json()
    assert data["checkedAt"] == "2026-12-04T12:00:00Z"
    full = data["databases"][0]["items"][0]
    assert full["key"] == "rpo:erp:full" and full["at"] == "2026-12-04T11:00:00Z"
    assert full["ageSeconds"] == 3600 and full["limitSeconds"] == 26 * 3600


def test_a_repository_that_cannot_be_read_is_amber_and_the_catalog_decides(
    ctx: Context,
) -> None:
    # The repository was never created: which databases archive WAL cannot be read
    # there; a physical backup in the catalog still makes erp's physical RPO watched.
    backup(ctx, NOW - H, kind=BackupKind.INCREMENTAL)
    report = compute_status(ctx, NOW, servers=False)
    (repository,) = [i for i in report.general if i.check != "verify"]
    assert (repository.key, repository.level) == ("repository:local", "amber")
    assert repository.reason.startswith("cannot read which databases archive WAL")
    assert items(report)["rpo:erp:incremental"].level == "green"


def test_a_physical_backup_taken_incrementally_is_not_compared_by_size(tmp_path: Path) -> None:
    # An incremental physical backup holds only the blocks that changed: a few percent of
    # the whole one before it, every day. Only backups taken whole are compared.
    settings = status_settings(tmp_path)
    with Context.open(settings, create=True) as ctx:
        first = backup(ctx, NOW - 30 * H, kind=BackupKind.INCREMENTAL, size=1000)
        backup(ctx, NOW - 2 * H, kind=BackupKind.INCREMENTAL, size=30, parent=first)
        found = catalog_only(ctx, archived=("erp",))
        assert "size:erp:incremental" not in found  # one whole backup: nothing to compare
        whole = backup(ctx, NOW - H, kind=BackupKind.INCREMENTAL, size=980)
        backup(ctx, NOW - H / 2, kind=BackupKind.INCREMENTAL, size=20, parent=whole)
        size = catalog_only(ctx, archived=("erp",))["size:erp:incremental"]
        assert (size.level, size.backup_id) == ("green", whole)
        backup(ctx, NOW - H / 4, kind=BackupKind.INCREMENTAL, size=400)
        assert catalog_only(ctx, archived=("erp",))["size:erp:incremental"].level == "red"


def test_file_sets_are_watched_like_databases(tmp_path: Path) -> None:
    # A file set's backups have an RPO, a size against the one before (an upload share
    # that was not mounted backs up "successfully" as nothing) and restore tests.
    settings = status_settings(
        tmp_path,
        file_sets=[
            {"name": "uploads", "paths": ["/srv/erp/uploads"]},
            {"name": "planos", "paths": ["/srv/erp/planos"], "rpo": {"files_hours": 200}},
        ],
        rpo={"files_hours": 30},
    )
    with Context.open(settings, create=True) as ctx:
        report = compute_status(ctx, NOW, wal_archived=(), servers=False)
        found = items(report)
        assert found["rpo:uploads:files"].level == "red"
        assert found["rpo:uploads:files"].reason == "no files backup was ever completed"
        assert found["restore_test:uploads"].level == "red"
        first = backup(ctx, NOW - 29 * H, kind=BackupKind.FILES, database="uploads", size=9000)
        drill(ctx, first, NOW - 28 * H, passed=True, database="uploads")
        backup(ctx, NOW - 2 * H, kind=BackupKind.FILES, database="uploads", size=100)
        backup(ctx, NOW - 100 * H, kind=BackupKind.FILES, database="planos")
        found = catalog_only(ctx)
    rpo = found["rpo:uploads:files"]
    assert (rpo.level, rpo.limit_seconds) == ("green", 30 * 3600)
    assert found["size:uploads:files"].level == "red"  # 100 bytes after 9,000
    assert found["restore_test:uploads"].level == "green"
    # Its own [file_sets.rpo]: weekly backups are not late after 100 h.
    assert found["rpo:planos:files"].level == "green"
    assert found["rpo:planos:files"].limit_seconds == 200 * 3600
    statuses = {d.database: d for d in compute_status(ctx, NOW, servers=False).databases}
    assert statuses["uploads"].level == "red" and not statuses["uploads"].physical


def _failed_verification(ctx: Context, backup_id: str, problem: str | None) -> None:
    with ctx.catalog.begin() as session:
        BackupRecords(session).set_verified(backup_id, NOW, verified=False, problem=problem)


def test_a_backup_known_not_to_restore_is_no_recovery_point(ctx: Context) -> None:
    # repair found the newest backup lost chunks ("it cannot be restored"): the recovery
    # point is the good one before it, 30 h old, over the RPO. Green would be a lie.
    good = backup(ctx, NOW - 30 * H)
    damaged = backup(ctx, NOW - 2 * H)
    _failed_verification(ctx, damaged, damage_problem(3, NOW))
    full = catalog_only(ctx)["rpo:erp:full"]
    assert (full.level, full.backup_id, full.age_seconds) == ("red", good, 30 * 3600)
    assert full.reason == (
        f"the newest good logical backup completed 30 h ago, more than its RPO of 26 h; "
        f"backup {damaged} (2 h ago) failed verification: damaged: 3 chunks have no good "
        "copy in any repository (respaldo repair, 2026-12-04 12:00 UTC); it cannot be restored"
    )


def test_an_incremental_backup_on_a_damaged_one_is_no_recovery_point(ctx: Context) -> None:
    # Its full backup lost chunks after it was taken: the incremental restores only on top
    # of it (pg_combinebackup), so the recovery point is the chain before, 9 h old (RPO 8 h).
    older = backup(ctx, NOW - 9 * H, kind=BackupKind.INCREMENTAL)
    full = backup(ctx, NOW - 3 * H, kind=BackupKind.INCREMENTAL)
    child = backup(ctx, NOW - H, kind=BackupKind.INCREMENTAL, parent=full)
    _failed_verification(ctx, full, damage_problem(3, NOW))
    physical = catalog_only(ctx, archived=("erp",))["rpo:erp:incremental"]
    assert (physical.level, physical.backup_id) == ("red", older)
    assert f"backup {child} (60 min ago) failed verification: cannot be restored" in physical.reason


def test_a_backup_whose_restore_test_failed_leaves_an_older_recovery_point_amber(
    ctx: Context,
) -> None:
    good = backup(ctx, NOW - 20 * H)
    failed = backup(ctx, NOW - 2 * H)
    _failed_verification(ctx, failed, None)  # what a failed restore test records
    full = catalog_only(ctx)["rpo:erp:full"]
    assert (full.level, full.backup_id) == ("amber", good)
    assert full.reason == (
        f"backup {failed} (2 h ago) failed verification: a restore test of it failed; "
        "the newest good logical backup completed 20 h ago (RPO 26 h)"
    )


def test_only_backups_known_not_to_restore_is_red_with_the_reason(ctx: Context) -> None:
    damaged = backup(ctx, NOW - 2 * H)
    _failed_verification(ctx, damaged, "damaged: 1 chunks have no good copy")
    full = catalog_only(ctx)["rpo:erp:full"]
    assert (full.level, full.backup_id) == ("red", None)
    assert full.reason == (
        "no good logical backup was ever completed; "
        f"backup {damaged} (2 h ago) failed verification: damaged: 1 chunks have no good copy"
    )

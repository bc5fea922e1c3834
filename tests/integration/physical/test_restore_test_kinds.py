"""The scheduled restore test proves every kind of backup a database relies on, and the
status's restore-test item judges each kind: a database backed up both logically and
physically had only its newest logical backup tested, every round, while its item was
green, so a physical chain that could not restore was never found."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from respaldo.catalog import AuditLog, BackupRecords, DrillRuns, Jobs
from respaldo.config import Settings, ValidationQuery
from respaldo.domain import BackupStatus, JobStatus, Role
from respaldo.operations import jobs
from respaldo.operations.context import Context
from respaldo.operations.drill import run_drill, run_restore_test_round
from respaldo.operations.metrics import render_metrics
from respaldo.operations.reports import drill_report, render_report
from respaldo.operations.schedule import entries
from respaldo.operations.scheduled import run_queued
from respaldo.operations.zone import time_zone
from tests.integration.api.conftest import client, finished
from tests.integration.majors import ARCHIVING_INITDB_OPTIONS, ARCHIVING_SETTINGS
from tests.integration.physical.conftest import Archiving, archiving_cluster

pytestmark = pytest.mark.integration

# A logical drill restores into a throwaway database named respaldo_drill_*; a physical
# one starts a scratch server whose database keeps its own name. A validation on that
# name makes one kind's test fail and the other's pass, on the same data.
_ONLY_A_LOGICAL_DRILL_PASSES = ValidationQuery(
    name="a logical drill's database",
    sql="SELECT (current_database() LIKE 'respaldo_drill_%')::text",
    expect="true",
)
_ONLY_A_PHYSICAL_DRILL_PASSES = ValidationQuery(
    name="not a logical drill's database",
    sql="SELECT (current_database() NOT LIKE 'respaldo_drill_%')::text",
    expect="true",
)


def _logical(archiving: Archiving) -> dict[str, Any]:
    run = archiving.run("backup", "erp", "--type", "full", "--json")
    assert run.code == 0, str(run)
    record: dict[str, Any] = run.json()
    return record


def _copy_catalog(source: Path, target: Path) -> None:
    """``source``'s SQLite catalog into ``target`` through SQLite's backup API: the
    catalog runs in WAL mode, so copying the file alone could miss committed pages."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


@dataclass
class _Backed:
    """The module's archiving cluster, its newest physical and logical backups, and a
    copy of the catalog as it was right after them (before any restore test)."""

    archiving: Archiving
    backups: tuple[dict[str, Any], dict[str, Any]] | None = None
    pristine: Path = field(init=False)

    def __post_init__(self) -> None:
        self.pristine = self.archiving.base / "catalog.pristine.db"


@pytest.fixture(scope="module")
def _backed_module(pg_major: int | None) -> Iterator[_Backed]:
    with archiving_cluster(
        pg_major,
        initdb_options=ARCHIVING_INITDB_OPTIONS.get(pg_major, ()),
        settings=ARCHIVING_SETTINGS.get(pg_major),
    ) as archiving:
        yield _Backed(archiving)


@pytest.fixture
def backed(
    _backed_module: _Backed, capsys: pytest.CaptureFixture[str]
) -> Iterator[tuple[Archiving, dict[str, Any], dict[str, Any]]]:
    """(the cluster, its physical backup, its logical backup), no restore test run yet.

    The tests count restore tests, audit entries and report lines: a cluster, the sample
    load and two backups each cost the module most of its time, so one cluster and its
    two backups serve them all, and each test starts from the catalog as it was right
    after the backups (taken by the first test, copied aside, copied back before every
    later one). Restore tests write only the catalog; a test that damages the
    repository has a cluster of its own."""
    shared = _backed_module
    archiving = shared.archiving
    archiving.capsys = capsys
    catalog = archiving.base / "catalog.db"
    if shared.backups is None:
        shared.backups = (archiving.backup(), _logical(archiving))
        _copy_catalog(catalog, shared.pristine)
    else:
        _copy_catalog(shared.pristine, catalog)
    physical, logical = shared.backups
    yield archiving, physical, logical
    archiving.capsys = None


def _scheduled_round(archiving: Archiving, settings: Settings | None = None) -> int:
    """The schedule's ``restore_test:erp`` job, run as the service runs it (with
    ``settings``, the archiving cluster's by default); its id."""
    settings = settings or archiving.settings()
    (entry,) = [e for e in entries(settings, {"erp"}) if e.name == "restore_test:erp"]
    with Context.open(settings) as ctx:
        job = jobs.submit(ctx, entry.request())
        run_queued(ctx, job.id, on_conflict=JobStatus.SKIPPED)
    return job.id


def _runs(archiving: Archiving) -> list[tuple[str, str]]:
    """(backup id, status) of every restore test, newest first."""
    with Context.open(archiving.settings()) as ctx, ctx.catalog.read() as session:
        return [(run.backup_id, run.status.value) for run in DrillRuns(session).list(limit=50)]


def _run_ids(archiving: Archiving) -> list[tuple[int, str]]:
    """(run id, backup id) of every restore test, newest first."""
    with Context.open(archiving.settings()) as ctx, ctx.catalog.read() as session:
        return [(run.id, run.backup_id) for run in DrillRuns(session).list(limit=50)]


def _restore_test_item(archiving: Archiving) -> dict[str, Any]:
    run = archiving.run("status", "--json")
    items = {i["key"]: i for db in run.json()["databases"] for i in db["items"]}
    item: dict[str, Any] = items["restore_test:erp"]
    return item


def test_a_scheduled_round_tests_the_newest_logical_and_physical_backups(
    backed: tuple[Archiving, dict[str, Any], dict[str, Any]],
) -> None:
    archiving, physical, logical = backed
    _scheduled_round(archiving)
    tested = dict(_runs(archiving))
    assert tested == {logical["id"]: "passed", physical["id"]: "passed"}, tested
    item = _restore_test_item(archiving)
    assert item["level"] == "green", item
    assert item["reason"].startswith("the newest passed restore test of its logical backups "), item
    assert "of its physical backups finished" in item["reason"], item
    # Both newest backups passed already: the round tests what it tested before alone.
    _scheduled_round(archiving)
    runs = _runs(archiving)
    assert len(runs) == 3 and runs[0] == (logical["id"], "passed"), runs


def test_the_status_turns_red_naming_physical_backups_no_restore_test_proved(
    backed: tuple[Archiving, dict[str, Any], dict[str, Any]],
) -> None:
    """A restore test of the newest logical backup passes ('respaldo drill erp' picked
    it alone): the item was green, while no physical backup had ever been restored."""
    archiving, physical, logical = backed
    run = archiving.run("drill", logical["id"], "--json")
    assert run.code == 0, str(run)
    item = _restore_test_item(archiving)
    assert item["level"] == "red", item
    assert item["reason"].startswith("no restore test of its physical backups ever passed"), item
    assert "the newest passed restore test of its logical backups finished " in item["reason"]
    said = archiving.run("status")
    assert "no restore test of its physical backups ever passed" in " ".join(said.out.split())
    # What to run is said, and it is not 'respaldo drill erp' again (the logical backup):
    # the command the reason names turns the item green.
    command = f"'respaldo drill {physical['id']}' tests the newest of its physical backups"
    assert command in item["reason"], item
    assert item["backupId"] == physical["id"], item
    run = archiving.run("drill", physical["id"], "--json")
    assert run.code == 0, str(run)
    item = _restore_test_item(archiving)
    assert item["level"] == "green", item


def test_a_failed_physical_restore_test_is_not_settled_by_a_logical_one_that_passed(
    backed: tuple[Archiving, dict[str, Any], dict[str, Any]],
) -> None:
    """The physical drill fails (a validation the scratch server's database answers
    otherwise than a logical drill's), then the newer logical backup's drill passes: a
    pass of a newer backup settled the failure and the item was green."""
    archiving, physical, _ = backed
    settings = archiving.settings()
    settings.database("erp").validations = [_ONLY_A_LOGICAL_DRILL_PASSES]
    with Context.open(settings) as ctx:
        failed = run_drill(ctx, physical["id"], respaldo_command=archiving.respaldo_command)
        assert not failed.passed
        assert run_drill(ctx, "erp").passed
    item = _restore_test_item(archiving)
    assert item["level"] == "red", item
    reason = item["reason"]
    assert f"a restore test of its physical backups (backup {physical['id']}) failed " in reason
    assert "validation: a logical drill's database: got 'false', expected 'true'" in reason, reason


def test_a_logical_drill_that_cannot_run_does_not_leave_the_physical_backups_untested(
    mirrored: Archiving,
) -> None:
    """The logical drill raises (its manifest is only in the offsite repository, whose
    disk is not mounted tonight: a drill that cannot run, not a failed one): the round
    stopped there, and the physical backups went untested that month."""
    archiving = mirrored
    physical = archiving.backup()
    logical = _logical(archiving)
    manifests = [
        p for p in (archiving.repo_dir / "manifests").rglob("*") if logical["id"] in p.name
    ]
    assert len(manifests) == 1, manifests
    manifests[0].unlink()
    offsite = archiving.base / "offsite"
    offsite.rename(archiving.base / "offsite.unmounted")
    settings = archiving.settings()
    job_id = _scheduled_round(archiving, settings)
    with Context.open(settings) as ctx, ctx.catalog.read() as session:
        row = Jobs(session).get(job_id)
        status, error, result = row.status, row.error_message or "", row.result_id
        trail = [
            entry
            for entry in AuditLog(session).list(limit=10)
            if (entry.detail or "").startswith(f"job {job_id}")
        ]
    tested = dict(_runs(archiving))
    assert tested == {physical["id"]: "passed"}, tested  # the logical one could not run
    # The job ended failed, naming the backup that could not be tested and why.
    assert status is JobStatus.FAILED
    assert f"backup {logical['id']}: the restore test could not run: " in error, error
    assert physical["id"] not in error, error
    assert result == logical["id"]
    assert len(trail) == 1 and trail[0].outcome == "failure", trail
    assert f"backup {logical['id']}: the restore test could not run" in (trail[0].detail or "")
    # A drill that could not run says nothing of the backup: its record is as it was.
    with Context.open(settings) as ctx, ctx.catalog.read() as session:
        record = BackupRecords(session).get(logical["id"])
        assert record.status is BackupStatus.COMPLETED
        assert not record.is_verified and record.verified_at is None and not record.error_message


def test_the_metrics_show_a_failed_logical_test_that_a_passed_physical_one_followed(
    backed: tuple[Archiving, dict[str, Any], dict[str, Any]],
) -> None:
    """The round tests the logical backup (a validation fails in its throwaway
    database), then the physical one (passes): the metrics went by the newest test of
    any kind, respaldo_restore_test_last_passed was 1 and RespaldoRestoreTestFailed
    stayed quiet."""
    archiving, physical, logical = backed
    settings = archiving.settings()
    settings.database("erp").validations = [_ONLY_A_PHYSICAL_DRILL_PASSES]
    _scheduled_round(archiving, settings)
    with Context.open(settings) as ctx:
        text = render_metrics(ctx).decode()
    assert _runs(archiving) == [(physical["id"], "passed"), (logical["id"], "failed")]
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    erp = (("database", "erp"),)
    full = (("database", "erp"), ("kind", "full"))
    incremental = (("database", "erp"), ("kind", "incremental"))
    assert found[("respaldo_restore_test_kind_last_passed", full)] == 0
    assert found[("respaldo_restore_test_kind_last_passed", incremental)] == 1
    assert found[("respaldo_restore_test_kind_last_success_timestamp_seconds", full)] == 0
    assert found[("respaldo_restore_test_kind_last_success_timestamp_seconds", incremental)] > 0
    # What older rules use: the worst of the kinds.
    assert found[("respaldo_restore_test_last_passed", erp)] == 0
    assert found[("respaldo_restore_test_last_success_timestamp_seconds", erp)] == 0


def test_drill_of_a_database_tests_each_kind_it_relies_on(
    backed: tuple[Archiving, dict[str, Any], dict[str, Any]],
) -> None:
    """'respaldo drill erp', the command the docs give for "test my database", tested
    its newest logical backup alone: it passed, and the status stayed red for the
    physical backups no test had proved."""
    archiving, physical, logical = backed
    run = archiving.run("drill", "erp", "--json")
    assert run.code == 0, str(run)
    done = run.json()
    assert (done["target"], done["passed"], done["errors"]) == ("erp", True, []), done
    assert [(d["backupId"], d["passed"]) for d in done["drills"]] == [
        (logical["id"], True),
        (physical["id"], True),
    ], done
    said = " ".join(run.err.split())
    assert f"drill of {logical['id']} passed" in said, said
    assert f"drill of {physical['id']} passed" in said, said
    assert dict(_runs(archiving)) == {logical["id"]: "passed", physical["id"]: "passed"}
    assert _restore_test_item(archiving)["level"] == "green"
    # The audit log's one entry of the command names each backup it proved, not the
    # logical one alone (its target).
    (entry,) = [e for e in archiving.run("audit", "--json").json() if e["action"] == "restore_test"]
    assert (entry["target"], entry["outcome"]) == (logical["id"], "success"), entry
    assert entry["detail"].endswith(
        f": restore tests of backups {logical['id']}, {physical['id']} passed"
    ), entry
    # Asked for again, each kind is tested anew (the schedule's round would skip both).
    assert archiving.run("drill", "erp").code == 0
    assert [backup for backup, _ in _runs(archiving)][:2] == [physical["id"], logical["id"]]
    # A backup id is still that one backup, its JSON the one test's.
    run = archiving.run("drill", physical["id"], "--json")
    assert run.code == 0 and run.json()["backupId"] == physical["id"], str(run)


def test_drill_of_a_database_fails_when_one_kind_fails(
    backed: tuple[Archiving, dict[str, Any], dict[str, Any]],
) -> None:
    """The physical test fails (a validation the scratch server answers otherwise than
    a logical drill's database): the command ends with exit status 3, naming it."""
    archiving, physical, logical = backed
    settings = archiving.settings()
    settings.database("erp").validations = [_ONLY_A_LOGICAL_DRILL_PASSES]
    with Context.open(settings) as ctx:
        done = run_restore_test_round(
            ctx, "erp", respaldo_command=archiving.respaldo_command, retest=True
        )
    assert [(r.backup_id, r.passed) for r in done.results] == [
        (logical["id"], True),
        (physical["id"], False),
    ]
    assert not done.passed
    view = done.view("erp").to_json()
    assert view["passed"] is False and view["drills"][1]["backupId"] == physical["id"]
    assert f"backup {physical['id']}: the restore test failed: validation" in (
        done.found_failure() or ""
    )


def test_the_api_tests_each_kind_of_a_database_audited_for_an_approver(
    backed: tuple[Archiving, dict[str, Any], dict[str, Any]],
) -> None:
    """POST /admin/backups/test {database} (and the page's "test restore", which calls
    the same operation) tested the newest logical backup alone."""
    archiving, physical, logical = backed
    settings = archiving.settings()
    with (
        client(settings, Role.VIEWER, "viewer") as viewer,
        client(settings, Role.ADMIN, "boss") as boss,
    ):
        denied = viewer.post("/admin/backups/test", json={"database": "erp"})
        assert denied.status_code == 403, denied.text
        tested = boss.post("/admin/backups/test", json={"database": "erp"})
        assert tested.status_code == 202, tested.text
        message = tested.json()["message"]
        assert logical["id"] in message and physical["id"] in message, message
        job = finished(boss, tested.json()["jobId"])
        assert job["status"] == "completed", job
        audit = boss.get("/admin/audit", params={"limit": 50}).json()
    assert dict(_runs(archiving)) == {logical["id"]: "passed", physical["id"]: "passed"}
    assert _restore_test_item(archiving)["level"] == "green"
    started = [e for e in audit if e["action"] == "restore_test" and e["actor"] == "token:boss"]
    assert [e["target"] for e in started][-1:] == ["erp"], audit


def test_the_monthly_report_says_each_kinds_tests_and_newest_pass(
    backed: tuple[Archiving, dict[str, Any], dict[str, Any]],
) -> None:
    """The report counted a database's tests together ("erp: 4 tests, 3 passed, 1
    failed"): which kind failed, and whether the physical backups were ever proven, was
    not in it. A round where both pass, then one where the physical test fails."""
    archiving, physical, logical = backed
    _scheduled_round(archiving)
    settings = archiving.settings()
    settings.database("erp").validations = [_ONLY_A_LOGICAL_DRILL_PASSES]
    with Context.open(settings) as ctx:
        run_restore_test_round(ctx, "erp", respaldo_command=archiving.respaldo_command, retest=True)
    runs = _run_ids(archiving)
    passed_physical = min(i for i, backup in runs if backup == physical["id"])
    passed_logical = max(i for i, backup in runs if backup == logical["id"])
    month = datetime.now(time_zone(settings)).strftime("%Y-%m")

    run = archiving.run("report", "drills", "--month", month, "--json")
    assert run.code == 0, str(run)
    (erp,) = [d for d in run.json()["databases"] if d["database"] == "erp"]
    assert (erp["runs"], erp["passed"], erp["failed"]) == (4, 3, 1), erp
    kinds = {k["kind"]: k for k in erp["kinds"]}
    assert list(kinds) == ["full", "incremental"], erp
    full, incremental = kinds["full"], kinds["incremental"]
    assert (full["runs"], full["passed"], full["failed"], full["reliedOn"]) == (2, 2, 0, True)
    assert (incremental["runs"], incremental["passed"], incremental["failed"]) == (2, 1, 1)
    assert full["newestPass"]["runId"] == passed_logical
    assert full["newestPass"]["backupId"] == logical["id"]
    # The newest physical test failed: its newest pass is the round's, before it.
    assert incremental["newestPass"]["runId"] == passed_physical
    assert incremental["rtoMaxSeconds"] > 0

    text = " ".join(archiving.run("report", "drills", "--month", month).out.split())
    assert "logical backups: 2 tests, 2 passed, 0 failed; restore time: median " in text, text
    assert "physical backups: 2 tests, 1 passed, 1 failed; restore time: " in text, text
    assert f"newest pass: backup {physical['id']}, " in text and f"(test {passed_physical})" in text
    with Context.open(settings) as ctx:
        report = drill_report(ctx, month)
    spanish = render_report(report, "es").body
    assert "backups físicos: 2 pruebas; superadas: 1, fallidas: 1" in spanish, spanish
    assert f"última superada: backup {logical['id']}, " in spanish, spanish


def test_the_monthly_report_names_a_kind_relied_on_and_never_tested(
    backed: tuple[Archiving, dict[str, Any], dict[str, Any]],
) -> None:
    """Only the logical backup was tested this month; the physical ones, relied on too,
    are named as not tested, never proven."""
    archiving, _, logical = backed
    assert archiving.run("drill", logical["id"]).code == 0
    settings = archiving.settings()
    month = datetime.now(time_zone(settings)).strftime("%Y-%m")
    run = archiving.run("report", "drills", "--month", month, "--json")
    (erp,) = [d for d in run.json()["databases"] if d["database"] == "erp"]
    incremental = erp["kinds"][1]
    assert incremental["kind"] == "incremental" and incremental["reliedOn"] is True, erp
    assert (incremental["runs"], incremental["newestPass"]) == (0, None), erp
    with Context.open(settings) as ctx:
        report = drill_report(ctx, month)
    said = render_report(report, "en").body
    assert "  physical backups: not tested this month; no restore test of these ever passed" in said
    spanish = render_report(report, "es").body
    assert (
        "  backups físicos: sin prueba este mes; ninguna prueba de restauración de estos "
        "se ha superado nunca" in spanish
    ), spanish

"""``GET /metrics``: every figure read from the catalog at each scrape, in the
Prometheus text format that ``prometheus_client``'s own parser reads back.

The catalog rows here are written through the catalog's own classes (as the engine
writes them); tests/integration/logical/test_metrics.py does the same after a real
backup, a real failure and a real drill.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from respaldo.api import create_app
from respaldo.catalog import BackupRecords, DrillRuns, Notifications
from respaldo.config import Settings
from respaldo.domain import BackupKind, JobKind, JobStatus
from respaldo.operations.context import Context
from respaldo.operations.metrics import RepositorySizes
from respaldo.operations.metrics_status import StatusReadings
from tests.unit.api.metrics_support import T0, backup, drill, installation, job, key, opened, scrape

pytestmark = pytest.mark.unit


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    return installation(tmp_path, monkeypatch)


@pytest.fixture
def context(settings: Settings) -> Iterator[Context]:
    with opened(settings) as context:
        yield context


def test_backup_figures_are_those_of_the_newest_completed_backup_and_failures_since(
    settings: Settings, context: Context
) -> None:
    backup(context, BackupKind.FULL, T0, size=500, stored=50)
    backup(context, BackupKind.FULL, T0 + timedelta(hours=1), size=700, stored=70)
    backup(context, BackupKind.FULL, T0 + timedelta(hours=2), failed=True)
    backup(context, BackupKind.FULL, T0 + timedelta(hours=3), failed=True)
    backup(context, BackupKind.FULL, T0 - timedelta(hours=5), failed=True)  # before success
    backup(context, BackupKind.INCREMENTAL, T0, size=9000, stored=900)
    with TestClient(create_app(settings, context)) as client:
        got = scrape(client)
    full = {"database": "erp", "kind": "full"}
    newest_end = (T0 + timedelta(hours=1, seconds=90)).timestamp()
    assert got[key("respaldo_backup_last_success_timestamp_seconds", **full)] == newest_end
    assert got[key("respaldo_backup_last_duration_seconds", **full)] == 90.0
    assert got[key("respaldo_backup_last_size_bytes", **full)] == 700
    assert got[key("respaldo_backup_last_stored_new_bytes", **full)] == 70
    assert got[key("respaldo_backup_failures_since_success", **full)] == 2
    last_failure = (T0 + timedelta(hours=3, seconds=5)).timestamp()
    assert got[key("respaldo_backup_last_failure_timestamp_seconds", **full)] == last_failure
    physical = {"database": "erp", "kind": "incremental"}
    assert got[key("respaldo_backup_last_size_bytes", **physical)] == 9000
    assert got[key("respaldo_backup_failures_since_success", **physical)] == 0
    assert got[key("respaldo_backup_last_failure_timestamp_seconds", **physical)] == 0
    # crm never had a backup: it shows as "never" (0), which every age alert catches.
    never = {"database": "crm", "kind": "full"}
    assert got[key("respaldo_backup_last_success_timestamp_seconds", **never)] == 0
    assert key("respaldo_backup_last_size_bytes", **never) not in got


def test_restore_tests_give_the_last_result_the_last_success_and_the_measured_rto(
    settings: Settings, context: Context
) -> None:
    drill(context, T0, passed=True, seconds=42.5)
    drill(context, T0 + timedelta(days=1), passed=True, seconds=40.0)
    drill(context, T0 + timedelta(days=2), passed=False, seconds=12.0)
    with TestClient(create_app(settings, context)) as client:
        got = scrape(client)
    assert got[key("respaldo_restore_tests_total", database="erp", result="passed")] == 2
    assert got[key("respaldo_restore_tests_total", database="erp", result="failed")] == 1
    assert got[key("respaldo_restore_test_last_passed", database="erp")] == 0
    last = (T0 + timedelta(days=2, seconds=15)).timestamp()
    assert got[key("respaldo_restore_test_last_timestamp_seconds", database="erp")] == last
    success = (T0 + timedelta(days=1, seconds=43)).timestamp()
    assert (
        got[key("respaldo_restore_test_last_success_timestamp_seconds", database="erp")] == success
    )
    assert got[key("respaldo_restore_test_rto_seconds", database="erp")] == 40.0


def test_a_failed_logical_test_is_not_hidden_by_a_later_passed_physical_one(
    settings: Settings, context: Context
) -> None:
    # The scheduled round tests logical backups first, then physical ones: the newest
    # test of any kind was the physical pass, so last_passed was 1 and
    # RespaldoRestoreTestFailed stayed quiet about the dump that did not restore.
    logical = backup(context, BackupKind.FULL, T0)
    physical = backup(context, BackupKind.INCREMENTAL, T0)
    drill(context, T0 + timedelta(hours=1), passed=True, seconds=5.0, backup_id=logical)
    drill(context, T0 + timedelta(days=1), passed=False, seconds=5.0, backup_id=logical)
    drill(context, T0 + timedelta(days=1, hours=1), passed=True, seconds=30.0, backup_id=physical)
    with TestClient(create_app(settings, context)) as client:
        got = scrape(client)
    full = {"database": "erp", "kind": "full"}
    incremental = {"database": "erp", "kind": "incremental"}
    assert got[key("respaldo_restore_test_kind_last_passed", **full)] == 0
    assert got[key("respaldo_restore_test_kind_last_passed", **incremental)] == 1
    logical_pass = (T0 + timedelta(hours=1, seconds=8)).timestamp()
    physical_pass = (T0 + timedelta(days=1, hours=1, seconds=33)).timestamp()
    name = "respaldo_restore_test_kind_last_success_timestamp_seconds"
    assert got[key(name, **full)] == logical_pass
    assert got[key(name, **incremental)] == physical_pass
    # The per-database series older rules use are the worst of the kinds.
    assert got[key("respaldo_restore_test_last_passed", database="erp")] == 0
    oldest = key("respaldo_restore_test_last_success_timestamp_seconds", database="erp")
    assert got[oldest] == logical_pass


def test_a_kind_never_tested_is_never_and_one_no_longer_taken_has_no_series(
    settings: Settings, context: Context
) -> None:
    # erp takes physical backups but none was ever restore-tested: "never" (0), so the
    # age alert fires for them, whatever the logical tests say. crm stopped taking
    # physical backups (its newest is older than restore_test_days, 38 days): its old
    # failed physical test must not keep an alert firing for ever.
    logical = backup(context, BackupKind.FULL, T0)
    backup(context, BackupKind.INCREMENTAL, T0)
    drill(context, T0 + timedelta(hours=1), passed=True, seconds=5.0, backup_id=logical)
    old = T0 - timedelta(days=60)
    crm_physical = backup(context, BackupKind.INCREMENTAL, old, database="crm")
    crm_logical = backup(context, BackupKind.FULL, T0, database="crm")
    with context.catalog.begin() as session:
        runs = DrillRuns(session)
        for backup_id, at, passed in (
            (crm_physical, old + timedelta(hours=1), False),
            (crm_logical, T0 + timedelta(hours=1), True),
        ):
            run = runs.start(backup_id, database="crm", scratch_name="s", now=at)
            runs.finish(run.id, passed=passed, restore_seconds=1.0, checks=[], now=at)
    with TestClient(create_app(settings, context)) as client:
        got = scrape(client)
    name = "respaldo_restore_test_kind_last_success_timestamp_seconds"
    assert got[key(name, database="erp", kind="incremental")] == 0
    assert (
        key("respaldo_restore_test_kind_last_passed", database="erp", kind="incremental") not in got
    )
    assert got[key("respaldo_restore_test_last_success_timestamp_seconds", database="erp")] == 0
    assert key(name, database="crm", kind="incremental") not in got
    assert (
        key("respaldo_restore_test_kind_last_passed", database="crm", kind="incremental") not in got
    )
    assert got[key("respaldo_restore_test_kind_last_passed", database="crm", kind="full")] == 1
    assert got[key("respaldo_restore_test_last_passed", database="crm")] == 1


def test_jobs_by_kind_and_status_the_queue_and_what_prunes_reclaimed(
    settings: Settings, context: Context
) -> None:
    job(context, JobKind.BACKUP, JobStatus.FAILED, error="down")
    job(context, JobKind.BACKUP, JobStatus.FAILED, error="down")
    job(context, JobKind.BACKUP, JobStatus.COMPLETED)
    job(context, JobKind.DRILL, JobStatus.QUEUED)
    job(context, JobKind.VERIFY, JobStatus.RUNNING)
    job(context, JobKind.PRUNE, JobStatus.COMPLETED, outcome={"bytes_reclaimed": {"local": 300}})
    job(
        context,
        JobKind.PRUNE,
        JobStatus.COMPLETED,
        outcome={"bytes_reclaimed": {"local": 200, "offsite": 7}},
    )
    job(context, JobKind.PRUNE, JobStatus.COMPLETED)  # a dry run: no outcome
    with TestClient(create_app(settings, context)) as client:
        got = scrape(client)
    assert got[key("respaldo_jobs_total", kind="backup", status="failed")] == 2
    assert got[key("respaldo_jobs_total", kind="backup", status="completed")] == 1
    assert got[key("respaldo_jobs_total", kind="restore", status="failed")] == 0
    assert got[key("respaldo_jobs_queued", kind="drill")] == 1
    assert got[key("respaldo_jobs_running", kind="verify")] == 1
    assert got[key("respaldo_jobs_running", kind="backup")] == 0
    assert got[key("respaldo_prune_reclaimed_bytes_total", repository="local")] == 500
    assert got[key("respaldo_prune_reclaimed_bytes_total", repository="offsite")] == 7
    assert key("respaldo_job_last_success_timestamp_seconds", kind="prune") in got
    assert key("respaldo_job_last_success_timestamp_seconds", kind="drill") not in got


def test_each_scrape_reads_the_catalog_again(settings: Settings, context: Context) -> None:
    full = key("respaldo_backup_last_size_bytes", database="erp", kind="full")
    with TestClient(create_app(settings, context)) as client:
        assert full not in scrape(client)
        backup(context, BackupKind.FULL, T0, size=1234)  # as another process would
        assert scrape(client)[full] == 1234


def test_repository_sizes_are_those_of_a_listing_of_every_object(
    settings: Settings, context: Context, tmp_path: Path
) -> None:
    with TestClient(create_app(settings, context)) as client:
        got = scrape(client)
    for name in ("repo", "offsite"):
        files = [p for p in (tmp_path / name).rglob("*") if p.is_file()]
        label = "local" if name == "repo" else "offsite"
        assert got[key("respaldo_repository_size_bytes", repository=label)] == sum(
            p.stat().st_size for p in files
        )
        assert got[key("respaldo_repository_objects", repository=label)] == len(files)
        assert got[key("respaldo_repository_reachable", repository=label)] == 1


def test_a_measured_size_is_kept_for_its_max_age_and_a_lost_repository_is_unreachable(
    settings: Settings, context: Context, tmp_path: Path
) -> None:
    now = [1000.0]
    sizes = RepositorySizes(settings, max_age=60, clock=lambda: now[0])
    first = {s.name: s for s in sizes.current()}
    (tmp_path / "repo" / "extra").write_bytes(b"x" * 10)
    now[0] += 59
    assert {s.name: s for s in sizes.current()} == first  # not listed again
    now[0] += 1
    assert {s.name: s for s in sizes.current()}["local"].size_bytes == (
        (first["local"].size_bytes or 0) + 10
    )
    (tmp_path / "offsite").rename(tmp_path / "gone")  # an unmounted disk, say
    now[0] += 60
    offsite = {s.name: s for s in sizes.current()}["offsite"]
    assert offsite.reachable is False
    assert offsite.size_bytes == first["offsite"].size_bytes  # the last known size stays


def test_an_unreadable_catalog_is_a_503_with_a_fixed_sentence_and_the_reason_logged(
    settings: Settings, context: Context, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING), TestClient(create_app(settings, context)) as client:
        assert client.get("/metrics").status_code == 200
        context.catalog.engine.dispose()
        (tmp_path / "catalog.db").unlink()
        (tmp_path / "catalog.db").mkdir()  # SQLite cannot open a directory
        response = client.get("/metrics")
    assert response.status_code == 503
    # /metrics needs no login: the error's own text (a server's host and role) stays in
    # the log.
    assert response.text == "the catalog cannot be read; the server's log says why\n"
    logged = [r.getMessage() for r in caplog.records if r.name == "respaldo.api.metrics"]
    assert any(m.startswith("GET /metrics: the catalog cannot be read: ") for m in logged)


def test_status_gives_each_database_its_thresholds_its_level_and_its_server(
    settings: Settings, context: Context
) -> None:
    # The servers of the installation do not listen (port 1): status says they are down.
    with TestClient(create_app(settings, context)) as client:
        got = scrape(client)
    for db in ("erp", "crm"):
        assert got[key("respaldo_backup_rpo_seconds", database=db, kind="full")] == 26 * 3600
        assert got[key("respaldo_restore_test_max_age_seconds", database=db)] == 38 * 86400
        assert got[key("respaldo_database_up", database=db)] == 0
        assert got[key("respaldo_database_status", database=db)] == 2
        # No restore test ever passed: "never", which the age alert catches.
        assert got[key("respaldo_restore_test_last_success_timestamp_seconds", database=db)] == 0
        assert got[key("respaldo_copy_pending_backups", database=db, repository="offsite")] == 0
    # Physical backups are not expected here (no WAL archived): no such series.
    assert key("respaldo_backup_rpo_seconds", database="erp", kind="incremental") not in got


def test_a_status_reading_is_kept_for_its_max_age(context: Context) -> None:
    now = [1_800_000_000.0]
    readings = StatusReadings(context, 60, clock=lambda: now[0])
    first = readings.current()
    now[0] += 59
    assert readings.current() is first
    now[0] += 1
    again = readings.current()
    assert again is not first and again.checked_at.timestamp() == now[0]


def test_a_backup_known_not_to_restore_is_not_the_last_success(
    settings: Settings, context: Context
) -> None:
    # repair found the newest backup lost chunks: an age alert must see the good one
    # before it, not a backup that cannot be restored.
    backup(context, BackupKind.FULL, T0, size=500)
    damaged = backup(context, BackupKind.FULL, T0 + timedelta(hours=20), size=700)
    with context.catalog.begin() as session:
        BackupRecords(session).set_verified(
            damaged, T0 + timedelta(hours=21), verified=False, problem="damaged: 3 chunks"
        )
    with TestClient(create_app(settings, context)) as client:
        got = scrape(client)
    full = {"database": "erp", "kind": "full"}
    good_end = (T0 + timedelta(seconds=90)).timestamp()
    assert got[key("respaldo_backup_last_success_timestamp_seconds", **full)] == good_end
    assert got[key("respaldo_backup_last_size_bytes", **full)] == 500


def test_a_source_removed_from_the_configuration_leaves_no_series_to_alert_on(
    settings: Settings, context: Context
) -> None:
    # "old" was configured once: its last backup and restore test failed. Removed from
    # the configuration, it must not keep RespaldoBackupFailing and
    # RespaldoRestoreTestFailed firing for ever.
    old = backup(context, BackupKind.FULL, T0, database="old")
    backup(context, BackupKind.FULL, T0 + timedelta(hours=1), database="old", failed=True)
    with context.catalog.begin() as session:
        runs = DrillRuns(session)
        run = runs.start(old, database="old", scratch_name="s", now=T0)
        runs.finish(run.id, passed=False, restore_seconds=1.0, checks=[], now=T0)
    with TestClient(create_app(settings, context)) as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert 'database="old"' not in response.text
    assert 'database="erp"' in response.text


def test_a_notification_target_removed_from_the_configuration_keeps_no_alert_firing(
    settings: Settings, context: Context
) -> None:
    # "pager" was configured once and its last message failed: removed, its timestamps
    # would keep RespaldoNotificationsFailing firing for ever. Its count stays (a counter).
    with context.catalog.begin() as session:
        Notifications(session).add(
            sent_at=T0,
            level="critical",
            kind="backup",
            key=None,
            target="pager",
            ok=False,
            error="unreachable",
        )
    with TestClient(create_app(settings, context)) as client:
        got = scrape(client)
    assert got[key("respaldo_notifications_total", target="pager", result="failed")] == 1
    assert key("respaldo_notification_last_failure_timestamp_seconds", target="pager") not in got
    assert key("respaldo_notification_last_success_timestamp_seconds", target="pager") not in got


def test_a_file_set_never_restore_tested_shows_never_as_a_database_does(
    settings: Settings, context: Context, tmp_path: Path
) -> None:
    # status holds file sets to restore_test_days as well (restore_test:<file set>): with
    # no series, RespaldoRestoreTestTooOld could not fire for one never tested.
    (tmp_path / "docs").mkdir()
    with_files = Settings(
        **{**settings.model_dump(), "file_sets": [{"name": "docs", "paths": [tmp_path / "docs"]}]}
    )
    with (
        Context.open(with_files) as files_context,
        TestClient(create_app(with_files, files_context)) as client,
    ):
        got = scrape(client)
    never = key("respaldo_restore_test_last_success_timestamp_seconds", database="docs")
    assert got[never] == 0
    kind = {"database": "docs", "kind": "files"}
    assert got[key("respaldo_restore_test_kind_last_success_timestamp_seconds", **kind)] == 0
    assert got[key("respaldo_restore_test_max_age_seconds", database="docs")] == 38 * 86400


def test_a_failed_test_of_the_newest_backup_stands_after_a_pass_of_an_older_one(
    settings: Settings, context: Context
) -> None:
    # The round's test of the newest logical backup failed; a manual drill of an older
    # one then passed. The status keeps the failure (only a pass of that backup or a
    # newer one settles it: the backups since are untested); the metric went by the
    # newest test, said 1, and RespaldoRestoreTestFailed stopped firing.
    older = backup(context, BackupKind.FULL, T0)
    newer = backup(context, BackupKind.FULL, T0 + timedelta(days=1))
    drill(context, T0 + timedelta(days=1, hours=1), passed=False, seconds=5.0, backup_id=newer)
    drill(context, T0 + timedelta(days=1, hours=2), passed=True, seconds=5.0, backup_id=older)
    with TestClient(create_app(settings, context)) as client:
        got = scrape(client)
    assert got[key("respaldo_restore_test_kind_last_passed", database="erp", kind="full")] == 0
    assert got[key("respaldo_restore_test_last_passed", database="erp")] == 0
    # A pass of the failed backup itself settles it.
    drill(context, T0 + timedelta(days=1, hours=3), passed=True, seconds=5.0, backup_id=newer)
    with TestClient(create_app(settings, context)) as client:
        got = scrape(client)
    assert got[key("respaldo_restore_test_kind_last_passed", database="erp", kind="full")] == 1
    assert got[key("respaldo_restore_test_last_passed", database="erp")] == 1

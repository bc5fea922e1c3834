"""``GET /metrics``: every figure read from the catalog at each scrape, in the
Prometheus text format that ``prometheus_client``'s own parser reads back.

The catalog rows here are written through the catalog's own classes (as the engine
writes them); tests/integration/logical/test_metrics.py does the same after a real
backup, a real failure and a real drill.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from respaldo.api import create_app
from respaldo.catalog import BackupRecords, DrillRuns, Jobs
from respaldo.config import Settings
from respaldo.domain import BackupKind, JobKind, JobStatus, TriggeredBy
from respaldo.operations.context import Context
from respaldo.operations.metrics import CONTENT_TYPE, RepositorySizes
from respaldo.operations.repositories import init_repositories
from respaldo.repository import KdfParams

pytestmark = pytest.mark.unit

FAST_KDF = KdfParams(time_cost=1, memory_cost=8 * 1024, parallelism=1)
T0 = datetime(2026, 11, 28, 8, 30, tzinfo=UTC)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", "correct horse (test)")
    return Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        repositories=[
            {"name": "local", "url": f"file://{tmp_path / 'repo'}"},
            {"name": "offsite", "url": f"file://{tmp_path / 'offsite'}"},
        ],
        databases=[
            {"name": "erp", "dsn": "postgresql://u@127.0.0.1:1/erp"},
            {"name": "crm", "dsn": "postgresql://u@127.0.0.1:1/crm"},
        ],
        cache_dir=tmp_path / "cache",
    )


@pytest.fixture
def context(settings: Settings) -> Iterator[Context]:
    init_repositories(settings, kdf=FAST_KDF)
    with Context.open(settings, create=True) as opened:
        yield opened


def samples(text: str) -> Samples:
    """Every sample of an exposition, keyed by (sample name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CONTENT_TYPE
    return samples(response.text)


def backup(
    context: Context,
    kind: BackupKind,
    started: datetime,
    *,
    database: str = "erp",
    failed: bool = False,
    size: int = 1000,
    stored: int = 100,
) -> str:
    with context.catalog.begin() as session:
        records = BackupRecords(session)
        record = records.create_pending(
            kind=kind,
            repository="local",
            triggered_by=TriggeredBy.SCHEDULE,
            retention_days=7,
            database_name=database,
            now=started,
        )
        records.start(record.id, 1, now=started)
        if failed:
            records.fail(record.id, "connection refused", now=started + timedelta(seconds=5))
        else:
            records.complete(
                record.id,
                completed_at=started + timedelta(seconds=90),
                size_bytes=size,
                size_compressed=size // 2,
                stored_new_bytes=stored,
                checksum="0" * 64,
                manifest=f"manifests/{record.id}",
            )
        return record.id


def drill(context: Context, started: datetime, *, passed: bool, seconds: float) -> None:
    with context.catalog.begin() as session:
        runs = DrillRuns(session)
        run = runs.start("20261128T083000Z-00000000", database="erp", scratch_name="s", now=started)
        runs.finish(
            run.id,
            passed=passed,
            restore_seconds=seconds,
            checks=[],
            now=started + timedelta(seconds=seconds + 3),
        )


def job(context: Context, kind: JobKind, status: JobStatus, **finish: object) -> None:
    with context.catalog.begin() as session:
        jobs = Jobs(session)
        row = jobs.submit(kind, target=None, triggered_by=TriggeredBy.CLI, requested_by="t")
        if status is JobStatus.QUEUED:
            return
        jobs.start(row.id, pid=1)
        if status is not JobStatus.RUNNING:
            jobs.finish(row.id, status, **finish)  # type: ignore[arg-type]


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


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


def test_an_unreadable_catalog_is_a_503_with_the_reason(
    settings: Settings, context: Context, tmp_path: Path
) -> None:
    with TestClient(create_app(settings, context)) as client:
        assert client.get("/metrics").status_code == 200
        context.catalog.engine.dispose()
        (tmp_path / "catalog.db").unlink()
        (tmp_path / "catalog.db").mkdir()  # SQLite cannot open a directory
        response = client.get("/metrics")
    assert response.status_code == 503
    assert response.text.startswith("the catalog cannot be read: ")

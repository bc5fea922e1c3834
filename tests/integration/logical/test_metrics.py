"""Prometheus metrics after real work on the real cluster: a backup of erp, a backup of a
database that is down, a restore test. ``GET /metrics`` (the application ``respaldo
serve`` hosts), ``respaldo metrics`` and its textfile all say what the catalog says."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from respaldo.api import create_app
from respaldo.catalog import DrillRuns, open_catalog
from tests.integration.logical.conftest import Respaldo

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


def test_metrics_match_the_catalog_after_a_backup_a_failure_and_a_restore_test(
    respaldo: Respaldo,
) -> None:
    backup_id = respaldo.backup("erp")["id"]
    down = respaldo.run("backup", "unreachable")
    assert down.code == 1, str(down)
    drill = respaldo.run("drill", "erp", "--json")
    assert drill.code == 0, str(drill)

    with TestClient(create_app(respaldo.settings())) as client:
        response = client.get("/metrics")
    assert response.status_code == 200, response.text
    served = samples(response.text)

    records = {r.id: r for r in respaldo.records()}
    done = records[backup_id]
    assert done.completed_at is not None and done.duration is not None
    erp = {"database": "erp", "kind": "full"}
    assert served[key("respaldo_backup_last_success_timestamp_seconds", **erp)] == (
        done.completed_at.timestamp()
    )
    assert served[key("respaldo_backup_last_duration_seconds", **erp)] == done.duration
    assert served[key("respaldo_backup_last_size_bytes", **erp)] == done.size_bytes
    assert served[key("respaldo_backup_last_stored_new_bytes", **erp)] == done.stored_new_bytes
    assert served[key("respaldo_backup_failures_since_success", **erp)] == 0

    (failed,) = [r for r in records.values() if r.database_name == "unreachable"]
    assert failed.status == "failed" and failed.completed_at is not None
    unreachable = {"database": "unreachable", "kind": "full"}
    assert served[key("respaldo_backup_last_success_timestamp_seconds", **unreachable)] == 0
    assert served[key("respaldo_backup_failures_since_success", **unreachable)] == 1
    assert served[key("respaldo_backup_last_failure_timestamp_seconds", **unreachable)] == (
        failed.completed_at.timestamp()
    )
    assert served[key("respaldo_jobs_total", kind="backup", status="failed")] == 1
    assert served[key("respaldo_jobs_total", kind="backup", status="completed")] == 1
    assert served[key("respaldo_jobs_total", kind="drill", status="completed")] == 1

    catalog = open_catalog(f"sqlite:///{respaldo.catalog_file}")
    try:
        with catalog.read() as session:
            (run,) = DrillRuns(session).list()
    finally:
        catalog.close()
    assert run.status == "passed" and run.finished_at is not None
    assert served[key("respaldo_restore_tests_total", database="erp", result="passed")] == 1
    assert served[key("respaldo_restore_test_last_passed", database="erp")] == 1
    assert served[key("respaldo_restore_test_rto_seconds", database="erp")] == run.restore_seconds
    assert served[key("respaldo_restore_test_last_success_timestamp_seconds", database="erp")] == (
        run.finished_at.timestamp()
    )
    assert served[key("respaldo_repository_reachable", repository="local")] == 1
    packs = sum(p.stat().st_size for p in respaldo.repo_dir.rglob("*") if p.is_file())
    assert served[key("respaldo_repository_size_bytes", repository="local")] == packs

    # The command says the same, on stdout and in node_exporter's textfile.
    printed = respaldo.run("metrics")
    assert printed.code == 0, str(printed)
    textfile = respaldo.tmp / "collector" / "respaldo.prom"
    textfile.parent.mkdir()
    written = respaldo.run("metrics", "--textfile", str(textfile))
    assert written.code == 0, str(written)
    assert (written.out, written.err) == ("", "")
    for text in (printed.out, textfile.read_text()):
        assert _catalog_part(samples(text)) == _catalog_part(served)


def _catalog_part(got: Samples) -> Samples:
    # What differs between two reads of one catalog: when and how fast it was read.
    moving = (
        "respaldo_metrics_",
        "respaldo_repository_size_timestamp",
        "respaldo_status_timestamp",
    )
    return {k: v for k, v in got.items() if not k[0].startswith(moving)}


def test_the_textfile_command_names_a_missing_directory_and_writes_nothing(
    respaldo: Respaldo, tmp_path: Path
) -> None:
    target = tmp_path / "no-such-dir" / "respaldo.prom"
    run = respaldo.run("metrics", "--textfile", str(target))
    assert run.code == 1
    assert run.err_lines == [
        f"respaldo: error: cannot write {target}: the directory {target.parent} does not exist",
        "respaldo: hint: create it, or give a file in node_exporter's "
        "--collector.textfile.directory",
    ]
    assert not target.parent.exists()

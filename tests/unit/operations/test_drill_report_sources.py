"""The monthly restore-test report names every configured source a month left untested:
file sets are restore-tested as databases are (``restore_test:<file set>``), so one that
was not must be named as well, not left out of the report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from respaldo.catalog import BackupRecords, DrillRuns
from respaldo.config import Settings
from respaldo.domain import BackupKind
from respaldo.operations.context import Context
from respaldo.operations.reports import drill_report, render_report
from tests.unit.operations.status_support import backup

pytestmark = pytest.mark.unit


def test_a_file_set_without_a_restore_test_is_named_untested(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    settings = Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        databases=[
            {"name": "erp", "dsn": "postgresql://u@127.0.0.1:1/erp"},
            {"name": "crm", "dsn": "postgresql://u@127.0.0.1:1/crm"},
            {"name": "nuevo", "dsn": "postgresql://u@127.0.0.1:1/nuevo"},
        ],
        file_sets=[
            {"name": "uploads", "paths": [tmp_path / "docs"]},
            {"name": "scans", "paths": [tmp_path / "docs"]},
            {"name": "planos", "paths": [tmp_path / "docs"]},
        ],
    )
    when = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
    with Context.open(settings, create=True) as ctx:
        # Backed up in the month, never tested: untested. nuevo's first backup came after
        # the month, planos has none: nothing to test (the report said "not tested").
        backup(ctx, when, database="crm")
        backup(ctx, when, database="scans", kind=BackupKind.FILES)
        backup(ctx, datetime(2026, 12, 2, 2, 0, tzinfo=UTC), database="nuevo")
        with ctx.catalog.begin() as session:
            runs = DrillRuns(session)
            for source in ("erp", "uploads"):
                run = runs.start(
                    "20261102T020000Z-00000001", database=source, scratch_name="s", now=when
                )
                runs.finish(
                    run.id,
                    passed=True,
                    restore_seconds=9.0,
                    checks=[],
                    now=when + timedelta(minutes=1),
                )
        report = drill_report(ctx, "2026-11")
    assert report.untested == ["crm", "scans"]
    assert report.nothing_to_test == ["nuevo", "planos"]
    body = render_report(report, "en").body
    assert "Not tested this month: crm, scans" in body
    assert "Nothing to test this month (no backup yet): nuevo, planos" in body
    assert "nuevo" not in body.split("Nothing to test")[0]
    spanish = render_report(report, "es").body
    assert "Nada que probar este mes (aún sin backups): nuevo, planos" in spanish
    assert report.to_json()["nothingToTest"] == ["nuevo", "planos"]


def test_a_source_tested_before_whose_backups_were_pruned_since_is_untested(
    tmp_path: Path,
) -> None:
    """October's report read in December: erp was backed up and tested in September,
    not tested in October, and retention (7 days by default) has deleted every backup of
    that time. The report said "Nothing to test this month (no backup yet)" for erp, a
    month without its restore test hidden as one before its first backup. A restore test
    finished by the month's end proves a backup was there; crm, backed up then and never
    tested, cannot be told from a new database now (the report's known limit)."""
    settings = Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        databases=[
            {"name": "erp", "dsn": "postgresql://u@127.0.0.1:1/erp"},
            {"name": "crm", "dsn": "postgresql://u@127.0.0.1:1/crm"},
        ],
    )
    september = datetime(2026, 9, 20, 2, 0, tzinfo=UTC)
    december = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
    with Context.open(settings, create=True) as ctx:
        tested = backup(ctx, september)
        with ctx.catalog.begin() as session:
            runs = DrillRuns(session)
            run = runs.start(tested, database="erp", scratch_name="s", now=september)
            runs.finish(run.id, passed=True, restore_seconds=9.0, checks=[], now=september)
            BackupRecords(session).delete(tested)  # as prune does
        backup(ctx, december)
        backup(ctx, december, database="crm")
        report = drill_report(ctx, "2026-10", now=december)
    assert report.untested == ["erp"]
    assert report.nothing_to_test == ["crm"]

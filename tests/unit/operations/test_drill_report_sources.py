"""The monthly restore-test report names every configured source a month left untested:
file sets are restore-tested as databases are (``restore_test:<file set>``), so one that
was not must be named as well, not left out of the report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from respaldo.catalog import DrillRuns
from respaldo.config import Settings
from respaldo.operations.context import Context
from respaldo.operations.reports import drill_report, render_report

pytestmark = pytest.mark.unit


def test_a_file_set_without_a_restore_test_is_named_untested(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    settings = Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        databases=[
            {"name": "erp", "dsn": "postgresql://u@127.0.0.1:1/erp"},
            {"name": "crm", "dsn": "postgresql://u@127.0.0.1:1/crm"},
        ],
        file_sets=[
            {"name": "uploads", "paths": [tmp_path / "docs"]},
            {"name": "scans", "paths": [tmp_path / "docs"]},
        ],
    )
    when = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
    with Context.open(settings, create=True) as ctx:
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
    assert "Not tested this month: crm, scans" in render_report(report, "en").body

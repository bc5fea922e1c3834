"""The metrics' figures read the restore-test history in time that grows with it, not
with its square (counted in SQLite virtual-machine steps, which no load changes)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from respaldo.catalog import open_catalog
from respaldo.catalog.figures import read_figures
from respaldo.catalog.models import DrillRun
from respaldo.domain import BackupKind, DrillStatus

from .support import T0, sqlite_url

pytestmark = pytest.mark.unit


def _steps_to_read(tmp_path: Path, runs: int) -> int:
    """SQLite steps (thousands) of one read_figures over ``runs`` restore tests of one
    database, one in eight failed and passed again later (a year of daily tests)."""
    with open_catalog(sqlite_url(tmp_path / f"catalog-{runs}.db"), create=True) as catalog:
        with catalog.begin() as session:
            for n in range(runs):
                at = T0 + timedelta(days=n)
                session.add(
                    DrillRun(
                        backup_id=f"{at:%Y%m%dT%H%M%SZ}-0000000a",
                        database_name="erp",
                        status=DrillStatus.FAILED if n % 8 == 0 else DrillStatus.PASSED,
                        started_at=at,
                        finished_at=at + timedelta(minutes=30),
                        backup_kind=BackupKind.FULL,
                    )
                )
        with catalog.read() as session:
            raw = session.connection().connection.dbapi_connection
            assert raw is not None
            steps = [0]

            def count() -> int:
                steps[0] += 1
                return 0  # go on

            raw.set_progress_handler(count, 1000)
            try:
                figures = read_figures(session)
            finally:
                raw.set_progress_handler(None, 1000)
            (kind,) = figures.kind_drills
            assert kind.last_passed  # every failure was settled by a later pass
            return steps[0]


def test_the_restore_test_history_is_read_in_linear_time(tmp_path: Path) -> None:
    # Without an index on drill_runs (database_name, status, finished_at) each failure's
    # "settled by a later pass?" read every pass: one scrape of /metrics took 80 s with
    # 37,000 runs. Four times the history must cost about four times the steps.
    small, large = _steps_to_read(tmp_path, 200), _steps_to_read(tmp_path, 800)
    assert large < 8 * max(small, 1), (small, large)

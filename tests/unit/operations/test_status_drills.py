"""The status's restore tests read newest first and only as far back as an answer can
change (operations/status_drills.py) give what reading the whole history gave: random
histories (passes, failures, cancelled and running runs; two kinds; backups the catalog no
longer has; dates ahead of now; ties on finished_at) against the old computation, kept
here as the oracle. And the read does not grow with the history: rows loaded and
statements counted, not timed."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from respaldo.catalog import Catalog, open_catalog
from respaldo.catalog import tested_kind as kind_tested
from respaldo.catalog.models import BackupRecord, DrillRun
from respaldo.domain import BackupKind, BackupStatus, DrillStatus, TriggeredBy
from respaldo.operations import status_drills
from respaldo.operations.status import CLOCK_SKEW
from respaldo.operations.status_drills import read_drills
from tests.unit.operations.status_support import NOW

pytestmark = pytest.mark.unit

H = timedelta(hours=1)
UNTIL = NOW + CLOCK_SKEW
KINDS = (BackupKind.FULL, BackupKind.INCREMENTAL)
Row = tuple[DrillRun, datetime | None, BackupKind | None]


def unsettled_failure(runs: Sequence[tuple[DrillRun, datetime | None]]) -> DrillRun | None:
    """The status's rule as it read the whole history (until session 26), unchanged."""
    newest_passed: datetime | None = None
    undated = False  # a later pass of a backup the catalog no longer has
    for run, completed in runs:
        if run.status is DrillStatus.PASSED:
            if completed is None:
                undated = True
            elif newest_passed is None or completed > newest_passed:
                newest_passed = completed
            continue
        if undated:
            return None
        if newest_passed is None:
            return run  # no pass since
        if completed is not None and completed > newest_passed:
            return run
    return None


def whole_history(session: Session, database: str) -> Iterator[Row]:
    """Every finished run not dated ahead, newest first, as the status read them."""
    finished = sa.select(DrillRun).where(
        DrillRun.database_name == database,
        DrillRun.status.in_((DrillStatus.PASSED, DrillStatus.FAILED)),
    )
    future = DrillRun.finished_at > UNTIL
    drills = finished.where(sa.or_(DrillRun.finished_at.is_(None), ~future))
    tested = (
        drills.add_columns(BackupRecord.completed_at, kind_tested())
        .outerjoin(BackupRecord, BackupRecord.id == DrillRun.backup_id)
        .order_by(DrillRun.finished_at.desc(), DrillRun.id.desc())
    )
    for run, at, kind in session.execute(tested):
        yield run, at, kind


def oracle(rows: list[Row]) -> tuple[object, ...]:
    """(last, failed, each kind's (passed, failing)) as run ids, from the whole history."""
    pairs = [(run, at) for run, at, _ in rows]
    by_kind = []
    for kind in KINDS:
        own = [(run, at) for run, at, of in rows if of == kind]
        passed = next((run for run, _ in own if run.status is DrillStatus.PASSED), None)
        by_kind.append((_id(passed), _id(unsettled_failure(own))))
    return (_id(rows[0][0] if rows else None), _id(unsettled_failure(pairs)), *by_kind)


def _id(run: DrillRun | None) -> int | None:
    return None if run is None else run.id


def _paged(session: Session, database: str) -> tuple[object, ...]:
    facts = read_drills(session, database, UNTIL, KINDS)
    by_kind = [tuple(_id(r) for r in facts.by_kind[kind]) for kind in KINDS]
    return (_id(facts.last), _id(facts.failed), *by_kind)


def _history(session: Session, rng: random.Random, database: str) -> None:
    """A random history of ``database``: a few backups of each kind (some dated ahead,
    some tied, some gone from the catalog), runs of them and of other databases."""
    times = [NOW - rng.randrange(0, 40) * H for _ in range(6)] + [NOW + 2 * H]
    backups: list[tuple[str, BackupKind, bool]] = []
    for n in range(rng.randrange(1, 9)):
        kind = rng.choice(KINDS)
        backup_id = f"{database}-{n}"
        kept = rng.random() < 0.75  # else retention deleted it: its runs are undated
        backups.append((backup_id, kind, kept))
        if kept:
            completed = rng.choice(times)
            session.add(
                BackupRecord(
                    id=backup_id,
                    backup_type=kind,
                    status=BackupStatus.COMPLETED,
                    repository="local",
                    database_name=database,
                    triggered_by=TriggeredBy.SCHEDULE,
                    created_at=completed - H,
                    started_at=completed - H,
                    completed_at=completed,
                )
            )
    statuses = [DrillStatus.PASSED] * 5 + [DrillStatus.FAILED] * 3
    statuses += [DrillStatus.CANCELLED, DrillStatus.RUNNING]
    for _ in range(rng.randrange(0, 50)):
        backup_id, kind, kept = rng.choice(backups)
        status = rng.choice(statuses)
        finished: datetime | None = rng.choice(times) + rng.choice([0, 0, 1, 30]) * H / 60
        if rng.random() < 0.03:
            finished = None  # no finished run lacks it; the order must hold even so
        recorded_kind: BackupKind | None = kind
        if rng.random() < 0.2:
            recorded_kind = None  # recorded before the column (its record says, if kept)
        session.add(
            DrillRun(
                backup_id=backup_id,
                backup_kind=recorded_kind,
                database_name=rng.choice([database] * 9 + [f"{database}-other"]),
                status=status,
                started_at=NOW - 50 * H,
                finished_at=None if status is DrillStatus.RUNNING else finished,
            )
        )


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    path: Path = tmp_path_factory.mktemp("drills") / "catalog.db"
    with open_catalog(f"sqlite:///{path}", create=True) as opened:
        yield opened


@pytest.fixture(scope="module")
def histories(catalog: Catalog) -> list[str]:
    """The databases of 300 random histories, written once."""
    rng = random.Random(26)
    names = [f"h{n}" for n in range(300)]
    with catalog.begin() as session:
        for name in names:
            _history(session, rng, name)
    return names


@pytest.mark.parametrize("page", [1, 2, 32])
def test_the_paged_read_gives_what_the_whole_history_gave(
    catalog: Catalog, histories: list[str], page: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pages of one and two runs: every stop the walk makes between pages is taken.
    monkeypatch.setattr(status_drills, "_FIRST_PAGE", page)
    with catalog.read() as session:
        for database in histories:
            expected = oracle(list(whole_history(session, database)))
            assert _paged(session, database) == expected, database


def test_the_read_does_not_grow_with_the_history(tmp_path: Path) -> None:
    """A year and more of hourly restore tests (each kind in turn, one in 37 failed and
    settled by the next pass of its kind, the backups of the last 14 days still in the
    catalog): the runs loaded and the statements run are those of a day's history."""
    counted = {}
    for runs in (200, 20_000):
        with open_catalog(sqlite_url := f"sqlite:///{tmp_path / f'{runs}.db'}", create=True) as c:
            _hourly(c, runs)
            loaded = [0]
            statements = [0]

            def load(*_: object) -> None:
                loaded[0] += 1

            def execute(*_: object) -> None:
                statements[0] += 1

            sa.event.listen(DrillRun, "load", load)
            sa.event.listen(c.engine, "before_cursor_execute", execute)
            try:
                with c.read() as session:
                    facts = read_drills(session, "erp", NOW + CLOCK_SKEW, KINDS)
            finally:
                sa.event.remove(DrillRun, "load", load)
            assert facts.failed is None and all(f is None for _, f in facts.by_kind.values())
            assert all(p is not None for p, _ in facts.by_kind.values()), sqlite_url
            counted[runs] = (loaded[0], statements[0])
    # The first page of each status's runs (one holds fewer when the history is short),
    # then one query showing no older failure can be unsettled: as many statements.
    assert counted[20_000][1] == counted[200][1], counted
    assert counted[20_000][0] <= 2 * status_drills._FIRST_PAGE, counted


def _hourly(catalog: Catalog, runs: int) -> None:
    # Written by SQLite itself (a recursive CTE): the test's time is in the read.
    start = (NOW - runs * H).replace(tzinfo=None).isoformat(sep=" ")
    hours = "strftime('%Y-%m-%d %H:%M:%f', :start, '+' || n || ' hours', {}) || '000'"
    kind = "CASE n % 2 WHEN 0 THEN 'full' ELSE 'incremental' END"
    with catalog.begin() as session:
        session.execute(
            sa.text(
                "WITH RECURSIVE h(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM h WHERE n + 1 < :runs) "
                "INSERT INTO drill_runs (backup_id, backup_kind, database_name, status, "
                "started_at, finished_at) SELECT 'b' || n, " + kind + ", 'erp', "
                # One in 37 failed; the newest two passed.
                "CASE WHEN n % 37 = 0 AND n < :runs - 2 THEN 'failed' ELSE 'passed' END, "
                + hours.format("'+0 minutes'")
                + ", "
                + hours.format("'+30 minutes'")
                + " FROM h"
            ),
            {"runs": runs, "start": start},
        )
        # The backups of the last 14 days are still in the catalog.
        session.execute(
            sa.text(
                "WITH RECURSIVE h(n) AS (SELECT :first UNION ALL SELECT n + 1 FROM h WHERE n + 1 < :runs) "
                "INSERT INTO backup_records (id, backup_type, status, repository, database_name, "
                "created_at, completed_at, checksum_algorithm, is_verified, pinned) "
                "SELECT 'b' || n, "
                + kind
                + ", 'completed', 'local', 'erp', "
                + hours.format("'+0 minutes'")
                + ", "
                + hours.format("'+0 minutes'")
                + ", 'sha256', 0, 0 FROM h"
            ),
            {"runs": runs, "start": start, "first": max(0, runs - 14 * 24)},
        )

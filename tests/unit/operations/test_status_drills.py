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
from respaldo.domain import BackupKind, BackupStatus, DrillStatus
from respaldo.operations import status_drills
from respaldo.operations.status import CLOCK_SKEW
from respaldo.operations.status_drills import read_drills
from tests.unit.operations.status_support import NOW

pytestmark = pytest.mark.unit

H = timedelta(hours=1)
UNTIL = NOW + CLOCK_SKEW
KINDS = (BackupKind.FULL, BackupKind.INCREMENTAL)
Row = tuple[DrillRun, datetime | None, BackupKind | None]
Values = dict[str, object]


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


def whole_history(session: Session, database: str) -> list[Row]:
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
    return [(run, at, kind) for run, at, kind in session.execute(tested)]


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


def _history(rng: random.Random, database: str) -> tuple[list[Values], list[Values]]:
    """A random history of ``database`` (its backups, its runs): a few backups of each
    kind (some dated ahead, some tied, some gone from the catalog), runs of them (a few
    recorded as another database's)."""
    times = [NOW - rng.randrange(0, 40) * H for _ in range(6)] + [NOW + 2 * H]
    chosen: list[tuple[str, BackupKind]] = []
    backups: list[Values] = []
    for n in range(rng.randrange(1, 9)):
        kind = rng.choice(KINDS)
        chosen.append((backup_id := f"{database}-{n}", kind))
        if rng.random() < 0.25:
            continue  # retention deleted it: its runs are undated
        completed = rng.choice(times)
        backups.append(
            {
                "id": backup_id,
                "backup_type": kind,
                "status": BackupStatus.COMPLETED,
                "repository": "local",
                "database_name": database,
                "created_at": completed - H,
                "completed_at": completed,
            }
        )
    statuses = [DrillStatus.PASSED] * 5 + [DrillStatus.FAILED] * 3
    statuses += [DrillStatus.CANCELLED, DrillStatus.RUNNING]
    runs: list[Values] = []
    for _ in range(rng.randrange(0, 50)):
        backup_id, kind = rng.choice(chosen)
        status = rng.choice(statuses)
        finished: datetime | None = rng.choice(times) + rng.choice([0, 0, 1, 30]) * H / 60
        if status is DrillStatus.RUNNING or rng.random() < 0.1:
            finished = None  # no finished run lacks it; the order must hold even so
        runs.append(
            {
                "backup_id": backup_id,
                # None: recorded before the column (its record says, if still there).
                "backup_kind": kind if rng.random() < 0.8 else None,
                "database_name": rng.choice([database] * 9 + [f"{database}-other"]),
                "status": status,
                "started_at": NOW - 50 * H,
                "finished_at": finished,
            }
        )
    return backups, runs


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    path: Path = tmp_path_factory.mktemp("drills") / "catalog.db"
    with open_catalog(f"sqlite:///{path}", create=True) as opened:
        yield opened


@pytest.fixture(scope="module")
def histories(catalog: Catalog) -> list[str]:
    """The databases of 120 random histories, written once."""
    rng = random.Random(26)
    names = [f"h{n}" for n in range(120)]
    backups: list[Values] = []
    runs: list[Values] = []
    for name in names:
        more_backups, more_runs = _history(rng, name)
        backups += more_backups
        runs += more_runs
    with catalog.begin() as session:
        session.execute(sa.insert(BackupRecord), backups)
        session.execute(sa.insert(DrillRun), runs)
    return names


def test_the_paged_read_gives_what_the_whole_history_gave(
    catalog: Catalog, histories: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with catalog.read() as session:
        for database in histories:
            expected = oracle(whole_history(session, database))
            # Pages of one run: every stop the walk can make between pages is taken.
            for page in (1, status_drills._FIRST_PAGE):
                monkeypatch.setattr(status_drills, "_FIRST_PAGE", page)
                assert _paged(session, database) == expected, (database, page)


def test_the_read_does_not_grow_with_the_history(catalog: Catalog) -> None:
    """Two years of hourly restore tests (each kind in turn, one in 37 failed and settled
    by the next pass of its kind, the backups of the last 14 days still in the catalog):
    the runs loaded and the statements run are those of a week's history."""
    counted = {}
    for runs in (200, 20_000):
        _hourly(catalog, f"erp{runs}", runs)
        facts, loaded, statements = _counted(catalog, f"erp{runs}")
        assert facts.last is not None and facts.failed is None
        assert all(p is not None and f is None for p, f in facts.by_kind.values())
        counted[runs] = (loaded, statements)
    # The read's BEGIN, the first page of each status's runs (the failures' holds fewer in
    # a short history), then one query showing that no older failure can be unsettled.
    # The whole history, as the status read it until session 26: 20,000 runs loaded.
    assert counted[20_000][1] == counted[200][1] == 4, counted
    assert counted[20_000][0] <= 2 * status_drills._FIRST_PAGE, counted


def _counted(catalog: Catalog, database: str) -> tuple[status_drills.DrillFacts, int, int]:
    """What read_drills found, the runs it loaded and the statements it ran."""
    loaded, statements = [0], [0]

    def load(*_: object) -> None:
        loaded[0] += 1

    def execute(*_: object) -> None:
        statements[0] += 1

    sa.event.listen(DrillRun, "load", load)
    sa.event.listen(catalog.engine, "before_cursor_execute", execute)
    try:
        with catalog.read() as session:
            facts = read_drills(session, database, UNTIL, KINDS)
    finally:
        sa.event.remove(DrillRun, "load", load)
        sa.event.remove(catalog.engine, "before_cursor_execute", execute)
    return facts, loaded[0], statements[0]


def _hourly(catalog: Catalog, database: str, runs: int) -> None:
    """``runs`` hourly runs of ``database`` up to NOW, written by SQLite itself (a
    recursive CTE: the test's time goes to the read, not to writing 20,000 rows)."""
    hour = "strftime('%Y-%m-%d %H:%M:%f', :start, '+' || n || ' hours') || '000'"
    kind = "CASE n % 2 WHEN 0 THEN 'full' ELSE 'incremental' END"
    numbers = (
        "WITH RECURSIVE h(n) AS (SELECT :first UNION ALL SELECT n + 1 FROM h WHERE n < :last) "
    )
    # One in 37 failed; the newest ones passed.
    status = "CASE WHEN n % 37 = 0 AND n < :last - 2 THEN 'failed' ELSE 'passed' END"
    drills = (
        f"{numbers} INSERT INTO drill_runs (backup_id, backup_kind, database_name, status, "
        f"started_at, finished_at) SELECT :db || n, {kind}, :db, {status}, {hour}, {hour} FROM h"
    )
    backups = (
        f"{numbers} INSERT INTO backup_records (id, backup_type, status, repository, "
        "database_name, created_at, completed_at, checksum_algorithm, is_verified, pinned) "
        f"SELECT :db || n, {kind}, 'completed', 'local', :db, {hour}, {hour}, 'sha256', 0, 0 "
        "FROM h"
    )
    start = (NOW - runs * H).replace(tzinfo=None).isoformat(sep=" ")
    values = {"db": database, "start": start, "first": 0, "last": runs - 1}
    with catalog.begin() as session:
        session.execute(sa.text(drills), values)
        # The backups of the last 14 days are still in the catalog.
        session.execute(sa.text(backups), values | {"first": max(0, runs - 14 * 24)})

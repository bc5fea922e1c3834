"""The restore tests the status judges a database by, read newest first and only as far
back as an answer can still change (:func:`read_drills`).

Of a database's finished restore tests (passed or failed; cancelled runs are no test),
newest first by ``finished_at`` then ``id``, those dated in the future left out (a clock
was ahead, see ``status.CLOCK_SKEW``): the newest one; the newest failed one that no later
pass settled (:class:`_Settling`); and for each kind of backup judged on its own, its
newest pass and its unsettled failure among the runs of that kind. The status read every
run of the history for this on every request (``respaldo status``, the web page,
``/health``, ``/metrics``): 4.2 s of one scrape with 37,000 tests, growing by 87,600 runs
a year with hourly tests of 10 databases.

The stopping rule. A failure is unsettled when no pass walked before it (newer) tested
its backup or a newer one: with ``M`` the latest completion date among the backups of the
passes walked so far, a failure further back is the answer only if its backup completed
after ``M``. So, of one walk (all runs, or one kind's):

- a failure met before any pass is the answer;
- a pass whose backup the catalog no longer has (retention deleted it: its date is
  unknown) settles every older failure: the answer is None, nothing older matters;
- otherwise, once a pass has been met, ``M`` only grows, and the answer can change only
  if some older failed run's backup completed after ``M``. Whether any does is one query
  (:func:`_later_dated_failure`) over all of the database's failed runs: a failure
  already walked never matches it (it would have been the answer), so it need not know
  where the walk stands. If none does, the answer is None and the walk stops.

The dates compared are the backups' ``completed_at`` against each other, never a run's
``finished_at``: a backup's date comes from the machine that took it, a run's from the
one that tested it, and a clock ahead (a backup dated in the future is in the catalog)
would break a rule such as "a run's backup completed before the run finished".

A kind judged on its own also needs its newest pass: one query asks for it if the first
pages did not hold it (``_NEWEST_PASS``); where none exists, the kind's unsettled failure
is its newest failed run (``_NEWEST_FAILURE``). A kind none of whose runs the walk has
met yet, though it has passes, keeps the walk going to them.

Each status (passed, failed) is read in pages of its own, newest first along the index of
migration 0016 (database, status, finished_at), and merged here; pages double, so a long
walk reads each row about twice. In the database, ``_later_dated_failure`` goes through
the database's failed runs (or the backups still in the catalog, as the planner
chooses), and ``_NEWEST_PASS`` through its passes where a kind has none: work that grows
with the history, but no rows reach Python.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from respaldo.catalog import BackupRecord, DrillRun, tested_kind
from respaldo.domain import BackupKind, DrillStatus

_FIRST_PAGE = 32
_NEVER = datetime.min.replace(tzinfo=UTC)

Row = tuple[DrillRun, datetime | None, BackupKind | None]
"""A finished run, when its backup completed (None: no such backup in the catalog any
more), the kind it tested (None: nothing says)."""


@dataclass
class DrillFacts:
    """What :func:`read_drills` found."""

    last: DrillRun | None = None
    """The newest finished restore test."""
    failed: DrillRun | None = None
    """The newest failed one that no later pass settled."""
    by_kind: dict[BackupKind, tuple[DrillRun | None, DrillRun | None]] = field(default_factory=dict)
    """Of each kind asked for: its newest pass and its unsettled failure."""


class _Settling:
    """The walk for the newest unsettled failure, fed one run at a time, newest first.
    A pass settles a failure further back when it tested the same backup or a newer one
    (or one the catalog no longer dates); a pass of an older backup does not: the newest
    backup's test failed, an older one then passed, and the item turned green while the
    backups since were the untested ones after a failing one."""

    def __init__(self) -> None:
        self.passed: DrillRun | None = None
        """The newest pass fed."""
        self.failing: DrillRun | None = None
        self.settled = False
        """Whether ``failing`` is the answer whatever older runs there are."""
        self.newest_passed: datetime | None = None
        """M: the latest completion of the passes' backups fed so far."""

    def feed(self, run: DrillRun, completed: datetime | None) -> None:
        if run.status is DrillStatus.PASSED:
            if self.passed is None:
                self.passed = run
            if self.settled:
                return
            if completed is None:
                self.settled = True  # an undated pass settles every older failure
            elif self.newest_passed is None or completed > self.newest_passed:
                self.newest_passed = completed
            return
        if self.settled:
            return
        if self.newest_passed is None or (completed is not None and completed > self.newest_passed):
            self.failing, self.settled = run, True

    @property
    def waiting(self) -> bool:
        """A pass was fed and nothing is settled: only an older failure of a backup
        completed after ``newest_passed`` can still be the answer."""
        return not self.settled and self.newest_passed is not None


class _Walk:
    def __init__(
        self, session: Session, database: str, until: datetime, kinds: Collection[BackupKind]
    ) -> None:
        self.session = session
        self.anyhow = _Settling()
        self.of_kind = {kind: _Settling() for kind in kinds}
        self.looked_up: set[BackupKind] = set()
        """Kinds whose newest pass was asked for (``_NEWEST_PASS``)."""
        self.no_pass: set[BackupKind] = set()
        """Kinds of which no pass exists."""
        self.last: DrillRun | None = None
        self.params: dict[str, object] = {"database": database, "until": until}
        # The order of ORDER BY finished_at DESC, id DESC, as the catalog's database
        # sorts NULLs (no finished run lacks the date, but the order must be the same).
        self.nulls_first = session.get_bind().dialect.name == "postgresql"

    def key(self, row: Row) -> tuple[int, datetime, int]:
        run = row[0]
        if run.finished_at is None:
            return (1 if self.nulls_first else -1, _NEVER, run.id)
        return (0, run.finished_at, run.id)

    def run(self) -> DrillFacts:
        for run, completed, kind in self.rows():
            if self.last is None:
                self.last = run
            self.anyhow.feed(run, completed)
            if kind in self.of_kind:
                self.of_kind[kind].feed(run, completed)
            if self.done():
                break
        facts = DrillFacts(last=self.last, failed=self.anyhow.failing)
        for kind, walk in self.of_kind.items():
            if kind in self.no_pass and not walk.settled:
                walk.failing = self.session.scalars(
                    _NEWEST_FAILURE, self.params | {"kind": kind}
                ).first()
            facts.by_kind[kind] = (walk.passed, walk.failing)
        return facts

    def open(self) -> list[_Settling]:
        """The walks whose answer older runs may still change: not settled, or of a
        kind whose newest pass is not met yet. A kind of which no pass exists at all is
        not among them: :meth:`run` asks for its newest failure instead."""
        found = [] if self.anyhow.settled else [self.anyhow]
        for kind, walk in self.of_kind.items():
            if kind in self.no_pass and walk.newest_passed is None:
                continue
            if not walk.settled or walk.passed is None:
                found.append(walk)
        return found

    def done(self) -> bool:
        return not self.open()

    def settle(self) -> bool:
        """Before another page: whether older runs can still change an answer (the
        module's rule). Settles the walks that queries show none can."""
        if self.last is None:
            return True
        for kind, walk in self.of_kind.items():
            # Not met yet: asked for at once, which spares walking to it when the kind's
            # newest runs failed (settled) and it passed long ago.
            if walk.passed is None and kind not in self.looked_up:
                self.looked_up.add(kind)
                params = self.params | {"kind": kind}
                walk.passed = self.session.scalars(_NEWEST_PASS, params).first()
                if walk.passed is None:
                    self.no_pass.add(kind)
        walks = self.open()
        if any(not w.waiting for w in walks):
            return True  # a kind with no run met yet: walk on to its runs
        if not walks:
            return False
        named: list[tuple[BackupKind | None, _Settling]] = [(None, self.anyhow)]
        named += self.of_kind.items()
        marks = {
            kind: walk.newest_passed
            for kind, walk in named
            if walk in walks and walk.newest_passed is not None
        }
        if _later_dated_failure(self.session, self.params, marks):
            return True
        for walk in walks:
            walk.settled = True  # the answer is None: no older failure can be it
        return False

    def rows(self) -> Iterator[Row]:
        """The finished runs, newest first: the passes' pages and the failures' merged."""
        streams = [_Pages(self, DrillStatus.PASSED), _Pages(self, DrillStatus.FAILED)]
        while True:
            heads = []
            for stream in streams:
                if not stream.buffer and not stream.exhausted:
                    if stream.fetched and not self.settle():
                        return
                    stream.fetch()
                if stream.buffer:
                    heads.append(stream)
            if not heads:
                return
            newest = max(heads, key=lambda s: self.key(s.buffer[0]))
            yield newest.buffer.popleft()


class _Pages:
    """One status's runs, newest first, a page at a time (each twice the last)."""

    def __init__(self, walk: _Walk, status: DrillStatus) -> None:
        self.walk = walk
        self.params = walk.params | {"status": status}
        self.buffer: deque[Row] = deque()
        self.fetched = 0
        self.size = _FIRST_PAGE
        self.exhausted = False

    def fetch(self) -> None:
        params = self.params | {"skip": self.fetched, "size": self.size}
        rows = [(run, at, kind) for run, at, kind in self.walk.session.execute(_PAGE, params)]
        self.buffer.extend(rows)
        self.fetched += len(rows)
        self.exhausted = len(rows) < self.size
        self.size *= 2


# Built once, with bound parameters (database, until...): statements the catalog's
# engine compiles once and caches.
_MINE = sa.and_(
    DrillRun.database_name == sa.bindparam("database"),
    # As the status has it: a run dated in the future is no recent test.
    sa.or_(DrillRun.finished_at.is_(None), DrillRun.finished_at <= sa.bindparam("until")),
)
_NEWEST_FIRST = (DrillRun.finished_at.desc(), DrillRun.id.desc())
_PAGE = (
    sa.select(DrillRun, BackupRecord.completed_at, tested_kind())
    .outerjoin(BackupRecord, BackupRecord.id == DrillRun.backup_id)
    .where(_MINE, DrillRun.status == sa.bindparam("status"))
    .order_by(*_NEWEST_FIRST)
    .offset(sa.bindparam("skip"))
    .limit(sa.bindparam("size"))
)


def _newest_of_kind(status: DrillStatus) -> sa.Select[DrillRun]:
    return (
        sa.select(DrillRun)
        .outerjoin(BackupRecord, BackupRecord.id == DrillRun.backup_id)
        .where(_MINE, DrillRun.status == status, tested_kind() == sa.bindparam("kind"))
        .order_by(*_NEWEST_FIRST)
        .limit(1)
    )


_NEWEST_PASS = _newest_of_kind(DrillStatus.PASSED)
_NEWEST_FAILURE = _newest_of_kind(DrillStatus.FAILED)


def _later_dated_failure(
    session: Session, params: dict[str, object], marks: dict[BackupKind | None, datetime]
) -> bool:
    """Whether a failed run (of the kind, for a kind's mark; of any, for None's) tested a
    backup that completed after the mark."""
    after = [
        BackupRecord.completed_at > mark
        if kind is None
        else sa.and_(tested_kind() == kind, BackupRecord.completed_at > mark)
        for kind, mark in marks.items()
    ]
    query = (
        sa.select(DrillRun.id)
        .join(BackupRecord, BackupRecord.id == DrillRun.backup_id)
        .where(_MINE, DrillRun.status == DrillStatus.FAILED, sa.or_(*after))
        .limit(1)
    )
    return session.execute(query, params).first() is not None


def read_drills(
    session: Session, database: str, until: datetime, kinds: Collection[BackupKind] = ()
) -> DrillFacts:
    """``database``'s restore tests as the status judges them (see the module), those
    finished after ``until`` left out (the status's now and ``CLOCK_SKEW``), each of
    ``kinds`` on its own too."""
    return _Walk(session, database, until, kinds).run()

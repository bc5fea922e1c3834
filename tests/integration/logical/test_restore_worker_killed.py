"""``restore --jobs 2``: a data worker whose pg_restore fails (killed, its session
terminated) while the other worker's session waits on a lock that nothing ends ends the
whole restore at once, with the first failure's message and a hint that nothing was
changed; the other worker's pg_restore is killed, the staging database dropped, the target
not made (with ``--replace``, the database replaced as it was).

The tests restore the module's installation's backups (:func:`shared_respaldo`), each
made once, each into a database of its own (the ``--replace`` case over the backed-up
database, kept as it was).

The other worker's wait is made certain, not timed: every table of the staging database
is locked by the test once its pre-data is there, before any worker starts, and the lock
is let go only after the restore has returned. Unkilled, the other worker's pg_restore
waited for it, and the restore with it, for as long as the lock was held."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import psycopg
import pytest
from psycopg import sql
from sample.cluster import TempCluster

from respaldo import postgres
from respaldo.operations import restore_parallel
from tests.integration.logical.conftest import Respaldo, Run, Shared
from tests.integration.logical.support import (
    assert_failed_leaving_nothing,
    databases,
    table_checksums,
)
from tests.integration.logical.test_parallel_dump import backup_dumped_as
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

HANG = 180
"""Seconds after which the restore counts as hung: without the abort killing the other
worker it never returns while the lock is held (the test then lets go of it)."""

_WAITING = """
SELECT a.pid, a.client_port FROM pg_catalog.pg_stat_activity a
 WHERE a.datname = current_database() AND a.application_name = 'pg_restore'
   AND a.wait_event_type = 'Lock'
"""

_TABLES = """
SELECT n.nspname, c.relname FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
"""


def _worker_restores() -> list[psutil.Process]:
    """This process's data workers' pg_restore (``--use-list=…/worker-N.list``)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if child.name() == "pg_restore" and any("/worker-" in a for a in child.cmdline()):
                found.append(child)
    return found


def _alive(processes: list[psutil.Process]) -> list[int]:
    alive = []
    for process in processes:
        with contextlib.suppress(psutil.Error):
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process.pid)
    return alive


class _Locks:
    """The test's own sessions into the staging database, each holding tables locked
    (ACCESS EXCLUSIVE) until :meth:`release` ends its transaction."""

    def __init__(self) -> None:
        self.holders: list[psycopg.Connection[Any]] = []

    def take(self, conninfo: Any, tables: list[tuple[str, str]] | None = None) -> None:
        """Lock ``tables`` (schema, name), or every table of the database."""
        holder = postgres.connect(conninfo)
        self.holders.append(holder)
        if tables is None:
            tables = holder.execute(_TABLES).fetchall()
        names = sql.SQL(", ").join(sql.Identifier(s, t) for s, t in tables)
        holder.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(names))

    def release(self) -> None:
        for holder in self.holders:
            with contextlib.suppress(psycopg.Error):
                holder.close()  # its transaction, and the lock, end


@dataclass
class _Restore:
    """A ``restore --jobs 2`` that runs in a thread of the test (:func:`_restoring`)."""

    thread: threading.Thread
    runs: list[Run]
    before: set[str]
    """The cluster's databases before it."""
    work: Path

    def wait_for(self, what: str, done: Callable[[], bool]) -> None:
        """Wait until ``done``; fail with the restore's run should it end first."""

        def waited() -> bool:
            if done():
                return True
            assert self.thread.is_alive(), self.runs
            return False

        wait_for(what, waited)

    def hung(self) -> bool:
        """Whether the restore still runs after :data:`HANG` seconds."""
        self.thread.join(HANG)
        return self.thread.is_alive()

    def failed_leaving_nothing(self, pg: TempCluster) -> Run:
        """The restore's run, which must have failed cleanly (no traceback, no database
        made, no staging database, an empty work directory), both workers' pg_restore
        gone."""
        (run,) = self.runs
        assert_failed_leaving_nothing(run, pg, self.before, self.work)
        assert _worker_restores() == []
        return run


@contextmanager
def _restoring(
    respaldo: Respaldo, tmp_path: Path, locks: _Locks, backup_id: str, target: str, *options: str
) -> Iterator[_Restore]:
    """Start ``restore BACKUP_ID --target-database TARGET --jobs 2 OPTIONS…`` in a thread,
    with a work directory of its own; after the ``with``, let go of ``locks`` (only then:
    a restore that waited for its other worker ends there) and wait for it to end."""
    before = databases(respaldo.pg)
    work = tmp_path / "work"
    work.mkdir()
    runs: list[Run] = []
    argv = ["restore", backup_id, "--target-database", target, "--jobs", "2"]
    argv += ["--work-dir", str(work), *options]
    thread = threading.Thread(target=lambda: runs.append(respaldo.run(*argv)))
    thread.start()
    try:
        yield _Restore(thread, runs, before, work)
    finally:
        locks.release()
        thread.join()


def _the_last_workers_restore(
    plan: restore_parallel.Plan,
) -> tuple[list[psutil.Process], psutil.Process]:
    """This process's data workers' pg_restore, and the pg_restore of the last worker in
    ``plan``'s order: the one the tests make fail (without _Aborted the first one's kill
    by the abort would be the failure told)."""
    listed = f"/worker-{plan.workers[-1][0]}.list"
    workers = _worker_restores()
    (failing,) = [p for p in workers if any(a.endswith(listed) for a in p.cmdline())]
    return workers, failing


def _backup(shared: Shared, respaldo: Respaldo, dumped: str) -> str:
    """The module's backup of the sample database ``dumped`` as (made once)."""
    return shared.once(dumped, lambda: backup_dumped_as(respaldo, dumped))


@pytest.mark.parametrize(
    ("dumped", "failure", "replacing", "with_globals"),
    [
        ("custom", "killed", False, False),
        ("directory", "killed", False, False),
        ("custom", "terminated", False, False),
        ("directory", "terminated", False, False),
        ("custom", "killed", True, False),
        # The roles are created before pg_restore runs, but this server has them all:
        # none was created, and "nothing was changed" is true (test_globals.py has a
        # role created, then a failure).
        ("custom", "killed", False, True),
    ],
)
def test_a_failed_worker_ends_the_restore_while_the_other_waits_on_a_lock(
    shared_installation: Shared,
    shared_respaldo: Respaldo,
    pg: TempCluster,
    new_dbname: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    dumped: str,
    failure: str,
    replacing: bool,
    with_globals: bool,
) -> None:
    respaldo = shared_respaldo
    backup_id = _backup(shared_installation, respaldo, dumped)
    # With --replace, over the backed-up database itself: it must stay as it is.
    target = respaldo.dbname if replacing else new_dbname
    replace = ["--replace"] if replacing else []
    kept = table_checksums(pg, target) if replacing else {}
    locks = _Locks()
    plans: list[restore_parallel.Plan] = []
    real_pause = restore_parallel._pause_autovacuum

    def pause(plan: restore_parallel.Plan, conninfo: Any) -> None:
        real_pause(plan, conninfo)
        # Before any worker starts: each one's first COPY waits on this lock.
        locks.take(conninfo)
        plans.append(plan)

    monkeypatch.setattr(restore_parallel, "_pause_autovacuum", pause)
    options = [*replace, *(["--globals"] if with_globals else [])]
    with _restoring(respaldo, tmp_path, locks, backup_id, target, *options) as restore:
        restore.wait_for("the staging database's tables to be locked", lambda: bool(plans))
        watcher = pg.connect(locks.holders[0].info.dbname)  # autocommit: a fresh view each poll
        try:
            restore.wait_for(
                "both workers' COPY to wait on the lock",
                lambda: len(watcher.execute(_WAITING).fetchall()) >= 2,
            )
            workers, failing = _the_last_workers_restore(plans[0])
            if failure == "killed":
                os.kill(failing.pid, signal.SIGKILL)  # as the out-of-memory killer does
            else:
                ports = {c.laddr.port for c in failing.net_connections()}
                (backend,) = [pid for pid, port in watcher.execute(_WAITING) if port in ports]
                watcher.execute("SELECT pg_catalog.pg_terminate_backend(%s)", [backend])
        finally:
            watcher.close()
        hung = restore.hung()
    assert not hung, "the restore waited for the worker stalled on the lock"
    run = restore.failed_leaving_nothing(pg)
    error, hint = run.err_lines
    # The target was not touched, and the hint says so first.
    unchanged = (
        f"respaldo: hint: nothing was changed: {target} is as it was; "
        if replacing
        else f"respaldo: hint: nothing was changed: no database {target} was created; "
    )
    assert hint.startswith(unchanged), run.err
    if failure == "killed":
        assert error == "respaldo: error: pg_restore was killed by signal 9", run.err
        assert "out-of-memory killer" in hint, run.err
    else:
        # The first failure, not the other worker's kill by the abort.
        assert "terminating connection due to administrator command" in error, run.err
        assert "killed by signal" not in run.err, run.err
        assert "the PostgreSQL server closed the connection" in hint, run.err
    assert _alive(workers) == []
    if replacing:
        assert table_checksums(pg, target) == kept


_COUNTING = """
SELECT count(*) FROM pg_catalog.pg_stat_activity a
 WHERE a.datname = current_database() AND a.wait_event_type = 'Lock'
   AND a.query LIKE 'SELECT %, count(*) FROM ONLY %'
"""


def test_a_failed_worker_ends_the_restore_while_the_other_counts_its_rows_on_a_lock(
    shared_installation: Shared,
    shared_respaldo: Respaldo,
    pg: TempCluster,
    new_dbname: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The other worker has loaded its tables and counts their rows (its post-data step's
    first part), the count waiting on a lock; the failed worker's abort cancels that
    count. Uncancelled, the restore waited for the lock, as long as it was held."""
    respaldo = shared_respaldo
    backup_id = _backup(shared_installation, respaldo, "custom")
    locks = _Locks()
    plans: list[restore_parallel.Plan] = []
    real_pause = restore_parallel._pause_autovacuum
    real_count = postgres.count_rows

    def pause(plan: restore_parallel.Plan, conninfo: Any) -> None:
        real_pause(plan, conninfo)
        # The last worker's tables only: its COPY waits, the other worker loads its own.
        last = set(plan.workers[-1])
        locks.take(conninfo, [(e.namespace, e.tag) for e in plan.toc.entries if e.dump_id in last])
        plans.append(plan)

    def count(conninfo: Any, tables: list[tuple[str, str]], **kwargs: Any) -> dict[str, int]:
        locks.take(conninfo, tables)  # the count that follows waits on it
        return real_count(conninfo, tables, **kwargs)

    monkeypatch.setattr(restore_parallel, "_pause_autovacuum", pause)
    monkeypatch.setattr(restore_parallel, "count_rows", count)
    with _restoring(respaldo, tmp_path, locks, backup_id, new_dbname) as restore:
        restore.wait_for("the last worker's tables to be locked", lambda: bool(plans))
        watcher = pg.connect(locks.holders[0].info.dbname)
        try:

            def waiting() -> bool:
                copying = len(watcher.execute(_WAITING).fetchall())
                counting = watcher.execute(_COUNTING).fetchone()
                return copying >= 1 and counting is not None and counting[0] > 0

            restore.wait_for("a COPY and the other worker's count to wait on the locks", waiting)
        finally:
            watcher.close()
        _, failing = _the_last_workers_restore(plans[0])
        os.kill(failing.pid, signal.SIGKILL)
        hung = restore.hung()
    assert not hung, "the restore waited for the other worker's row count on the lock"
    run = restore.failed_leaving_nothing(pg)
    error, hint = run.err_lines
    # The worker's kill is told, not the cancelled count.
    assert error == "respaldo: error: pg_restore was killed by signal 9", run.err
    prefix = f"respaldo: hint: nothing was changed: no database {new_dbname} was created; "
    assert hint.startswith(prefix), run.err

"""``restore --jobs 2``: a data worker whose pg_restore fails (killed, its session
terminated) while the other worker's session waits on a lock that nothing ends ends the
whole restore at once, with the first failure's message and a hint that nothing was
changed; the other worker's pg_restore is killed, the staging database dropped, the target
not made (with ``--replace``, the database replaced as it was).

The other worker's wait is made certain, not timed: every table of the staging database
is locked by the test once its pre-data is there, before any worker starts, and the lock
is let go only after the restore has returned. Unkilled, the other worker's pg_restore
waited for it, and the restore with it, for as long as the lock was held."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import psycopg
import pytest
from psycopg import sql
from sample.cluster import TempCluster

from respaldo import postgres
from respaldo.operations import restore_parallel
from tests.integration.logical.conftest import Respaldo, Run
from tests.integration.logical.support import databases, staging_databases, table_checksums
from tests.integration.logical.test_parallel_dump import parallel
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


def _backup(respaldo: Respaldo, dumped: str) -> str:
    if dumped == "custom":
        return str(respaldo.backup()["id"])
    parallel(respaldo)
    return str(respaldo.backup("erp_par")["id"])


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


@pytest.mark.parametrize(
    ("dumped", "failure", "replacing", "with_globals"),
    [
        ("custom", "killed", False, False),
        ("directory", "killed", False, False),
        ("custom", "terminated", False, False),
        ("directory", "terminated", False, False),
        ("custom", "killed", True, False),
        # The roles are created before pg_restore runs: "nothing was changed" is untrue.
        ("custom", "killed", False, True),
    ],
)
def test_a_failed_worker_ends_the_restore_while_the_other_waits_on_a_lock(
    respaldo: Respaldo,
    pg: TempCluster,
    new_dbname: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    dumped: str,
    failure: str,
    replacing: bool,
    with_globals: bool,
) -> None:
    backup_id = _backup(respaldo, dumped)
    # With --replace, over the backed-up database itself: it must stay as it is.
    target = respaldo.dbname if replacing else new_dbname
    replace = ["--replace"] if replacing else []
    kept = table_checksums(pg, target) if replacing else {}
    holders: list[psycopg.Connection[Any]] = []
    plans: list[restore_parallel.Plan] = []
    real_pause = restore_parallel._pause_autovacuum

    def pause(plan: restore_parallel.Plan, conninfo: Any) -> None:
        real_pause(plan, conninfo)
        # Before any worker starts: each one's first COPY waits on this lock.
        holder = postgres.connect(conninfo)
        holders.append(holder)
        tables = [sql.Identifier(s, t) for s, t in holder.execute(_TABLES).fetchall()]
        holder.execute(
            sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.SQL(", ").join(tables))
        )
        plans.append(plan)

    def release() -> None:
        for holder in holders:
            with contextlib.suppress(psycopg.Error):
                holder.close()  # its transaction, and the lock, end

    monkeypatch.setattr(restore_parallel, "_pause_autovacuum", pause)
    before = databases(pg)
    work = tmp_path / "work"
    work.mkdir()
    runs: list[Run] = []
    argv = ["restore", backup_id, "--target-database", target, "--jobs", "2"]
    argv += ["--work-dir", str(work), *replace, *(["--globals"] if with_globals else [])]
    restoring = threading.Thread(target=lambda: runs.append(respaldo.run(*argv)))
    restoring.start()
    try:
        wait_for(
            "the staging database's tables to be locked",
            lambda: bool(plans) or not restoring.is_alive(),
        )
        assert plans, runs
        # The last worker in the plan's order fails: without _Aborted the first one's kill
        # by the abort would be the failure told.
        listed = f"/worker-{plans[0].workers[-1][0]}.list"
        watcher = pg.connect(holders[0].info.dbname)  # autocommit: a fresh view each poll
        try:

            def both_waiting() -> bool:
                assert restoring.is_alive(), runs
                return len(watcher.execute(_WAITING).fetchall()) >= 2

            wait_for("both workers' COPY to wait on the lock", both_waiting)
            workers = _worker_restores()
            (failing,) = [p for p in workers if any(a.endswith(listed) for a in p.cmdline())]
            if failure == "killed":
                os.kill(failing.pid, signal.SIGKILL)  # as the out-of-memory killer does
            else:
                ports = {c.laddr.port for c in failing.net_connections()}
                (backend,) = [pid for pid, port in watcher.execute(_WAITING) if port in ports]
                watcher.execute("SELECT pg_catalog.pg_terminate_backend(%s)", [backend])
        finally:
            watcher.close()
        restoring.join(HANG)
        hung = restoring.is_alive()
    finally:
        release()  # only now: a restore that waited for its other worker ends here
        restoring.join()
    assert not hung, "the restore waited for the worker stalled on the lock"
    (run,) = runs
    assert run.code != 0, str(run)
    assert "Traceback" not in run.err, run.err
    error, hint = run.err_lines
    # The target was not touched, and the hint says so first.
    unchanged = (
        f"respaldo: hint: nothing was changed: {target} is as it was; "
        if replacing
        else f"respaldo: hint: no database {target} was created, but the backup's roles this "
        "server lacked were (--globals); "
        if with_globals
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
    # Both workers' pg_restore are gone, the staging database dropped, no target made,
    # nothing left in the work directory.
    assert _alive(workers) == []
    assert _worker_restores() == []
    assert databases(pg) == before
    assert staging_databases(pg) == set()
    assert list(work.iterdir()) == []
    if replacing:
        assert table_checksums(pg, target) == kept


_COUNTING = """
SELECT count(*) FROM pg_catalog.pg_stat_activity a
 WHERE a.datname = current_database() AND a.wait_event_type = 'Lock'
   AND a.query LIKE 'SELECT count(*) FROM ONLY %'
"""


def test_a_failed_worker_ends_the_restore_while_the_other_counts_its_rows_on_a_lock(
    respaldo: Respaldo,
    pg: TempCluster,
    new_dbname: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The other worker has loaded its tables and counts their rows (its post-data step's
    first part), the count waiting on a lock; the failed worker's abort cancels that
    count. Uncancelled, the restore waited for the lock, as long as it was held."""
    backup_id = _backup(respaldo, "custom")
    holders: list[psycopg.Connection[Any]] = []
    plans: list[restore_parallel.Plan] = []
    real_pause = restore_parallel._pause_autovacuum
    real_count = postgres.count_rows

    def lock(conninfo: Any, tables: list[tuple[str, str]]) -> None:
        holder = postgres.connect(conninfo)
        holders.append(holder)
        names = sql.SQL(", ").join(sql.Identifier(s, t) for s, t in tables)
        holder.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(names))

    def pause(plan: restore_parallel.Plan, conninfo: Any) -> None:
        real_pause(plan, conninfo)
        # The last worker's tables only: its COPY waits, the other worker loads its own.
        last = set(plan.workers[-1])
        lock(conninfo, [(e.namespace, e.tag) for e in plan.toc.entries if e.dump_id in last])
        plans.append(plan)

    def count(conninfo: Any, tables: list[tuple[str, str]], **kwargs: Any) -> dict[str, int]:
        lock(conninfo, tables)  # the count that follows waits on it
        return real_count(conninfo, tables, **kwargs)

    def release() -> None:
        for holder in holders:
            with contextlib.suppress(psycopg.Error):
                holder.close()

    monkeypatch.setattr(restore_parallel, "_pause_autovacuum", pause)
    monkeypatch.setattr(restore_parallel, "count_rows", count)
    before = databases(pg)
    work = tmp_path / "work"
    work.mkdir()
    runs: list[Run] = []
    argv = ["restore", backup_id, "--target-database", new_dbname, "--jobs", "2"]
    argv += ["--work-dir", str(work)]
    restoring = threading.Thread(target=lambda: runs.append(respaldo.run(*argv)))
    restoring.start()
    try:
        wait_for(
            "the last worker's tables to be locked", lambda: bool(plans) or not restoring.is_alive()
        )
        assert plans, runs
        listed = f"/worker-{plans[0].workers[-1][0]}.list"
        watcher = pg.connect(holders[0].info.dbname)
        try:

            def waiting() -> bool:
                assert restoring.is_alive(), runs
                copying = len(watcher.execute(_WAITING).fetchall())
                counting = watcher.execute(_COUNTING).fetchone()
                return copying >= 1 and counting is not None and counting[0] > 0

            wait_for("a COPY and the other worker's count to wait on the locks", waiting)
        finally:
            watcher.close()
        workers = _worker_restores()
        (failing,) = [p for p in workers if any(a.endswith(listed) for a in p.cmdline())]
        os.kill(failing.pid, signal.SIGKILL)
        restoring.join(HANG)
        hung = restoring.is_alive()
    finally:
        release()
        restoring.join()
    assert not hung, "the restore waited for the other worker's row count on the lock"
    (run,) = runs
    assert run.code != 0, str(run)
    assert "Traceback" not in run.err, run.err
    error, hint = run.err_lines
    # The worker's kill is told, not the cancelled count.
    assert error == "respaldo: error: pg_restore was killed by signal 9", run.err
    prefix = f"respaldo: hint: nothing was changed: no database {new_dbname} was created; "
    assert hint.startswith(prefix), run.err
    assert _worker_restores() == []
    assert databases(pg) == before
    assert staging_databases(pg) == set()
    assert list(work.iterdir()) == []

"""A backup whose row count fails (it runs beside pg_dump, on the snapshot's connection)
stops its pg_dump at once and fails with the count's error: no dump run to its end for
nothing, nothing recorded as good, no process or spool file left behind."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest
from sample.cluster import TempCluster

from respaldo.postgres.server import WAITING_FOR_LOCKS
from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.test_client_tools import add_database
from tests.integration.logical.test_jobs import jobs
from tests.integration.logical.test_parallel_dump import parallel
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

LOCKED = "obras.partes_trabajo"
# The counts wait for pg_dump to hold its locks (which it cannot take on LOCKED), looking
# from their own session: ending that session fails the count.
COUNT_WAITING = (
    "SELECT pid FROM pg_catalog.pg_stat_activity WHERE datname = %s"
    " AND pg_catalog.starts_with(query, %s)"
)


@pytest.mark.parametrize("database", ["erp", "erp_par"])
def test_a_failing_row_count_stops_the_dump_and_fails_the_backup(
    respaldo: Respaldo, pg: TempCluster, database: str
) -> None:
    spool = parallel(respaldo)  # erp_par: the same database, dumped by 2 workers
    with pg.connect(respaldo.dbname, autocommit=False) as locker:
        # pg_dump waits for this lock (and so does the backup's look at table sizes), and
        # the count for pg_dump's locks; its session is then ended: the count fails,
        # deterministically, while pg_dump has dumped nothing.
        locker.execute(f"LOCK TABLE {LOCKED} IN ACCESS EXCLUSIVE MODE")
        # Servers this test process already runs (a session's SeaweedFS, say) are not
        # the backup's.
        before = {p.pid for p in psutil.Process().children(recursive=True)}
        process = subprocess.Popen(
            [*respaldo.process_argv(), "backup", database],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:

            def counting() -> bool:
                assert process.poll() is None, process.communicate()
                return bool(pg.query(COUNT_WAITING, [respaldo.dbname, WAITING_FOR_LOCKS]))

            wait_for("the row count to wait for pg_dump's locks", counting)
            children = psutil.Process(process.pid).children(recursive=True)
            (pid,) = [
                row[0] for row in pg.query(COUNT_WAITING, [respaldo.dbname, WAITING_FOR_LOCKS])
            ]
            pg.execute("SELECT pg_catalog.pg_terminate_backend(%s)", [pid])
        finally:
            locker.rollback()  # a pg_dump not stopped could now dump everything
        out, err = process.communicate(timeout=300)
    assert process.returncode != 0, out + err
    assert "counting the snapshot's rows failed" in err, err
    (record,) = respaldo.records()
    assert record.status.value == "failed"
    assert "counting the snapshot's rows failed" in (record.error_message or "")
    assert respaldo.repository().backup_ids() == []  # no manifest: nothing to restore
    (job,) = jobs(respaldo)
    assert job["status"] == "failed"
    # pg_dump was stopped as soon as the count failed, before it dumped anything (the
    # whole dump is megabytes).
    assert (job["progressDone"] or 0) < 64 * 1024, job
    assert not list(spool.iterdir())
    later = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    assert not [p for p in children + later if p.is_running() and p.status() != "zombie"]
    assert not pg.query(
        "SELECT 1 FROM pg_catalog.pg_stat_activity WHERE datname = %s"
        " AND application_name LIKE 'respaldo pg_dump %%'",
        [respaldo.dbname],
    )


def _pooled_bindir(respaldo: Respaldo, pg: TempCluster, go: Path) -> Path:
    """PostgreSQL's client programs, with a pg_dump that lands in another database of the
    server than the snapshot's (as behind a pooler or a load balancer that routes it
    elsewhere): it cannot import the snapshot, while the counts on the snapshot's own
    connection are healthy. It starts once the test has read from ``go`` (a FIFO)."""
    bindir = respaldo.tmp / "pooled-bin"
    bindir.mkdir()
    for name in ("pg_dumpall", "pg_restore", "psql"):
        (bindir / name).symlink_to(pg.bindir / name)
    script = bindir / "pg_dump"
    script.write_text(
        f"#!{sys.executable}\n"
        "import os, sys\n"
        f"real = {str(pg.bindir / 'pg_dump')!r}\n"
        "args = sys.argv[1:]\n"
        "if '--dbname' in args:\n"
        "    with open(" + repr(str(go)) + ") as fifo:\n"
        "        fifo.read()\n"
        "    at = args.index('--dbname') + 1\n"
        "    args[at] += ' dbname=postgres'\n"
        "os.execv(real, [real, *args])\n"
    )
    script.chmod(0o755)
    return bindir


def test_a_dump_that_cannot_import_the_snapshot_fails_without_waiting_for_the_counts(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    go = respaldo.tmp / "go"
    os.mkfifo(go)
    add_database(respaldo, "erp_pooled", _pooled_bindir(respaldo, pg, go))
    with pg.connect(respaldo.dbname, autocommit=False) as locker:
        process = subprocess.Popen(
            [*respaldo.process_argv(), "backup", "erp_pooled"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            writer: list[int] = []

            def dump_started() -> bool:
                assert process.poll() is None, process.communicate()
                try:
                    writer.append(os.open(go, os.O_WRONLY | os.O_NONBLOCK))
                except OSError as exc:
                    if exc.errno != errno.ENXIO:  # no reader yet
                        raise
                return bool(writer)

            wait_for("pg_dump to start", dump_started)
            # The sizes and the rest read before pg_dump are done: this lock stops only
            # the counts, which wait for it as long as it is held (a long count).
            locker.execute(f"LOCK TABLE {LOCKED} IN ACCESS EXCLUSIVE MODE")
            os.close(writer[0])
            wait_for("the backup to fail", lambda: process.poll() is not None)
        finally:
            locker.rollback()
            if process.poll() is None:
                process.kill()
        out, err = process.communicate(timeout=300)
    assert process.returncode != 0, out + err
    assert "pg_dump" in err and "cannot import a snapshot from a different database" in err
    assert "counting the snapshot's rows" not in err
    assert "hint: pg_dump must reach the same server and database" in err
    (record,) = respaldo.records()
    assert record.status.value == "failed"
    assert respaldo.repository().backup_ids() == []
    assert not pg.query(COUNT_WAITING, [respaldo.dbname, WAITING_FOR_LOCKS])

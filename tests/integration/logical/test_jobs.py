"""Backups and restores run as jobs: recorded, exclusive, cancellable from another process.

A backup is made to wait inside ``pg_dump`` itself: a partitioned table's parent is
locked ACCESS EXCLUSIVE by an application transaction. respaldo counts rows of the leaf
partitions only (the parent holds none), so the backup gets past its row counts, but
``pg_dump`` locks every table it dumps, the parent too, and waits there.
"""

from __future__ import annotations

import getpass
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import pytest
from sample.cluster import TempCluster

from tests.integration.logical.conftest import Respaldo, Shared
from tests.integration.logical.support import backup_with_a_table_of, waiting_on_a_role_lock
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def jobs(respaldo: Respaldo) -> list[dict[str, Any]]:
    run = respaldo.run("jobs", "--json")
    assert run.code == 0, str(run)
    found: list[dict[str, Any]] = run.json()
    return found


def partitioned_table(pg: TempCluster, dbname: str) -> None:
    pg.execute(
        "CREATE TABLE public.bitacora (id int, nota text) PARTITION BY RANGE (id);"
        "CREATE TABLE public.bitacora_1 PARTITION OF public.bitacora FOR VALUES FROM (0) TO (100);"
        "INSERT INTO public.bitacora VALUES (1, 'uno'), (2, 'dos')",
        dbname=dbname,
    )


def pg_dump_waiting(pg: TempCluster, dbname: str) -> bool:
    return bool(
        pg.scalar(
            "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE datname = %s"
            " AND application_name LIKE 'respaldo pg_dump %%' AND wait_event_type = 'Lock'",
            [dbname],
        )
    )


@contextmanager
def backup_inside_pg_dump(
    respaldo: Respaldo, pg: TempCluster, *args: str, config: Path | None = None
) -> Iterator[tuple[subprocess.Popen[str], psutil.Process]]:
    """``respaldo ARGS`` (a backup of erp) in a subprocess, its pg_dump child waiting on
    a lock. Yields the process and its pg_dump child; the lock is released when the
    block ends (and a pg_dump left behind by a killed process is killed)."""
    partitioned_table(pg, respaldo.dbname)
    with pg.connect(respaldo.dbname, autocommit=False) as locker:
        locker.execute("LOCK TABLE ONLY public.bitacora IN ACCESS EXCLUSIVE MODE")
        argv = [
            sys.executable,
            "-m",
            "respaldo.cli.main",
            "--config",
            str(config or respaldo.config),
        ]
        process = subprocess.Popen(
            [*argv, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:

            def dumping() -> bool:
                assert process.poll() is None, process.communicate()
                return pg_dump_waiting(pg, respaldo.dbname)

            wait_for("pg_dump to wait for the lock", dumping)
            (child,) = [p for p in psutil.Process(process.pid).children() if p.name() == "pg_dump"]
            yield process, child
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
            locker.rollback()


def test_a_cli_backup_is_a_job_recorded_with_the_os_user(respaldo: Respaldo) -> None:
    record = respaldo.backup()
    (job,) = jobs(respaldo)
    assert job["kind"] == "backup"
    assert job["target"] == "erp"
    assert job["status"] == "completed"
    assert job["triggeredBy"] == "cli"
    assert job["requestedBy"] == getpass.getuser()
    assert job["resultId"] == record["id"]
    assert job["progressDone"] > 0
    shown = respaldo.run("jobs", "show", str(job["id"]), "--json")
    assert shown.code == 0, str(shown)
    assert shown.json()["id"] == job["id"]


def test_jobs_cancel_stops_a_running_backup_and_leaves_no_manifest(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    with backup_inside_pg_dump(respaldo, pg, "backup", "erp") as (process, pg_dump):
        (job,) = jobs(respaldo)
        assert job["status"] == "running"
        run = respaldo.run("jobs", "cancel", str(job["id"]))
        assert run.code == 0, str(run)
        assert "asked to stop" in run.err
        _, err = process.communicate(timeout=120)
        # pg_dump is gone while the lock is still held: killed, not finished.
        assert not pg_dump.is_running() or pg_dump.status() == psutil.STATUS_ZOMBIE
    assert process.returncode == 1, err
    assert "cancelled" in err
    (job,) = jobs(respaldo)
    assert (job["status"], job["error"]) == ("cancelled", "cancelled by request")
    assert job["finishedAt"] is not None
    (record,) = respaldo.records()
    assert record.status == "failed"
    assert job["resultId"] == record.id  # the failed record, named from the start
    assert respaldo.repository().backup_ids() == []  # no manifest: no backup
    # Released, the database and the next backup are fine.
    assert respaldo.backup()["status"] == "completed"


def test_a_second_backup_of_the_same_database_is_refused_while_one_runs(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    with backup_inside_pg_dump(respaldo, pg, "backup", "erp") as (process, _):
        second = respaldo.run("backup", "erp")
        assert second.code == 1
        assert "a backup of erp is already running (job 1)" in second.err
        statuses = {job["id"]: job["status"] for job in jobs(respaldo)}
        assert statuses == {1: "running", 2: "failed"}
        process.send_signal(signal.SIGKILL)
        process.communicate()
    # The killed one is failed at the next start; then backups run again.
    by_id = {job["id"]: job for job in jobs(respaldo)}
    assert by_id[1]["status"] == "failed"
    assert by_id[1]["error"] == (
        f"process {process.pid} died while the job ran (found at start-up)"
    )
    assert respaldo.backup()["status"] == "completed"


@pytest.mark.parametrize(
    ("jobs_option", "stop"),
    [
        ("1", "cancel"),
        ("2", "cancel"),
        ("2", "interrupt"),
        ("1", "SIGTERM"),
        ("2", "SIGTERM"),
        ("2", "SIGHUP"),
    ],
)
def test_jobs_cancel_stops_a_running_restore_and_leaves_no_database(
    shared_installation: Shared,
    shared_respaldo: Respaldo,
    pg: TempCluster,
    new_dbname: str,
    jobs_option: str,
    stop: str,
) -> None:
    """The restore is made to wait inside ``pg_restore``: the backup has a table owned
    by a role that an uncommitted ``DROP ROLE`` holds locked, and giving the restored
    table its owner waits for that lock.

    With ``--jobs 2`` that pg_restore (the pre-data section's) runs in the restore's own
    thread, which had not the job's cancellation: the cancel, and Ctrl-C, waited for the
    lock, for as long as it was held (the 120 s below; 61 s in a try that let go at 60).

    The cases restore one backup of the module's installation (its role stays until the
    module ends), each into a database of its own: its job is the restore to it."""
    respaldo = shared_respaldo
    role = f"bloqueo_{respaldo.dbname}"
    cleanup = shared_installation.cleanup
    backup_id = shared_installation.once(
        "role's table", lambda: cleanup.enter_context(backup_with_a_table_of(pg, respaldo, role))
    )
    before = staging_databases(pg)
    restore = ["restore", backup_id, "--target-database", new_dbname, "--jobs", jobs_option]

    def restore_job() -> dict[str, Any]:
        (job,) = [j for j in jobs(respaldo) if j["kind"] == "restore" and j["target"] == new_dbname]
        return job

    with waiting_on_a_role_lock(respaldo, role, *restore) as process:
        (pg_restore,) = [
            p for p in psutil.Process(process.pid).children() if p.name() == "pg_restore"
        ]
        assert restore_job()["status"] == "running"
        if stop == "cancel":
            assert respaldo.run("jobs", "cancel", str(restore_job()["id"])).code == 0
        elif stop == "interrupt":
            process.send_signal(signal.SIGINT)  # Ctrl-C
        else:  # kill, timeout, systemd; an ssh session that dropped
            process.send_signal(signal.Signals[stop])
        # A hang detector: the lock is held until the restore has ended.
        _, err = process.communicate(timeout=120)
        assert not pg_restore.is_running() or pg_restore.status() == "zombie"
    code, reason, said = {
        "cancel": (1, "cancelled by request", None),
        "interrupt": (130, "interrupted", "interrupted"),
        "SIGTERM": (143, "terminated by SIGTERM", "terminated (SIGTERM)"),
        "SIGHUP": (129, "terminated by SIGHUP", "terminated (SIGHUP)"),
    }[stop]
    assert process.returncode == code, err
    assert "Traceback" not in err, err
    assert (restore_job()["status"], restore_job()["error"]) == ("cancelled", reason)
    if said is not None:
        assert err.splitlines()[-1] == f"respaldo: {said}", err
    assert not pg.scalar("SELECT count(*) FROM pg_database WHERE datname = %s", [new_dbname])
    assert staging_databases(pg) == before  # the staging database is dropped


def staging_databases(pg: TempCluster) -> int:
    return int(
        pg.scalar("SELECT count(*) FROM pg_database WHERE datname LIKE 'respaldo\\_staging\\_%'")
    )


def test_jobs_cancel_stops_a_backup_blocked_in_a_query_of_its_own(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    """Before pg_dump starts, the backup counts rows in its snapshot; blocked there by an
    application's lock, it is stopped by cancelling its query (no child to kill yet)."""
    from tests.integration.logical.test_abandoned import blocked_backup

    with blocked_backup(respaldo, pg) as process:
        (job,) = jobs(respaldo)
        assert respaldo.run("jobs", "cancel", str(job["id"])).code == 0
        # Still inside the block: the application's lock is held until it ends.
        _, err = process.communicate(timeout=120)
    assert process.returncode == 1, err
    (job,) = jobs(respaldo)
    assert (job["status"], job["error"]) == ("cancelled", "cancelled by request")
    (record,) = respaldo.records()
    assert record.status == "failed"
    assert respaldo.repository().backup_ids() == []


@pytest.mark.parametrize("again", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_a_second_signal_during_the_staging_drop_says_what_it_left(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str, again: signal.Signals
) -> None:
    """SIGTERM to a restore held in pg_restore (a role lock, as above), then, while its
    cleanup's DROP DATABASE of the staging database waits on a lock of that database
    (an uncommitted COMMENT ON DATABASE of the test), SIGTERM again or Ctrl-C.

    The second signal stops the drop, as its user asked: the staging database stays. The
    command now says so, and that the next restore or drill drops it (it ended with only
    'respaldo: terminated (SIGTERM)'); the job's reason stays the first signal's (a
    Ctrl-C made it 'interrupted' while the exit status said SIGTERM); the next restore
    drops the database and restores."""
    role = f"bloqueo_{new_dbname}"
    with backup_with_a_table_of(pg, respaldo, role) as backup_id:
        before = staging_databases(pg)
        restore = ["restore", backup_id, "--target-database", new_dbname, "--jobs", "2"]
        with (
            pg.connect(autocommit=False) as holder,
            waiting_on_a_role_lock(respaldo, role, *restore) as process,
        ):
            try:
                (staging,) = [
                    name
                    for (name,) in pg.query(
                        "SELECT datname FROM pg_catalog.pg_database"
                        " WHERE datname LIKE 'respaldo\\_staging\\_%'"
                    )
                ]
                holder.execute(f"COMMENT ON DATABASE {staging} IS 'held by the test'")
                children = psutil.Process(process.pid).children(recursive=True)
                process.send_signal(signal.SIGTERM)

                def drop_waits() -> bool:
                    assert process.poll() is None, process.communicate()
                    return bool(
                        pg.scalar(
                            "SELECT count(*) FROM pg_catalog.pg_stat_activity"
                            " WHERE wait_event_type = 'Lock' AND query ILIKE 'DROP DATABASE%%'"
                        )
                    )

                wait_for("the staging database's drop to wait for the lock", drop_waits)
                process.send_signal(again)
                _, err = process.communicate(timeout=120)
            finally:
                holder.rollback()
        assert process.returncode == 143, err
        assert err.splitlines()[-1] == "respaldo: terminated (SIGTERM)", err
        assert "Traceback" not in err, err
        assert (
            f"interrupted while dropping staging database {staging}: it is left on the "
            "server; the next restore or drill on this server drops it"
        ) in err
        (job,) = [j for j in jobs(respaldo) if j["kind"] == "restore"]
        assert (job["status"], job["error"]) == ("cancelled", "terminated by SIGTERM")
        assert not [p for p in children if p.is_running() and p.status() != "zombie"]
        assert staging_databases(pg) == before + 1  # left, as said
        assert not pg.scalar("SELECT count(*) FROM pg_database WHERE datname = %s", [new_dbname])

        run = respaldo.run("restore", backup_id, "--target-database", new_dbname)
        assert run.code == 0, str(run)
        assert f"dropped staging database {staging}" in run.err
        assert staging_databases(pg) == before
        # What the role owns there goes before the role.
        pg.execute(f'DROP DATABASE "{new_dbname}" WITH (FORCE)')

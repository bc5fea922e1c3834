"""A backup whose process died or was interrupted is never left ``in_progress``, and one
killed after its manifest was written (the backup is whole) is completed, not failed.

The backup is made to wait: an application transaction holds an ACCESS EXCLUSIVE lock on
a table, so the backup blocks on it (counting rows in its snapshot) while its record says
``in_progress``. Then its process is killed or interrupted.

The waits follow events (the record's status, the server's lock wait), with bounds only
a hang reaches: how long a loaded machine takes must not decide the outcome. An
interrupt that is lost shows as a record still ``in_progress``, never as a slow exit.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sample.cluster import TempCluster

from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import script_child, table_checksums
from tests.integration.processes import kill_if_running

pytestmark = pytest.mark.integration


def _wait_for(what: str, check: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextmanager
def sigint(
    disposition: signal.Handlers | Callable[..., Any], sig: signal.Signals = signal.SIGINT
) -> Iterator[None]:
    """``sig`` set to ``disposition`` in this process for the block (children inherit it)."""
    before = signal.signal(sig, disposition)
    try:
        yield
    finally:
        signal.signal(sig, before)


@contextmanager
def blocked_backup(
    respaldo: Respaldo,
    pg: TempCluster,
    *,
    started_ignoring_sigint: bool = False,
    started_ignoring_sighup: bool = False,
) -> Iterator[subprocess.Popen[str]]:
    """A ``python -m respaldo.cli.main backup erp`` process, in progress and waiting on a lock.

    ``started_ignoring_sigint``: started as a non-interactive shell starts a background
    job (``respaldo backup erp &``), with SIGINT ignored. ``started_ignoring_sighup``: as
    ``nohup`` starts it. The lock is released when the
    block ends; the process is killed then if it still runs.
    """
    source = respaldo.dbname
    with pg.connect(source, autocommit=False) as locker:
        locker.execute("LOCK TABLE finanzas.facturas IN ACCESS EXCLUSIVE MODE")
        argv = respaldo.process_argv()
        disposition = signal.SIG_IGN if started_ignoring_sigint else signal.default_int_handler
        hangup = signal.SIG_IGN if started_ignoring_sighup else signal.SIG_DFL
        with sigint(disposition), sigint(hangup, signal.SIGHUP):
            process = subprocess.Popen(
                [*argv, "backup", "erp"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        try:

            def in_progress() -> bool:
                assert process.poll() is None, process.communicate()
                records = respaldo.records()
                return bool(records) and records[0].status == "in_progress"

            def waiting_for_the_lock() -> bool:
                return bool(
                    pg.scalar(
                        "SELECT count(*) FROM pg_catalog.pg_stat_activity"
                        " WHERE datname = %s AND wait_event_type = 'Lock'",
                        [source],
                    )
                )

            _wait_for("the backup to be in progress", in_progress)
            _wait_for("the backup to wait for the lock", waiting_for_the_lock)
            yield process
        finally:
            kill_if_running(process)
            locker.rollback()


def test_a_killed_backup_is_marked_failed_at_the_next_start(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    with blocked_backup(respaldo, pg) as process:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=10)
    assert process.returncode == -signal.SIGKILL

    (record,) = respaldo.records()
    assert record.status == "in_progress"  # nobody has looked yet
    assert record.job_id is not None  # the record follows the job that runs it

    run = respaldo.run("list", "--json")  # the next start: the job lapsed, and its record
    assert run.code == 0, str(run)
    (listed,) = run.json()
    assert listed["id"] == record.id
    assert listed["status"] == "failed"
    reason = f"process {process.pid} died while the job ran (found at start-up)"
    assert listed["errorMessage"] == f"job {record.job_id} failed: {reason}"
    job = respaldo.run("jobs", "show", str(record.job_id), "--json").json()
    assert (job["status"], job["error"], job["resultId"]) == ("failed", reason, record.id)
    assert listed["completedAt"] is not None
    assert respaldo.repository().backup_ids() == []  # no manifest: no backup

    # The database is fine, and the next backup works.
    after = respaldo.backup()
    assert after["status"] == "completed"


@pytest.mark.parametrize(
    ("started_ignoring_sigint", "sig"),
    [
        (False, signal.SIGINT),  # Ctrl-C
        (True, signal.SIGINT),
        (False, signal.SIGTERM),  # kill, timeout, systemd, a container runtime
        (False, signal.SIGHUP),  # the terminal or ssh session closed
    ],
    ids=["foreground", "background", "sigterm", "sighup"],
)
def test_an_interrupted_backup_is_marked_failed_at_once(
    respaldo: Respaldo, pg: TempCluster, started_ignoring_sigint: bool, sig: signal.Signals
) -> None:
    with blocked_backup(respaldo, pg, started_ignoring_sigint=started_ignoring_sigint) as process:
        process.send_signal(sig)
        # Lost, the interrupt would leave the backup waiting for the lock, in progress.
        _wait_for(
            "the interrupted backup to leave in_progress",
            lambda: respaldo.records()[0].status != "in_progress",
        )
        out, err = process.communicate()
    assert process.returncode == 128 + sig  # as a shell reports it: 130, 143, 129
    assert out == ""  # no backup id: there is no backup
    said = "interrupted" if sig == signal.SIGINT else f"terminated ({sig.name})"
    assert err.splitlines()[-1] == f"respaldo: {said}", err
    (record,) = respaldo.records()
    assert record.status == "failed"
    reason = "interrupted" if sig == signal.SIGINT else f"terminated by {sig.name}"
    assert record.error_message == reason
    assert respaldo.repository().backup_ids() == []
    if sig != signal.SIGINT:  # the repository is consistent: the next backup verifies
        assert respaldo.backup()["status"] == "completed"
        run = respaldo.run("verify", "--all")
        assert run.code == 0, str(run)


def test_a_backup_started_with_nohup_survives_a_hangup(respaldo: Respaldo, pg: TempCluster) -> None:
    """``nohup respaldo backup erp``: SIGHUP is ignored, as its user asked; unlike SIGINT,
    whose inherited SIG_IGN respaldo overrides."""
    with blocked_backup(respaldo, pg, started_ignoring_sighup=True) as process:
        process.send_signal(signal.SIGHUP)
        # Ctrl-C, after the hangup: the backup still waits for the lock, in progress.
        assert respaldo.records()[0].status == "in_progress"
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert err.splitlines()[-1] == "respaldo: interrupted", err
    (record,) = respaldo.records()
    assert (record.status, record.error_message) == ("failed", "interrupted")


PAUSED_BACKUP = Path(__file__).with_name("paused_backup.py")


def test_a_backup_killed_between_its_manifest_and_its_record_is_completed(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    expected = table_checksums(pg, respaldo.dbname)
    with script_child(PAUSED_BACKUP, str(respaldo.config), "erp") as child:
        assert child.stdout is not None
        line = child.stdout.readline()  # the manifest is written; the record not completed
        assert line.startswith("manifest "), (line, child.communicate())
        backup_id = line.split()[1]
        assert respaldo.repository().backup_ids() == [backup_id]
        (record,) = respaldo.records()
        assert (record.id, record.status) == (backup_id, "in_progress")
        assert record.job_id is not None
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL

    run = respaldo.run_process("list", "--json")  # the next start, a new process
    assert run.code == 0, str(run)
    (listed,) = run.json()
    assert listed["id"] == backup_id
    assert listed["status"] == "completed"
    assert listed["errorMessage"] is None
    manifest = respaldo.repository().load_manifest(backup_id)
    assert listed["checksum"] == manifest.stream("dump").sha256
    assert listed["sizeBytes"] == manifest.size
    assert listed["expiresAt"] is not None
    assert f"backup {backup_id}: its process died after the backup was complete" in run.err
    # Its job lapsed; the manifest, not the job, says how the backup ended.
    job = respaldo.run("jobs", "show", str(record.job_id), "--json").json()
    assert (job["status"], job["resultId"]) == ("failed", backup_id)
    assert job["error"] == f"process {child.pid} died while the job ran (found at start-up)"

    respaldo.restore(backup_id, new_dbname)
    assert table_checksums(pg, new_dbname) == expected

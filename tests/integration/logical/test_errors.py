"""Failures: a non-zero exit, one clear line and a hint on stderr, and nothing changed.

"Nothing changed": no database created or touched, no staging database left, no backup
in the repository, and a backup that was attempted is recorded ``failed`` with its reason.
"""

from __future__ import annotations

import logging
import os
import subprocess

import pytest
from sample.cluster import TempCluster

from respaldo.domain import BackupStatus
from tests.integration.logical.conftest import PASSPHRASE, WRONG_PASSWORD, Respaldo, Run
from tests.integration.logical.support import databases, staging_databases, table_checksums

pytestmark = pytest.mark.integration


def assert_error(run: Run, message: str, hint: str) -> None:
    """Exit status 1, and on stderr exactly the error line and the hint line."""
    assert run.code == 1, str(run)
    assert run.out == ""
    assert len(run.err_lines) == 2, run.err
    error, hint_line = run.err_lines
    assert error.startswith("respaldo: error: "), run.err
    assert message in error, run.err
    assert hint_line.startswith("respaldo: hint: "), run.err
    assert hint in hint_line, run.err


def test_unreachable_server(respaldo: Respaldo) -> None:
    run = respaldo.run("backup", "unreachable")
    assert_error(
        run,
        "cannot connect to PostgreSQL (host=127.0.0.1 port=",
        "check that the server is running",
    )
    assert "Connection refused" in run.err
    (record,) = respaldo.records()
    assert record.status == "failed"
    assert record.database_name == "unreachable"
    assert record.error_message is not None
    assert record.error_message in run.err_lines[0]
    assert record.completed_at is not None
    assert respaldo.repository().backup_ids() == []


def _everything_written(respaldo: Respaldo) -> bytes:
    files = [p for p in respaldo.tmp.rglob("*") if p.is_file() and p.suffix != ".pass"]
    return b"".join(p.read_bytes() for p in files)


def test_wrong_password_is_said_nowhere(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    run = respaldo.run("--verbose", "backup", "wrongpass")
    assert_error(run, "password authentication failed for user", "password_file")
    (record,) = respaldo.records()
    assert record.status == "failed"
    assert record.error_message is not None
    assert "password authentication failed" in record.error_message
    assert respaldo.repository().backup_ids() == []
    # And the same in a real process, whose stderr has no capture in between.
    process = respaldo.run_process("--verbose", "backup", "wrongpass")
    assert process.code == 1
    assert "password authentication failed" in process.err
    # A restore to that server fails before it creates anything.
    backup_id = respaldo.backup()["id"]
    before = databases(pg)
    restore = respaldo.run("restore", backup_id, "-t", new_dbname, "--database", "wrongpass")
    assert_error(restore, "password authentication failed for user", "password_file")
    assert databases(pg) == before

    secret = WRONG_PASSWORD
    for text in (run.out, run.err, caplog.text, process.out, process.err, restore.err):
        assert secret not in text
    for record in respaldo.records():
        assert secret not in (record.error_message or "")
    # The catalog file, the repository's objects, the cache: no byte sequence of it.
    assert secret.encode() not in _everything_written(respaldo)


def test_a_database_that_is_not_configured(respaldo: Respaldo) -> None:
    run = respaldo.run("backup", "nomina")
    assert_error(
        run,
        "'nomina' is ",  # "…not configured" / "…neither a configured database nor a file set"
        "configured: erp, erp_hooked, erp_posthook, unreachable, wrongpass",
    )
    assert respaldo.records() == []


def test_wrong_repository_passphrase(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    backup_id = respaldo.backup()["id"]
    monkeypatch.setenv("RESPALDO_PASSPHRASE", "not the passphrase")
    run = respaldo.run("backup", "erp")
    assert_error(run, "wrong passphrase for the repository at file://", "RESPALDO_PASSPHRASE")
    # The attempt is a failed backup (status, metrics and the page show it), nothing pending.
    good, failed = sorted(respaldo.records(), key=lambda r: r.id != backup_id)
    assert good.id == backup_id and good.status is BackupStatus.COMPLETED
    assert failed.status is BackupStatus.FAILED
    assert "wrong passphrase" in (failed.error_message or "")
    assert "not the passphrase" not in (failed.error_message or "")
    before = databases(pg)
    run = respaldo.run("restore", backup_id, "--target-database", new_dbname)
    assert_error(run, "wrong passphrase", "RESPALDO_PASSPHRASE")
    assert databases(pg) == before
    for text in (run.out, run.err):
        assert "not the passphrase" not in text
        assert PASSPHRASE not in text


def test_restore_refuses_a_corrupt_chunk(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    backup_id = respaldo.backup()["id"]
    pack = respaldo.damage_dump(backup_id)
    before = databases(pg)
    for jobs in ("1", "2"):
        run = respaldo.run("restore", backup_id, "--target-database", new_dbname, "--jobs", jobs)
        assert_error(run, f"[backup {backup_id}] [object {pack}]", "respaldo index rebuild")
        assert "of stream 'dump'" in run.err_lines[0]
        assert databases(pg) == before
        assert new_dbname not in databases(pg)
        assert staging_databases(pg) == set()


def test_restore_into_an_existing_database_needs_replace(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    backup_id = respaldo.backup()["id"]
    target = respaldo.dbname
    pg.execute("DELETE FROM finanzas.pagos WHERE id % 2 = 0", dbname=target)
    changed = table_checksums(pg, target)
    before = databases(pg)
    run = respaldo.run("restore", backup_id, "--target-database", target)
    assert_error(run, f"database {target!r} already exists", "--replace")
    assert table_checksums(pg, target) == changed
    assert databases(pg) == before


def test_invalid_target_names(respaldo: Respaldo, pg: TempCluster) -> None:
    before = databases(pg)
    # Only what PostgreSQL would not keep as given (or its tools refuse); "a b", 'x"y',
    # "x; drop" and "café" are names like any other (tests/unit/test_database_names.py).
    for name in ["erp\nx", "", "a" * 64, "é" * 32]:
        run = respaldo.run("restore", "20260101T000000Z-0123abcd", "--target-database", name)
        assert_error(run, f"invalid database name {name!r}", "1 to 63 bytes")
    assert databases(pg) == before


def test_unknown_backup_id(respaldo: Respaldo, pg: TempCluster, new_dbname: str) -> None:
    respaldo.backup()
    before = databases(pg)
    run = respaldo.run("restore", "20260101T000000Z-0123abcd", "--target-database", new_dbname)
    assert_error(run, "no backup 20260101T000000Z-0123abcd in file://", "respaldo list")
    run = respaldo.run("restore", "../../etc/passwd", "--target-database", new_dbname)
    assert_error(run, "invalid backup id '../../etc/passwd'", "a backup id looks like")
    assert databases(pg) == before
    shown = respaldo.run("show", "20260101T000000Z-0123abcd")
    assert_error(shown, "no backup 20260101T000000Z-0123abcd in the catalog", "catalog rebuild")
    shown = respaldo.run("show", "nope")
    assert_error(shown, "invalid backup id 'nope'", "a backup id looks like")


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_work_dir_that_is_not_a_directory(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str, kind: str
) -> None:
    backup_id = respaldo.backup()["id"]
    work_dir = respaldo.tmp / "spool"
    if kind == "file":
        work_dir.write_text("not a directory")
    before = databases(pg)
    run = respaldo.run(
        "restore", backup_id, "-t", new_dbname, "--jobs", "2", "--work-dir", str(work_dir)
    )
    reason = "does not exist" if kind == "missing" else "is not a directory"
    assert_error(run, f"work directory {work_dir} {reason}", "--work-dir")
    assert "Traceback" not in run.err
    assert databases(pg) == before  # no target, no staging database
    assert work_dir.exists() == (kind == "file")


def test_a_work_dir_that_runs_out_of_room(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    # restore --jobs spools the dump in the work directory: a full disk there raised a
    # bare OSError, printed as a traceback ('[Errno 28] No space left on device').
    backup_id = respaldo.backup()["id"]
    work_dir = respaldo.tmp / "small"
    work_dir.mkdir()
    assert os.geteuid() == 0, "the small work directory is a tmpfs: run the suite as root"
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(work_dir)], check=True)
    try:
        before = databases(pg)
        run = respaldo.run(
            "restore", backup_id, "-t", new_dbname, "--jobs", "2", "--work-dir", str(work_dir)
        )
        assert_error(
            run,
            f"the restore's work directory {work_dir} ran out of room for the spooled dump: "
            "No space left on device",
            "nothing was restored; free room there",
        )
        assert "--work-dir" in run.err_lines[1]
        assert databases(pg) == before  # no target, no staging database
        assert list(work_dir.iterdir()) == []
    finally:
        subprocess.run(["umount", str(work_dir)], check=True)

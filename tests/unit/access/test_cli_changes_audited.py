"""Changes asked for from the command line are audited with the OS user as the actor:
backups, restores, restore tests, prunes (run as jobs), pin/unpin, job cancellation.
Verifications, dry runs and scheduled backups are not (scheduled restore tests and cleanups
are: tests/integration/logical/test_scheduled_audit.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from respaldo.catalog import BackupRecords
from respaldo.cli.main import invoke
from respaldo.config import Settings
from respaldo.domain import AuditAction, AuditOutcome, BackupKind, JobKind, TriggeredBy
from respaldo.errors import OperationError
from respaldo.operations import audit, jobs
from respaldo.operations.context import Context
from respaldo.operations.jobs import JobRequest, cli_request, os_user, run_now

pytestmark = pytest.mark.unit

BACKUP_ID = "20261204T220000Z-0123abcd"


def _entries(context: Context) -> list[tuple[str, str | None, AuditOutcome, str]]:
    return [(e.action, e.target, e.outcome, e.actor) for e in audit.entries(context)]


def test_a_cli_backup_is_audited_with_its_backup_id(context: Context) -> None:
    run_now(context, cli_request(JobKind.BACKUP, "erp"), lambda c: 1, result_id=lambda r: BACKUP_ID)
    assert _entries(context) == [("backup.create", BACKUP_ID, AuditOutcome.SUCCESS, os_user())]
    (entry,) = audit.entries(context)
    assert entry.method == "local" and entry.address is None


def test_a_failed_cli_restore_is_audited_with_the_reason(context: Context) -> None:
    def fails(_: Context) -> None:
        raise OperationError("the target database is in use")

    with pytest.raises(OperationError):
        run_now(context, cli_request(JobKind.RESTORE, "erp"), fails)
    (entry,) = audit.entries(context)
    assert (entry.action, entry.target, entry.outcome) == ("restore", "erp", AuditOutcome.FAILURE)
    assert entry.detail is not None and "the target database is in use" in entry.detail


@pytest.mark.parametrize(
    ("request_", "audited"),
    [
        (cli_request(JobKind.DRILL, "erp"), "restore_test"),
        (cli_request(JobKind.PRUNE, None, {"dry_run": False}), "prune"),
        (cli_request(JobKind.PRUNE, None, {"dry_run": True}), None),
        (cli_request(JobKind.VERIFY, "local"), None),
        (JobRequest(JobKind.BACKUP, "erp", TriggeredBy.SCHEDULE, "nightly"), None),
    ],
)
def test_what_is_audited(context: Context, request_: JobRequest, audited: str | None) -> None:
    run_now(context, request_, lambda c: None)
    assert [e.action for e in audit.entries(context)] == ([audited] if audited else [])


@pytest.fixture
def config(tmp_path: Path, settings: Settings, context: Context) -> Path:
    path = tmp_path / "respaldo.toml"
    path.write_text(f'[catalog]\nurl = "{settings.catalog.url}"\n')
    return path


def test_pin_unpin_and_cancel_from_the_cli_are_audited(
    config: Path, context: Context, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    with context.catalog.begin() as session:
        record = BackupRecords(session).create_pending(
            kind=BackupKind.FULL,
            repository="local",
            triggered_by=TriggeredBy.CLI,
            retention_days=7,
            database_name="erp",
            now=now,
        )
    queued = jobs.submit(context, cli_request(JobKind.VERIFY, "local"))
    assert invoke(["--config", str(config), "pin", record.id]) == 0
    assert invoke(["--config", str(config), "unpin", record.id]) == 0
    assert invoke(["--config", str(config), "pin", BACKUP_ID]) == 1
    assert invoke(["--config", str(config), "jobs", "cancel", str(queued.id)]) == 0
    capsys.readouterr()
    me = os_user()
    assert _entries(context) == [
        ("job.cancel", str(queued.id), AuditOutcome.SUCCESS, me),
        ("backup.pin", BACKUP_ID, AuditOutcome.FAILURE, me),
        ("backup.unpin", record.id, AuditOutcome.SUCCESS, me),
        ("backup.pin", record.id, AuditOutcome.SUCCESS, me),
    ]
    assert AuditAction.BACKUP_PIN.value == "backup.pin"

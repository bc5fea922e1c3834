"""A job that fails with a real PostgreSQL error echoing a secret the process loaded from
a file (a database's ``password_file``): the job's failure message and its backup
record in the catalog, the audit log, the alert sent, and the API's answers carry
``<secret>`` in its place."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sample.cluster import TempCluster

from respaldo.config import Settings, read_secret_file
from respaldo.domain import BackupKind, JobKind, TriggeredBy
from respaldo.operations import audit, jobs
from respaldo.operations.context import Context
from respaldo.operations.recorded import recorded_backup
from respaldo.operations.repositories import init_repositories
from tests.integration.api.conftest import client
from tests.servers.notify import Webhook, webhook  # noqa: F401 (a fixture)
from tests.unit.api.conftest import FAST_KDF

pytestmark = pytest.mark.integration


def test_a_failure_echoing_a_loaded_password_is_stored_alerted_and_answered_without_it(
    pg: TempCluster,
    tmp_path: Path,
    webhook: Webhook,  # noqa: F811
) -> None:
    password = f"pw-{secrets.token_hex(8)}"
    password_file = tmp_path / "erp.password"
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    settings = Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        cache_dir=tmp_path / "cache",
        passphrase="correct horse (test)",
        repositories=[{"name": "local", "url": f"file://{tmp_path / 'repo'}"}],
        databases=[
            {
                "name": "erp",
                "dsn": f"postgresql://{pg.superuser}@{pg.host}:{pg.port}/postgres",
                "password_file": password_file,
            }
        ],
        notifications={"targets": [{"name": "hook", "url": webhook.url}]},
    )
    init_repositories(settings, kdf=FAST_KDF)

    def fails(*_: Any) -> Any:
        # The server quotes the value it cannot parse: here, the loaded password.
        loaded = read_secret_file(password_file, "password_file")
        with psycopg.connect(**pg.conninfo_kwargs()) as conn:
            conn.execute("SELECT %s::int", [loaded])
        raise AssertionError("the query must fail")

    def backup(ctx: Context) -> Any:
        return recorded_backup(
            ctx,
            kind=BackupKind.FULL,
            source="erp",
            retention_days=None,
            triggered_by=TriggeredBy.CLI,
            pinned=False,
            body=fails,
        )

    with Context.open(settings, create=True) as ctx:
        with pytest.raises(psycopg.errors.InvalidTextRepresentation, match=password):
            jobs.run_now(ctx, jobs.cli_request(JobKind.BACKUP, "erp"), backup)
        (job,) = jobs.list_jobs(ctx)
        (entry,) = [e for e in audit.entries(ctx) if e.target == "erp"]
    (alert,) = webhook.inbox.wait(1)
    with client(settings) as api:
        answers = [api.get(f"/admin/jobs/{job.id}"), api.get("/admin/audit")]
        backup_id = answers[0].json()["resultId"]
        answers.append(api.get(f"/admin/backups/{backup_id}"))
    expected = 'invalid input syntax for type integer: "<secret>"'
    assert job.error is not None and expected in job.error
    assert entry.detail is not None and expected in entry.detail
    assert expected in str(alert["json"])
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert expected.replace('"', '\\"') in answer.text  # as JSON writes it
    for text in [job.error, entry.detail, str(alert["json"]), *(a.text for a in answers)]:
        assert password not in text

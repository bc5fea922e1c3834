"""The failure mail of a backup whose database is down reaches a real SMTP server
(aiosmtpd on loopback), whether the backup ran from the CLI (cron) or as a job the way
the service runs it; a JSON webhook gets the same alert; a target that cannot be reached
changes nothing about the backup's own outcome. No PostgreSQL runs: the database is
"down" because nothing listens on its port."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from respaldo.catalog import Notifications
from respaldo.config import Settings, load_settings
from respaldo.domain import JobKind, JobStatus, TriggeredBy
from respaldo.errors import RespaldoError
from respaldo.operations import jobs
from respaldo.operations.context import Context
from respaldo.operations.jobs import JobRequest
from respaldo.operations.scheduled import run_queued
from tests.integration.notify.down import down_database_config
from tests.ports import closed_port
from tests.servers.notify import Smtp, Webhook, smtp, webhook  # noqa: F401

pytestmark = pytest.mark.integration

PASSPHRASE = "notification tests passphrase"


@dataclass
class Setup:
    config: Path
    smtp: Smtp
    webhook: Webhook

    @property
    def settings(self) -> Settings:
        return load_settings(self.config)


@pytest.fixture
def setup(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    smtp: Smtp,  # noqa: F811
    webhook: Webhook,  # noqa: F811
) -> Iterator[Setup]:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    config = down_database_config(
        tmp_path,
        f"""
[notifications]
timeout_seconds = 5

[[notifications.targets]]
name = "ops-mail"
url = "{smtp.url()}"

[[notifications.targets]]
name = "hook"
url = "{webhook.url}"

[[notifications.targets]]
name = "gone"
url = "json://127.0.0.1:{closed_port()}/nobody-listens"
""",
    )
    yield Setup(config, smtp, webhook)


def _check_mail(setup: Setup) -> None:
    (mail,) = setup.smtp.inbox.wait(1)
    assert mail["Subject"] == "[respaldo] CRITICAL: backup of erp failed"
    assert mail["To"] == "ops@example.com"
    body = mail.get_body(preferencelist=("plain", "html"))
    assert body is not None
    text = body.get_content()
    assert "Database: erp" in text.splitlines()
    assert "Repository: local" in text.splitlines()
    assert "What to do: " in text  # the error's hint
    (hook,) = setup.webhook.inbox.wait(1)
    assert hook["json"]["title"] == mail["Subject"]
    assert hook["json"]["type"] == "failure"
    with Context.open(setup.settings) as ctx, ctx.catalog.read() as session:
        sent = {(r.target, r.ok) for r in Notifications(session).list()}
    assert sent == {("ops-mail", True), ("hook", True), ("gone", False)}


def test_a_failed_backup_run_from_the_cli_mails_its_alert(setup: Setup) -> None:
    script = Path(sys.executable).with_name("respaldo")
    done = subprocess.run(
        [str(script), "--config", str(setup.config), "backup", "erp"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # The backup's own outcome, untouched by a target that cannot be reached.
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("respaldo: error:")]
    assert len(errors) == 1 and "cannot connect to PostgreSQL" in errors[0]
    assert "notification to gone failed" in done.stderr  # logged, and that is all
    _check_mail(setup)
    text = setup.smtp.inbox.items[0].get_body(preferencelist=("plain",)).get_content()
    hint = done.stderr.split("respaldo: hint: ", 1)[1].split("\n")[0]
    assert f"What to do: {hint}" in " ".join(text.split())


def test_a_failed_backup_run_as_the_service_runs_it_mails_its_alert(setup: Setup) -> None:
    request = JobRequest(JobKind.BACKUP, "erp", TriggeredBy.SCHEDULE, "full", {"type": "full"})
    with Context.open(setup.settings) as ctx:
        job = jobs.submit(ctx, request)
        with pytest.raises(RespaldoError) as caught:
            run_queued(ctx, job.id)
        assert jobs.get(ctx, job.id).status is JobStatus.FAILED
    _check_mail(setup)
    text = setup.smtp.inbox.items[0].get_body(preferencelist=("plain",)).get_content()
    assert f"Job: {job.id}" in text
    assert caught.value.hint and caught.value.hint.split()[0] in text


def test_the_failure_mail_says_its_time_in_the_installations_zone(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    smtp: Smtp,  # noqa: F811
) -> None:
    """A Mexico City installation's alert says when in Mexico City ('CST'), as its page
    and schedule do: it said 09:00:02 UTC of a 03:00 backup that failed."""
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    config = down_database_config(
        tmp_path,
        f"""
[schedules]
time_zone = "America/Mexico_City"

[[notifications.targets]]
name = "ops-mail"
url = "{smtp.url()}"
""",
    )
    before = datetime.now(UTC)
    done = subprocess.run(
        [str(Path(sys.executable).with_name("respaldo")), "--config", str(config), "backup", "erp"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    (mail,) = smtp.inbox.wait(1)
    text = mail.get_body(preferencelist=("plain",)).get_content()
    (said,) = [line for line in text.splitlines() if line.startswith("Time: ")]
    assert said.endswith(" CST"), text
    when = datetime.strptime(said[len("Time: ") : -len(" CST")], "%Y-%m-%d %H:%M:%S")
    mexico = when.replace(tzinfo=ZoneInfo("America/Mexico_City"))
    assert before - timedelta(seconds=1) <= mexico <= datetime.now(UTC)

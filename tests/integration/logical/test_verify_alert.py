"""Damage found by a verify is an alert wherever the verify ran: ``respaldo verify
--all`` from cron finds a flipped byte in a real backup's pack, exits 3, and a real SMTP
server (aiosmtpd) gets one critical alert naming the problem; the service's daily slice
(which fails its job) sends one too, not two."""

from __future__ import annotations

import pytest

from respaldo.config import load_settings
from respaldo.domain import JobKind, JobStatus, TriggeredBy
from respaldo.errors import RespaldoError
from respaldo.operations import jobs
from respaldo.operations.context import Context
from respaldo.operations.jobs import JobRequest
from respaldo.operations.scheduled import run_queued
from tests.integration.logical.conftest import Respaldo
from tests.servers.notify import Smtp, smtp  # noqa: F401

pytestmark = pytest.mark.integration


def _mail_to(respaldo: Respaldo, server: Smtp) -> None:
    target = f'[[notifications.targets]]\nname = "ops"\nurl = "{server.url()}"\n'
    respaldo.config.write_text(respaldo.config.read_text() + "\n[notifications]\n" + target)


def test_damage_found_by_verify_from_the_command_line_is_alerted(
    respaldo: Respaldo,
    smtp: Smtp,  # noqa: F811
) -> None:
    _mail_to(respaldo, smtp)
    backup_id = respaldo.backup("erp")["id"]
    respaldo.damage_dump(backup_id)
    run = respaldo.run("verify", "--all")
    assert run.code == 3, str(run)
    (mail,) = smtp.inbox.wait(1)
    assert mail["Subject"] == "[respaldo] CRITICAL: verify failed"
    text = mail.get_body(preferencelist=("plain",)).get_content()
    assert "Repository: local" in text
    assert backup_id in text  # the first problem names the backup
    assert "respaldo repair" in " ".join(text.split())


def test_damage_found_by_the_daily_slice_is_alerted_once_with_what_is_damaged(
    respaldo: Respaldo,
    smtp: Smtp,  # noqa: F811
) -> None:
    _mail_to(respaldo, smtp)
    pack = respaldo.damage_dump(respaldo.backup("erp")["id"])
    # As the service runs its daily slice (one slice here: every chunk).
    request = JobRequest(JobKind.VERIFY, None, TriggeredBy.SCHEDULE, "verify", {"slices": 1})
    with Context.open(load_settings(respaldo.config)) as ctx:
        job = jobs.submit(ctx, request)
        with pytest.raises(RespaldoError, match=r"found 1 problem$"):
            run_queued(ctx, job.id)
        assert jobs.get(ctx, job.id).status is JobStatus.FAILED
    (mail,) = smtp.inbox.wait(1)
    assert mail["Subject"] == "[respaldo] CRITICAL: verify failed"
    text = mail.get_body(preferencelist=("plain",)).get_content()
    assert pack in text and f"Job: {job.id}" in text  # what is damaged, where
    # The failed job sent no second alert.
    assert len(smtp.inbox.items) == 1

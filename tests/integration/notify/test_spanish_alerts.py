"""Alerts sent in Spanish (``[notifications] language = "es"``) say respaldo's own reason
in Spanish, through the page's table of phrases (respaldo.reasons): a failed backup's
error and hint, and a health check's reason inside the watchdog's Spanish sentence. What
PostgreSQL's library wrote stays as written. The mail goes through a real SMTP server
(aiosmtpd on loopback); the database is "down" because nothing listens on its port."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from respaldo.config import Settings, load_settings
from respaldo.domain import JobKind, TriggeredBy
from respaldo.errors import RespaldoError
from respaldo.operations import jobs, watchdog
from respaldo.operations.context import Context
from respaldo.operations.jobs import JobRequest
from respaldo.operations.scheduled import run_queued
from tests.integration.notify.down import down_database_config
from tests.servers.notify import Smtp, smtp  # noqa: F401

pytestmark = pytest.mark.integration

PASSPHRASE = "spanish alerts passphrase"


@pytest.fixture
def settings(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    smtp: Smtp,  # noqa: F811
) -> Iterator[Settings]:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    config = down_database_config(
        tmp_path,
        f"""
[notifications]
language = "es"
timeout_seconds = 5

[[notifications.targets]]
name = "ops-mail"
url = "{smtp.url()}"
""",
    )
    yield load_settings(config)


def _text(mail: EmailMessage) -> str:
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    return " ".join(body.get_content().split())


def test_a_failed_backups_alert_says_its_error_and_hint_in_spanish(
    settings: Settings,
    smtp: Smtp,  # noqa: F811
) -> None:
    request = JobRequest(JobKind.BACKUP, "erp", TriggeredBy.SCHEDULE, "full", {"type": "full"})
    with Context.open(settings) as ctx:
        job = jobs.submit(ctx, request)
        with pytest.raises(RespaldoError) as caught:
            run_queued(ctx, job.id)
    english = str(caught.value)
    assert english.startswith("cannot connect to PostgreSQL ("), english
    (mail,) = smtp.inbox.wait(1)
    assert mail["Subject"] == "[respaldo] CRÍTICO: falló backup de erp"
    text = _text(mail)
    assert "Error: no se puede conectar a PostgreSQL (host=127.0.0.1 " in text
    assert "cannot connect to PostgreSQL" not in text
    # libpq's own words, after respaldo's frame, stay as written.
    engine = english.split("): ", 1)[1]
    assert " ".join(engine.split()) in text
    assert (
        "Qué hacer: compruebe que el servidor está en marcha y acepta conexiones en ese host "
        "y puerto" in text
    )


def test_the_watchdogs_alert_says_the_health_reason_in_spanish(
    settings: Settings,
    smtp: Smtp,  # noqa: F811
) -> None:
    with Context.open(settings) as ctx:
        result = watchdog.check(ctx, datetime.now(UTC))
    raised = {c.key for c in result.conditions if c.action == "raised"}
    assert "server:erp" in raised, result.conditions
    mails = smtp.inbox.wait(len(raised))
    (server,) = [m for m in mails if "servidor de erp" in m["Subject"]]
    assert server["Subject"].startswith(
        "[respaldo] CRÍTICO: no se puede conectar con el servidor de erp: "
        "no se puede conectar a PostgreSQL (host=127.0.0.1 "
    ), server["Subject"]
    text = _text(server)
    assert "cannot connect to PostgreSQL" not in text
    assert "cannot be reached" not in text
    assert "Qué hacer: 'respaldo status' muestra el panorama completo" in text
    (never,) = [m for m in mails if "backup lógico de erp" in m["Subject"]]
    assert "Qué hacer: 'respaldo jobs' muestra por qué los últimos backups" in _text(never)

"""Email over SMTP with STARTTLS and authentication, against a real server that refuses
both plain text and anonymous mail: the password comes from a 0600 file, is sent only
inside TLS, and is never in a result, a log line or the catalog."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from respaldo.catalog import Notifications
from respaldo.config import Settings
from respaldo.operations import alerts
from respaldo.operations.context import Context
from tests.servers.notify import SmtpTls

pytestmark = pytest.mark.integration

PASSWORD = "Sm7p-p@ss/w0rd"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SmtpTls]:
    smtp = SmtpTls(tmp_path, "respaldo", PASSWORD)
    try:
        yield smtp
    finally:
        smtp.close()


def _context(tmp_path: Path, server: SmtpTls, password: str) -> Context:
    secret = tmp_path / "smtp-password"
    secret.write_text(password + "\n")
    secret.chmod(0o600)
    settings = Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        cache_dir=tmp_path / "cache",
        notifications={
            "timeout_seconds": 10,
            "targets": [
                {"name": "mail", "url": server.url("respaldo"), "secret_file": str(secret)}
            ],
        },
    )
    return Context.open(settings, create=True)


def test_the_alert_goes_through_starttls_with_the_password_from_a_file(
    tmp_path: Path, server: SmtpTls
) -> None:
    with _context(tmp_path, server, PASSWORD) as ctx:
        (sent,) = alerts.notify_failure(ctx, "backup", "pg_dump failed", database="erp")
    assert sent.ok, sent.error
    (mail,) = server.inbox.wait(1)
    assert mail["Subject"] == "[respaldo] CRITICAL: backup of erp failed"
    assert server.logins == [("respaldo", True, True)]  # accepted, inside TLS


def test_a_refused_login_is_a_failed_delivery_that_never_shows_the_password(
    tmp_path: Path, server: SmtpTls, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wr0ng-Passw0rd-Xy"
    with _context(tmp_path, server, wrong) as ctx:
        (sent,) = alerts.notify_failure(
            ctx, "backup", "pg_dump failed", database="erp", now=datetime.now(UTC)
        )
        with ctx.catalog.read() as session:
            (row,) = Notifications(session).list()
    assert not sent.ok and sent.error
    assert (row.ok, row.target) == (False, "mail")
    assert server.logins and server.logins[0][:2] == ("respaldo", False)
    assert server.inbox.items == []
    for text in (sent.error, row.error or "", caplog.text):
        assert wrong not in text and PASSWORD not in text
        assert wrong[0] + "..." + wrong[-1] not in text

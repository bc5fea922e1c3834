"""A restore test that failed a validation query, told in Spanish (``[notifications]
language = "es"``): its alert names the failed check and what it found in Spanish, and
the month's report lists every check with its detail in Spanish. The query's value and
the validation's name stay as written. The mail goes through a real SMTP server
(aiosmtpd on loopback); the restore test restores into the sample ERP's server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from tests.integration.logical.conftest import Respaldo
from tests.servers.notify import Smtp

pytestmark = pytest.mark.integration

SCHEMA_QUERY = 'schema_version_query = "SELECT max(version) FROM public.schema_migrations"\n'
VALIDATION = """
[[databases.validations]]
name = "migraciones"
sql = "SELECT count(*) FROM public.schema_migrations"
expect = "3"
"""


@pytest.fixture
def mailed(respaldo: Respaldo) -> Iterator[tuple[Respaldo, Smtp]]:
    server = Smtp()
    try:
        text = respaldo.config.read_text()
        assert SCHEMA_QUERY in text
        respaldo.config.write_text(
            text.replace(SCHEMA_QUERY, SCHEMA_QUERY + VALIDATION, 1)
            + f"""
[notifications]
language = "es"

[[notifications.targets]]
name = "ops"
url = "{server.url()}"
levels = ["critical", "report"]
"""
        )
        yield respaldo, server
    finally:
        server.close()


def _lines(mail: EmailMessage) -> list[str]:
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    return [line.rstrip() for line in body.get_content().splitlines()]


def test_a_failed_restore_tests_alert_and_report_say_its_checks_in_spanish(
    mailed: tuple[Respaldo, Smtp],
) -> None:
    respaldo, smtp = mailed
    backup = respaldo.backup("erp")["id"]
    assert respaldo.run("drill", backup).code == 3
    (alert,) = smtp.inbox.wait(1)
    lines = _lines(alert)
    assert (
        f"Error: la prueba de restauración del backup {backup} falló (validación: "
        "migraciones: se obtuvo '2', se esperaba '3')"
    ) in lines, lines
    assert (
        f"Qué hacer: 'respaldo drill {backup}' la ejecuta de nuevo y muestra cada "
        "comprobación; mientras ninguna prueba de restauración se supere, este backup "
        "podría no restaurarse"
    ) in lines, lines

    month = datetime.now(UTC).strftime("%Y-%m")
    assert respaldo.run("report", "drills", "--month", month, "--send").code == 0
    report = smtp.inbox.wait(2)[1]
    lines = _lines(report)
    checks = [line for line in lines if line.startswith("  - ")]
    assert any(line.startswith("  - restauración: ok (") for line in checks), checks
    assert any(
        line.startswith("  - recuento de filas: ok (")
        and line.endswith(" tablas coinciden con la instantánea)")
        for line in checks
    ), checks
    assert any(
        line.startswith("  - objetos grandes: ok (")
        and re.search(r"(1 objeto grande, .* coincide|objetos grandes, .* coinciden) con la", line)
        for line in checks
    ), checks
    assert "  - validación: migraciones: FALLÓ (se obtuvo '2', se esperaba '3')" in checks, checks
    assert "  Error: validación: migraciones: se obtuvo '2', se esperaba '3'" in lines, lines
    english = ("row counts", "tables match", "large objects", "got '", "restore:")
    assert not [line for line in checks if any(words in line for words in english)], checks

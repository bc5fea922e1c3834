"""What alerts say: the email's subject and details, the one-SMS line (at most 160
characters of the GSM alphabet, whatever the error's length or the language), and every
message translated in the Spanish catalog."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from respaldo.i18n import catalog_path
from respaldo.notify import SMS_LIMIT, Alert, Event, Level, render, sms
from respaldo.notify.messages import _GSM7

pytestmark = pytest.mark.unit

SRC = Path(__file__).resolve().parents[2] / "src" / "respaldo"
AT = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)


def _failure(**kw: object) -> Alert:
    fields: dict[str, object] = {
        "level": Level.CRITICAL,
        "event": Event.FAILED,
        "kind": "backup",
        "host": "db1.example.com",
        "at": AT,
        "database": "erp",
        "repository": "offsite",
        "error": "cannot connect to PostgreSQL: connection refused " * 20,
        "hint": "check that the server is running",
        "job_id": 42,
    }
    fields.update(kw)
    return Alert(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("language", ["en", "es"])
def test_the_sms_line_fits_one_message(language: str) -> None:
    message = render(_failure(), language)
    assert len(message.short) <= SMS_LIMIT
    assert set(message.short) <= _GSM7
    assert "\n" not in message.short
    assert message.short.startswith("respaldo CRIT")
    assert "erp" in message.short and "db1.example.com" in message.short


def test_sms_keeps_short_text_whole_and_drops_accents_outside_gsm() -> None:
    assert sms("falló la copia") == "fallo la copia"  # ó is not in GSM 03.38 (ò is)
    assert sms("CRÍTICO: ñandú") == "CRITICO: ñandu"
    assert len(sms("x" * 500)) == 160 and sms("x" * 500).endswith("...")


def test_the_mail_names_level_kind_database_and_the_details() -> None:
    message = render(_failure(error="pg_dump exited with status 1"), "en")
    assert message.subject == "[respaldo] CRITICAL: backup of erp failed"
    for line in (
        "What: backup",
        "Database: erp",
        "Repository: offsite",
        "Error: pg_dump exited with status 1",
        "What to do: check that the server is running",
        "Job: 42",
        "Host: db1.example.com",
        "Time: 2026-12-04 03:00:00 UTC",
    ):
        assert line in message.body.splitlines()
    es = render(_failure(kind="wal-push"), "es")
    assert es.subject == "[respaldo] CRÍTICO: falló archivado de WAL de erp"


def test_every_message_in_the_code_is_translated_into_spanish() -> None:
    # The strings marked with _() where alerts and reports are written.
    found: set[str] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(SRC), method_map=[("**.py", "python")], keywords={"_": None}
    ):
        if isinstance(message, str) and message:
            found.add(message)
    with catalog_path("es").open("rb") as po:
        catalog = read_po(po)
    translated = {m.id: m.string for m in catalog if m.id and m.string and not m.fuzzy}
    missing = sorted(found - set(translated))
    assert not missing, "run 'make messages' and translate: " + ", ".join(missing)
    for msgid, text in translated.items():
        assert re.findall(r"{\w+}", str(msgid)) == re.findall(r"{\w+}", str(text)), msgid


def test_a_deferred_prune_is_a_warning_titled_as_deferred_in_both_languages() -> None:
    # The prune completed: "CRITICAL: prune failed" over a body saying deferred.
    alert = _failure(
        level=Level.WARNING, event=Event.DEFERRED, kind="prune", database=None, job_id=None
    )
    assert render(alert, "en").subject == "[respaldo] WARNING: prune of repository offsite deferred"
    # Its text says why the prune waits there, labelled so: "Error:" said a failure.
    said = "repository offsite could not be reached"
    en = render(replace(alert, error=said), "en").body
    assert f"\nReason: {said}\n" in en and "Error:" not in en
    es = render(alert, "es")
    assert "\nMotivo: " in es.body and "Error:" not in es.body
    assert es.subject == "[respaldo] AVISO: depuración del repositorio offsite aplazada"
    assert es.short.startswith("respaldo AVISO db1.example.com: depuracion del repositorio offsite")

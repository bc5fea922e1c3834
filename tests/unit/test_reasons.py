"""The reasons respaldo stores in English, on the Spanish page: the phrases respaldo forms
itself in Spanish, what they carry (an engine's error, a name) as written. The reasons
come from the operations' own code, so that a phrase changed there fails here."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from respaldo import reasons
from respaldo.catalog.jobs import _lapse_reason
from respaldo.i18n import translations
from respaldo.operations.drill import Check, DrillResult

pytestmark = pytest.mark.unit

ES = translations("es").gettext
EN = translations("en").gettext
ENGINE = 'relation "finanzas.facturas" does not exist'


def _failed_drill(*checks: Check) -> str:
    result = DrillResult(1, "20261206T001750Z-686033a9", "erp", False, None, list(checks))
    failure = result.found_failure()
    assert failure is not None
    return failure


def test_a_failed_restore_test_reads_in_spanish_its_engine_error_as_written() -> None:
    failure = _failed_drill(Check("restore", True, "x"), Check("row counts", False, ENGINE))
    assert reasons.reason(failure, ES) == (
        f"la prueba de restauración falló: recuento de filas: {ENGINE}"
    )
    assert reasons.reason(failure, EN) == failure


def test_a_failed_validation_names_it_as_configured() -> None:
    failure = _failed_drill(
        Check("validation: no unknown projects", False, "got '7', expected '0'")
    )
    assert reasons.reason(failure, ES) == (
        "la prueba de restauración falló: validación: no unknown projects: "
        "se obtuvo '7', se esperaba '0'"
    )


def test_a_lapsed_job_reads_in_spanish() -> None:
    now = datetime(2026, 12, 6, 1, 0, tzinfo=UTC)
    job: Any = SimpleNamespace(
        worker_pid=4242,
        worker_host="db1",
        heartbeat_at=now - timedelta(hours=1),
        started_at=None,
        created_at=now - timedelta(hours=2),
    )
    died = _lapse_reason(job, now, timedelta(minutes=5), "db1", lambda pid: False)
    assert died is not None
    assert reasons.reason(died, ES) == (
        "el proceso 4242 terminó mientras el trabajo se ejecutaba (detectado al arrancar)"
    )
    lapsed = _lapse_reason(job, now, timedelta(minutes=5), "other", lambda pid: True)
    assert lapsed is not None
    assert reasons.reason(lapsed, ES) == (
        "la concesión del proceso 4242 en db1 caducó: sin señales de vida desde "
        "2026-12-06T00:00:00+00:00 (3600 s antes de 2026-12-06T01:00:00+00:00 según el reloj "
        "del catálogo; la concesión es de 300 s)"
    )


def test_what_respaldo_did_not_word_is_shown_as_stored() -> None:
    assert reasons.reason(ENGINE, ES) == ENGINE
    assert reasons.reason("restore: " + ENGINE, ES) == "restore: " + ENGINE  # not a frame
    assert reasons.reason(None, ES) == ""


def test_every_phrase_keeps_its_parts_in_spanish() -> None:
    # A translation that lost or renamed a {part} would raise, or drop the engine's error.
    for message in (*reasons._PHRASES, *reasons._CHECKS.values()):
        spanish = ES(message)
        assert spanish != message, message
        assert sorted(re.findall(r"\{(\w+)\}", spanish)) == sorted(
            re.findall(r"\{(\w+)\}", message)
        ), message

"""The health checks' reasons on the Spanish page: each sentence respaldo words itself
in Spanish, with what it carries (a time, a segment, an engine's error) as written, and
the same reason, unchanged, for the CLI, the API and the English page. The reasons come
from the status's own code, so that a sentence changed there fails here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from respaldo import reasons
from respaldo.config import Settings
from respaldo.domain import BackupKind, BackupStatus, DrillStatus
from respaldo.i18n import translations
from respaldo.operations import status
from respaldo.operations.status_server import ServerReading, judge_archive
from respaldo.phrases import Phrase, joined
from respaldo.postgres.archiver import ArchiverState

pytestmark = pytest.mark.unit

ES = translations("es").gettext
EN = translations("en").gettext
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
RPO = Settings(databases=[{"name": "erp", "dsn": "postgresql://r@h/erp"}]).rpo_for("erp")
ENGINE = "pg_dump: error: connection to server failed"
RECORDED = f"pg_dump exited with status 1: {ENGINE}"  # a failed backup's error, recorded


class _Record:
    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


def _history(**values: Any) -> Any:
    history: Any = status._History()
    for kind in BackupKind:
        history.newest[kind] = history.unusable[kind] = history.ahead[kind] = None
        history.last_attempt[kind] = None
    for name, value in values.items():
        setattr(history, name, value)
    return history


def _said(text: str) -> tuple[str, str]:
    return reasons.reason(text, ES), reasons.reason(text, EN)


def test_an_old_backup_with_a_failed_attempt_reads_in_spanish_the_engine_error_as_written() -> None:
    newest = _Record(id="20261204T010000Z-aa", completed_at=NOW - timedelta(hours=35))
    failed = _Record(
        status=BackupStatus.FAILED,
        completed_at=NOW - timedelta(hours=2),
        created_at=NOW - timedelta(hours=2),
        error_message=RECORDED,
    )
    history = _history(
        newest={**dict.fromkeys(BackupKind), BackupKind.FULL: newest},
        last_attempt={**dict.fromkeys(BackupKind), BackupKind.FULL: failed},
    )
    item = status._backup_item("erp", BackupKind.FULL, RPO.full, history, NOW)
    assert item.level == "red"
    spanish, english = _said(item.reason)
    assert (
        english
        == item.reason
        == (
            "the newest logical backup completed 35 h ago, more than its RPO of 26 h; "
            f"the last attempt failed 2 h ago: {RECORDED}"
        )
    )
    assert spanish == (
        "el backup lógico más reciente se completó hace 35 h, por encima de su RPO de 26 h; "
        f"el último intento falló hace 2 h: pg_dump terminó con el estado 1: {ENGINE}"
    )
    assert item.to_json()["reason"] == english  # the API's text is the English one


def test_no_backup_ever_and_a_cancelled_attempt_read_in_spanish() -> None:
    # The attempt's recorded reason is respaldo's own ("cancelled by request"): it is
    # recognised inside the health reason and said in Spanish too.
    attempt = _Record(
        status=BackupStatus.FAILED,
        completed_at=NOW - timedelta(minutes=5),
        created_at=NOW - timedelta(minutes=6),
        error_message="cancelled by request",
    )
    history = _history(last_attempt={**dict.fromkeys(BackupKind), BackupKind.FULL: attempt})
    item = status._backup_item("erp", BackupKind.FULL, RPO.full, history, NOW)
    assert _said(item.reason) == (
        "nunca se completó ningún backup lógico; "
        "el último intento falló hace 5 min: cancelado a petición",
        "no logical backup was ever completed; the last attempt failed 5 min ago: "
        "cancelled by request",
    )


def test_a_restore_test_never_passed_and_one_that_failed_read_in_spanish() -> None:
    drill = _Record(
        status=DrillStatus.FAILED,
        finished_at=NOW - timedelta(days=2),
        started_at=NOW - timedelta(days=2, minutes=3),
        error_message=None,
    )
    history = _history(passed_drill=None, last_drill=drill, failed_drill=drill, drill_ahead=None)
    item = status._drill_item("erp", RPO, history, NOW)
    spanish, english = _said(item.reason)
    assert english == (
        "no restore test ever passed; the last restore test failed 48 h ago: "
        "a check failed ('respaldo drills' shows which)"
    )
    assert spanish == (
        "nunca se ha superado ninguna prueba de restauración; la última prueba de restauración "
        "falló hace 48 h: falló una comprobación ('respaldo drills' muestra cuál)"
    )


def test_a_backup_much_smaller_than_the_one_before_reads_in_spanish() -> None:
    newest = _Record(id="b2", size_bytes=100_000, completed_at=NOW)
    before = _Record(id="b1", size_bytes=1_000_000, completed_at=NOW - timedelta(days=1))
    history = _history(sized={BackupKind.FULL: [newest, before]})
    item = status._size_item("erp", BackupKind.FULL, 0.5, history)
    assert item is not None
    assert _said(item.reason) == (
        "el backup lógico más reciente es mucho menor que el anterior: "
        "100.0 kB, el 10% de 1.0 MB (límite 50%)",
        "the newest logical backup is much smaller than the one before: 100.0 kB, 10% of "
        "1.0 MB (limit 50%)",
    )


def test_wal_archiving_that_waits_too_long_reads_in_spanish() -> None:
    state = ArchiverState(
        now=NOW,
        archived=40,
        last_wal="000000010000000000000028",
        last_time=NOW - timedelta(minutes=20),
        failed=1,
        failed_wal="000000010000000000000029",
        failed_time=NOW - timedelta(minutes=1),
        waiting=3,
        oldest_waiting=NOW - timedelta(minutes=16),
    )
    verdict = judge_archive(ServerReading(version="16.4", archive_mode="on", archiver=state), RPO)
    assert verdict.level == "red"
    spanish, english = _said(verdict.reason)
    assert english == verdict.reason
    assert spanish == (
        "3 archivos pendientes de archivar, el más antiguo desde hace 16 min (límite 15 min); "
        "último archivado hace 20 min (000000010000000000000028); el último intento falló "
        "(000000010000000000000029, hace 60 s; el registro del servidor indica por qué)"
    )
    off = judge_archive(ServerReading(version="16.4", archive_mode="off"), RPO)
    assert reasons.reason(off.reason, ES).startswith("archive_mode es off en el servidor")
    assert reasons.reason(off.reason, EN) == off.reason


def test_an_unreachable_server_keeps_the_engines_words() -> None:
    reading = ServerReading(error='connection to server at "db1" failed: Connection refused')
    item = status._server_item("erp", reading)
    assert reasons.reason(item.reason, ES) == (
        'no se puede conectar con el servidor: connection to server at "db1" failed: '
        "Connection refused"
    )


def test_a_phrase_a_translation_misnames_is_shown_as_written() -> None:
    said = Phrase("the newest {what} completed {age} ago", what="x", age="1 h")
    assert reasons.reason(said, lambda message: "el {cosa} hace {age}") == said
    assert reasons.reason(joined(["", said, ""]), ES) == "el x más reciente se completó hace 1 h"


def test_the_status_reasons_stay_phrases_through_the_report_model() -> None:
    item = status.StatusItem(key="k", check="rpo", level="green", reason=Phrase("queue unknown"))
    assert isinstance(item.reason, Phrase)
    assert reasons.reason(item.reason, ES) == "cola desconocida"

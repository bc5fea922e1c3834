"""What the catalog records in English beside a job's error, said in Spanish on the page
(respaldo.reasons): a restore test's checks other than the restore (row counts, large
objects, validation queries, the WAL archive, a files backup's contents), why an alert
did not reach a target, and the audit log's details. Where the operations' own code
forms the text it is taken from there, so that a phrase changed there fails here. What
an engine, apprise or a person wrote stays as written, and English reads as stored."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from respaldo import reasons
from respaldo.config import NotificationTarget
from respaldo.errors import InvalidInput
from respaldo.i18n import translations
from respaldo.notify import Level, Message, deliver
from respaldo.operations.backup import ROLES_WITHOUT_PASSWORDS
from respaldo.operations.drill import Check, DrillResult, _copies, _files_contents
from respaldo.operations.restore import _UNCOUNTED, LARGE_OBJECTS_NOT_RECORDED, StreamReader
from respaldo.operations.restore_parallel import count_difference, counts_differ
from respaldo.operations.users import MIN_PASSWORD_LENGTH, _check_password, validate_user_name
from respaldo.operations.wal_coverage import WalCoverage, gap_said
from respaldo.postgres.largeobjects import LargeObjects, differences
from respaldo.repository.reader import ChunkResult

pytestmark = pytest.mark.unit

ES = translations("es").gettext
EN = translations("en").gettext
BACKUP = "20261206T001750Z-686033a9"
ENGINE = 'relation "finanzas.facturas" does not exist'


def _both(text: str) -> str:
    """``text`` in Spanish; its English is ``text`` itself."""
    assert reasons.reason(text, EN) == text
    return reasons.reason(text, ES)


def test_a_restore_tests_row_counts_read_in_spanish_table_by_table() -> None:
    wrong = [
        count_difference("finanzas.facturas", 3, 5),
        count_difference("finanzas.pagos", None, 2),
        f"obras.avances: {_UNCOUNTED}",
    ]
    detail = "; ".join(wrong)  # as drill.py's _checks joins them
    assert _both(detail) == (
        "finanzas.facturas: 3 filas, se esperaban 5; "
        "finanzas.pagos: falta la tabla, se esperaban 2 filas; "
        "obras.avances: el backup no registró su recuento de filas"
    )
    failure = DrillResult(1, BACKUP, "erp", False, None, [Check("row counts", False, detail)])
    said = reasons.reason(failure.found_failure(), ES)
    assert said.startswith("la prueba de restauración falló: recuento de filas: finanzas.")
    assert _both("12 tables match the snapshot") == "12 tablas coinciden con la instantánea"
    assert _both("the backup recorded no row counts (it predates them): nothing compared") == (
        "el backup no registró recuentos de filas (es anterior a ellos): no se comparó nada"
    )
    # A restore's error of as many, with how many more.
    error = str(counts_differ([count_difference(f"t{i}", i, 9) for i in range(7)]))
    assert _both(error) == (
        "los recuentos de filas restaurados difieren de los del backup: t0: 0 filas, se "
        "esperaban 9; t1: 1 fila, se esperaban 9; t2: 2 filas, se esperaban 9; t3: 3 "
        "filas, se esperaban 9; t4: 4 filas, se esperaban 9; y 2 más"
    )


def test_a_list_with_a_part_respaldo_did_not_word_is_shown_as_stored() -> None:
    # An engine's error may have "; " in it: not a list of respaldo's.
    text = f"{count_difference('a', 1, 2)}; {ENGINE}"
    assert reasons.reason(text, ES) == text


def test_a_restore_tests_large_objects_read_in_spanish() -> None:
    expected = LargeObjects(count=3, bytes=1200, digest="11")
    wrong = differences(expected, LargeObjects(count=2, bytes=1000, digest="12"))
    assert _both("; ".join(wrong)) == (
        "2 objetos grandes, se esperaban 3; 1000 bytes de objetos grandes, se esperaban 1200"
    )
    (digest,) = differences(expected, LargeObjects(count=3, bytes=1200, digest="12"))
    assert (
        _both(digest) == "el contenido de los objetos grandes difiere (resumen 12, se esperaba 11)"
    )
    assert _both("3 large objects, 1200 bytes, match the snapshot") == (
        "3 objetos grandes, 1200 bytes, coinciden con la instantánea"
    )
    assert _both(LARGE_OBJECTS_NOT_RECORDED).startswith(
        "el backup no guarda un registro de sus objetos grandes"
    )


def test_a_logical_backups_warning_that_its_roles_lack_passwords_reads_in_spanish() -> None:
    # Every backup taken by a role that is no superuser carries it, on its page.
    assert _both(ROLES_WITHOUT_PASSWORDS) == (
        "las contraseñas de los roles no se respaldaron (el rol del backup no puede leer "
        "pg_authid, que requiere un superusuario): un restore --globals crea los roles con "
        "inicio de sesión sin contraseña, que habrá que volver a definir antes de que se "
        "conecten las aplicaciones"
    )


def test_a_validation_query_that_failed_names_it_and_keeps_the_engines_words() -> None:
    failed = f"query failed on host=127.0.0.1 port=5432 dbname=x user=y: {ENGINE}"
    assert (
        _both(failed) == f"la consulta falló en host=127.0.0.1 port=5432 dbname=x user=y: {ENGINE}"
    )
    check = reasons.reason("validation: no unknown projects", ES)
    assert check == "validación: no unknown projects"


def test_a_physical_restore_tests_wal_archive_reads_in_spanish() -> None:
    gap = gap_said(
        WalCoverage(
            end=0x3000000 - 1,
            missing="000000010000000000000003",
            resumes="000000010000000000000005",
        )
    )
    assert _both(gap) == (
        "falta el segmento de WAL 000000010000000000000003 en el archivo (se archiva de "
        "nuevo a partir de 000000010000000000000005): la recuperación no puede pasar de "
        "0/2FFFFFF"
    )
    assert _both("continuous from the backup's end to 0/5000060") == (
        "continuo desde el final del backup hasta 0/5000060"
    )
    assert _both("restored into /tmp/respaldo-drill-x/data") == (
        "restaurado en /tmp/respaldo-drill-x/data"
    )


def test_a_files_restore_tests_contents_read_in_spanish() -> None:
    restored: Any = SimpleNamespace(files=4, directories=2, symlinks=1, bytes_restored=900)
    counted = {"files": 4, "directories": 2, "symlinks": 1, "file_bytes": 900}
    manifest: Any = SimpleNamespace(meta=counted)
    assert _both(_files_contents(manifest, restored).detail) == (
        "4 archivos, 2 directorios, 1 enlace, 900 bytes, como se respaldaron"
    )
    manifest.meta = {**counted, "files": 5, "file_bytes": 1000}
    assert _both(_files_contents(manifest, restored).detail) == (
        "archivos: 4 restaurados, 5 respaldados; bytes de archivos: 900 restaurados, 1000 "
        "respaldados"
    )
    manifest.meta = {}
    assert _both(_files_contents(manifest, restored).detail).endswith(
        "(el backup no registró recuentos con que compararlos)"
    )


def _failed_delivery(target: NotificationTarget) -> str:
    message = Message(subject="s", body="b", short="s")
    delivery = deliver(target, message, Level.CRITICAL, 1.0)
    assert not delivery.ok and delivery.error is not None
    return delivery.error


def test_why_an_alert_did_not_reach_its_target_reads_in_spanish(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RESPALDO_TEST_HOOK_URL", raising=False)
    unset = NotificationTarget(name="ops-hook", url_env="RESPALDO_TEST_HOOK_URL")
    error = _failed_delivery(unset)
    assert _both(error) == (
        "destino de notificación ops-hook: la variable de entorno RESPALDO_TEST_HOOK_URL "
        "(url_env) no está definida"
    )
    refused = "notification target ops-mail: apprise cannot use its URL (Invalid ~From~ email)"
    assert _both(refused) == (
        "destino de notificación ops-mail: apprise no puede usar su URL (Invalid ~From~ email)"
    )
    refused_alone = "notification target sms: the service refused the message"
    assert _both(refused_alone) == "destino de notificación sms: el servicio rechazó el mensaje"
    # What the service or apprise said stays as written, after respaldo's frame.
    smtp = "notification target ops: 550 5.7.1 Relaying denied"
    assert _both(smtp) == "destino de notificación ops: 550 5.7.1 Relaying denied"


@pytest.mark.parametrize(
    ("detail", "spanish"),
    [
        ("needs admin:approve", "requiere admin:approve"),
        (
            "a snapshot is pinned: needs admin:approve",
            "una instantánea queda fijada: requiere admin:approve",
        ),
        ("logical backup of erp, job 12", "backup lógico de erp, trabajo 12"),
        ("physical backup of erp, job 12", "backup físico de erp, trabajo 12"),
        (
            f"restore test of the newest backup of erp ({BACKUP}) started; job 7",
            f"prueba de restauración del backup más reciente de erp ({BACKUP}) iniciada; trabajo 7",
        ),
        (
            f"job 9: restore tests of backups {BACKUP}, {BACKUP} passed",
            f"trabajo 9: pruebas de restauración de los backups {BACKUP}, {BACKUP} superadas",
        ),
        (
            f"restore test of the newest backups of erp, one of each kind ({BACKUP}, {BACKUP}) "
            "started; job 7",
            f"prueba de restauración de los backups más recientes de erp, uno de cada tipo "
            f"({BACKUP}, {BACKUP}) iniciada; trabajo 7",
        ),
        (
            f"restore of backup {BACKUP} into the new database erp_copia started; job 8",
            f"restauración del backup {BACKUP} en la nueva base de datos erp_copia iniciada; "
            "trabajo 8",
        ),
        ("job 9", "trabajo 9"),
        (
            "job 9: the restore test failed: row counts: t: 1 rows, 2 expected",
            "trabajo 9: la prueba de restauración falló: recuento de filas: t: 1 filas, se "
            "esperaban 2",
        ),
        (f"job 9: {ENGINE}", f"trabajo 9: {ENGINE}"),
        ("backup of erp: cancelled", "backup de erp: cancelado"),
        ("drill of erp: running", "prueba de restauración de erp: en ejecución"),
        ("manifests deleted from local, offsite", "manifiestos eliminados de local, offsite"),
        ("manifests deleted from none", "no se eliminó ningún manifiesto"),
        ("role operator", "rol operador"),
        ("signed in to the page with erp_jwt", "inició sesión en la página con el token del ERP"),
        ("wrong user name or password", "usuario o contraseña incorrectos"),
        ("too many failed logins", "demasiados inicios de sesión fallidos"),
        ("user 'ana' was removed or disabled", "el usuario 'ana' fue eliminado o desactivado"),
        ("3 backups pinned, 0 failed", "3 backups fijados; fallidos: 0"),
        # One backup is one (a row stored before said "1 backups pinned": still read).
        ("1 backup pinned, 0 failed", "1 backup fijado; fallidos: 0"),
        ("1 backups pinned, 0 failed", "1 backups fijados; fallidos: 0"),
        # One failed said "1 fallidos": the outcome is labelled, not agreed.
        ("2 backups pinned, 1 failed", "2 backups fijados; fallidos: 1"),
        ("user 'ana' already exists", "el usuario 'ana' ya existe"),
        ("no API token named 'erp-sync'", "no existe ningún token de API llamado 'erp-sync'"),
        ("job 4 has already ended (completed)", "el trabajo 4 ya terminó (completado)"),
    ],
)
def test_the_audit_logs_details_read_in_spanish(detail: str, spanish: str) -> None:
    assert _both(detail) == spanish


def test_a_refused_users_audit_entry_reads_in_spanish() -> None:
    # The audit entry of a refused change is its error (operations/users.py).
    with pytest.raises(InvalidInput) as name:
        validate_user_name("ana lopez")
    assert _both(str(name.value)) == "'ana lopez' no es un nombre de usuario válido"
    with pytest.raises(InvalidInput) as password:
        _check_password("corta")
    assert _both(str(password.value)) == (
        f"la contraseña tiene menos de {MIN_PASSWORD_LENGTH} caracteres"
    )


def test_a_word_respaldo_does_not_know_is_not_taken_for_one_of_its_own() -> None:
    # "{kind} of {target}: {status}" only with a job's kind and status.
    for text in ("role superuser", "copy of erp: halted", "signed in to the page with magic"):
        assert reasons.reason(text, ES) == text


def test_every_word_of_respaldos_reads_in_spanish() -> None:
    # "backup" is the Spanish page's word too ("backup completo", "Crear Backup Manual").
    same = {"backup"}
    for words in reasons._WORDS.values():
        for word, message in words.items():
            assert ES(message) != message or word in same, word
    assert ES("backup") == "backup"


def test_a_restore_test_that_read_chunks_from_a_mirror_names_them_in_spanish() -> None:
    repo: Any = SimpleNamespace(storage=SimpleNamespace(location="file:///srv/respaldo"))
    reader = StreamReader(repo, [], [])
    chunk = bytes.fromhex("3f9a1c2e" * 8)
    for problem in ("pack is missing", "authentication failed (data corrupt or tampered with)"):
        failed = ChunkResult(chunk, None, problem, "packs/3f/3f9a")
        reader._note(failed, ChunkResult(chunk, b"x", repository="offsite"))
    result = DrillResult(1, BACKUP, "erp", True, None, [], warnings=reader.warnings)
    _copies(result)
    (check,) = result.checks
    assert _both(check.detail) == (
        "2 fragmentos que faltaban o estaban dañados en el repositorio leído primero se "
        "leyeron de otro: fragmento 3f9a1c2e3f9a1c2e: falta el pack en file:///srv/respaldo "
        "(packs/3f/3f9a); leído de offsite; fragmento 3f9a1c2e3f9a1c2e: la autenticación "
        "falló (datos dañados o manipulados) en file:///srv/respaldo (packs/3f/3f9a); leído "
        "de offsite; ejecute 'respaldo verify --all' y 'respaldo repair'"
    )


def test_a_restore_tests_alert_says_each_failed_check_in_spanish() -> None:
    # drill.py's _alert: the failed checks, "NAME: DETAIL" each, "; "-joined (the row
    # counts' detail a list itself); the alert's error reaches the message as text.
    failed = [
        Check(
            "row counts",
            False,
            "; ".join([count_difference("a", 1, 2), count_difference("b", 3, 4)]),
        ),
        Check("large objects", False, "2 large objects, 3 expected"),
        Check("validation: migraciones", False, "got '2', expected '3'"),
    ]
    what = "; ".join(f"{c.name}: {c.detail}" for c in failed)
    assert _both(f"restore test of backup {BACKUP} failed ({what})") == (
        f"la prueba de restauración del backup {BACKUP} falló (recuento de filas: a: 1 fila, "
        "se esperaban 2; b: 3 filas, se esperaban 4; objetos grandes: 2 objetos grandes, se "
        "esperaban 3; validación: migraciones: se obtuvo '2', se esperaba '3')"
    )
    # A check's detail that respaldo did not word stays as written, after its name.
    text = f"row counts: {ENGINE}; large objects: {ENGINE}"
    assert _both(text) == f"recuento de filas: {ENGINE}; objetos grandes: {ENGINE}"
    # A part that is no check and no phrase: the whole list as written.
    text = f"row counts: {ENGINE}; {ENGINE}"
    assert reasons.reason(text, ES) == text


@pytest.mark.parametrize(
    ("stored", "english", "spanish"),
    [
        (
            "full backup of erp, job 12",
            "logical backup of erp, job 12",
            "backup lógico de erp, trabajo 12",
        ),
        (
            "incremental backup of erp, job 12",
            "physical backup of erp, job 12",
            "backup físico de erp, trabajo 12",
        ),
    ],
)
def test_an_audit_row_stored_with_the_old_kind_words_reads_with_the_new(
    stored: str, english: str, spanish: str
) -> None:
    """Rows written before the entries said logical/physical: the page's audit log says
    them as it says the new ones, in English too."""
    assert reasons.reason(stored, EN) == english
    assert reasons.reason(stored, ES) == spanish

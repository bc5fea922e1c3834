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
from respaldo.config import Settings
from respaldo.domain import BackupKind, BackupStatus, validate_backup_id
from respaldo.errors import IntegrityError, InvalidBackupId, InvalidInput
from respaldo.i18n import translations
from respaldo.operations.background import _restorable
from respaldo.operations.drill import Check, DrillResult, _restored
from respaldo.postgres.server import Unlogged
from respaldo.repository.crypto import KeySet, Sealer, SealError
from respaldo.repository.reader import ChunkResult, _integrity
from respaldo.repository.verify import Problem
from respaldo.retention import BackupFacts, Policy, decide
from respaldo.web.i18n import Formatter
from tests.unit.results import verify_result

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


def _damaged_chunk_error() -> IntegrityError:
    # A chunk whose sealed bytes were flipped, read as a restore reads it.
    sealer = Sealer(KeySet.derive(bytes(range(32)), "ab" * 16))
    cid = bytes(range(32))
    blob = bytearray(sealer.seal_chunk(cid, b"facturas" * 100))
    blob[-3] ^= 0xFF
    with pytest.raises(SealError) as sealed:
        sealer.open_chunk(cid, bytes(blob))
    manifest: Any = SimpleNamespace(backup_id=BACKUP)
    stream: Any = SimpleNamespace(name="dump")
    result = ChunkResult(cid, None, str(sealed.value), PACK)
    return _integrity(manifest, stream, result)


BACKUP = "20261206T054817Z-869b5b7f"
PACK = "packs/43/43dc8eb7ef0998781d1e4d2bcf86a190813dfa07f3346171b19090e0ffc806e8"


def test_a_damaged_chunk_reads_in_spanish_with_where_it_is() -> None:
    error = _damaged_chunk_error()
    assert reasons.reason(str(error), ES) == (
        "fragmento 0001020304050607 del flujo 'dump': la autenticación falló (datos dañados "
        f"o manipulados) [backup {BACKUP}] [objeto {PACK}]"
    )
    assert reasons.reason(error.hint, ES).startswith(
        "ejecute 'respaldo verify' y 'respaldo repair'"
    )
    assert reasons.reason(str(error), EN) == str(error)
    # As a restore test records it (its first failed check), on the page and the health
    # page's reason.
    failure = _failed_drill(Check("restore", False, str(error)))
    assert reasons.reason(failure, ES).startswith(
        "la prueba de restauración falló: restauración: fragmento 0001020304050607 del flujo"
    )
    check = f"restore: {error}"
    assert reasons.failed_check(check, ES).startswith("restauración: fragmento 0001020304050607")
    assert reasons.failed_check(check, EN) == check


def test_a_verify_that_found_damage_reads_in_spanish() -> None:
    problems = [
        str(Problem("pack listed in the index is missing", PACK)),
        str(Problem("chunk 49cafffe90ee4c2c of stream 'dump': pack is missing", PACK, BACKUP)),
    ]
    result = verify_result(
        problems, backups=2, chunks=860, bytes=1 << 20, packs=9, packs_checked=True
    )
    failure = result.found_failure()
    assert failure is not None
    assert reasons.reason(failure, ES) == (
        "la verificación encontró 2 problemas: falta un pack que figura en el índice "
        f"[objeto {PACK}]"
    )
    assert reasons.reason(problems[1], ES) == (
        "fragmento 49cafffe90ee4c2c del flujo 'dump': falta el pack "
        f"[backup {BACKUP} objeto {PACK}]"
    )


def test_a_restore_refused_for_its_status_or_kind_names_them_in_spanish() -> None:
    failed: Any = SimpleNamespace(id=BACKUP, status=BackupStatus.FAILED)
    with pytest.raises(InvalidInput) as refused:
        _restorable(Settings(), failed)
    assert str(refused.value.message) == (
        f"backup {BACKUP} is failed: only a completed backup restores"
    )
    assert reasons.reason(refused.value.message, ES) == (
        f"el backup {BACKUP} tiene el estado fallido: solo se restaura un backup completado"
    )
    physical: Any = SimpleNamespace(
        id=BACKUP, status=BackupStatus.COMPLETED, backup_type=BackupKind.INCREMENTAL
    )
    with pytest.raises(InvalidInput) as refused:
        _restorable(Settings(), physical)
    assert str(refused.value.message).startswith(f"backup {BACKUP} is a physical backup")
    assert reasons.reason(refused.value.message, ES).startswith(
        f"el backup {BACKUP} es de tipo físico: "
    )


def test_an_invalid_backup_id_reads_in_spanish() -> None:
    with pytest.raises(InvalidBackupId) as caught:
        validate_backup_id("nonexistent")
    assert str(caught.value) == "invalid backup id 'nonexistent'"
    assert reasons.reason(caught.value.message, ES) == "id de backup no válido: 'nonexistent'"
    assert reasons.reason(caught.value.hint, ES) == (
        "un id de backup tiene la forma 20261128T083000Z-3f9a1c2e; 'respaldo list' los muestra"
    )


def test_a_restore_tests_restore_check_reads_in_spanish() -> None:
    restored: Any = SimpleNamespace(warnings=[], seconds=0.84, bytes_restored=1_104_000)
    for until, spanish in (
        ("", "1104000 bytes en 0.8 s"),
        (
            " (until the server accepted connections)",
            "1104000 bytes en 0.8 s (hasta que el servidor aceptó conexiones)",
        ),
    ):
        result = DrillResult(1, BACKUP, "erp", True, None, [])
        _restored(result, restored, until)
        (check,) = result.checks
        assert reasons.reason(check.detail, ES) == spanish
        assert reasons.reason(check.detail, EN) == check.detail


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
    for message, _ in reasons._WHERE:  # "[backup {backup}]" may well read the same
        assert sorted(re.findall(r"\{(\w+)\}", ES(message))) == sorted(
            re.findall(r"\{(\w+)\}", message)
        ), message


def _facts(n: int, status: str, when: datetime) -> BackupFacts:
    return BackupFacts(
        id=f"b{n:03d}",
        database="erp",
        kind="full",
        status=status,
        created_at=when - timedelta(minutes=5),
        completed_at=when if status == "completed" else None,
        expires_at=when + timedelta(days=7) if status == "completed" else None,
        is_verified=False,
        verified_at=None,
        pinned=False,
    )


def test_the_retention_rules_read_in_spanish_with_their_times_as_spanish_writes_them() -> None:
    now = datetime(2026, 12, 6, 6, 0, tzinfo=UTC)
    backups = [
        _facts(1, "completed", now - timedelta(days=1)),
        _facts(2, "failed", now - timedelta(hours=2)),
        _facts(3, "in_progress", now - timedelta(minutes=1)),
    ]
    rules = {d.backup.id: d.reasons for d in decide(backups, Policy(keep_last=1), now)}
    # The English of prune and the API, as before.
    assert rules["b001"] == (
        "newest completed",
        "retention until 2026-12-12 06:00 UTC",
        "keep-last 1",
        "minimum 2 good backups",
    )
    assert rules["b002"] == ("failed, kept until 2026-12-13 03:55 UTC for inspection",)
    assert rules["b003"] == ("running (in_progress)",)
    es = Formatter("es")
    said = {b: [reasons.reason(r, ES, es.quantity) for r in kept] for b, kept in rules.items()}
    assert said["b001"] == [
        "el completado más reciente",
        "retención hasta el 12 dic 2026, 6:00 UTC",
        "últimos 1",
        "mínimo 2 backups válidos",
    ]
    assert said["b002"] == ["fallido, se conserva hasta el 13 dic 2026, 3:55 UTC para examinarlo"]
    assert said["b003"] == ["en ejecución (en curso)"]


def test_an_error_of_thousands_of_frames_is_said_without_passing_the_recursion_limit() -> None:
    # Each frame said one after the other: by recursion, some 250 frames raised
    # RecursionError and the page that shows the error failed whole.
    text = "cancelled: " * 5000 + ENGINE
    said = reasons.reason(text, ES)
    assert said == "cancelado: " * 5000 + ENGINE
    assert reasons.reason(text, EN) == text


def test_a_physical_drills_unlogged_tables_read_in_spanish(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from respaldo.operations import drill

    for tables, spanish in (
        (
            ["public.sesiones"],
            "1 tabla unlogged volvió vacía, como de todo backup físico: public.sesiones",
        ),
        (
            [f"cache.t{i:02}" for i in range(12)],
            "12 tablas unlogged volvieron vacías, como de todo backup físico: cache.t00, ",
        ),
    ):
        monkeypatch.setattr(
            drill, "unlogged_relations", lambda conninfo, found=tables: Unlogged(found, [])
        )
        result = DrillResult(1, BACKUP, "erp", True, None, [])
        (check,) = drill._unlogged_check(None, result)  # type: ignore[arg-type]
        assert check.ok and check.name == "unlogged tables"
        assert result.warnings == [check.detail]
        assert reasons.reason(check.name, ES) == "tablas unlogged"
        said = reasons.reason(check.detail, ES)
        assert said.startswith(spanish), said
        assert said.endswith(
            "(PostgreSQL no escribe WAL de ellas y un backup físico no "
            "guarda ninguna de sus filas; un backup lógico sí las guarda)"
        )
    assert "cache.t09; and 2 more" in check.detail and "cache.t10" not in check.detail


def test_unlogged_tables_the_drill_cannot_list_pass_saying_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A physical drill without validation queries never connected to the database:
    one the configured role may not reach on the scratch server (pg_hba.conf) is no
    failed restore test, but the check says what it could not do."""
    from respaldo.errors import ConnectionFailed
    from respaldo.operations import drill

    def refused(conninfo: object) -> Unlogged:
        raise ConnectionFailed("connection to host=127.0.0.1 port=5499 dbname=erp failed")

    monkeypatch.setattr(drill, "unlogged_relations", refused)
    result = DrillResult(1, BACKUP, "erp", True, None, [])
    (check,) = drill._unlogged_check(None, result)  # type: ignore[arg-type]
    assert check.ok
    assert check.detail.startswith("not listed (connection to host=127.0.0.1 port=5499")
    assert result.warnings == [check.detail]
    assert reasons.reason(check.detail, ES).startswith("no se listaron (connection to")


def test_a_physical_drills_unlogged_sequences_read_in_spanish(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from respaldo.operations import drill

    found = Unlogged([], ["public.folio", "ventas.numero"])
    monkeypatch.setattr(drill, "unlogged_relations", lambda conninfo: found)
    result = DrillResult(1, BACKUP, "erp", True, None, [])
    (check,) = drill._unlogged_check(None, result)  # type: ignore[arg-type]
    assert check.ok and check.name == "unlogged sequences"
    assert result.warnings == [check.detail]
    assert reasons.reason(check.name, ES) == "secuencias unlogged"
    assert reasons.reason(check.detail, ES).startswith(
        "2 secuencias unlogged volvieron reiniciadas a su inicio, como de todo backup físico: "
        "public.folio, ventas.numero (una tabla"
    )


def test_a_prune_refused_for_the_clock_reads_in_spanish() -> None:
    from respaldo.operations.prune import CLOCK_AHEAD
    from respaldo.phrases import Phrase, days_said

    said = Phrase(
        CLOCK_AHEAD,
        clock="2028-01-11 01:06",
        days=days_said(400),
        last="2026-12-07 01:06",
        limit=7,
        count=3,
        backup="20261207T010618Z-7cf6624b",
    )
    # As the job's row stores it: text, not the phrase.
    assert reasons.reason(str(said), ES) == (
        "la depuración se negó, no se eliminó nada: el reloj dice 2028-01-11 01:06 UTC, 400 "
        "días después de que se completara el backup más reciente (2026-12-07 01:06 UTC, más "
        "que [retention] clock_check_days = 7), y según él 3 backups caducarían por "
        "antigüedad sin haber caducado entonces (p. ej. 20261207T010618Z-7cf6624b): el reloj "
        "va adelantado, o no se ha completado ningún backup desde entonces"
    )


def test_a_prune_refused_for_the_clock_past_a_long_rpo_reads_in_spanish() -> None:
    from respaldo.operations.prune import CLOCK_AHEAD_RPO
    from respaldo.phrases import Phrase, days_said

    said = Phrase(
        CLOCK_AHEAD_RPO,
        clock="2028-01-11 01:06",
        days=days_said(400),
        last="2026-12-07 01:06",
        limit="33.3",
        setting="erp: full_hours = 800",
        count=3,
        backup="20261207T010618Z-7cf6624b",
    )
    assert reasons.reason(str(said), ES) == (
        "la depuración se negó, no se eliminó nada: el reloj dice 2028-01-11 01:06 UTC, 400 "
        "días después de que se completara el backup más reciente (2026-12-07 01:06 UTC, más "
        "de 33.3 días, la antigüedad máxima que [rpo] permite a un backup: erp: full_hours = "
        "800), y según él 3 backups caducarían por antigüedad sin haber caducado entonces "
        "(p. ej. 20261207T010618Z-7cf6624b): el reloj va adelantado, o no se ha completado "
        "ningún backup desde entonces"
    )


def test_a_prune_refused_for_a_silence_before_the_newest_backup_reads_in_spanish() -> None:
    from respaldo.operations.prune import CLOCK_JUMPED
    from respaldo.phrases import Phrase, days_said

    said = Phrase(
        CLOCK_JUMPED,
        gap=days_said(400),
        resumed="2028-01-11 01:06",
        limit=days_said(7),
        setting="[retention] clock_check_days = 7",
        clock="2028-01-12 01:06",
        days=days_said(401),
        last="2026-12-07 01:06",
        count=2,
        backup="20261207T010618Z-7cf6624b",
    )
    assert reasons.reason(str(said), ES) == (
        "la depuración se negó, no se eliminó nada: respaldo no registró nada durante 400 días "
        "antes de 2028-01-11 01:06 UTC (más de 7 días, [retention] clock_check_days = 7): el "
        "reloj saltó hacia adelante, o respaldo estuvo parado todo ese tiempo; según el reloj "
        "(2028-01-12 01:06 UTC, 401 días después del backup más reciente antes de ese silencio, "
        "2026-12-07 01:06 UTC) 2 backups caducarían por antigüedad sin haber caducado entonces "
        "(p. ej. 20261207T010618Z-7cf6624b)"
    )


def test_a_backup_refused_for_a_stale_standby_reads_in_spanish() -> None:
    from respaldo.postgres.standby import StandbyReading, stale_reason

    committed = datetime(2026, 12, 8, 1, 30, tzinfo=UTC)
    lag = timedelta(minutes=15)
    said = {}
    for key, reading in {
        "paused": StandbyReading(True, paused=True, replayed_at=committed),
        "paused, none replayed": StandbyReading(True, paused=True),
        "delayed": StandbyReading(True, delay="4h", replayed_at=committed),
        "cut off": StandbyReading(True, replayed_at=committed, age=timedelta(minutes=42)),
        "cut off, none replayed": StandbyReading(True),
        "behind": StandbyReading(
            True,
            replayed_at=committed,
            age=timedelta(hours=3, minutes=5),
            connected=True,
            replayed="0/3000060",
            upstream="0/5000000",
            behind=True,
        ),
    }.items():
        stale = stale_reason(reading, lag)
        assert stale is not None, key
        said[key] = (reasons.reason(stale.message, ES), reasons.reason(stale.hint, ES))
        assert reasons.reason(stale.message, EN) == stale.message
        assert said[key][1].startswith("haga el backup a través de un dsn que lleve al primario")
    assert said["paused"][0] == (
        "el servidor es un standby cuya reproducción del WAL está en pausa (su última "
        "transacción reproducida se confirmó el 2026-12-08 01:30:00+00:00): un backup de él "
        "tendría los datos de cuando se detuvo la reproducción, no la base de datos actual"
    )
    assert said["paused"][1].endswith(
        "o reanude allí la reproducción (SELECT pg_wal_replay_resume())"
    )
    assert said["paused, none replayed"][0].startswith(
        "el servidor es un standby cuya reproducción del WAL está en pausa: un backup"
    )
    assert said["delayed"][0] == (
        "el servidor es un standby que aplica el WAL solo 4h después de escribirse "
        "(recovery_min_apply_delay) (su última transacción reproducida se confirmó el "
        "2026-12-08 01:30:00+00:00): un backup de él tendría la base de datos tal como estaba "
        "hace 4h, no la actual"
    )
    assert said["cut off"][0].startswith(
        "el servidor es un standby que no está conectado a su primario (ningún receptor de WAL) "
        "y su última transacción reproducida se confirmó el 2026-12-08 01:30:00+00:00, hace "
        "42 min (más que [rpo] standby_lag_minutes = 15): desde aquí no se puede saber"
    )
    assert said["cut off"][1].endswith("necesita un [rpo] standby_lag_minutes mayor")
    assert said["cut off, none replayed"][0].startswith(
        "el servidor es un standby que no está conectado a su primario (ningún receptor de WAL) "
        "y no ha reproducido ninguna transacción desde que arrancó ([rpo] standby_lag_minutes "
        "= 15): "
    )
    assert said["behind"][0] == (
        "el servidor es un standby cuya reproducción va por detrás de lo que recibió de su "
        "primario (reproducido hasta 0/3000060, el WAL del primario en 0/5000000) y su última "
        "transacción reproducida se confirmó el 2026-12-08 01:30:00+00:00, hace 3 h 5 min (más "
        "que [rpo] standby_lag_minutes = 15): un backup de él tendría los datos de entonces, "
        "no la base de datos actual"
    )
    assert said["behind"][1].endswith(
        "(max_standby_streaming_delay; pg_stat_activity allí la muestra)"
    )


def test_a_backup_through_a_standby_whose_replay_holds_a_lock_reads_in_spanish() -> None:
    from respaldo.postgres.standby_blocked import ReplayLock, replay_blocked

    since = datetime(2026, 12, 8, 1, 0, tzinfo=UTC)

    def waiting(pid: int) -> ReplayLock:
        return ReplayLock(
            "public.facturas", False, pid, "informes", "psql", "idle in transaction", since, "-1"
        )

    head = (
        "el servidor es un standby cuya reproducción del WAL bloquea un bloqueo de tabla que el "
        "backup necesita, y el backup lo esperó más que [rpo] standby_lock_wait_minutes = 5"
    )
    wait = timedelta(minutes=5)
    one = replay_blocked(wait, [waiting(4242)])
    assert reasons.reason(str(one), ES) == (
        f"{head}: la reproducción está atascada, esperando un bloqueo de la tabla "
        "public.facturas, retenido por session 4242 (user informes, application psql, idle in "
        "transaction since 2026-12-08 01:00:00+00:00) del standby, que no cancela "
        "(max_standby_streaming_delay = -1); los datos del standby se quedan como estaban "
        "entonces"
    )
    assert reasons.reason(one.hint, ES) == (
        "termine esa sesión en el standby (SELECT pg_terminate_backend(4242)) o deje que la "
        "reproducción cancele esas consultas (max_standby_streaming_delay distinto de -1), y "
        "haga el backup de nuevo; o haga el backup a través de un dsn que lleve al primario"
    )
    assert reasons.reason(str(one), EN) == str(one)
    two = replay_blocked(wait, [waiting(4242), waiting(4343)])
    assert reasons.reason(two.hint, ES).startswith(
        "termine esas sesiones en el standby (SELECT pg_terminate_backend(4242), "
        "pg_terminate_backend(4343)) o deje"
    )
    anonymous = replay_blocked(wait, [ReplayLock("public.facturas", False, streaming_delay="-1")])
    assert reasons.reason(str(anonymous), ES).startswith(
        f"{head}: la reproducción está atascada, esperando un bloqueo de la tabla "
        "public.facturas, que no cancela (max_standby_streaming_delay = -1)"
    )
    assert reasons.reason(anonymous.hint, ES).startswith("termine la sesión o deje que")
    held = replay_blocked(wait, [ReplayLock("public.facturas", True)])
    assert reasons.reason(str(held), ES) == (
        f"{head}: la reproducción tiene un bloqueo ACCESS EXCLUSIVE de la tabla public.facturas "
        "para una transacción del primario que no ha terminado (DDL, TRUNCATE o LOCK TABLE allí)"
    )
    assert reasons.reason(held.hint, ES).startswith(
        "haga el backup de nuevo cuando esa transacción haya terminado en el primario"
    )
    unknown = replay_blocked(wait, None)
    assert reasons.reason(str(unknown), ES) == (
        f"{head} (no se pudo saber qué esperaba la reproducción: puede haber avanzado desde "
        "entonces)"
    )
    assert reasons.reason(unknown.hint, ES).startswith("pg_locks y pg_stat_activity en el standby")


def test_a_mirrors_copy_that_lost_data_reads_in_spanish() -> None:
    from respaldo.catalog.copies import COPY_LOST_DATA
    from respaldo.operations.lost_packs import FOUND_DAMAGED, LOST_WITH_PACKS, _copy_problem
    from respaldo.repository.repair import LostBackup

    when = datetime(2026, 12, 8, 2, 10, tzinfo=UTC)

    def lost(chunks: int) -> LostBackup:
        return LostBackup(BACKUP, "erp", "full", when, chunks, ("dump",))

    one = _copy_problem(lost(1), LOST_WITH_PACKS, "offsite", when)
    assert one.startswith(COPY_LOST_DATA)
    assert reasons.reason(one, ES) == (
        f"datos perdidos: se perdió 1 fragmento que usa la copia de {BACKUP}, por paquetes "
        "que faltaban o estaban truncados en offsite (2026-12-08 02:10 UTC), y ningún otro "
        "paquete de allí tiene una copia buena; no se puede restaurar desde offsite hasta que "
        "la próxima copia lo envíe de nuevo"
    )
    assert reasons.reason(one, EN) == one
    three = _copy_problem(lost(3), FOUND_DAMAGED, "offsite", when)
    assert reasons.reason(three, ES).startswith(
        f"datos perdidos: se perdieron 3 fragmentos que usa la copia de {BACKUP}, por daños "
        "que encontró verify en offsite (2026-12-08 02:10 UTC)"
    )
    # As the status's copy item quotes it (operations/status.py: a Phrase).
    from respaldo.phrases import N_, Phrase

    quoted = Phrase(N_("the last copy failed: {error}"), error=three)
    assert reasons.reason(quoted, ES).startswith(
        "la última copia falló: datos perdidos: se perdieron 3 fragmentos"
    )

"""Counts agree with their noun: "1 backup", "0 backups", "2 backups", in English and in
the Spanish of the page and the alerts (:func:`respaldo.phrases.counted`)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from respaldo import reasons
from respaldo.cli.list_cmd import _print_contents
from respaldo.cli.serve_cmd import started_line
from respaldo.errors import SourceError
from respaldo.i18n import translations
from respaldo.operations.contents import BackupContents, SchemaContents
from respaldo.operations.drill import _files_contents
from respaldo.operations.files_backup import _refuse_incomplete
from respaldo.operations.prune import (
    CLOCK_AHEAD,
    CLOCK_AHEAD_ONE,
    CLOCK_AHEAD_RPO,
    CLOCK_AHEAD_RPO_ONE,
    CLOCK_JUMPED,
    CLOCK_JUMPED_ONE,
    damaged_copies_problem,
    unrepaired_problem,
)
from respaldo.operations.recorded import unconfirmed_problem
from respaldo.operations.repair import damage_problem, lost_packs_problem
from respaldo.operations.reports import DrillReport, ReportDatabase, ReportKind, render_report
from respaldo.operations.restore import kept_roles_warning, passwordless_logins_warning
from respaldo.operations.restore_parallel import count_difference, counts_differ
from respaldo.operations.status_queue import waiting_reason
from respaldo.operations.verify import VerifyResult
from respaldo.phrases import N_, counted, days_said
from respaldo.postgres.largeobjects import LargeObjects, differences
from respaldo.storage.lifecycle import what_it_does
from tests.unit.results import verify_result

pytestmark = pytest.mark.unit

ES = translations("es").gettext


@pytest.mark.parametrize(("count", "said"), [(0, "0 backups"), (1, "1 backup"), (2, "2 backups")])
def test_the_noun_agrees_with_the_count(count: int, said: str) -> None:
    assert counted(count, N_("{count} backup"), N_("{count} backups")) == said


def _verify(problems: list[str]) -> VerifyResult:
    return verify_result(problems, quarantined=1)


def test_a_verify_that_found_one_problem_says_one_problem() -> None:
    """Before: "verify found 1 problems: …" on the job's row, the page and the alert."""
    failure = _verify(["disk on fire"]).found_failure()
    assert failure == "verify found 1 problem: disk on fire"
    spanish = "la verificación encontró 1 problema: disk on fire"
    assert reasons.reason(failure, ES) == spanish
    # As the catalog stores it (text, not a phrase), and as a row stored before said it.
    assert reasons.reason(str(failure), ES) == spanish
    assert reasons.reason("verify found 1 problems: disk on fire", ES) == (
        "la verificación encontró 1 problemas: disk on fire"
    )
    two = _verify(["disk on fire", "disk on fire too"]).found_failure()
    assert two == "verify found 2 problems: disk on fire"


WHEN = datetime(2026, 12, 7, 5, 48, tzinfo=UTC)


def test_a_backup_that_lost_one_chunk_says_one_chunk() -> None:
    """Before: a backup's record said "damaged: 1 chunks have no good copy" (repair and
    catalog rebuild store it; the status and the backup's page show it), in English on
    the Spanish page too."""
    problem = damage_problem(1, WHEN)
    assert problem == (
        "damaged: 1 chunk has no good copy in any repository (respaldo repair, "
        "2026-12-07 05:48 UTC); it cannot be restored"
    )
    spanish = (
        "dañado: 1 fragmento no tiene ninguna copia buena en ningún repositorio (respaldo "
        "repair, 2026-12-07 05:48 UTC); no se puede restaurar"
    )
    # As the catalog stores it (text) and as a phrase.
    assert reasons.reason(str(problem), ES) == reasons.reason(problem, ES) == spanish
    assert reasons.reason(str(damage_problem(3, WHEN)), ES).startswith("dañado: 3 fragmentos no ")
    # A row stored before it agreed is still said in Spanish, by the plural.
    assert reasons.reason(
        "damaged: 1 chunks have no good copy in any repository (respaldo repair, "
        "2026-12-07 05:48 UTC); it cannot be restored",
        ES,
    ).startswith("dañado: 1 fragmentos no tienen ninguna copia buena")


def test_a_backup_that_lost_chunks_with_a_pack_says_so_in_spanish() -> None:
    """A backup that found a pack lost marks the earlier backups that use it
    (operations/lost_packs.py): the page says their reason in Spanish too."""
    assert lost_packs_problem(1, WHEN).startswith("damaged: 1 chunk it uses was lost with a ")
    assert reasons.reason(str(lost_packs_problem(1, WHEN)), ES).startswith(
        "dañado: 1 fragmento que usa se perdió con un paquete "
    )
    assert reasons.reason(str(lost_packs_problem(3, WHEN)), ES).endswith(
        "salvo que 'respaldo repair' los encuentre en un espejo"
    )


def test_a_backup_that_referenced_one_damaged_chunk_says_one_chunk() -> None:
    problem = unconfirmed_problem(1)
    assert problem.startswith("not known-good: references 1 chunk that verification found ")
    assert reasons.reason(str(problem), ES).startswith(
        "no se sabe si está bien: usa 1 fragmento que la verificación encontró dañado "
    )
    assert unconfirmed_problem(2).startswith("not known-good: references 2 chunks that ")


def test_a_restore_test_that_compared_one_table_says_one_table_in_spanish() -> None:
    # The drill's stored check (tests/integration/logical/test_drill.py makes it), and the
    # rows stored before it agreed.
    assert reasons.reason("1 table matches the snapshot", ES) == (
        "1 tabla coincide con la instantánea"
    )
    assert reasons.reason("1 tables match the snapshot", ES) == (
        "1 tablas coinciden con la instantánea"
    )


@pytest.mark.parametrize(
    ("message", "values"),
    [
        (CLOCK_AHEAD, {"limit": 7}),
        (CLOCK_AHEAD_RPO, {"limit": "33.3", "setting": "erp: full_hours = 800"}),
        (
            CLOCK_JUMPED,
            {
                "gap": days_said(400),
                "resumed": "2028-01-11 01:06",
                "limit": days_said(7),
                "setting": "x = 7",
            },
        ),
    ],
)
def test_a_prune_refused_for_the_clock_says_one_backup_would_expire(
    message: str, values: dict[str, object]
) -> None:
    """prune's clock refusals said "1 backups would expire" (its output, the job's stored
    error, the page and the alert). The refusal is made by check_clock: each message there
    has its singular (tests/integration/prune/test_prune_cli.py runs one)."""
    ones = {CLOCK_AHEAD: CLOCK_AHEAD_ONE, CLOCK_AHEAD_RPO: CLOCK_AHEAD_RPO_ONE}
    one = ones.get(message, CLOCK_JUMPED_ONE)
    given = {"clock": "2028-01-11 01:06", "days": days_said(400), "last": "2026-12-07 01:06"}
    said = counted(1, one, message, backup="20261207T010618Z-7cf6624b", **given, **values)
    assert "1 backup would expire by age" in said
    assert "1 backup caducaría por antigüedad" in reasons.reason(str(said), ES)
    two = counted(2, one, message, backup="20261207T010618Z-7cf6624b", **given, **values)
    assert "2 backups caducarían por antigüedad" in reasons.reason(str(two), ES)


def test_a_prune_that_found_one_damaged_chunk_says_one_chunk() -> None:
    damaged = damaged_copies_problem(1, "offsite")
    assert damaged.startswith("garbage collection found 1 damaged chunk copy that kept ")
    assert "deduplicates against it now" in damaged and "that need it," in damaged
    assert reasons.reason(str(damaged), ES).startswith(
        "la recolección de basura encontró 1 copia dañada de un fragmento "
    )
    assert "found 2 damaged chunk copies" in damaged_copies_problem(2, "offsite")
    unrepaired = unrepaired_problem(1, "offsite")
    assert unrepaired.startswith("1 chunk that kept backups reference has only damaged copies")
    assert reasons.reason(str(unrepaired), ES).startswith(
        "1 fragmento que usan backups conservados solo tiene copias dañadas"
    )
    assert unrepaired_problem(2, "offsite").startswith("2 chunks that kept backups reference have")


def test_a_prune_refused_for_the_clock_says_one_day() -> None:
    """With [retention] clock_check_days = 1 the refusals said "more than 1 days", "for 1
    days before", "1 days after" (tests/unit/operations/test_prune.py makes one)."""
    assert [days_said(n) for n in (1, 1.0, 2, 1.5, 0)] == [
        "1 day",
        "1 day",
        "2 days",
        "1.5 days",
        "0 days",
    ]
    said = counted(
        1,
        CLOCK_JUMPED_ONE,
        CLOCK_JUMPED,
        gap=days_said(1),
        resumed="2026-11-26 23:50",
        limit=days_said(1),
        setting="[retention] clock_check_days = 1",
        clock="2026-11-28 12:00",
        days=days_said(1),
        last="2026-11-27 00:00",
        backup="20261121T000000Z-f3df4475",
    )
    assert "nothing for 1 day before 2026-11-26 23:50 UTC (more than 1 day, [" in said
    assert "(2026-11-28 12:00 UTC, 1 day after the newest backup before" in said
    # As the job's row stores it, in Spanish: each number of days with its own noun.
    spanish = reasons.reason(str(said), ES)
    assert "nada durante 1 día antes de 2026-11-26 23:50 UTC (más de 1 día, [" in spanish
    assert "(2026-11-28 12:00 UTC, 1 día después del backup más reciente" in spanish
    assert "1 backup caducaría por antigüedad" in spanish
    # A row stored before it agreed ("400 days after") still reads in Spanish.
    ahead = (
        "prune refused, nothing was deleted: the clock says 2028-01-11 01:06 UTC, 400 days "
        "after the newest backup completed (2026-12-07 01:06 UTC, more than [retention] "
        "clock_check_days = 7), and by it 3 backups would expire by age that had not expired "
        "then (e.g. 20261207T010618Z-7cf6624b): the clock is ahead, or no backup has "
        "completed since"
    )
    assert reasons.reason(ahead, ES).startswith(
        "la depuración se negó, no se eliminó nada: el reloj dice 2028-01-11 01:06 UTC, 400 "
        "días después de que se completara el backup más reciente"
    )


def test_a_table_restored_with_one_row_says_one_row() -> None:
    """A differing row count said "public.obras: 1 rows, 2 expected" (the restore's error,
    the drill's stored check, the page, the alert)."""
    assert count_difference("public.obras", 1, 2) == "public.obras: 1 row, 2 expected"
    assert count_difference("public.obras", 0, 1) == "public.obras: 0 rows, 1 expected"
    assert count_difference("public.obras", None, 2) == "public.obras: missing rows, 2 expected"
    # As the drill's failed check stores it, "; "-joined, in Spanish.
    error = counts_differ([count_difference("public.obras", 1, 2), "ventas: 3 rows, 4 expected"])
    assert reasons.reason(str(error), ES) == (
        "los recuentos de filas restaurados difieren de los del backup: public.obras: 1 fila, "
        "se esperaban 2; ventas: 3 filas, se esperaban 4"
    )
    # A row stored before it agreed is said by the plural.
    assert reasons.reason("public.obras: 1 rows, 2 expected", ES) == (
        "public.obras: 1 filas, se esperaban 2"
    )


def test_a_restore_of_one_role_says_one_role() -> None:
    """restore --globals warned "1 roles exist already and were left unchanged" and "1
    login roles were created without passwords" (its output and the job's warnings)."""
    assert kept_roles_warning({"erp_app"}) == (
        "1 role exists already and was left unchanged, without the backup's memberships and "
        "grants for it: erp_app"
    )
    assert kept_roles_warning({"b", "a"}) == (
        "2 roles exist already and were left unchanged, without the backup's memberships and "
        "grants for them: a, b"
    )
    assert ES(kept_roles_warning({"erp_app"}).message).format(count=1, roles="erp_app") == (
        "1 rol ya existía y se dejó sin cambios, sin las pertenencias ni los permisos que la "
        "copia le daba: erp_app"
    )
    one = passwordless_logins_warning({"auditor"})
    assert one.startswith(
        "1 login role was created without a password (the backup's role could not read it: "
        "pg_authid needs a superuser): auditor; if it logs in with a password, set it again"
    )
    assert ES(one.message).startswith("{count} rol con inicio de sesión se creó sin contraseña")
    two = passwordless_logins_warning({"auditor", "erp_app"})
    assert two.startswith("2 login roles were created without passwords (the backup's ")
    assert ": auditor, erp_app; those that log in" in two


def test_the_monthly_report_of_one_test_says_one_test() -> None:
    """The monthly restore-test report said "erp: 1 tests, 1 passed, 0 failed" and, in
    Spanish, "1 pruebas, 1 superadas, 0 fallidas": each number now has its own noun
    ("superadas: 1" needs no agreement)."""
    one = ReportKind(
        kind="full",
        relied_on=True,
        runs=1,
        passed=1,
        failed=0,
        rto_median_seconds=None,
        rto_max_seconds=None,
        newest_pass=None,
    )
    two = one.model_copy(update={"kind": "incremental", "runs": 2, "failed": 1})
    database = ReportDatabase(
        database="erp",
        runs=1,
        passed=1,
        failed=0,
        rto_median_seconds=None,
        rto_max_seconds=None,
        kinds=[one, two],
    )
    report = DrillReport(month="2026-11", runs=[], databases=[database], untested=[])
    english = render_report(report, "en")
    assert "erp: 1 test, 1 passed, 0 failed\n" in english.body
    assert "  logical backups: 1 test, 1 passed, 0 failed; no restore test " in english.body
    assert "  physical backups: 2 tests, 1 passed, 1 failed; no restore test " in english.body
    spanish = render_report(report, "es")
    assert "erp: 1 prueba; superadas: 1, fallidas: 0\n" in spanish.body
    assert "  backups lógicos: 1 prueba; superadas: 1, fallidas: 0; " in spanish.body
    assert "  backups físicos: 2 pruebas; superadas: 1, fallidas: 1; " in spanish.body
    assert spanish.subject.endswith(": superadas: 0, fallidas: 0")


def test_serve_with_one_schedule_says_one_schedule() -> None:
    assert started_line(1, "http://127.0.0.1:8080", None) == (
        "respaldo serve: 1 schedule, listening on http://127.0.0.1:8080"
    )
    assert started_line(3, "https://h:8443", "a worker of every queue") == (
        "respaldo serve: 3 schedules, listening on https://h:8443, a worker of every queue"
    )


def test_a_file_set_with_one_unreadable_path_says_one_path() -> None:
    """A files backup refused for one path said "file set docs: 1 paths could not be
    backed up whole" (its output, the job's stored error, the page, the alert)."""
    with pytest.raises(SourceError) as refused:
        _refuse_incomplete("docs", ["/srv/docs/a.pdf: cannot read: Permission denied"])
    said = str(refused.value)
    assert said.startswith(
        "file set docs: 1 path could not be backed up whole: /srv/docs/a.pdf: cannot read: "
    ), said
    # As the job's row stores it, in Spanish; and a row stored before it agreed.
    assert reasons.reason(said, ES).startswith(
        "conjunto de archivos docs: 1 ruta no se pudo respaldar entera: /srv/docs/a.pdf: "
    )
    assert reasons.reason(said.replace("1 path could", "1 paths could"), ES).startswith(
        "conjunto de archivos docs: 1 rutas no se pudieron respaldar enteras: "
    )
    with pytest.raises(SourceError) as two:
        _refuse_incomplete("docs", ["/a: special file, skipped", "/b: special file, skipped"])
    assert "file set docs: 2 paths could not be backed up whole: /a: " in str(two.value)


def test_one_large_object_is_one_large_object() -> None:
    """A restore test's large objects said "1 large objects, 2 expected" (a failed check,
    the restore's error) and "1 large objects, 12 bytes, match the snapshot" (its stored
    check), in Spanish "1 objetos grandes"."""
    record = LargeObjects(2, 12, "ab")
    (wrong,) = differences(record, LargeObjects(1, 12, "ab"))
    assert wrong == "1 large object, 2 expected"
    assert reasons.reason(str(wrong), ES) == "1 objeto grande, se esperaban 2"
    assert differences(LargeObjects(1, 12, "ab"), record) == ["2 large objects, 1 expected"]
    # The check a drill stores when they match (drill.py: _large_objects_check), and a
    # row stored before it agreed.
    assert reasons.reason("1 large object, 12 bytes, matches the snapshot", ES) == (
        "1 objeto grande, 12 bytes, coincide con la instantánea"
    )
    assert reasons.reason("1 large objects, 12 bytes, match the snapshot", ES) == (
        "1 objetos grandes, 12 bytes, coinciden con la instantánea"
    )


def test_a_schema_of_one_table_says_one_table(capsys: pytest.CaptureFixture[str]) -> None:
    """'respaldo ls' said "schemas: public (1 tables)"."""
    contents = BackupContents(
        backup_id="20261207T010618Z-7cf6624b",
        database="erp",
        started_at=WHEN,
        schemas=[
            SchemaContents(name="public", tables=1, rows=3, size_bytes=None),
            SchemaContents(name="ventas", tables=2, rows=5, size_bytes=None),
            SchemaContents(name="vacio", tables=0, rows=None, size_bytes=None),
        ],
        tables=[],
        objects={},
    )
    _print_contents(contents)
    printed = " ".join(capsys.readouterr().out.split())
    assert "schemas: public (1 table), ventas (2 tables), vacio" in printed, printed


def test_a_one_day_lifecycle_rule_says_one_day() -> None:
    """The refusal of a bucket whose rule deletes backups said "deletes them 1 days after
    they are written"."""
    assert what_it_does({"Expiration": {"Days": 1}}) == "deletes them 1 day after they are written"
    assert what_it_does({"Expiration": {"Days": 30}}) == (
        "deletes them 30 days after they are written"
    )


def test_a_files_restore_test_of_one_file_says_one_file() -> None:
    """A files backup's restore test stored "1 files, 1 directories, 1 links, 9 bytes, as
    backed up" (its check, 'respaldo drills', the page, the monthly report)."""
    restored: Any = SimpleNamespace(files=1, directories=1, symlinks=1, bytes_restored=9)
    manifest: Any = SimpleNamespace(
        meta={"files": 1, "directories": 1, "symlinks": 1, "file_bytes": 9}
    )
    detail = _files_contents(manifest, restored).detail
    assert detail == "1 file, 1 directory, 1 link, 9 bytes, as backed up"
    spanish = "1 archivo, 1 directorio, 1 enlace, 9 bytes, como se respaldaron"
    assert reasons.reason(str(detail), ES) == reasons.reason(detail, ES) == spanish
    manifest.meta = {}
    assert _files_contents(manifest, restored).detail.startswith("1 file, 1 directory, 1 link, ")
    # A row stored before it agreed.
    assert reasons.reason("3 files, 2 directories, 1 links, 9 bytes, as backed up", ES) == (
        "3 archivos, 2 directorios, 1 enlaces, 9 bytes, como se respaldaron"
    )


def test_a_queue_served_by_one_worker_does_not_say_one_workers() -> None:
    """A served queue's status item said "2 jobs waiting; 1 live workers take this queue"
    (the status, its JSON, the page; Spanish "1 workers activos atienden")."""
    said = waiting_reason(2, 1)
    assert said == "2 jobs waiting; live workers that take this queue: 1"
    assert reasons.reason(said, ES) == (
        "2 trabajos en espera; workers activos que atienden esta cola: 1"
    )
    assert waiting_reason(1, 3) == "1 job waiting; live workers that take this queue: 3"

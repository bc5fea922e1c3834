"""respaldo's own error messages on the Spanish page: raised at a page's action (a
Phrase, translated exactly) or recorded by a failed job (English text, recognised by its
message); what an engine wrote stays as written. The errors are made by respaldo's own
code, so that a message changed there fails here."""

from __future__ import annotations

import psycopg
import pytest

from respaldo import reasons
from respaldo.config import Settings
from respaldo.errors import InvalidInput, PostgresError, RespaldoError, ToolNotFound
from respaldo.i18n import translations
from respaldo.operations.restore import _roles_created, _unchanged
from respaldo.postgres import ConnInfo
from respaldo.postgres.server import _connection_failed

pytestmark = pytest.mark.unit

ES = translations("es").gettext
EN = translations("en").gettext
LIBPQ = 'connection to server at "127.0.0.1", port 1 failed: Connection refused'


def _es(text: str) -> str:
    return reasons.reason(text, ES)


def _as_on_the_page(error: RespaldoError) -> tuple[str, str]:
    return error.rendered(lambda field: field, _es)


def test_a_refused_connection_reads_in_spanish_raised_or_recorded_libpq_as_written() -> None:
    error = _connection_failed(
        ConnInfo.parse("postgresql://u@127.0.0.1:1/erp"), psycopg.OperationalError(LIBPQ)
    )
    said = f"no se puede conectar a PostgreSQL (host=127.0.0.1 port=1 dbname=erp user=u): {LIBPQ}"
    hint = "compruebe que el servidor está en marcha y acepta conexiones en ese host y puerto"
    assert _as_on_the_page(error) == (said, hint)
    assert _es(str(error)) == said  # as a failed job records it
    assert error.rendered(lambda field: field) == (str(error), str(error.hint))
    assert str(error).startswith("cannot connect to PostgreSQL (host=127.0.0.1")


def test_a_failed_program_reads_in_spanish_its_own_lines_as_written() -> None:
    stderr = 'pg_dump: error: query failed: ERROR:  permission denied for table "facturas"'
    error = PostgresError("pg_dump", 1, stderr)
    assert str(error) == f"pg_dump exited with status 1: {stderr}"
    assert _es(str(error)) == f"pg_dump terminó con el estado 1: {stderr}"
    assert _as_on_the_page(error)[0] == f"pg_dump terminó con el estado 1: {stderr}"
    killed = PostgresError("pg_restore", -9, "")
    assert _es(str(killed)) == "pg_restore terminó por la señal 9"
    gone = PostgresError("pg_dump", 1, "server closed the connection unexpectedly")
    assert _as_on_the_page(gone)[1].startswith("el servidor PostgreSQL cerró la conexión")


def test_a_restore_whose_pg_restore_failed_says_in_spanish_that_nothing_was_changed() -> None:
    killed = _unchanged(PostgresError("pg_restore", -9, ""), "erp_nueva", replacing=False)
    hint = (
        "no se cambió nada: no se creó ninguna base de datos erp_nueva; algo ajeno a respaldo "
        "detuvo pg_restore (la señal 9 suele ser del «OOM killer» del sistema, que el registro "
        "del sistema nombra): restaure de nuevo una vez resuelto eso"
    )
    assert _as_on_the_page(killed) == ("pg_restore terminó por la señal 9", hint)
    assert _es(killed.hint) == hint  # as a failed job records it
    assert killed.hint.startswith("nothing was changed: no database erp_nueva was created; ")
    gone = PostgresError("pg_restore", 1, "server closed the connection unexpectedly")
    replaced = _unchanged(gone, "erp", replacing=True)
    assert replaced.hint.startswith("nothing was changed: erp is as it was; the PostgreSQL server")
    assert _as_on_the_page(replaced)[1].startswith(
        "no se cambió nada: erp sigue como estaba; el servidor PostgreSQL cerró la conexión"
    )
    failed = _unchanged(PostgresError("pg_restore", 1, "ERROR:  boom"), "erp", replacing=True)
    assert _as_on_the_page(failed)[1] == (
        "no se cambió nada: erp sigue como estaba; restaure de nuevo una vez resuelta la causa"
    )


def test_a_restore_that_created_roles_does_not_say_that_nothing_was_changed() -> None:
    # restore --globals creates the roles the server lacks, for good, before pg_restore
    # runs: "nothing was changed" was untrue once it had, and the roles are named.
    killed = PostgresError("pg_restore", -9, "")
    made = _unchanged(killed, "erp_nueva", replacing=False)
    made.hint = _roles_created(made.hint, "erp_nueva", replacing=False, created=["auditor"])
    assert "nothing was changed" not in made.hint
    assert made.rendered(lambda field: "--globals")[1].startswith(
        "no database erp_nueva was created, but the backup's roles this server lacked were "
        "(--globals): auditor; something outside respaldo stopped pg_restore"
    )
    assert _as_on_the_page(made)[1].startswith(
        "no se creó ninguna base de datos erp_nueva, pero sí los roles de la copia que este "
        "servidor no tenía (with_globals): auditor; algo ajeno a respaldo detuvo pg_restore"
    )
    kept = _unchanged(killed, "erp", replacing=True)
    kept.hint = _roles_created(kept.hint, "erp", replacing=True, created=["a", "b"])
    assert _as_on_the_page(kept)[1].startswith(
        "la base de datos erp sigue como estaba, pero se crearon los roles de la copia que "
        "este servidor no tenía (with_globals): a, b; algo ajeno"
    )
    # A hint written as text (send_range's spooled dump cut short): what it said next.
    sent = _roles_created(
        "nothing was changed; restore again", "erp", replacing=True, created=["a"]
    )
    assert sent.startswith("the database erp is as it was, but the backup's roles this ")
    assert sent.endswith("): a; restore again")
    # A hint that claims nothing is left as it was.
    assert _roles_created("run it again", "erp", replacing=True, created=["a"]) == "run it again"
    # A row stored before the roles were named still reads in Spanish.
    assert _es(
        "no database x was created, but the backup's roles this server lacked were "
        "(--globals); restore again once the cause is dealt with"
    ).startswith("no se creó ninguna base de datos x, pero sí los roles")


def test_a_missing_program_reads_in_spanish() -> None:
    error = ToolNotFound("pg_dump", searched="/usr/lib/postgresql/17/bin")
    assert _es(str(error)) == "no se encontró pg_dump (se buscó en /usr/lib/postgresql/17/bin)"
    assert _as_on_the_page(error)[1].startswith("instale los programas cliente de PostgreSQL")


def test_an_engines_words_that_look_like_a_message_stay_as_written() -> None:
    # "{program} not found" takes a program's name, not any text before " not found".
    assert _es('role "ana" not found') == 'role "ana" not found'
    assert _es("ERROR:  relation x does not exist") == "ERROR:  relation x does not exist"


def test_a_refused_request_reads_in_spanish_with_its_field() -> None:
    settings = Settings(databases=[{"name": "erp", "dsn": "postgresql://u@h/erp"}])
    try:
        settings.database("crm")
    except Exception as exc:  # ConfigError, passed on as the page's actions do
        error = InvalidInput("database", exc.message, hint=exc.hint)  # type: ignore[attr-defined]
    assert _as_on_the_page(error) == (
        "database: la base de datos 'crm' no está configurada",
        "configuradas: erp",
    )
    assert error.rendered(lambda field: field) == (
        "database: database 'crm' is not configured",
        "configured: erp",
    )

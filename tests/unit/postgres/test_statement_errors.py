"""psql's reports of failed statements, found by SQLSTATE in any server language."""

from __future__ import annotations

from respaldo.postgres.commands import statement_errors

# What psql 15 printed (VERBOSITY=verbose, ON_ERROR_STOP=0) for a script run against a
# server with lc_messages = 'de_DE.UTF-8'.
GERMAN = """\
psql:<stdin>:2: FEHLER:  3D000: Datenbank »nodb« existiert nicht
LOCATION:  get_database_oid, dbcommands.c:3032
psql:<stdin>:3: FEHLER:  42710: Rolle »a« existiert bereits
LOCATION:  CreateRole, user.c:308
psql:<stdin>:5: HINWEIS:  00000: Rolle »zz« existiert nicht, wird übersprungen
LOCATION:  DropRole, user.c:957
psql:<stdin>:6: error: invalid command \\bogus
psql:<stdin>:7: FEHLER:  22012: Division durch Null
LOCATION:  int4div, int.c:869
"""


def test_failures_are_found_by_their_sqlstate_in_any_language() -> None:
    assert statement_errors(GERMAN) == [
        "psql:<stdin>:2: FEHLER:  Datenbank »nodb« existiert nicht",
        "psql:<stdin>:3: FEHLER:  Rolle »a« existiert bereits",
        "psql:<stdin>:6: error: invalid command \\bogus",
        "psql:<stdin>:7: FEHLER:  Division durch Null",
    ]


def test_notices_warnings_and_no_data_are_not_failures() -> None:
    stderr = (
        'psql:<stdin>:1: NOTICE:  00000: role "x" does not exist, skipping\n'
        'psql:<stdin>:2: WARNING:  01007: no privileges were granted for "t"\n'
        "psql:<stdin>:3: AVISO:  02000: sin datos\n"
    )
    assert statement_errors(stderr) == []


def test_an_english_failure_reads_as_before_without_its_code() -> None:
    stderr = 'psql:<stdin>:4: ERROR:  42704: role "erp_gone" does not exist\n'
    assert statement_errors(stderr) == ['psql:<stdin>:4: ERROR:  role "erp_gone" does not exist']


def test_a_message_quoting_a_report_is_not_taken_for_one() -> None:
    # DETAIL and CONTEXT lines, and a LOCATION line, never open with a code.
    stderr = (
        "psql:<stdin>:9: ERROR:  23505: duplicate key value\n"
        "DETAIL:  Key (id)=(1) already exists.\n"
        'CONTEXT:  SQL statement "ERROR:  42P01: quoted"\n'
    )
    assert statement_errors(stderr) == ["psql:<stdin>:9: ERROR:  duplicate key value"]


def test_nothing_is_nothing() -> None:
    assert statement_errors("") == []

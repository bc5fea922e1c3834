"""Restoring globals never touches roles that exist (their passwords would be reset)."""

from __future__ import annotations

import pytest

from respaldo.operations.restore import filter_globals, login_roles, script_creates

pytestmark = pytest.mark.unit

SCRIPT = '''--
-- Roles
--

CREATE ROLE admin;
ALTER ROLE admin WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN PASSWORD 'SCRAM-SHA-256$old';
CREATE ROLE "Jefe de ""Obra""";
ALTER ROLE "Jefe de ""Obra""" WITH NOSUPERUSER LOGIN PASSWORD 'SCRAM-SHA-256$x';
CREATE ROLE lector;
ALTER ROLE lector WITH NOSUPERUSER NOLOGIN;
COMMENT ON ROLE lector IS 'read only';
GRANT lector TO "Jefe de ""Obra""" GRANTED BY admin;
'''


def test_existing_roles_are_left_alone() -> None:
    script, kept = filter_globals(SCRIPT, {"admin", 'Jefe de "Obra"'})
    assert kept == {"admin", 'Jefe de "Obra"'}
    assert "PASSWORD 'SCRAM-SHA-256$old'" not in script
    assert "SCRAM-SHA-256$x" not in script
    assert "CREATE ROLE lector;" in script
    assert "ALTER ROLE lector WITH NOSUPERUSER NOLOGIN;" in script
    assert "GRANT lector TO" not in script  # a membership of a role that exists


def test_nothing_exists_keeps_everything() -> None:
    script, kept = filter_globals(SCRIPT, set())
    assert script == SCRIPT and kept == set()


def test_a_role_whose_name_is_a_prefix_is_not_confused() -> None:
    script, kept = filter_globals(
        "CREATE ROLE lectora;\nALTER ROLE lectora WITH LOGIN;\n", {"lector"}
    )
    assert kept == set() and "lectora" in script


def test_the_login_roles_of_a_script_are_found_by_their_alter_role_line() -> None:
    # lector is NOLOGIN; a LOGIN inside a comment or a role's name is not an attribute.
    extra = "COMMENT ON ROLE lector IS 'ALTER ROLE x WITH LOGIN';\nCREATE ROLE \"LOGIN\";\n"
    assert login_roles(SCRIPT + extra) == {"admin", 'Jefe de "Obra"'}
    assert login_roles(filter_globals(SCRIPT, {"admin"})[0]) == {'Jefe de "Obra"'}
    assert login_roles("") == set()


def test_what_a_script_creates_is_its_create_lines_names_unquoted() -> None:
    # What a failed restore --globals names as created is at most this: a role or a
    # tablespace that another session made meanwhile is not the script's.
    space = "CREATE TABLESPACE \"Obra Norte\" OWNER admin LOCATION '/srv/ts';\n"
    comment = "COMMENT ON ROLE lector IS 'CREATE ROLE intruso';\n"
    assert script_creates(SCRIPT + space + comment) == {
        ("role", "admin"),
        ("role", 'Jefe de "Obra"'),
        ("role", "lector"),
        ("tablespace", "Obra Norte"),
    }
    assert script_creates(filter_globals(SCRIPT, {"admin"})[0]) == {
        ("role", 'Jefe de "Obra"'),
        ("role", "lector"),
    }


def test_a_quoted_name_with_a_line_break_is_one_statement() -> None:
    # pg_dumpall quotes such a name; read line by line, its halves matched no role.
    name = "jefe\nrole lector"
    script = (
        f'CREATE ROLE "{name}";\n'
        f"ALTER ROLE \"{name}\" WITH LOGIN PASSWORD 'SCRAM-SHA-256$hoy';\n"
        "-- a comment's quote \" ends with its line\n"
        "CREATE ROLE lector;\n"
    )
    filtered, kept = filter_globals(script, {name})
    assert kept == {name}
    assert filtered == "-- a comment's quote \" ends with its line\nCREATE ROLE lector;\n"
    assert script_creates(script) == {("role", name), ("role", "lector")}
    assert login_roles(script) == {name}


def test_what_changes_an_existing_role_is_left_out_with_it() -> None:
    # A membership granted again gave back what was revoked since the backup, while
    # the restore said the role was left unchanged.
    script = (
        "CREATE ROLE lector;\n"
        "COMMENT ON ROLE lector IS 'GRANT x TO y';\n"
        'GRANT lector TO "Jefe de ""Obra""" WITH ADMIN OPTION, INHERIT TRUE GRANTED BY admin;\n'
        "GRANT admin TO lector GRANTED BY admin;\n"
        'GRANT SET ON PARAMETER work_mem TO "Jefe de ""Obra""";\n'
        "REVOKE ALL ON PARAMETER work_mem FROM admin;\n"
        "GRANT ALL ON PARAMETER work_mem TO lector;\n"
        "GRANT ALL ON TABLESPACE archivo TO admin;\n"
    )
    filtered, kept = filter_globals(script, {'Jefe de "Obra"', "admin"})
    assert kept == {'Jefe de "Obra"', "admin"}
    assert filtered == (
        "CREATE ROLE lector;\n"
        "COMMENT ON ROLE lector IS 'GRANT x TO y';\n"
        "GRANT admin TO lector GRANTED BY admin;\n"
        "GRANT ALL ON PARAMETER work_mem TO lector;\n"
    )
    assert filter_globals(script, {"lector"})[0] == (
        'GRANT lector TO "Jefe de ""Obra""" WITH ADMIN OPTION, INHERIT TRUE GRANTED BY admin;\n'
        'GRANT SET ON PARAMETER work_mem TO "Jefe de ""Obra""";\n'
        "REVOKE ALL ON PARAMETER work_mem FROM admin;\n"
        "GRANT ALL ON TABLESPACE archivo TO admin;\n"
    )

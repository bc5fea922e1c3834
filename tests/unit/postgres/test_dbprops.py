"""The database's own properties, as pg_restore --create prints them, aimed at another name."""

from __future__ import annotations

import pytest

from respaldo.postgres.dbprops import (
    create_options_for,
    database_entries,
    parse_properties,
    quote_ident,
    split_statements,
)

# What pg_restore 15 --create prints for the database entries of a pg_dump -Fc archive
# of a database named "My DB" (the entries selected with --use-list).
SCRIPT = """--
-- PostgreSQL database dump
--

\\restrict dIcZlrwNWxLLFtPSgThiaxHOLJMLQqDDZBuX5cYzhtCGRhCpN37m0Tcn1k7LALI

SET statement_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);

--
-- Name: My DB; Type: DATABASE; Schema: -; Owner: owner1
--

CREATE DATABASE "My DB" WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE = 'C';


ALTER DATABASE "My DB" OWNER TO owner1;

\\unrestrict dIcZlrwNWxLLFtPSgThiaxHOLJMLQqDDZBuX5cYzhtCGRhCpN37m0Tcn1k7LALI
\\encoding SQL_ASCII
\\connect -reuse-previous=on "dbname='My DB'"
\\restrict dIcZlrwNWxLLFtPSgThiaxHOLJMLQqDDZBuX5cYzhtCGRhCpN37m0Tcn1k7LALI

COMMENT ON DATABASE "My DB" IS 'it''s ON DATABASE "My DB" x;
-- not a comment';

ALTER DATABASE "My DB" CONNECTION LIMIT = 7;
ALTER DATABASE "My DB" SET search_path TO 'public', 'my schema', '';
ALTER ROLE "app user" IN DATABASE "My DB" SET statement_timeout TO '5s';

REVOKE CONNECT,TEMPORARY ON DATABASE "My DB" FROM PUBLIC;
GRANT CONNECT ON DATABASE "My DB" TO "app user";
GRANT CREATE ON DATABASE "My DB" TO grantor1 WITH GRANT OPTION;
SET SESSION AUTHORIZATION grantor1;
GRANT CREATE ON DATABASE "My DB" TO reader;
RESET SESSION AUTHORIZATION;

\\unrestrict dIcZlrwNWxLLFtPSgThiaxHOLJMLQqDDZBuX5cYzhtCGRhCpN37m0Tcn1k7LALI
"""


def test_the_statements_name_the_new_database_and_nothing_else_changes() -> None:
    props = parse_properties(SCRIPT)
    assert props.source == "My DB"
    assert props.statements_for('new "one"') == [
        "SET statement_timeout = 0",
        "SET client_encoding = 'UTF8'",
        "SET standard_conforming_strings = on",
        "SELECT pg_catalog.set_config('search_path', '', false)",
        'ALTER DATABASE "new ""one""" OWNER TO owner1',
        # The name inside the comment's text is text: left alone.
        'COMMENT ON DATABASE "new ""one""" IS \'it\'\'s ON DATABASE "My DB" x;\n-- not a comment\'',
        'ALTER DATABASE "new ""one""" CONNECTION LIMIT = 7',
        "ALTER DATABASE \"new \"\"one\"\"\" SET search_path TO 'public', 'my schema', ''",
        'ALTER ROLE "app user" IN DATABASE "new ""one""" SET statement_timeout TO \'5s\'',
        'REVOKE CONNECT,TEMPORARY ON DATABASE "new ""one""" FROM PUBLIC',
        'GRANT CONNECT ON DATABASE "new ""one""" TO "app user"',
        'GRANT CREATE ON DATABASE "new ""one""" TO grantor1 WITH GRANT OPTION',
        "SET SESSION AUTHORIZATION grantor1",
        'GRANT CREATE ON DATABASE "new ""one""" TO reader',
        "RESET SESSION AUTHORIZATION",
    ]
    assert not props.empty


def test_a_bare_name_is_recognised_too() -> None:
    props = parse_properties(
        "CREATE DATABASE erp WITH TEMPLATE = template0;\n"
        "ALTER DATABASE erp SET work_mem TO '8MB';\n"
        "GRANT ALL ON DATABASE erp TO erp_app;\n"
    )
    assert props.source == "erp"
    assert props.statements_for("t") == [
        "ALTER DATABASE \"t\" SET work_mem TO '8MB'",
        'GRANT ALL ON DATABASE "t" TO erp_app',
    ]


def test_escaped_literals_keep_their_quotes() -> None:
    assert split_statements("COMMENT ON DATABASE d IS E'a\\\\ ; b\\';c';\nSET x = 1;") == [
        "COMMENT ON DATABASE d IS E'a\\\\ ; b\\';c'",
        "SET x = 1",
    ]


@pytest.mark.parametrize(
    ("script", "problem"),
    [
        ("CREATE DATABASE d WITH TEMPLATE = template0;\nDROP TABLE x;\n", "unexpected statement"),
        ("ALTER DATABASE a SET x TO 1;\nALTER DATABASE b SET y TO 2;\n", "another database"),
        ("ALTER DATABASE a SET x TO 1 \\! rm -rf /;\n", "backslash"),
        ("ALTER DATABASE a SET x TO 1\n", "does not end"),
        ("COMMENT ON DATABASE a IS 'open;\n", "does not end"),
    ],
)
def test_what_is_not_known_is_refused(script: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_properties(script)


def test_only_the_entries_about_the_database_are_listed() -> None:
    listing = """;
; Archive created at 2026-12-04 19:24:34 UTC
;     dbname: My DB
;
3339; 1262 16388 DATABASE - My DB owner1
3340; 0 0 COMMENT - DATABASE "My DB" owner1
3341; 0 0 ACL - DATABASE "My DB" owner1
3342; 0 0 DATABASE PROPERTIES - My DB owner1
3343; 0 0 COMMENT - EXTENSION plpgsql
215; 1259 16390 TABLE public t owner1
3344; 0 0 ACL public TABLE t owner1
;3345; 0 0 SECURITY LABEL - DATABASE "My DB" owner1
"""
    assert database_entries(listing) == [
        "3339; 1262 16388 DATABASE - My DB owner1",
        '3340; 0 0 COMMENT - DATABASE "My DB" owner1',
        '3341; 0 0 ACL - DATABASE "My DB" owner1',
        "3342; 0 0 DATABASE PROPERTIES - My DB owner1",
    ]


def test_quote_ident() -> None:
    assert quote_ident('a"b c') == '"a""b c"'


def test_the_encoding_and_locale_of_create_database_are_kept() -> None:
    assert parse_properties(SCRIPT).create_options == (
        ("ENCODING", "UTF8"),
        ("LOCALE", "C"),
    )
    icu = parse_properties(
        "CREATE DATABASE erp WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = "
        "icu LC_COLLATE = 'C' LC_CTYPE = 'es_ES.UTF-8' ICU_LOCALE = 'es-ES' ICU_RULES = "
        "'&a < ''b''' TABLESPACE = otro;\n"
    )
    assert icu.create_options == (
        ("ENCODING", "UTF8"),
        ("LOCALE_PROVIDER", "icu"),
        ("LC_COLLATE", "C"),
        ("LC_CTYPE", "es_ES.UTF-8"),
        ("ICU_LOCALE", "es-ES"),
        ("ICU_RULES", "&a < 'b'"),
    )


# What pg_dump 14 writes (no locale providers before 15), and 15+ for a libc database.
_DUMP_14 = (
    "CREATE DATABASE erp WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE = 'es_ES.UTF-8';\n"
)
_DUMP_14_SPLIT = (
    "CREATE DATABASE erp WITH TEMPLATE = template0 ENCODING = 'LATIN1' "
    "LC_COLLATE = 'C' LC_CTYPE = 'es_ES';\n"
)


@pytest.mark.parametrize("server_major", [15, 16, 18])
def test_a_dump_without_a_locale_provider_is_libc_on_a_server_with_providers(
    server_major: int,
) -> None:
    # Before 15 every database was libc; created on a 15+ server with the locale alone,
    # it would take template0's provider (ICU on many) and sort differently.
    options = parse_properties(_DUMP_14).create_options
    assert create_options_for(options, server_major) == (
        ("ENCODING", "UTF8"),
        ("LOCALE", "es_ES.UTF-8"),
        ("LOCALE_PROVIDER", "libc"),
    )
    split = parse_properties(_DUMP_14_SPLIT).create_options
    assert ("LOCALE_PROVIDER", "libc") in create_options_for(split, server_major)


def test_the_options_are_kept_as_they_are_otherwise() -> None:
    options = parse_properties(_DUMP_14).create_options
    # A server without providers has no such option.
    assert create_options_for(options, 14) == options
    # A provider the dump names is kept, whichever it is.
    icu = (("ENCODING", "UTF8"), ("LOCALE_PROVIDER", "icu"), ("LOCALE", "C"))
    assert create_options_for(icu, 16) == icu
    # No locale in the dump: nothing to keep, the server's default stays.
    assert create_options_for((("ENCODING", "UTF8"),), 16) == (("ENCODING", "UTF8"),)
    assert create_options_for((), 16) == ()

"""A script pg_dump or pg_dumpall wrote is read in the encoding it declares."""

from __future__ import annotations

import pytest

from respaldo.postgres.encodings import decode_script, script_encoding, utf8_client


def test_a_script_is_read_in_the_encoding_it_declares() -> None:
    script = "SET client_encoding = 'LATIN1';\nCOMMENT ON DATABASE d IS 'compañía';\n"
    raw = script.encode("latin-1")
    assert script_encoding(raw) == "LATIN1"
    assert decode_script(raw) == script
    assert utf8_client(decode_script(raw)).startswith("SET client_encoding = 'UTF8';\n")


def test_a_script_without_the_line_is_utf8_and_bytes_outside_it_are_refused() -> None:
    assert script_encoding(b"SELECT 1;\n") is None
    assert decode_script("SELECT 'ñ';\n".encode()) == "SELECT 'ñ';\n"
    with pytest.raises(ValueError):
        decode_script(b"SET client_encoding = 'UTF8';\nSELECT '\xf1';\n")

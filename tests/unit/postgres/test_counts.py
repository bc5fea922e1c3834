"""Keys of a logical backup's row counts (respaldo.postgres.counts)."""

from __future__ import annotations

import pytest

from respaldo.postgres.counts import count_key, count_query, counts_format, find_recorded
from respaldo.postgres.toc import split_name

pytestmark = pytest.mark.unit


def test_dotted_names_get_keys_of_their_own_in_format_2() -> None:
    assert count_key("a.b", "c") == '"a.b".c'
    assert count_key("a", "b.c") == 'a."b.c"'
    assert count_key("finanzas", "facturas") == "finanzas.facturas"
    assert count_key("s", 'say "hi"') == 's."say ""hi"""'
    # A key is also a name --table takes.
    for schema, table in (("a.b", "c"), ("a", "b.c"), ("s", 'say "hi"')):
        assert split_name(count_key(schema, table)) == (schema, table)


def test_format_1_is_what_older_backups_recorded() -> None:
    assert counts_format({}) == 1
    assert counts_format({"row_counts_format": 2}) == 2
    assert count_key("a.b", "c", 1) == count_key("a", "b.c", 1) == "a.b.c"
    assert "ONLY" in count_query(2) and "ONLY" not in count_query(1)


def test_a_name_as_the_table_of_contents_prints_it_finds_its_count() -> None:
    recorded = {"s.two\nlines": 2, "s.ok": 0}
    assert find_recorded(recorded, "s.ok") == "s.ok"
    assert find_recorded(recorded, "s.two lines") == "s.two\nlines"
    assert find_recorded(recorded, "s.other") is None
    # Two names that print alike: neither is guessed.
    assert find_recorded({"s.a\nb": 1, "s.a\rb": 2}, "s.a b") is None


def test_server_encodings_map_to_python_codecs() -> None:
    from respaldo.postgres.encodings import python_codec

    assert python_codec(None) == "utf-8"
    assert python_codec("UTF8") == "utf-8"
    assert python_codec("LATIN1") == "iso8859-1"
    assert python_codec("LATIN9") == "iso8859-15"
    assert python_codec("WIN1252") == "cp1252"
    assert python_codec("EUC_JP") == "euc_jp"
    assert python_codec("SQL_ASCII") == "utf-8"
    assert python_codec("NO_SUCH") == "utf-8"

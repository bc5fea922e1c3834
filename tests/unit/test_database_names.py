"""One rule for PostgreSQL database names, wherever a name enters respaldo."""

from __future__ import annotations

import pytest

from respaldo.domain import truncate_name, validate_database_name
from respaldo.errors import ConfigError
from respaldo.postgres import ConnInfo


@pytest.mark.parametrize(
    "name",
    ["erp", "my db", "Mi Base", "ñandú", "x" * 63, "ñ" * 31 + "x", "erp-2024", '"q"', "a;b"],
)
def test_names_postgresql_keeps_as_they_are_pass(name: str) -> None:
    assert validate_database_name(name) == name
    assert ConnInfo(dbname=name).dbname == name
    assert ConnInfo.parse(f"host=db dbname='{name}'").dbname == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("x" * 64, "64 bytes"),
        ("ñ" * 32, "64 bytes"),
        ("a\x00b", "NUL"),
        ("a\nb", "line break"),
        ("a\rb", "line break"),
    ],
)
def test_names_postgresql_would_change_or_tools_refuse_are_rejected(name: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_database_name(name)
    assert why in str(caught.value)
    assert caught.value.hint
    with pytest.raises(ConfigError):
        ConnInfo(dbname=name)


def test_truncation_keeps_whole_characters() -> None:
    assert truncate_name("ñ" * 40, 40) == "ñ" * 20
    assert truncate_name("aññ", 4) == "añ"
    assert truncate_name("abc", 40) == "abc"

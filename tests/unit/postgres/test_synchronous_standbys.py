"""What a restored configuration says of ``synchronous_standby_names`` (the restore's
warning names it): the last setting, ``postgresql.auto.conf`` after ``postgresql.conf``."""

from __future__ import annotations

from pathlib import Path

import pytest

from respaldo.postgres.datadir import synchronous_standbys


@pytest.mark.parametrize(
    ("conf", "auto", "expected"),
    [
        ("", None, ""),
        ("#synchronous_standby_names = 'a'\n", None, ""),
        ("synchronous_standby_names = 'FIRST 1 (s1, s2)'  # sync\n", None, "FIRST 1 (s1, s2)"),
        ("synchronous_standby_names '*'\n", None, "*"),
        ("synchronous_standby_names = s1\n", None, "s1"),
        ("synchronous_standby_names = 'a'\n", "synchronous_standby_names = ''\n", ""),
        ("", "synchronous_standby_names = 'it''s'\nsynchronous_standby_names = 'b'\n", "b"),
        ("SYNCHRONOUS_STANDBY_NAMES = 'x'\n", "", "x"),
    ],
)
def test_the_last_setting_is_read(
    tmp_path: Path, conf: str, auto: str | None, expected: str
) -> None:
    (tmp_path / "postgresql.conf").write_text(conf)
    if auto is not None:
        (tmp_path / "postgresql.auto.conf").write_text(auto)

    assert synchronous_standbys(tmp_path) == expected


def test_a_quote_inside_is_read_as_one(tmp_path: Path) -> None:
    (tmp_path / "postgresql.auto.conf").write_text("synchronous_standby_names = 'o''brien'\n")

    assert synchronous_standbys(tmp_path) == "o'brien"


def test_no_configuration_files_is_none(tmp_path: Path) -> None:
    assert synchronous_standbys(tmp_path) == ""

"""``first_line``: the one line of an error that a message, a status reason or a log line
quotes (each module had its own copy, two of which raised IndexError on a blank text)."""

from __future__ import annotations

import pytest

from respaldo.errors import RespaldoError, first_line
from respaldo.operations.physical_restore import _mirror_wal_warning


class _Wrapped(Exception):
    """SQLAlchemy's shape: the driver's error as ``orig``, the SQL appended below it."""

    def __init__(self, orig: Exception) -> None:
        super().__init__(f"({type(orig).__name__}) {orig}\n[SQL: SELECT 1]\n(Background...)")
        self.orig = orig


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (ValueError("bad\nsecond line"), "bad"),
        (ValueError("\n  indented cause\nmore"), "indented cause"),
        (ValueError(""), "ValueError"),
        (ValueError(" \n "), "ValueError"),
        (_Wrapped(OSError("connection refused\nIs the server running?")), "connection refused"),
        ("a reason\nits detail", "a reason"),
        ("", ""),
    ],
)
def test_the_first_line_of_an_error_or_a_text(given: BaseException | str, expected: str) -> None:
    assert first_line(given) == expected


def test_a_blank_error_still_makes_the_mirror_warning() -> None:
    text = _mirror_wal_warning("offsite", "local", RespaldoError(" \n"))
    assert text.startswith("WAL comes from repository offsite: the primary repository local")

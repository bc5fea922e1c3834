"""Every place that masks secrets (the scrubber, a PostgreSQL program's stderr, apprise's
log lines) masks a short one only where it stands alone: never leaked, and the ids and
numbers that merely contain it left whole."""

from __future__ import annotations

import pytest

from respaldo.apprise_urls import redact
from respaldo.postgres.connection import MASK, scrub
from respaldo.redaction import SHORT_SECRET, replace_secret

pytestmark = pytest.mark.unit


def test_a_child_programs_stderr_keeps_numbers_that_contain_a_short_password() -> None:
    stderr = 'pg_dump: error: relation with OID 512345 vanished; password "12345" refused'
    assert scrub(stderr, ["12345"]) == (
        f'pg_dump: error: relation with OID 512345 vanished; password "{MASK}" refused'
    )


def test_apprise_lines_keep_words_that_contain_a_short_token() -> None:
    assert redact("tokenabc refused: abc", ["abc"]) == "tokenabc refused: ***"
    assert redact("key a%2Fb refused", ["a/b"]) == "key *** refused"


def test_a_secret_of_the_threshold_length_is_replaced_everywhere() -> None:
    secret = "x" * SHORT_SECRET
    assert replace_secret(f"a{secret}b", secret, "*") == "a*b"
    assert replace_secret(f"a{secret[:-1]}b", secret[:-1], "*") == f"a{secret[:-1]}b"
    assert replace_secret("unchanged", "", "*") == "unchanged"


@pytest.mark.parametrize(
    "text",
    [
        repr("line1\nhunter2"),
        repr(b"\thunter2"),
        repr("\x1bhunter2"),
        "%22hunter2%22",
        "https://h/?next=postgresql%3A%2F%2Ferp%3Ahunter2%40db",
    ],
)
def test_a_short_secret_after_an_escape_is_still_masked(text: str) -> None:
    # repr(), bytes literals and URL encoding glue a letter or digit to the secret's
    # start ("\\thunter2", "%3Ahunter2"): the escape is a boundary, not a word.
    assert "hunter2" in text
    assert "hunter2" not in replace_secret(text, "hunter2", "*")


def test_an_escape_does_not_make_a_longer_word_a_boundary() -> None:
    assert replace_secret("hunter2x %3Ahunter22", "hunter2", "*") == "hunter2x %3Ahunter22"

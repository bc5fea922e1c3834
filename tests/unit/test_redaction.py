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

"""Counts agree with their noun: "1 backup", "0 backups", "2 backups", in English and in
the Spanish of the page and the alerts (:func:`respaldo.phrases.counted`)."""

from __future__ import annotations

import pytest

from respaldo import reasons
from respaldo.i18n import translations
from respaldo.operations.verify import VerifyResult
from respaldo.phrases import N_, counted
from tests.unit.results import verify_result

pytestmark = pytest.mark.unit

ES = translations("es").gettext


@pytest.mark.parametrize(("count", "said"), [(0, "0 backups"), (1, "1 backup"), (2, "2 backups")])
def test_the_noun_agrees_with_the_count(count: int, said: str) -> None:
    assert counted(count, N_("{count} backup"), N_("{count} backups")) == said


def _verify(problems: list[str]) -> VerifyResult:
    return verify_result(problems, quarantined=1)


def test_a_verify_that_found_one_problem_says_one_problem() -> None:
    """Before: "verify found 1 problems: …" on the job's row, the page and the alert."""
    failure = _verify(["disk on fire"]).found_failure()
    assert failure == "verify found 1 problem: disk on fire"
    spanish = "la verificación encontró 1 problema: disk on fire"
    assert reasons.reason(failure, ES) == spanish
    # As the catalog stores it (text, not a phrase), and as a row stored before said it.
    assert reasons.reason(str(failure), ES) == spanish
    assert reasons.reason("verify found 1 problems: disk on fire", ES) == (
        "la verificación encontró 1 problemas: disk on fire"
    )
    two = _verify(["disk on fire", "disk on fire too"]).found_failure()
    assert two == "verify found 2 problems: disk on fire"

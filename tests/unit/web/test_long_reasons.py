"""A long recorded reason (a failed job's error of many parts) is recognised, or shown as
written, in time linear in its length times its parts: the page renders every job's.

The phrase of a lapsed lease begins with a value ("{since} ({silent} s before {now} ..."),
so it is tried at every ": " of a text; with every value any text, each try backtracked
over the rest of the text once per " (" and per " s before ": a 9 KB error of 200 parts
took 2.6 s to render, a 4.5 KB one of the worst kind 85 s, and 20 KB ones hours.
"""

from __future__ import annotations

import re

import pytest

from respaldo import reasons
from respaldo.reasons import reason

pytestmark = pytest.mark.timeout(60)  # hours before; milliseconds now

PARTS = 800


def _said(text: str) -> str:
    return reason(text, lambda message: f"<{message}>")


def test_a_long_error_of_many_parts_is_shown_as_written() -> None:
    text = "; ".join(f"pack {i:04x}: chunk {i} (offset {i * 7}) unreadable" for i in range(PARTS))
    assert _said(text) == text


def test_a_long_error_that_looks_like_a_lapsed_lease_in_every_part_is_shown_as_written() -> None:
    text = "pg_restore: error: " + "; ".join(f"x{i}: a (b s before c" for i in range(PARTS))
    assert _said(text) == text


def test_a_lapsed_lease_is_still_recognised() -> None:
    since = (
        "2026-12-04T03:00:00+00:00 (600 s before 2026-12-04T03:10:00+00:00 by the "
        "catalog's clock; the lease is 1.5 s)"
    )
    assert _said(since) == (
        "<{since} ({silent} s before {now} by the catalog's clock; the lease is {lease} s)>"
    ).format(
        since="2026-12-04T03:00:00+00:00",
        silent="600",
        now="2026-12-04T03:10:00+00:00",
        lease="1.5",
    )


def test_a_long_error_with_a_json_body_in_its_command_is_shown_as_written() -> None:
    # pg_restore's "Command was:" line holds the whole statement: a function returning a
    # JSON constant puts a ": " every few characters. The lapsed lease's time phrase
    # opened with a value of any text, and so scanned every text before a ": " whole:
    # 2.8 s for 64 KB, minutes for this one.
    body = ", ".join(f'"k{i}": {i}' for i in range(36_000))
    detail = (
        "pg_restore: error: could not execute query: ERROR:  syntax error; Command was: "
        f"CREATE FUNCTION public.f() RETURNS jsonb LANGUAGE sql AS $$ SELECT '{{{body}}}' $$;"
    )
    said = _said(f"pg_restore exited with status 1: {detail}")
    assert said == f"<pg_restore exited with status 1>: {detail}"


def test_a_text_before_a_lapsed_lease_time_that_is_no_time_is_not_taken_for_one() -> None:
    text = (
        "pg_dump: error: x (600 s before 2026-12-04T03:10:00+00:00 by the catalog's clock; "
        "the lease is 1.5 s)"
    )
    assert _said(text) == text


def test_a_lapsed_lease_is_still_recognised_whole() -> None:
    since = (
        "2026-12-04T03:00:00+00:00 (600 s before 2026-12-04T03:10:00+00:00 by the "
        "catalog's clock; the lease is 1.5 s)"
    )
    text = f"the lease of process 42 on db1 lapsed: no sign of life since {since}"
    assert _said(text) == (
        "<the lease of process {pid} on {host} lapsed: no sign of life since {since}>"
    ).format(pid="42", host="db1", since=_said(since))
    assert _said(since).startswith("<2026-12-04T03:00:00+00:00 (600 s before ")


def test_no_phrase_opens_with_a_value_of_any_text() -> None:
    # Every text before a ": " of a recorded error is tried against every phrase: one
    # that opened with a value of any text would scan each of them whole again.
    opening = [re.match(r"\{(\w+)\}", message) for message in reasons._PHRASES]
    names = {found.group(1) for found in opening if found is not None}
    assert names, "no phrase opens with a value: this test checks nothing"
    free = sorted(name for name in names if reasons._value_pattern(name, opens=True) == ".+?")
    assert free == [], f"phrases open with a value of any text: {free}"

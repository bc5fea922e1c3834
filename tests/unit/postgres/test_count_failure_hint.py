"""The hint of a snapshot's row count that failed: which SQLSTATE on which server."""

from __future__ import annotations

from respaldo.postgres.server import (
    READ_EVERY_ROW,
    UNLOGGED_ON_STANDBY,
    count_failure_hint,
)


def test_feature_not_supported_on_a_standby_says_to_back_up_through_the_primary() -> None:
    assert count_failure_hint("0A000", in_recovery=True) == UNLOGGED_ON_STANDBY


def test_feature_not_supported_on_a_primary_gives_no_standby_hint() -> None:
    """2c6c576 gave the standby's way on ('back up through a dsn that leads to the
    primary') to every 0A000 of the count, on a primary too, where it is wrong."""
    assert count_failure_hint("0A000", in_recovery=False) is None


def test_a_role_that_cannot_read_every_row_is_told_so_on_either_server() -> None:
    assert count_failure_hint("42501", in_recovery=False) == READ_EVERY_ROW
    assert count_failure_hint("42501", in_recovery=True) == READ_EVERY_ROW


def test_other_failures_have_no_hint() -> None:
    assert count_failure_hint("57014", in_recovery=True) is None
    assert count_failure_hint(None, in_recovery=False) is None

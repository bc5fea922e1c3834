"""The daily verify slice moves on by one each day of the installation's calendar, through
daylight saving changes: the firing times come from the real schedule trigger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from respaldo.operations.schedule import trigger
from respaldo.operations.scheduled import slice_at

pytestmark = pytest.mark.unit

MADRID = ZoneInfo("Europe/Madrid")


def _firings(cron: str, start: datetime, count: int) -> list[datetime]:
    fire = trigger(cron, MADRID, "verify")
    found: list[datetime] = []
    now = start
    for _ in range(count):
        when = fire.get_next_fire_time(found[-1] if found else None, now)
        found.append(when)
        now = when + timedelta(microseconds=1)
    return found


@pytest.mark.parametrize(
    "start", [datetime(2026, 3, 25, tzinfo=UTC), datetime(2026, 10, 21, tzinfo=UTC)]
)
def test_a_verify_at_01_30_in_madrid_takes_each_slice_once_a_week(start: datetime) -> None:
    runs = _firings("30 1 * * *", start, 14)
    slices = [slice_at(run, MADRID, 7) for run in runs]
    # Consecutive days, consecutive slices: every chunk read once in any seven runs.
    assert all((b - a) % 7 == 1 for a, b in pairwise(slices)), slices
    assert sorted(slices[:7]) == list(range(1, 8))
    # By the UTC date the change week repeated one slice and left another out.
    by_utc = [slice_at(run, UTC, 7) for run in runs]
    assert sorted(by_utc[:7]) != list(range(1, 8))

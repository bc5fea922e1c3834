"""The backup_label's ``START TIME`` as an instant.

The server writes it in its log_timezone as ``%Y-%m-%d %H:%M:%S %Z``: whole seconds and a
zone *abbreviation* (``UTC``, ``+03``, ``CET``), which alone may not say its offset.
Pure: reads only the tz database.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones


def parse_label_time(text: str) -> datetime | None:
    """A backup_label ``START TIME`` (``2026-12-05 08:00:00 CET``: the server's
    log_timezone, as an abbreviation) as an aware datetime, or None.

    ``UTC``/``GMT`` and numeric offsets (``+03``) say their offset. A name such as ``CET``
    is looked up in the tz database: each zone that calls that local time by that name
    (either side of a summer-time change, so ``CEST`` and ``CET`` tell the repeated hour
    apart) gives an instant; a name that gives several (``IST`` is India's, Ireland's
    summer time and Israel's; ``CST`` is American, Chinese and Cuban) or none is None.
    """
    stamp, _, zone = text.strip().rpartition(" ")
    try:
        local = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if local.tzinfo is not None or not zone:
        return None
    if zone in ("UTC", "GMT", "UCT"):
        return local.replace(tzinfo=UTC)
    if _OFFSET.fullmatch(zone):
        try:
            return datetime.fromisoformat(f"{stamp}{zone}")
        except ValueError:
            return None
    instants = {
        candidate.astimezone(UTC) for candidate in _zoned(local) if candidate.tzname() == zone
    }
    return instants.pop() if len(instants) == 1 else None


_OFFSET = re.compile(r"[+-]\d{2}(:?\d{2}){0,2}")


def _zoned(local: datetime) -> Iterator[datetime]:
    """``local`` in each zone of the tz database, both folds (none without the database)."""
    for name in sorted(available_timezones()):
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            continue
        yield local.replace(tzinfo=zone, fold=0)
        yield local.replace(tzinfo=zone, fold=1)

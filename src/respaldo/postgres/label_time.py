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


def parse_label_time(
    text: str, within: tuple[datetime, datetime], log_timezone: str | None = None
) -> datetime | None:
    """A backup_label ``START TIME`` (``2026-12-05 08:00:00 CET``: the server's
    log_timezone, as an abbreviation) as an aware datetime, or None.

    Where the server's ``log_timezone`` is known by a name the tz database has
    (``Europe/Madrid``, recorded with the backup) and the abbreviation is one that zone
    uses at that local time, that reading is the time, whatever respaldo's clock said:
    the bound is on the server's clock, as target times are.

    Otherwise (backups from before the zone was recorded, a POSIX zone such as
    ``UTC+3`` the tz database does not have):
    Each reading of it is a candidate: ``UTC``/``GMT`` at offset 0, a numeric offset
    (``+03``) at that offset, a name such as ``CET`` in each zone of the tz database that
    calls that local time by that name (either side of a summer-time change, so ``CEST``
    and ``CET`` tell the repeated hour apart). Only candidates ``within`` the backup's own
    window (respaldo's clock, with a margin for skew) count, and the time is known only if
    exactly one does. The name alone can lie: a POSIX log_timezone such as ``UTC+3`` is
    written ``UTC`` three hours off; ``PST`` is Los Angeles' and Manila's, ``IST`` India's,
    Ireland's and Israel's, which the window usually tells apart.
    """
    stamp, _, zone = text.strip().rpartition(" ")
    try:
        local = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if local.tzinfo is not None or not zone:
        return None
    exact = _in_named_zone(local, zone, log_timezone)
    if exact is not None:
        return exact
    instants = {c for c in _candidates(stamp, local, zone) if within[0] <= c <= within[1]}
    return instants.pop() if len(instants) == 1 else None


def _candidates(stamp: str, local: datetime, zone: str) -> set[datetime]:
    if zone in ("UTC", "GMT", "UCT"):
        return {local.replace(tzinfo=UTC)}
    if _OFFSET.fullmatch(zone):
        try:
            return {datetime.fromisoformat(f"{stamp}{zone}").astimezone(UTC)}
        except ValueError:
            return set()
    return {c.astimezone(UTC) for c in _zoned(local) if c.tzname() == zone}


def _in_named_zone(local: datetime, abbreviation: str, name: str | None) -> datetime | None:
    """``local`` read in the zone ``name``, if the tz database has it and exactly one of
    its folds is called ``abbreviation`` then (CEST and CET tell a repeated hour apart)."""
    if not name:
        return None
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None
    readings = {
        reading.astimezone(UTC)
        for reading in (local.replace(tzinfo=zone, fold=0), local.replace(tzinfo=zone, fold=1))
        if reading.tzname() == abbreviation
    }
    return readings.pop() if len(readings) == 1 else None


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

"""The installation's time zone: ``[schedules] time_zone``, else the machine's.

The zone the cron times are read in, the page shows times in and retention's daily,
weekly, monthly and yearly periods are counted in: one zone for everything a person
reads as a day. Its own module so that prune does not import the scheduler to know it.
"""

from __future__ import annotations

from datetime import tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal import get_localzone

from respaldo.config import Settings
from respaldo.errors import ConfigError


def time_zone(settings: Settings) -> tzinfo:
    """``[schedules] time_zone``, or the machine's zone. Raises ConfigError."""
    name = settings.schedules.time_zone
    if not name:
        return get_localzone()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"unknown time zone {name!r} in [schedules] time_zone",
            hint="use an IANA name such as America/Mexico_City or Europe/Madrid",
        ) from None


__all__ = ["time_zone"]

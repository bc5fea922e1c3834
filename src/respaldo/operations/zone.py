"""The installation's time zone: ``[schedules] time_zone``, else the machine's.

The zone the cron times are read in, the page shows times in and retention's daily,
weekly, monthly and yearly periods are counted in: one zone for everything a person
reads as a day. Its own module so that prune does not import the scheduler to know it.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal import get_localzone

from respaldo.config import Settings
from respaldo.errors import ConfigError
from respaldo.phrases import N_, Phrase


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


def configured_zone(settings: Settings) -> tzinfo | None:
    """``[schedules] time_zone`` where one is configured and known; None otherwise (the
    machine's zone says nothing of the user's, and a restore or a rewind is not failed for
    a typo in the schedules' zone)."""
    if not settings.schedules.time_zone:
        return None
    try:
        return time_zone(settings)
    except ConfigError:
        return None


def offset_warnings(when: datetime, zone: tzinfo | None, *, what: str, effect: str) -> list[str]:
    """Warn when the UTC offset of a time a user typed (``what``: "the recovery target",
    "the rewind time") is not the installation's zone's at that time (``zone``:
    :func:`configured_zone`; None: no check), saying which time there it is, what happens
    (``effect``: "recovery stops there") and the time for the same wall time there.

    A time is the instant its offset makes it, whatever zone the server or this machine
    is in, so a winter offset given for a summer time ("+01" in Madrid in July, a time in
    the hour that a spring-forward change skips) is an hour past what the wall clock said
    (a restore recovers every commit of that hour; a rewind keeps what was written or
    deleted in it): respaldo cannot know which was meant, but can say it. UTC itself
    (``Z``, ``+00:00``) is taken as meant. ``restore --target-time`` and ``rewind --to``
    both call this.
    """
    if zone is None or not when.utcoffset():
        return []
    there = when.astimezone(zone)
    if there.utcoffset() == when.utcoffset():
        return []
    wall = when.replace(tzinfo=None)
    # The same wall time in the zone: none in a spring-forward gap, two in a fall-back fold.
    # (Keyed by the instant: two aware times of one zone compare by their wall time.)
    found = {}
    for fold in (0, 1):
        candidate = wall.replace(tzinfo=zone, fold=fold)
        instant = candidate.astimezone(UTC)
        if instant.astimezone(zone).replace(tzinfo=None) == wall:
            found[instant] = candidate
    meant = [f"{c.isoformat(sep=' ')} ({c:%Z})" for c in (found[i] for i in sorted(found))]
    # Phrases: said in the page's or the alerts' language where they are shown, as the
    # target time's refusals (operations/wal_coverage.py).
    if not meant:
        instead = Phrase(
            N_("no clock there showed {wall} (a daylight saving change skipped it)"),
            wall=f"{wall:%Y-%m-%d %H:%M:%S}",
        )
    elif len(meant) == 1:
        instead = Phrase(N_("{wall} there is {time}"), wall=f"{wall:%H:%M:%S}", time=meant[0])
    else:
        instead = Phrase(
            N_("{wall} there is {time} or {other}"),
            wall=f"{wall:%H:%M:%S}",
            time=meant[0],
            other=meant[1],
        )
    return [
        Phrase(
            N_(
                "{what} {when} is {local} in {zone} ([schedules] time_zone), whose UTC offset "
                "then is {offset}, not {given}: {effect}; {instead}"
            ),
            what=what,
            when=when.isoformat(sep=" "),
            local=f"{there:%Y-%m-%d %H:%M:%S} {there:%Z}",
            zone=str(zone),
            offset=there.isoformat()[-6:],
            given=when.isoformat()[-6:],
            effect=effect,
            instead=instead,
        )
    ]


__all__ = ["configured_zone", "offset_warnings", "time_zone"]

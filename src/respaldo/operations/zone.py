"""The installation's time zone: ``[schedules] time_zone``, else the machine's.

The zone the cron times are read in, the page shows times in and retention's daily,
weekly, monthly and yearly periods are counted in: one zone for everything a person
reads as a day. Its own module so that prune does not import the scheduler to know it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal import get_localzone

from respaldo.config import Settings
from respaldo.errors import ConfigError, InvalidInput
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


def parse_instant(field: str, text: str) -> datetime:
    """``text``, a time a user typed (``respaldo audit --since``, the API's ``from`` and
    ``to``), as an aware time: ISO 8601 with its UTC offset (or ``Z``), or a day alone
    (``2026-12-01``: from its midnight UTC, as the help says). A time without an offset
    is refused, as ``--target-time`` and ``rewind --to`` refuse one: which zone it is in
    is not guessed (taken as UTC, 08:00 typed in Mexico City was 02:00 there). Raises
    InvalidInput naming ``field`` and the forms it takes."""
    forms = (
        "give a day (2026-12-01, from midnight UTC) or a time with its UTC offset: "
        "2026-12-01T08:00:00-06:00 (Mexico City), 2026-12-01T08:00:00+01:00 (Madrid in "
        "winter), or Z for UTC (2026-12-01T14:00:00Z)"
    )
    cleaned = text.strip()
    try:
        if len(cleaned) == 10:
            return datetime.combine(date.fromisoformat(cleaned), datetime.min.time(), UTC)
        when = datetime.fromisoformat(cleaned.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            field, f"{text!r} is not a day or an ISO 8601 time", hint=forms
        ) from None
    if when.utcoffset() is None:
        raise InvalidInput(
            field,
            f"{text!r} has no UTC offset: which time zone it is in is not guessed",
            hint=forms,
        )
    return when

"""The page's languages: Spanish (the default, the specification's) and English.

Messages come from respaldo's gettext catalogs (:mod:`respaldo.i18n`, shared with the
alerts). Dates, numbers and sizes are formatted by Babel for the chosen locale
("hace 3 horas", "1,5 GB").
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from babel import Locale, negotiate_locale
from babel.dates import format_datetime, format_timedelta
from babel.numbers import format_decimal
from babel.units import format_unit

from respaldo import i18n as shared
from respaldo.i18n import translations
from respaldo.phrases import N_, Quantity

__all__ = [
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "N_",
    "Formatter",
    "choose_language",
    "translations",
]

LANGUAGES = ("es", "en")
"""The languages the page speaks; the first is the default."""

DEFAULT_LANGUAGE = LANGUAGES[0]


def choose_language(cookie: str | None, accept_language: str | None) -> str:
    """The language of a request: the one the user switched to (cookie), else the
    browser's preference (``Accept-Language``), else Spanish."""
    if cookie in LANGUAGES:
        return cookie
    if accept_language:
        preferred = [part.split(";")[0].strip() for part in accept_language.split(",")]
        chosen = negotiate_locale([p.replace("-", "_") for p in preferred if p], LANGUAGES)
        if chosen:
            return chosen.split("_")[0]
        for tag in preferred:
            if tag.split("-")[0].lower() in LANGUAGES:
                return tag.split("-")[0].lower()
    return DEFAULT_LANGUAGE


@dataclass(frozen=True)
class Formatter:
    """Locale-aware formatting for one request's language. Times are shown in ``zone``
    (the installation's, in which its schedules' cron times are read), and say which."""

    language: str
    zone: dt.tzinfo = dt.UTC

    @property
    def locale(self) -> Locale:
        return Locale.parse(self.language)

    def datetime(self, value: dt.datetime | None) -> str:
        """A date and time in the reader's language and in ``zone``, which it names
        ("4 dic 2026, 16:10:00 -0600", "Dec 4, 2026, 4:10:00 PM CST"): without it a
        time in UTC reads as local time to someone hours away from it."""
        if value is None:
            return "—"
        moment = value.astimezone(dt.UTC)
        shown = format_datetime(moment, "medium", tzinfo=self.zone, locale=self.locale)
        zone = format_datetime(moment, "zzz", tzinfo=self.zone, locale=self.locale)
        return f"{shown} {zone}"

    def relative(self, value: dt.datetime | None, now: dt.datetime | None = None) -> str:
        """How long ago or ahead ("hace 3 horas", "en 5 días")."""
        if value is None:
            return "—"
        delta = value - (now or dt.datetime.now(dt.UTC))
        return format_timedelta(delta, add_direction=True, locale=self.locale)

    def duration(self, seconds: float | None) -> str:
        """A duration in the units of 'respaldo status' (whole units, two at most: "45 s",
        "12 min", "26 h 20 min", "3 d 4 h"), in the reader's language. Not rounded to one
        unit: the health page holds an age against its limit, and "6 h" against "6 h"
        for a copy 6 h 24 min behind (or "1 mes" for 35.9 days against 35) hid why it
        was red."""
        if seconds is None:
            return "—"
        whole = max(0, int(seconds))
        if whole < 120:
            return self._unit(whole, "second")
        minutes = whole // 60
        if minutes < 120:
            return self._unit(minutes, "minute")
        hours, minutes = divmod(minutes, 60)
        if hours < 72:
            return self._units((hours, "hour"), (minutes, "minute"))
        days, hours = divmod(hours, 24)
        return self._units((days, "day"), (hours, "hour"))

    def _unit(self, value: int, unit: str) -> str:
        return format_unit(value, f"duration-{unit}", length="short", locale=self.locale)

    def _units(self, first: tuple[int, str], second: tuple[int, str]) -> str:
        text = self._unit(*first)
        return f"{text} {self._unit(*second)}" if second[0] else text

    def size(self, value: int | None) -> str:
        """Bytes in the largest unit that keeps the number at least 1 ("1,5 GB"), as
        :func:`respaldo.i18n.size` writes them."""
        if value is None:
            return "—"
        return shared.size(value, self.language)

    def quantity(self, value: Quantity) -> str:
        """A quantity of a phrase (:mod:`respaldo.phrases`) in the reader's language, as
        :func:`respaldo.i18n.quantity` writes it (an alert in that language too)."""
        return shared.quantity(value, self.language)

    def number(self, value: float | None) -> str:
        if value is None:
            return "—"
        return format_decimal(value, locale=self.locale)

"""The page's languages: Spanish (the default, the specification's) and English.

Messages come from respaldo's gettext catalogs (:mod:`respaldo.i18n`, shared with the
alerts). Dates, numbers and sizes are formatted by Babel for the chosen locale
("hace 3 horas", "1,5 GB").
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from babel import Locale, negotiate_locale
from babel.dates import format_date, format_datetime, format_time, format_timedelta
from babel.numbers import format_decimal, format_percent
from babel.units import format_unit

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

_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")


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
        """Bytes in the largest unit that keeps the number at least 1 ("1,5 GB"). The units
        are powers of 1000, as their names say and as 'respaldo status' writes them: in
        powers of 1024 a 1.61 GB backup read "1,5 GB" here and "1.6 GB" there."""
        if value is None:
            return "—"
        amount = float(value)
        unit = 0
        while amount >= 1000 and unit < len(_UNITS) - 1:
            amount /= 1000
            unit += 1
        pattern = "#,##0" if unit == 0 or amount >= 100 else "#,##0.#"
        return f"{format_decimal(amount, format=pattern, locale=self.locale)} {_UNITS[unit]}"

    def quantity(self, value: Quantity) -> str:
        """A quantity of a phrase (:mod:`respaldo.phrases`) in the reader's language: a
        size as :meth:`size` writes it ("1,1 MB"), a share as a percentage ("10 %"), a
        time to the minute in UTC, which its phrase names ("6 dic 2026, 5:48")."""
        amount = value.amount
        if value.kind == "bytes" and isinstance(amount, int):
            return self.size(amount)
        if value.kind == "share" and isinstance(amount, float | int):
            return format_percent(amount, locale=self.locale)
        if value.kind == "minute" and isinstance(amount, dt.datetime):
            moment = amount.astimezone(dt.UTC) if amount.tzinfo is not None else amount
            day = format_date(moment, "medium", locale=self.locale)
            time = format_time(moment, "short", tzinfo=dt.UTC, locale=self.locale)
            # The locale's own way of joining a date and a time ("{1}, {0}").
            joined: str = self.locale.datetime_formats["medium"]
            return joined.replace("{1}", day).replace("{0}", time)
        return str(value)

    def number(self, value: float | None) -> str:
        if value is None:
            return "—"
        return format_decimal(value, locale=self.locale)

"""Translations: gettext catalogs kept as ``.po`` files, compiled in memory with Babel.

The catalogs are ``respaldo/locale/<language>/LC_MESSAGES/respaldo.po``, shipped as
package data. Messages are written in English in the code (``_("Backup failed")``);
English needs no catalog. A ``.po`` file is compiled when it is first asked for (a few
milliseconds), so no binary ``.mo`` file is kept in the source tree or built by a step
that could be forgotten. ``make messages`` extracts the strings into
``respaldo/locale/respaldo.pot`` and merges them into every catalog.

The page and the alerts use the same catalogs; :func:`quantity` writes a phrase's
sizes, shares and times for a language (Babel) for both.
"""

from __future__ import annotations

import datetime as dt
import gettext
from collections.abc import Callable
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Final

from babel import Locale
from babel.dates import format_date, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent

from respaldo.phrases import Quantity

LOCALE_DIR: Final = Path(__file__).resolve().parent / "locale"
DOMAIN: Final = "respaldo"
SOURCE_LANGUAGE: Final = "en"
LANGUAGES: Final = ("en", "es")


def catalog_path(language: str) -> Path:
    """The ``.po`` file of ``language``."""
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The translations into ``language``: English (the messages as written) for
    ``en``. Raises ValueError for a language respaldo has no catalog for."""
    if language == SOURCE_LANGUAGE:
        return gettext.NullTranslations()
    if language not in LANGUAGES:
        raise ValueError(f"no translations into {language!r}; known: {', '.join(LANGUAGES)}")
    with catalog_path(language).open("rb") as po:
        catalog = read_po(po, locale=language, domain=DOMAIN)
    compiled = BytesIO()
    # Fuzzy entries are left out: a guessed translation is worse than the English.
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")


def size(value: int, language: str) -> str:
    """Bytes in the largest unit that keeps the number at least 1 ("1,5 GB"). The units
    are powers of 1000, as their names say and as 'respaldo status' writes them: in
    powers of 1024 a 1.61 GB backup read "1,5 GB" here and "1.6 GB" there."""
    locale = Locale.parse(language)
    amount = float(value)
    unit = 0
    while amount >= 1000 and unit < len(_UNITS) - 1:
        amount /= 1000
        unit += 1
    pattern = "#,##0" if unit == 0 or amount >= 100 else "#,##0.#"
    return f"{format_decimal(amount, format=pattern, locale=locale)} {_UNITS[unit]}"


def quantity(value: Quantity, language: str) -> str:
    """A quantity of a phrase (:mod:`respaldo.phrases`) as ``language`` writes it: a size
    as :func:`size` writes it ("1,1 MB"), a share as a percentage ("10 %"), a time to
    the minute in UTC, which its phrase names ("6 dic 2026, 5:48")."""
    locale = Locale.parse(language)
    amount = value.amount
    if value.kind == "bytes" and isinstance(amount, int):
        return size(amount, language)
    if value.kind == "share" and isinstance(amount, float | int):
        return format_percent(amount, locale=locale)
    if value.kind == "minute" and isinstance(amount, dt.datetime):
        moment = amount.astimezone(dt.UTC) if amount.tzinfo is not None else amount
        day = format_date(moment, "medium", locale=locale)
        time = format_time(moment, "short", tzinfo=dt.UTC, locale=locale)
        # The locale's own way of joining a date and a time ("{1}, {0}").
        joined: str = locale.datetime_formats["medium"]
        return joined.replace("{1}", day).replace("{0}", time)
    return str(value)


def quantities(language: str) -> Callable[[Quantity], str]:
    """How an alert in ``language`` writes a phrase's quantities: in English as the CLI,
    the API and the logs write them (an English alert reads as it always did: "1.1 MB,
    10% of 11.0 MB"), in another language as :func:`quantity` writes them."""
    if language == SOURCE_LANGUAGE:
        return str
    return lambda value: quantity(value, language)

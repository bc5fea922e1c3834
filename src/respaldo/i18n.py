"""Translations: gettext catalogs kept as ``.po`` files, compiled in memory with Babel.

The catalogs are ``respaldo/locale/<language>/LC_MESSAGES/respaldo.po``, shipped as
package data. Messages are written in English in the code (``_("Backup failed")``);
English needs no catalog. A ``.po`` file is compiled when it is first asked for (a few
milliseconds), so no binary ``.mo`` file is kept in the source tree or built by a step
that could be forgotten. ``make messages`` extracts the strings into
``respaldo/locale/respaldo.pot`` and merges them into every catalog.

Alerts use it now; the web page reuses the same catalogs later.
"""

from __future__ import annotations

import gettext
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Final

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

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

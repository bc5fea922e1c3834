"""The page's languages: every message has its Spanish, choices follow the browser and
the switch, and numbers, sizes and times read as each language writes them."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from respaldo.i18n import catalog_path, translations
from respaldo.operations import status
from respaldo.phrases import N_, Phrase, Quantity, minute
from respaldo.reasons import reason
from respaldo.web import i18n
from respaldo.web.i18n import Formatter

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "src" / "respaldo"


def _extracted() -> set[str]:
    # What 'make messages' extracts (babel.cfg): the Python code and the templates, with
    # pybabel's default keywords (gettext...) and the two it adds (-k _ -k N_).
    method_map = [("**.py", "python"), ("web/templates/**.html", "jinja2")]
    keywords = {**DEFAULT_KEYWORDS, "_": None, "N_": None}
    return {
        message if isinstance(message, str) else message[0]
        for _file, _line, message, _comments, _context in extract_from_dir(
            str(PACKAGE), method_map, keywords=keywords
        )
    }


def test_every_message_is_translated_to_spanish() -> None:
    messages = _extracted()
    assert "Create manual backup" in messages  # the extraction sees the templates
    # ... and the page's own answers (page.gettext: a wrong login, a refused form).
    assert "Wrong user name or password." in messages
    with catalog_path("es").open("rb") as po:
        catalog = read_po(po, locale="es")
    translated = {str(m.id) for m in catalog if m.id and m.string}
    missing = sorted(messages - translated)
    assert not missing, f"run 'make messages' and translate in es/respaldo.po: {missing}"
    fuzzy = sorted(str(m.id) for m in catalog if m.id and m.fuzzy)
    assert not fuzzy, f"fuzzy translations in es/respaldo.po: {fuzzy}"


def test_each_spanish_message_keeps_the_values_of_its_english() -> None:
    # A phrase's message is filled with str.format (respaldo.phrases): a translation
    # that drops or renames a {value} would lose it (or fall back to the English).
    with catalog_path("es").open("rb") as po:
        catalog = read_po(po, locale="es")
    names = re.compile(r"\{(\w*)\}")
    wrong = [
        (str(m.id), str(m.string))
        for m in catalog
        if m.id and m.string and set(names.findall(str(m.id))) != set(names.findall(str(m.string)))
    ]
    assert not wrong, f"es/respaldo.po: a translation names other values than its message: {wrong}"


def test_the_specifications_spanish_wording() -> None:
    es = i18n.translations("es")
    assert es.gettext("Create manual backup") == "Crear Backup Manual"
    assert es.gettext("Creating...") == "Creando..."
    assert es.gettext("Backup started") == "Backup iniciado"
    assert es.gettext("Error creating backup") == "Error al crear backup"
    assert es.gettext("Restore started") == "Restauración iniciada"
    assert es.gettext("Error restoring") == "Error al restaurar"
    assert (
        es.gettext("Are you sure you want to restore this backup? This will stop the system.")
        == "¿Está seguro de restaurar este backup? Esto detendrá el sistema."
    )
    assert i18n.translations("en").gettext("Create manual backup") == "Create manual backup"


@pytest.mark.parametrize(
    ("cookie", "header", "expected"),
    [
        (None, None, "es"),
        (None, "en-US,en;q=0.9", "en"),
        (None, "es-MX,es;q=0.9,en;q=0.5", "es"),
        (None, "fr-FR,fr;q=0.9", "es"),
        (None, "fr-FR,en-GB;q=0.8", "en"),
        ("en", "es-MX", "en"),
        ("xx", "en", "en"),
    ],
)
def test_the_language_is_the_switch_then_the_browser_then_spanish(
    cookie: str | None, header: str | None, expected: str
) -> None:
    assert i18n.choose_language(cookie, header) == expected


def test_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="no translations into 'fr'"):
        i18n.translations("fr")


def test_sizes_times_and_numbers_read_as_each_language_writes_them() -> None:
    es, en = Formatter("es"), Formatter("en")
    assert es.size(1_500_000_000) == "1,5 GB"
    assert en.size(1_500_000_000) == "1.5 GB"
    assert es.size(512) == "512 B"
    assert en.size(250_000) == "250 KB"
    now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    assert es.relative(now - timedelta(hours=3), now) == "hace 3 horas"
    assert es.relative(now + timedelta(days=5), now) == "dentro de 5 días"
    assert en.relative(now - timedelta(hours=3), now) == "3 hours ago"
    assert es.number(1234567) == "1.234.567"
    assert en.number(1234567) == "1,234,567"
    assert es.size(None) == "—"


def test_a_time_names_its_zone_and_reads_in_the_installations() -> None:
    # "22:10:00" alone reads as local time to someone six hours behind UTC.
    when = datetime(2026, 12, 4, 22, 10, tzinfo=UTC)
    assert Formatter("es").datetime(when) == "4 dic 2026, 22:10:00 UTC"
    mexico = ZoneInfo("America/Mexico_City")
    assert Formatter("es", mexico).datetime(when) == "4 dic 2026, 16:10:00 -0600"
    assert Formatter("en", mexico).datetime(when) == "Dec 4, 2026, 4:10:00\u202fPM CST"


def test_a_duration_is_precise_enough_to_compare_an_age_with_its_limit() -> None:
    # The health page shows an item's age beside its limit: rounded to one unit, a red
    # copy 6 h 24 min behind read "6 h" against "6 h", a restore test 35.9 days old
    # "1 mes" against "1 mes". The units of 'respaldo status', in the page's language.
    es, en = Formatter("es"), Formatter("en")
    assert es.duration(6.4 * 3600) == "6 h 24 min"
    assert es.duration(6 * 3600) == "6 h"
    assert es.duration(35.9 * 86400) == "35 d 21 h"
    assert es.duration(35 * 86400) == "35 d"
    assert es.duration(90) == "90 s"
    assert es.duration(45 * 60) == "45 min"
    assert en.duration(26 * 3600 + 20 * 60) == "26 hr 20 min"
    assert en.duration(3 * 86400) == "3 days"
    assert es.duration(None) == "—"


def test_a_size_means_what_its_unit_says() -> None:
    # KB, MB, GB are powers of 1000 (the units the specification's page shows, and those
    # of 'respaldo status'): 1,610,612,736 bytes read "1,5 GB" here and "1.6 GB" in the
    # status of the same backup.
    es, en = Formatter("es"), Formatter("en")
    assert es.size(1_610_612_736) == "1,6 GB"
    assert en.size(1_500_000_000) == "1.5 GB"
    assert en.size(256_000) == "256 KB"
    assert en.size(999) == "999 B"
    assert es.size(1_000) == "1 KB"
    assert en.size(2_500_000_000_000) == "2.5 TB"


def test_a_phrases_sizes_shares_and_times_read_as_each_language_writes_them() -> None:
    # The size check's reason, as the status makes it: its English is the CLI's.
    facts = Phrase(
        N_("{size}, {share} of {was}"),
        size=status._bytes(1_149_000),
        share=status._share(0.104),
        was=status._bytes(11_049_000),
    )
    assert facts == "1.1 MB, 10% of 11.0 MB"
    es, en = Formatter("es"), Formatter("en")
    assert reason(facts, translations("es").gettext, es.quantity) == (
        "1,1 MB, el 10\N{NO-BREAK SPACE}% de 11 MB"
    )
    assert reason(facts, translations("en").gettext, en.quantity) == "1.1 MB, 10% of 11 MB"
    # Without a way to write them (an English reader of the text): as the CLI wrote them.
    assert reason(facts, translations("es").gettext) == "1.1 MB, el 10% de 11.0 MB"
    at = minute(datetime(2026, 12, 6, 5, 48, tzinfo=UTC))
    assert at == "2026-12-06 05:48"
    assert es.quantity(at) == "6 dic 2026, 5:48"
    assert en.quantity(at) == "Dec 6, 2026, 5:48\N{NARROW NO-BREAK SPACE}AM"
    # A quantity survives a copy of its phrase (an alert's dataclasses.asdict).
    kept = copy.deepcopy(facts)
    assert isinstance(kept, Phrase)
    assert isinstance(kept.values["size"], Quantity)
    assert kept.values["size"].amount == 1_149_000

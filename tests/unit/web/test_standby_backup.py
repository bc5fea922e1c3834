"""A backup taken through a standby says so, with the time its data is of: in the
backup's detail (the API's and the page's model), on the page in English and Spanish,
and in ``respaldo show``. A backup of a primary, and one recorded before this was, say
nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from respaldo.operations.backup_detail import standby_note, standby_said
from respaldo.postgres.standby import StandbyReading, standby_meta
from respaldo.web import pages
from respaldo.web.i18n import Formatter

pytestmark = pytest.mark.unit

WHEN = datetime(2026, 12, 8, 1, 2, 3, tzinfo=UTC)


def test_what_a_backup_records_of_its_source() -> None:
    assert standby_meta(StandbyReading(in_recovery=False)) is None
    said = standby_meta(StandbyReading(in_recovery=True, replayed_at=WHEN))
    assert said == {"replayed_at": "2026-12-08T01:02:03+00:00"}
    assert standby_meta(StandbyReading(in_recovery=True)) == {"replayed_at": None}


def test_what_the_detail_reads_of_it() -> None:
    assert standby_said({"standby": {"replayed_at": WHEN.isoformat()}}) == (True, WHEN)
    assert standby_said({"standby": {"replayed_at": None}}) == (True, None)
    # A primary's backup, and one recorded before the key existed.
    assert standby_said({"database": "erp"}) == (False, None)


def test_respaldo_show_says_it() -> None:
    assert standby_note(True, WHEN) == "taken from a standby, data as of 2026-12-08 01:02:03 UTC"
    assert standby_note(True, None) == (
        "taken from a standby, which had replayed no transaction since it started"
    )
    assert standby_note(False, None) is None


def _page(language: str, from_standby: bool, as_of: datetime | None) -> str:
    template = pages._templates(language).env.get_template("_standby.html")
    manifest = SimpleNamespace(from_standby=from_standby, standby_data_as_of=as_of)
    return " ".join(
        template.render(d=SimpleNamespace(manifest=manifest), fmt=Formatter(language)).split()
    )


def test_the_page_says_it_in_english_and_spanish() -> None:
    assert _page("en", True, WHEN) == (
        '<p class="standby">Taken from a standby, data as of Dec 8, 2026, 1:02:03 AM UTC '
        "(the last transaction it had replayed when the backup began).</p>"
    )
    assert _page("es", True, WHEN) == (
        '<p class="standby">Tomado de un standby, datos a fecha de 8 dic 2026, 1:02:03 UTC '
        "(la última transacción que había reproducido cuando empezó el backup).</p>"
    )
    assert "no había reproducido ninguna transacción" in _page("es", True, None)
    assert _page("en", False, None) == _page("es", False, None) == ""

"""The catalog's clock on SQLite: one machine, so its own clock, and no offset to tell.

The PostgreSQL side (the server's clock, processes whose clocks run apart) is in
tests/integration/api/test_lease_clock_postgres.py."""

from __future__ import annotations

from datetime import UTC, datetime

from respaldo.catalog import Catalog, catalog_now, clock_offset


def test_a_sqlite_catalogs_clock_is_this_machines(catalog: Catalog) -> None:
    before = datetime.now(UTC)
    with catalog.read() as session:
        now = catalog_now(session)
        assert clock_offset(session) is None
    assert now.tzinfo is UTC
    assert before <= now <= datetime.now(UTC)

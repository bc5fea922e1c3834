"""A PostgreSQL catalog with a row in every table upgrades from the oldest schema through
every migration (tests/unit/catalog/test_migrations_populated.py does it on SQLite, where
the migrations take their other path: batch table rebuilds)."""

from __future__ import annotations

import pytest

from tests.integration.api.conftest import CatalogRole
from tests.unit.catalog.test_migrations_populated import upgrade_populated

pytestmark = pytest.mark.integration


def test_a_populated_postgresql_catalog_upgrades_through_every_migration(
    catalog_role: CatalogRole,
) -> None:
    upgrade_populated(catalog_role.url)

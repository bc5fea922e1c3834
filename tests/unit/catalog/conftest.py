"""Fixtures of the catalog tests: a real SQLite catalog file in a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from respaldo.catalog import Catalog, open_catalog

from .support import sqlite_url


@pytest.fixture
def catalog_path(tmp_path: Path) -> Path:
    # A directory that does not exist yet: open_catalog(create=True) must create it.
    return tmp_path / "state" / "catalog.db"


@pytest.fixture
def catalog(catalog_path: Path) -> Iterator[Catalog]:
    opened = open_catalog(sqlite_url(catalog_path), create=True)
    try:
        yield opened
    finally:
        opened.close()

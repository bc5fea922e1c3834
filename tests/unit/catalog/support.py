"""Helpers shared by the catalog tests (fixtures live in conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

T0 = datetime(2026, 11, 28, 8, 30, tzinfo=UTC)
"""A fixed 'now' for tests that do time arithmetic."""


def sqlite_url(path: Path) -> str:
    """The catalog URL of a SQLite file at the absolute ``path``."""
    return f"sqlite:///{path}"

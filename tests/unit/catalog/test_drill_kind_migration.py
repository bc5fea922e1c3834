"""Migration 0015 gives each restore test its backup's kind (drill_runs.backup_kind):
an old catalog's runs take it from their backup's record where that is still there, and
the runs of backups retention deleted already stay without one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from respaldo.catalog import DrillRuns, normalize_url, open_catalog
from respaldo.catalog.database import alembic_config
from respaldo.domain import BackupKind

from .support import sqlite_url
from .test_migrations_populated import _value

pytestmark = pytest.mark.unit


def _row(table: sa.Table, **given: Any) -> dict[str, Any]:
    """A row as respaldo 0014 would have written it, with ``given``."""
    row = {
        c.name: _value(table, c, {})
        for c in table.columns
        if not (c.primary_key and isinstance(c.type, sa.Integer))
    }
    return row | given


def test_an_old_catalogs_runs_take_their_backups_kind(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "catalog.db")
    command.upgrade(alembic_config(url), "0014")
    engine = sa.create_engine(normalize_url(url))
    meta = sa.MetaData()
    meta.reflect(engine)
    backups, runs = meta.tables["backup_records"], meta.tables["drill_runs"]
    assert "backup_kind" not in runs.columns
    with engine.begin() as connection:
        connection.execute(
            backups.insert().values(
                **_row(backups, id="20261201T020000Z-0000000a", backup_type="incremental")
            )
        )
        for backup_id in ("20261201T020000Z-0000000a", "20261101T020000Z-0000000b"):
            connection.execute(runs.insert().values(**_row(runs, backup_id=backup_id)))
    engine.dispose()

    with open_catalog(url) as catalog, catalog.read() as session:  # migrates to the newest
        kinds = {run.backup_id: run.backup_kind for run in DrillRuns(session).list(limit=10)}
    assert kinds == {
        "20261201T020000Z-0000000a": BackupKind.INCREMENTAL,
        "20261101T020000Z-0000000b": None,  # its backup was gone before the column
    }

"""A catalog made by the oldest respaldo, with rows in every table, upgrades through every
migration to the newest schema and keeps every row, readable by today's models.

The other migration tests run on empty catalogs (the schema equals the models; one step
behind is migrated). A user's catalog is not empty: a migration that rebuilds a table
(SQLite's batch mode copies it) or adds a NOT NULL column would lose or refuse rows only
there. Each step of the chain is taken on its own, one row is written into each table the
step created (as that version's respaldo would), and every table keeps its rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from respaldo.catalog import BackupRecords, normalize_url, open_catalog
from respaldo.catalog.database import alembic_config
from respaldo.catalog.models import Base

from .support import sqlite_url

pytestmark = pytest.mark.unit

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _chain() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config())
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def _value(table: sa.Table, column: sa.Column[Any], written: dict[str, dict[str, Any]]) -> Any:
    """A value as respaldo would have written it: a member of the enum the model stores
    there, the key of the row a foreign key points to."""
    for key in column.foreign_keys:
        target = key.column
        return written[target.table.name][target.name]
    model = Base.metadata.tables.get(table.name)
    current = model.columns.get(column.name) if model is not None else None
    if current is not None and isinstance(current.type, sa.Enum):
        return current.type.enums[0]
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return False
    if isinstance(kind, sa.Integer):
        return 1
    if isinstance(kind, sa.Float | sa.Numeric):
        return 1.0
    if isinstance(kind, sa.DateTime):
        return WHEN
    if isinstance(kind, sa.Text):
        return "[]"  # the JSON columns: an empty list reads as well as any
    length = getattr(kind, "length", None) or 32
    return f"{table.name[:4]}-{column.name}"[:length]


def _fill_new_tables(engine: sa.Engine, written: dict[str, dict[str, Any]]) -> None:
    meta = sa.MetaData()
    meta.reflect(engine)
    with engine.begin() as connection:
        for table in meta.sorted_tables:
            if table.name == "alembic_version" or table.name in written:
                continue
            row = {
                c.name: _value(table, c, written)
                for c in table.columns
                if not (c.primary_key and c.autoincrement is not False and _int(c))
            }
            result = connection.execute(table.insert().values(**row))
            for c in table.primary_key.columns:
                if c.name not in row:
                    assert result.inserted_primary_key is not None
                    row[c.name] = result.inserted_primary_key[0]
            written[table.name] = row


def _int(column: sa.Column[Any]) -> bool:
    return isinstance(column.type, sa.Integer)


def _counts(engine: sa.Engine) -> dict[str, int]:
    meta = sa.MetaData()
    meta.reflect(engine)
    with engine.connect() as connection:
        return {
            t.name: connection.scalar(sa.select(sa.func.count()).select_from(t)) or 0
            for t in meta.sorted_tables
            if t.name != "alembic_version"
        }


def upgrade_populated(url: str) -> None:
    """Take the empty database at ``url`` from 0001 to the newest schema a step at a
    time, with a row written into each new table, and check every row is kept and read."""
    config = alembic_config(url)
    engine = sa.create_engine(normalize_url(url))
    written: dict[str, dict[str, Any]] = {}
    chain = _chain()
    assert chain[0] == "0001" and len(chain) >= 12
    try:
        for revision in chain:
            before = _counts(engine) if written else {}
            command.upgrade(config, revision)
            after = _counts(engine)
            kept = {name: after[name] for name in before}
            assert kept == before, f"{revision} lost rows"
            _fill_new_tables(engine, written)
    finally:
        engine.dispose()
    assert set(Base.metadata.tables) <= set(written)
    # Today's respaldo opens it (nothing left to migrate) and reads every row.
    with open_catalog(url) as catalog, catalog.read() as session:
        for mapper in Base.registry.mappers:
            rows = session.scalars(sa.select(mapper.class_)).all()
            assert len(rows) == 1, mapper.class_.__name__
        # Held by its primary (0018's primary_deleted_at is NULL): still listed.
        assert [r.status.value for r in BackupRecords(session).list(primary_deleted=False)] == [
            written["backup_records"]["status"]
        ]


def test_a_populated_catalog_upgrades_through_every_migration(tmp_path: Path) -> None:
    upgrade_populated(sqlite_url(tmp_path / "catalog.db"))

"""Creating a catalog happens only when asked (``create=True``), and makes private files."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa

from respaldo.catalog import BackupRecords, open_catalog
from respaldo.domain import BackupKind, TriggeredBy
from respaldo.errors import CatalogNotFound, CatalogUnavailable

from .support import sqlite_url

pytestmark = pytest.mark.unit


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _write_a_record(url: str) -> None:
    with open_catalog(url) as catalog, catalog.begin() as session:
        BackupRecords(session).create_pending(
            kind=BackupKind.FULL,
            repository="local",
            triggered_by=TriggeredBy.CLI,
            retention_days=7,
        )


def test_a_missing_catalog_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "typo" / "catalog.db"
    with pytest.raises(CatalogNotFound) as caught:
        open_catalog(sqlite_url(path))
    assert str(caught.value) == f"no catalog at {path}"
    assert "respaldo init" in caught.value.hint and "[catalog] url" in caught.value.hint
    assert not path.parent.exists()


def test_a_missing_catalog_file_in_an_existing_directory_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "catalgo.db"
    with pytest.raises(CatalogNotFound):
        open_catalog(sqlite_url(path))
    assert list(tmp_path.iterdir()) == []


def test_create_makes_a_private_directory_and_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "respaldo" / "catalog.db"
    with open_catalog(sqlite_url(path), create=True):
        pass
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700
    # SQLite gives its -wal and -shm files the database file's mode; they exist while a
    # connection is open (the pool keeps one until the catalog is closed).
    with open_catalog(sqlite_url(path)) as catalog:
        with catalog.begin() as session:
            BackupRecords(session).create_pending(
                kind=BackupKind.FULL,
                repository="local",
                triggered_by=TriggeredBy.CLI,
                retention_days=7,
            )
        for companion in (Path(f"{path}-wal"), Path(f"{path}-shm")):
            assert _mode(companion) == 0o600, companion


def test_an_existing_catalog_readable_by_others_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    with open_catalog(sqlite_url(path), create=True):
        pass
    path.chmod(0o644)
    _write_a_record(sqlite_url(path))
    assert _mode(path) == 0o600


def test_an_existing_catalog_opens_without_create(tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    with open_catalog(sqlite_url(path), create=True):
        pass
    _write_a_record(sqlite_url(path))
    with open_catalog(sqlite_url(path)) as catalog, catalog.begin() as session:
        assert len(BackupRecords(session).list()) == 1


def test_a_database_without_respaldo_tables_is_not_a_catalog(tmp_path: Path) -> None:
    # An existing database that respaldo never initialised (a wrong file, a new empty
    # PostgreSQL database) is refused, and left as it was.
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE invoices (id INTEGER)")
    db.close()
    with pytest.raises(CatalogNotFound) as caught:
        open_catalog(sqlite_url(path))
    assert "holds no respaldo catalog" in str(caught.value)
    assert "respaldo init" in caught.value.hint
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    db.close()
    assert tables == ["invoices"]


def test_a_database_without_respaldo_tables_gets_them_with_create(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    with open_catalog(sqlite_url(path), create=True) as catalog:
        assert sa.inspect(catalog.engine).has_table("backup_records")


def test_catalog_not_found_is_a_catalog_unavailable() -> None:
    # Callers that handle an unopenable catalog keep handling this one.
    assert issubclass(CatalogNotFound, CatalogUnavailable)

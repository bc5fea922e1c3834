"""Opening catalogs: URLs, SQLite settings, migrations, packaging and the layer rule."""

from __future__ import annotations

import ast
import io
import subprocess
import sys
import threading
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.schema import CreateIndex

from respaldo.catalog import BackupRecords, Catalog, normalize_url, open_catalog
from respaldo.catalog.database import (
    MIGRATIONS_DIR,
    SQLITE_BUSY_TIMEOUT_MS,
    alembic_config,
    create_catalog_engine,
    head_revision,
)
from respaldo.catalog.models import Base
from respaldo.domain import BackupKind, TriggeredBy
from respaldo.errors import CatalogUnavailable

from .support import sqlite_url

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
CATALOG_SRC = ROOT / "src" / "respaldo" / "catalog"


def _head() -> str:
    from alembic.script import ScriptDirectory

    from respaldo.catalog.database import alembic_config

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _version(catalog: Catalog) -> list[str]:
    with catalog.engine.connect() as connection:
        return list(connection.scalars(sa.text("SELECT version_num FROM alembic_version")))


def test_open_creates_directory_tables_and_stamps_head(
    catalog_path: Path, catalog: Catalog
) -> None:
    assert catalog_path.is_file()
    tables = set(sa.inspect(catalog.engine).get_table_names())
    assert {"backup_records", "backup_copies", "alembic_version"} <= tables
    assert _version(catalog) == [_head()]


def test_migrations_create_exactly_the_models(catalog: Catalog) -> None:
    # The migration is written by hand; any drift from the models shows up here.
    with catalog.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        assert compare_metadata(context, Base.metadata) == []


def test_backup_records_has_every_column_of_the_specification(catalog: Catalog) -> None:
    columns = {c["name"] for c in sa.inspect(catalog.engine).get_columns("backup_records")}
    specification = {
        "id", "backup_type", "storage_path", "s3_url", "storage_tier", "size_bytes",
        "size_compressed", "checksum", "checksum_algorithm", "is_verified", "verified_at",
        "status", "started_at", "completed_at", "duration", "retention_days", "expires_at",
        "error_message", "database_version", "schema_version",
    }  # fmt: skip
    additions = {
        "created_at", "database_name", "repository", "manifest", "stored_new_bytes",
        "triggered_by", "pinned", "worker_pid", "heartbeat_at", "tool_version",
    }  # fmt: skip
    assert specification | additions <= columns
    indexed = {
        column
        for index in sa.inspect(catalog.engine).get_indexes("backup_records")
        for column in index["column_names"]
    }
    assert {"database_name", "backup_type", "status", "started_at"} <= indexed


def test_second_open_is_a_no_op(catalog_path: Path) -> None:
    url = sqlite_url(catalog_path)
    with open_catalog(url, create=True) as first, first.begin() as session:
        session.execute(sa.text("CREATE TABLE marker (x INTEGER)"))
        session.execute(sa.text("INSERT INTO marker VALUES (1)"))

    statements: list[str] = []

    def capture(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        statements.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", capture)
    try:
        second = open_catalog(url)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", capture)
    with second:
        assert _version(second) == [_head()]
        with second.engine.connect() as connection:
            assert connection.scalar(sa.text("SELECT x FROM marker")) == 1
    assert statements, "the second open did not even look at the schema version"
    changes = ("CREATE", "ALTER", "DROP", "INSERT", "UPDATE", "DELETE")
    assert [s for s in statements if s.lstrip().upper().startswith(changes)] == []


def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(catalog: Catalog) -> None:
    with catalog.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        busy = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
        assert busy == SQLITE_BUSY_TIMEOUT_MS


def test_catalog_from_a_newer_respaldo_is_refused(catalog_path: Path, catalog: Catalog) -> None:
    with catalog.begin() as session:
        session.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(CatalogUnavailable) as caught:
        open_catalog(sqlite_url(catalog_path))
    assert "9999" in str(caught.value)
    assert "newer respaldo" in caught.value.hint


def test_unwritable_directory_is_a_catalog_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(CatalogUnavailable, match="cannot create the catalog"):
        open_catalog(sqlite_url(blocker / "sub" / "catalog.db"), create=True)


def test_in_memory_sqlite_opens() -> None:
    with open_catalog("sqlite://") as catalog:
        assert _version(catalog) == [_head()]


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgresql://respaldo@db.internal/catalog", "postgresql+psycopg"),
        ("postgres://respaldo@db.internal/catalog", "postgresql+psycopg"),
        ("postgresql+psycopg://respaldo@db.internal/catalog", "postgresql+psycopg"),
        ("sqlite:////var/lib/respaldo/catalog.db", "sqlite"),
    ],
)
def test_normalize_url_picks_psycopg_for_postgresql(given: str, driver: str) -> None:
    url = normalize_url(given)
    assert url.drivername == driver
    assert url.database in ("catalog", "/var/lib/respaldo/catalog.db")


@pytest.mark.parametrize(
    "given", ["mysql://root:hunter2@db/catalog", "not a url", "oracle://u:hunter2@h/db"]
)
def test_unsupported_urls_are_refused_without_showing_passwords(given: str) -> None:
    with pytest.raises(CatalogUnavailable) as caught:
        normalize_url(given)
    assert "hunter2" not in str(caught.value)
    assert caught.value.hint


def test_migration_files_are_shipped_by_the_package_data_globs() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["respaldo"]
    package = ROOT / "src" / "respaldo"
    shipped = [
        path.relative_to(package).as_posix()
        for path in MIGRATIONS_DIR.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    ]
    assert "catalog/migrations/script.py.mako" in shipped
    # Path.glob, like setuptools' own matching: "*" does not cross a "/".
    matched = {path.relative_to(package).as_posix() for g in globs for path in package.glob(g)}
    assert sorted(set(shipped) - matched) == []


FORBIDDEN = ("repository", "storage", "postgres", "cli", "operations", "api", "web")


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_catalog_imports_no_higher_or_sibling_layer() -> None:
    # import-linter will enforce this once every layer exists; until then, this does.
    offenders = {
        f"{path.relative_to(CATALOG_SRC)}: {module}"
        for path in CATALOG_SRC.rglob("*.py")
        for module in _imported_modules(path)
        if any(
            module == f"respaldo.{layer}" or module.startswith(f"respaldo.{layer}.")
            for layer in FORBIDDEN
        )
    }
    assert offenders == set()


def test_postgresql_migrations_render_offline_without_a_driver() -> None:
    # No PostgreSQL server here (integration tests have one); this at least proves the
    # URL mapping and that the migration compiles for PostgreSQL, with timestamptz.
    output = io.StringIO()
    config = alembic_config("postgresql://respaldo:hunter2@db.internal/catalog")
    config.output_buffer = output
    command.upgrade(config, "head", sql=True)
    sql = output.getvalue()
    assert "CREATE TABLE backup_records" in sql
    assert "created_at TIMESTAMP WITH TIME ZONE NOT NULL" in sql
    assert "ON DELETE CASCADE" in sql
    assert "hunter2" not in sql


def test_processes_opening_and_writing_at_once_take_turns(catalog_path: Path) -> None:
    # Separate engines behave like separate processes: each has its own connections.
    url = sqlite_url(catalog_path)
    workers, per_worker = 4, 10
    start = threading.Barrier(workers)

    def work() -> None:
        start.wait()
        # Every process may be the first: creating and migrating at once take turns too.
        with open_catalog(url, create=True) as catalog:
            for _ in range(per_worker):
                with catalog.begin() as session:
                    records = BackupRecords(session)
                    record = records.create_pending(
                        kind=BackupKind.FULL,
                        repository="local",
                        triggered_by=TriggeredBy.SCHEDULE,
                        retention_days=7,
                    )
                    records.start(record.id, 1, host="h")

    with ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(work) for _ in range(workers)]:
            future.result(timeout=60)
    with open_catalog(url) as catalog, catalog.begin() as session:
        assert len(BackupRecords(session).list()) == workers * per_worker


def test_reads_proceed_while_a_write_transaction_is_open(
    catalog_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No busy wait at all: a read that queued behind the writer's lock would fail at
    # once with "database is locked" instead of passing after a timeout.
    monkeypatch.setattr("respaldo.catalog.database.SQLITE_BUSY_TIMEOUT_MS", 0)
    with open_catalog(sqlite_url(catalog_path), create=True) as catalog:
        with catalog.begin() as session:
            done = BackupRecords(session).create_pending(
                kind=BackupKind.FULL,
                repository="local",
                triggered_by=TriggeredBy.CLI,
                retention_days=7,
            )
        with catalog.begin() as writing:
            BackupRecords(writing).create_pending(
                kind=BackupKind.FULL,
                repository="local",
                triggered_by=TriggeredBy.CLI,
                retention_days=7,
            )
            writing.flush()  # the write lock is held from here until the block ends
            with catalog.read() as reading:
                seen = [r.id for r in BackupRecords(reading).list()]
        assert seen == [done.id]  # the committed state, not the open transaction's row
        with catalog.read() as reading:
            assert len(BackupRecords(reading).list()) == 2


def test_the_head_read_from_the_migration_files_is_alembics() -> None:
    assert head_revision() == _head()


def test_a_catalog_at_the_newest_schema_opens_without_importing_alembic(
    catalog_path: Path, catalog: Catalog
) -> None:
    assert not _imported_by_opening(catalog_path, "alembic")


def test_a_catalog_one_migration_behind_is_still_migrated(
    catalog_path: Path, catalog: Catalog
) -> None:
    url = sqlite_url(catalog_path)
    config = alembic_config(url)
    command.downgrade(config, "-1")
    assert _version(catalog) != [_head()]
    with open_catalog(url) as again:
        assert _version(again) == [_head()]


def test_a_sqlite_catalog_opens_without_sqlalchemys_postgresql_dialect(
    catalog_path: Path, catalog: Catalog
) -> None:
    # The dialect is 19 modules, about 2 MiB of every backup's and restore's memory.
    assert not _imported_by_opening(catalog_path, "sqlalchemy.dialects.postgresql")


def _imported_by_opening(catalog_path: Path, module: str) -> bool:
    """Whether a fresh process that opens the SQLite catalog has imported ``module``."""
    code = (
        "import sys\n"
        "from respaldo.catalog.database import open_catalog\n"
        f"open_catalog({sqlite_url(catalog_path)!r}).close()\n"
        f"print({module!r} in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip() == "True"


def test_a_postgresql_catalog_engine_gives_the_partial_indexes_their_where() -> None:
    engine = create_catalog_engine("postgresql://respaldo@127.0.0.1:1/catalog")
    try:
        jobs = Base.metadata.tables["jobs"]
        ddl = {
            str(index.name): str(CreateIndex(index).compile(dialect=engine.dialect))
            for index in jobs.indexes
        }
    finally:
        engine.dispose()
    assert ddl["uq_jobs_running_exclusive_key"].endswith(
        "WHERE status = 'running' AND exclusive_key IS NOT NULL"
    )
    assert ddl["uq_jobs_schedule_fire"].endswith("WHERE scheduled_for IS NOT NULL")

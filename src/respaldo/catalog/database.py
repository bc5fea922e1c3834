"""Opening the catalog: URLs, engines, SQLite settings and migrations.

:func:`open_catalog` is the one way in. It migrates the database to the newest schema
every time it opens it (a no-op when already there), so no separate ``alembic`` step or
``alembic.ini`` exists at run time.

To write a new migration after changing :mod:`respaldo.catalog.models`::

    from alembic import command
    from respaldo.catalog.database import alembic_config
    cfg = alembic_config("sqlite:////tmp/dev-catalog.db")   # a database at the old head
    command.upgrade(cfg, "head")
    command.revision(cfg, message="what changed", autogenerate=True, rev_id="0002")

then read and fix the generated file in ``migrations/versions``: migrations are frozen
history, so they use plain SQLAlchemy types and never import the models.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from respaldo.catalog.models import add_postgresql_options
from respaldo.errors import CatalogNotFound, CatalogUnavailable, first_line

if TYPE_CHECKING:  # Alembic is imported only to migrate (see _at_head)
    from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"

# How long a SQLite connection waits for another writer before "database is locked".
# Generous: the rows written at the end of an hour-long backup are worth a wait.
SQLITE_BUSY_TIMEOUT_MS: Final = 30_000

# Serialises concurrent migrations on PostgreSQL (two processes starting at once); any
# constant works as long as it is the same in every respaldo. ASCII "respaldo".
_PG_MIGRATION_LOCK: Final = 0x7265_7370_616C_646F

_VERSION_TABLE: Final = "alembic_version"

_CREATE_HINT: Final = (
    "check [catalog] url (or RESPALDO_CATALOG__URL) for a typo; 'respaldo init' creates "
    "a new catalog, and 'respaldo catalog rebuild' fills one from a repository"
)

_URL_HINT: Final = (
    "use sqlite:////absolute/path/catalog.db or postgresql://user@host/dbname "
    "(set [catalog] url or RESPALDO_CATALOG__URL)"
)


def normalize_url(url: str | URL) -> URL:
    """Parse a catalog URL and pick respaldo's driver for it.

    ``postgresql://`` and ``postgres://`` become ``postgresql+psycopg://`` (psycopg 3);
    an explicit driver is kept. SQLite and PostgreSQL are the supported databases.
    Raises CatalogUnavailable for anything else; the message never shows a password.
    """
    try:
        parsed = sa.make_url(url)
    except ArgumentError:
        # Not echoed: an unparsable URL may still hold a password.
        raise CatalogUnavailable("the catalog URL is not a valid URL", hint=_URL_HINT) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise CatalogUnavailable(
            f"unsupported catalog database {backend!r} in {_shown(parsed)}", hint=_URL_HINT
        )
    return parsed


def _shown(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL, or None for in-memory and ``file:`` URI forms."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def create_catalog_engine(url: str | URL) -> Engine:
    """Create an engine for the catalog at ``url`` without connecting or migrating.

    On SQLite every connection gets WAL mode (readers never wait for the writer), foreign
    keys (off by default in SQLite) and a busy timeout, and every transaction starts with
    ``BEGIN IMMEDIATE`` except those of :meth:`Catalog.read`: see :func:`_sqlite_begin`.
    Raises CatalogUnavailable for a bad URL or a missing driver.
    """
    parsed = normalize_url(url)
    try:
        engine = sa.create_engine(parsed, pool_pre_ping=parsed.get_backend_name() != "sqlite")
    except ModuleNotFoundError as exc:
        raise CatalogUnavailable(
            f"the database driver for {_shown(parsed)} is not installed ({exc.name})",
            hint="install psycopg for a PostgreSQL catalog: pip install psycopg (it needs the "
            "system's libpq: Debian's libpq5)",
        ) from None
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_connect)
        sa.event.listen(engine, "begin", _sqlite_begin)
    elif engine.dialect.name == "postgresql":
        add_postgresql_options()
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control away from the sqlite3 module, which does not BEGIN before
    # DDL or SELECT (so migrations would not be atomic); _sqlite_begin emits our own.
    # PRAGMAs run here, outside any transaction, because foreign_keys and journal_mode
    # are silently ignored inside one. busy_timeout first: switching to WAL takes a lock.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS:d}")
        cursor.execute("PRAGMA foreign_keys = ON")
        _switch_to_wal(cursor)
    finally:
        cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """Put the database in WAL mode, once: the mode is stored in the file.

    The switch needs the database to itself, and SQLite (3.40, Debian 12's) may answer
    "database is locked" at once, without its busy handler, while another connection opens
    a new catalog at the same moment. So the mode is read first (the usual case: already
    WAL, nothing to take), and the switch is retried within the busy timeout.
    """
    row = cursor.execute("PRAGMA journal_mode").fetchone()
    if row is not None and str(row[0]).lower() == "wal":
        return
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.05)  # another connection holds the lock: a back-off, not a wait


# The execution option that marks a read-only transaction (Catalog.read).
_READ_ONLY: Final = "respaldo_read_only"


def _sqlite_begin(connection: Connection) -> None:
    # A read-only transaction (Catalog.read) begins deferred: in WAL mode it reads the
    # last committed state without taking any lock, so listing backups never waits for a
    # running backup's write, however long that transaction is.
    if connection.get_execution_options().get(_READ_ONLY):
        connection.exec_driver_sql("BEGIN")
        return
    # IMMEDIATE takes the write lock at BEGIN, where busy_timeout applies. A deferred
    # transaction that reads and then writes can instead fail at once with SQLITE_BUSY
    # when another writer committed in between (a lock upgrade is never retried), and
    # every catalog update reads the record first. It also makes two processes that
    # migrate at once take turns. Cost: writing transactions run one at a time, so keep
    # sessions short (one unit of work, never across a backup).
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic ``Config`` for the migrations shipped in this package, built in code.

    With ``url``, Alembic can run on its own (offline SQL, ``revision --autogenerate``);
    without, the caller passes a connection in ``config.attributes["connection"]``.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    # ConfigParser interpolation: "%%" is a literal "%".
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if url is not None:
        rendered = normalize_url(url).render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def upgrade(engine: Engine, *, create: bool = True) -> None:
    """Migrate the catalog behind ``engine`` to the newest schema, in one transaction.

    Idempotent; safe when several processes do it at once (they take turns). Without
    ``create``, a database that holds no respaldo catalog yet (no ``alembic_version``
    table) is refused with CatalogNotFound and left as it is. Raises CatalogUnavailable
    if the database cannot be reached or was migrated by a newer respaldo than this one.
    """
    from alembic import command
    from alembic.util.exc import CommandError

    config = alembic_config()
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
                )
            if not create and not sa.inspect(connection).has_table(_VERSION_TABLE):
                raise CatalogNotFound(
                    f"the database at {_shown(engine.url)} holds no respaldo catalog",
                    hint=_CREATE_HINT,
                )
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            if connection.dialect.name == "postgresql":
                _apply_queue_schema(connection)
    except CommandError as exc:
        raise CatalogUnavailable(
            f"cannot migrate the catalog at {_shown(engine.url)}: {exc}",
            hint="the catalog may have been written by a newer respaldo; upgrade respaldo",
        ) from exc
    except SQLAlchemyError as exc:
        raise CatalogUnavailable(
            f"cannot open the catalog at {_shown(engine.url)}: {first_line(exc)}",
            hint="check [catalog] url, that the database server runs and accepts respaldo",
        ) from exc


def _apply_queue_schema(connection: Connection) -> None:
    """Create procrastinate's tables and functions in a PostgreSQL catalog, once.

    The queue that hands jobs to workers lives in the catalog's database, so that a
    job's row and its place in the queue are written in one transaction. The schema is
    procrastinate's own (``SchemaManager.get_schema``), applied here, in the migration's
    transaction and under its advisory lock, when its jobs table is missing. Upgrading
    procrastinate past the version pinned in pyproject.toml needs its migration scripts
    applied by a respaldo migration (see docs/scaling.md).
    """
    if sa.inspect(connection).has_table("procrastinate_jobs"):
        return
    # Imported here: only PostgreSQL catalogs pay for it.
    from procrastinate.schema import SchemaManager

    # On the driver's connection (same transaction): without parameters psycopg sends
    # the script as it is, and the '%' in procrastinate's messages stay literal.
    driver = connection.connection.driver_connection
    assert driver is not None
    try:
        driver.execute(SchemaManager.get_schema())
    except psycopg.Error as exc:
        # Part of it is there (dropped by hand, or another tool's): never guess.
        raise CatalogUnavailable(
            f"cannot create the queue's tables in the catalog at {_shown(connection.engine.url)}:"
            f" {first_line(exc)}",
            hint="the catalog holds part of procrastinate's schema; restore the catalog, or "
            "drop the procrastinate_* objects and open it again (docs/scaling.md)",
        ) from exc


class Catalog:
    """An open catalog: an Engine and a sessionmaker over it.

    Sessions do not expire objects on commit, so records stay readable after their
    session ends (to serialise them, say). Not a context for long work: hold a session
    for one short unit of work. Thread-safe, like the Engine; close it once, at exit.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.session_factory: sessionmaker[Session] = sessionmaker(engine, expire_on_commit=False)
        self._read_factory: sessionmaker[Session] = sessionmaker(
            engine.execution_options(**{_READ_ONLY: True}), expire_on_commit=False
        )

    @property
    def url(self) -> str:
        """The catalog URL with any password masked, for messages."""
        return _shown(self.engine.url)

    @contextmanager
    def begin(self) -> Iterator[Session]:
        """A session in a transaction that commits if the block succeeds, else rolls back."""
        with self.session_factory.begin() as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading only: it sees the last committed state and never waits
        for a writer (on SQLite, a deferred transaction in WAL mode; on PostgreSQL, an
        ordinary one). Records stay readable after it ends. Writing in it is a mistake (on
        SQLite the write could fail at once with "database is locked" instead of waiting).
        """
        # Ended by a commit, not a rollback: a rollback would expire the records read.
        with self._read_factory.begin() as session:
            yield session

    def server_identity(self, query: str) -> tuple[str, ...] | None:
        """The one row ``query`` (read-only, of the PostgreSQL functions every role may
        call) gives on a PostgreSQL catalog, as text; None for SQLite. What tells that a
        database of a server is the catalog's own (see
        :data:`respaldo.postgres.server.SERVER_IDENTITY`)."""
        if self.engine.dialect.name != "postgresql":
            return None
        with self.engine.connect() as conn:
            row = conn.execute(sa.text(query)).one()
        return tuple(str(value) for value in row)

    def close(self) -> None:
        """Close every pooled connection. The Catalog must not be used afterwards."""
        self.engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Catalog {self.url}>"


def open_catalog(url: str | URL, *, create: bool = False) -> Catalog:
    """Open the catalog at ``url`` and migrate it to the newest schema.

    Only with ``create`` (``respaldo init``, ``respaldo catalog rebuild``) is a catalog
    made where there is none: a SQLite file (0600) and any missing parent directories
    (0700), or respaldo's tables in an empty PostgreSQL database. Without it, a URL with
    a typo is an error (CatalogNotFound) instead of a new empty catalog that lists
    nothing. In-memory SQLite is always new. An existing SQLite catalog that group or
    others may read is made 0600. ``postgresql://`` URLs use psycopg 3.

    Raises CatalogNotFound, or CatalogUnavailable (with a hint) if the URL is
    unsupported, the file cannot be created, the database cannot be reached, or its
    schema is newer than this respaldo knows.
    """
    parsed = normalize_url(url)
    sqlite = parsed.get_backend_name() == "sqlite"
    sqlite_file = _sqlite_file(parsed) if sqlite else None
    if sqlite_file is not None:
        if create:
            _create_sqlite_file(sqlite_file)
        elif not sqlite_file.exists():
            # Checked before connecting: connecting would create the file.
            raise CatalogNotFound(f"no catalog at {sqlite_file}", hint=_CREATE_HINT)
        _make_private(sqlite_file)
    engine = create_catalog_engine(parsed)
    try:
        if not _at_head(engine):
            upgrade(engine, create=create or (sqlite and sqlite_file is None))
    except BaseException:
        engine.dispose()
        raise
    return Catalog(engine)


_REVISION = re.compile(r"^revision(?::[^=]*)? = [\"']([^\"']+)[\"']", re.MULTILINE)
_DOWN_REVISION = re.compile(
    r"^down_revision(?::[^=]*)? = (?:[\"']([^\"']+)[\"']|None)$", re.MULTILINE
)


def head_revision() -> str | None:
    """The newest migration's revision, read from the migration files as text; None when
    they do not say plainly (one linear chain, literal ids), and then Alembic decides."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        revision, down = _REVISION.search(text), _DOWN_REVISION.search(text)
        if revision is None or down is None:
            return None
        revisions.add(revision[1])
        if down[1] is not None:
            parents.add(down[1])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _at_head(engine: Engine) -> bool:
    """Whether the catalog is at the newest schema already, found without Alembic.

    Every command opens the catalog, and importing Alembic to find nothing to do cost
    about 0.15 CPU-s and 11 MiB of memory a process (measured with python -X importtime
    and /proc/self/status). Any doubt (no version table, another version, a PostgreSQL
    catalog without its job queue, an error) answers False: :func:`upgrade` then runs as
    before and says what is wrong.
    """
    head = head_revision()
    if head is None:
        return False
    try:
        # Read-only: on SQLite it takes no lock (a running backup's write never waits).
        with engine.connect().execution_options(**{_READ_ONLY: True}) as connection:
            inspector = sa.inspect(connection)
            if not inspector.has_table(_VERSION_TABLE):
                return False
            if connection.dialect.name == "postgresql" and not inspector.has_table(
                "procrastinate_jobs"
            ):
                return False
            versions = connection.execute(
                sa.text(f"SELECT version_num FROM {_VERSION_TABLE}")  # noqa: S608 (a constant)
            ).scalars()
            return list(versions) == [head]
    except SQLAlchemyError:
        return False


def _create_sqlite_file(path: Path) -> None:
    """Create the catalog file 0600 (and its missing directories 0700) if it is missing.

    SQLite would create it with the umask's mode (often 0644), and its ``-wal`` and
    ``-shm`` files take the database file's mode: created here first, all three are
    private. The catalog names every database, its backups and where they are stored.
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise CatalogUnavailable(
            f"cannot create the catalog {path}: {exc.strerror}",
            hint="create its directory, or point [catalog] url somewhere respaldo may write",
        ) from exc
    os.close(fd)


def _make_private(path: Path) -> None:
    # Catalogs created before respaldo made them 0600, or copied with another mode. The
    # owner can change the mode; another user's catalog is left as it is.
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
            if mode & 0o077:
                file.chmod(mode & 0o700)
                log.warning("catalog file %s was readable by others; made it private", file)
        except OSError:
            continue

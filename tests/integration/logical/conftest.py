"""A respaldo installation around the real test cluster: config, repository, catalog, CLI.

``respaldo`` (the fixture) writes a TOML config into ``tmp_path`` — SQLite catalog, one
local ``file://`` repository, cache directory, chunker sizes small enough that the ~3 MB
sample dump is hundreds of chunks in dozens of packs — with the database ``erp`` pointing
at this test's copy of the sample ERP database, plus a few deliberately broken entries
(an unreachable server, a wrong password, failing pre- and post-restore hooks). The repository
passphrase is in ``RESPALDO_PASSPHRASE``, the cluster password in a 0600 file. The
repository is created with cheap KDF parameters, so every command opens it quickly.

Commands run in this process through :func:`respaldo.cli.main.invoke` (fast, output
captured with capsys) or, where the console entry itself matters, in a real subprocess.
Databases the test leaves behind (old copies of a --replace, staging leftovers) are
dropped afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from psycopg import sql
from sample.cluster import TempCluster

from respaldo.catalog import BackupRecord, BackupRecords, open_catalog
from respaldo.cli.main import invoke
from respaldo.config import Settings, load_settings
from respaldo.operations.initialize import initialize
from respaldo.operations.repositories import open_repository
from respaldo.repository import BackupWriter, KdfParams, Repository
from respaldo.repository.index import Location
from respaldo.repository.manifest import manifest_aad
from respaldo.repository.packs import pack_name
from respaldo.repository.reader import read_list
from tests.integration.conftest import erp_copy
from tests.integration.logical.support import databases, flip_byte
from tests.ports import closed_port

T = TypeVar("T")

PASSPHRASE = "correct horse battery staple (test)"
WRONG_PASSWORD = "N0t-the-Passw0rd-5ab1e"
SCHEMA_VERSION = "2025.03.17"
FAST_KDF = KdfParams(time_cost=1, memory_cost=8 * 1024, parallelism=1)


@dataclass(frozen=True)
class Run:
    """What one command did: exit status, stdout, stderr."""

    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]

    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def last_line(self) -> str:
        lines = [line for line in self.out.splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout ---\n{self.out}\n--- stderr ---\n{self.err}"


def _secret_file(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
    return path


@dataclass
class Respaldo:
    """One configured respaldo: paths, the source database, and ways to run commands."""

    pg: TempCluster
    tmp: Path
    dbname: str
    config: Path
    capsys: pytest.CaptureFixture[str]

    @property
    def repo_dir(self) -> Path:
        return self.tmp / "repo"

    @property
    def catalog_file(self) -> Path:
        return self.tmp / "catalog.db"

    @property
    def cache_dir(self) -> Path:
        return self.tmp / "cache"

    # --- running commands --------------------------------------------------------------

    def run(self, *args: str) -> Run:
        """Run ``respaldo --config CONFIG ARGS`` in this process."""
        self.capsys.readouterr()
        code = invoke(["--config", str(self.config), *args])
        out, err = self.capsys.readouterr()
        return Run(code, out, err)

    def run_process(self, *args: str, timeout: float = 120) -> Run:
        """Run the installed ``respaldo`` console script in a subprocess."""
        done = subprocess.run(
            [*self.process_argv(), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Run(done.returncode, done.stdout, done.stderr)

    def process_argv(self) -> list[str]:
        script = Path(sys.executable).with_name("respaldo")
        assert script.is_file(), f"the console script {script} is not installed"
        return [str(script), "--config", str(self.config)]

    def backup(self, database: str = "erp") -> dict[str, Any]:
        """Take a backup through the CLI and return its record (API fields)."""
        run = self.run("backup", database, "--json")
        assert run.code == 0, str(run)
        record: dict[str, Any] = run.json()
        assert record["status"] == "completed", record
        return record

    def restore(self, backup_id: str, target: str, *options: str) -> Run:
        run = self.run("restore", backup_id, "--target-database", target, *options)
        assert run.code == 0, str(run)
        return run

    # --- looking behind the CLI ----------------------------------------------------------

    def settings(self) -> Settings:
        return load_settings(self.config)

    def repository(self) -> Repository:
        return open_repository(self.settings())

    def records(self) -> list[BackupRecord]:
        """Every catalog record, read without the start-up check of ``Context.open``."""
        catalog = open_catalog(f"sqlite:///{self.catalog_file}")
        try:
            with catalog.begin() as session:
                return BackupRecords(session).list()
        finally:
            catalog.close()

    def as_older(self, backup_id: str, edit: Callable[[dict[str, Any]], None]) -> str:
        """The same streams under a new id, with the manifest's ``meta`` as ``edit``
        leaves it (what an older, or a later, respaldo wrote; a row count forged to
        differ from the dump), and a catalog record of it; returns the new id."""
        repo = self.repository()
        manifest = repo.load_manifest(backup_id)
        edit(manifest.meta)
        older = backup_id[:-8] + "01dc0de5"
        manifest.backup_id = older
        with BackupWriter(repo, older) as writer:
            writer.commit_sealed_manifest(
                repo.sealer.seal(manifest.to_bytes(), manifest_aad(older))
            )
        assert self.run("catalog", "rebuild").code == 0
        return older

    def pack_files(self) -> list[Path]:
        return sorted(p for p in (self.repo_dir / "packs").rglob("*") if p.is_file())

    def damage_dump(self, backup_id: str) -> str:
        """Flip a byte inside a chunk in the middle of a backup's dump; return its pack's name.

        The middle, so that a streaming restore has already fed pg_restore half a dump
        when it meets the damage.
        """
        location = self.middle_of_dump(backup_id)
        name = pack_name(location.pack_id)
        flip_byte(self.repo_dir / name, location.offset + location.length // 2)
        return name

    def middle_of_dump(self, backup_id: str) -> Location:
        """Where the chunk in the middle of a backup's dump is (data that the next backup
        of the unchanged database has too)."""
        repo = self.repository()
        stream = repo.load_manifest(backup_id).stream("dump")
        entries = read_list(repo, stream.lists[0])
        assert len(entries) > 100
        location = repo.index.get(entries[len(entries) // 2][0])
        assert location is not None
        return location


def write_config(tmp: Path, pg: TempCluster, dbname: str) -> Path:
    password_file = _secret_file(tmp / "erp.pass", pg.password.get_secret_value())
    wrong_file = _secret_file(tmp / "wrong.pass", WRONG_PASSWORD)
    dsn = f"postgresql://{pg.superuser}@{pg.host}:{pg.port}/{dbname}"
    closed = f"postgresql://{pg.superuser}@127.0.0.1:{closed_port()}/{dbname}"
    text = f"""
cache_dir = "{tmp / "cache"}"
pack_size = 65536
workers = 2

[catalog]
url = "sqlite:///{tmp / "catalog.db"}"

[chunker]
min_size = 512
avg_size = 2048
max_size = 8192

[[repositories]]
name = "local"
url = "file://{tmp / "repo"}"

[[databases]]
name = "erp"
dsn = "{dsn}"
password_file = "{password_file}"
schema_version_query = "SELECT max(version) FROM public.schema_migrations"

[[databases]]
name = "erp_hooked"
dsn = "{dsn}"
password_file = "{password_file}"
pre_restore_hook = ["false"]

[[databases]]
name = "erp_posthook"
dsn = "{dsn}"
password_file = "{password_file}"
post_restore_hook = ["sh", "-c", "echo 'erp will not start' >&2; exit 4"]

[[databases]]
name = "unreachable"
dsn = "{closed}"
password_file = "{password_file}"

[[databases]]
name = "wrongpass"
dsn = "{dsn}"
password_file = "{wrong_file}"
"""
    path = tmp / "respaldo.toml"
    path.write_text(text)
    return path


@pytest.fixture
def respaldo(
    pg: TempCluster,
    erp_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Respaldo]:
    """A respaldo configured for this test's sample ERP database; see the module docstring."""
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    with installed(pg, erp_db, tmp_path) as config:
        yield Respaldo(pg, tmp_path, erp_db, config, capsys)


@dataclass
class Shared:
    """A respaldo installation (ERP copy, config, repository, catalog) shared by the tests
    of one module that use :func:`shared_respaldo`, and what they made once in it."""

    pg: TempCluster
    tmp: Path
    dbname: str
    config: Path
    cleanup: contextlib.ExitStack
    """Left at the module's end, before the installation goes (a role a backup needs)."""
    made: dict[str, Any] = field(default_factory=dict)

    def once(self, key: str, make: Callable[[], T]) -> T:
        """``make()`` the first time ``key`` is asked for in the module, then the same."""
        if key not in self.made:
            self.made[key] = make()
        found: T = self.made[key]
        return found


@pytest.fixture(scope="module")
def shared_installation(
    pg: TempCluster, erp_template: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Shared]:
    tmp = tmp_path_factory.mktemp("shared")
    with (
        pytest.MonkeyPatch.context() as patch,
        erp_copy(pg, erp_template) as dbname,
    ):
        patch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
        with installed(pg, dbname, tmp) as config, contextlib.ExitStack() as cleanup:
            yield Shared(pg, tmp, dbname, config, cleanup)


@pytest.fixture
def shared_respaldo(
    shared_installation: Shared,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Respaldo:
    """As :func:`respaldo`, on the module's installation: for the cases of one test that
    restore the same backup (made once, :meth:`Shared.once`; its backup and ERP copy are
    seconds of each case on a loaded machine), each asserting only on what it made itself
    (its own target database and its own job)."""
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    shared = shared_installation
    return Respaldo(shared.pg, shared.tmp, shared.dbname, shared.config, capsys)


@contextlib.contextmanager
def installed(pg: TempCluster, dbname: str, tmp: Path) -> Iterator[Path]:
    """:func:`respaldo`'s installation (config and repository under ``tmp``) for the ERP
    copy ``dbname``; its config. The databases made meanwhile are dropped after the
    ``with``. The caller sets ``RESPALDO_PASSPHRASE``."""
    # The application's own record of its schema version, for schema_version_query.
    pg.execute(
        "CREATE TABLE public.schema_migrations (version text PRIMARY KEY);"
        f"INSERT INTO public.schema_migrations VALUES ('2024.11.02'), ('{SCHEMA_VERSION}')",
        dbname=dbname,
    )
    config = write_config(tmp, pg, dbname)
    initialize(load_settings(config), kdf=FAST_KDF)
    before = databases(pg)
    try:
        yield config
    finally:
        for name in sorted(databases(pg) - before):
            pg.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextlib.contextmanager
def password_blind_reader(cluster: TempCluster, respaldo: Respaldo) -> Iterator[str]:
    """A backup role that reads every row but is no superuser (nor reads pg_authid, so
    the roles are dumped without their passwords), with the superuser's password (the
    config's password file), configured for ``erp`` while the context lasts."""
    role = sql.Identifier("respaldo_lector")
    password = sql.Literal(cluster.password.get_secret_value())
    cluster.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(role, password))
    # Not pg_read_all_data, which reads pg_authid too: SELECT on the ERP's own tables.
    schemas = cluster.query(
        "SELECT nspname FROM pg_catalog.pg_namespace"
        " WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'",
        dbname=respaldo.dbname,
    )
    for (schema,) in schemas:
        cluster.execute(
            sql.SQL(
                "GRANT USAGE ON SCHEMA {0} TO {1};"
                "GRANT SELECT ON ALL TABLES IN SCHEMA {0} TO {1};"
                "GRANT SELECT ON ALL SEQUENCES IN SCHEMA {0} TO {1}"
            ).format(sql.Identifier(schema), role),
            dbname=respaldo.dbname,
        )
    # pg_read_all_data leaves out the sample's large objects: readable to all for the test.
    cluster.execute("ALTER SYSTEM SET lo_compat_privileges = on")
    cluster.execute("SELECT pg_catalog.pg_reload_conf()")
    text = respaldo.config.read_text()
    respaldo.config.write_text(text.replace(f"{cluster.superuser}@", "respaldo_lector@"))
    try:
        yield "respaldo_lector"
    finally:
        respaldo.config.write_text(text)
        cluster.execute("ALTER SYSTEM RESET lo_compat_privileges")
        cluster.execute("SELECT pg_catalog.pg_reload_conf()")
        cluster.execute(sql.SQL("DROP OWNED BY {}").format(role), dbname=respaldo.dbname)
        cluster.execute(sql.SQL("DROP ROLE {}").format(role))


@pytest.fixture(scope="module")
def logical_level(pg: TempCluster) -> Iterator[TempCluster]:
    """The test cluster with ``wal_level = logical`` (a restart), as it was after."""
    was = pg.scalar("SHOW wal_level")
    if was != "logical":
        pg.execute("ALTER SYSTEM SET wal_level = logical")
        pg.restart()
    try:
        yield pg
    finally:
        if was != "logical":
            # A server with a logical slot left does not start with wal_level = replica.
            for (slot,) in pg.query("SELECT slot_name FROM pg_catalog.pg_replication_slots"):
                pg.execute("SELECT pg_catalog.pg_drop_replication_slot(%s)", [slot])
            pg.execute("ALTER SYSTEM RESET wal_level")
            pg.restart()

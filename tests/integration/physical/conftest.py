"""A cluster that archives its WAL through the real respaldo CLI, and a respaldo around it.

``archiving`` (one per test session, i.e. per xdist worker) is a throwaway cluster (run by the
``postgres`` OS user when we are root) with ``archive_mode = on`` and
``archive_command = '<respaldo> --config <config> wal-push %p'``, holding a database
``shop`` with the sample ERP at a small scale. Everything the server's user must read or
write (config, passphrase file, repository) lives in a directory that user owns; the
catalog and the index cache are only used by the test process itself.

The server runs respaldo as its own user, through the virtual environment's own
``respaldo`` script: ``make setup`` builds that environment with Debian's python3, as
``make install`` (docs/install.md) builds the one users run, so the path the tests take is
the documented one. A test machine where the server's user cannot run it fails here.

Commands of the test itself run in this process (:func:`respaldo.cli.main.invoke`, as
root, output captured) or, where the console script matters, as real processes.
"""

from __future__ import annotations

import functools
import json
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import psycopg
import pytest
import sample
from psycopg import sql
from sample.cluster import TempCluster

from respaldo.cli.main import invoke
from respaldo.config import Settings, load_settings
from respaldo.operations.initialize import initialize
from respaldo.repository import KdfParams
from tests.configs import local_config
from tests.integration.cli import secret_file
from tests.integration.majors import (
    ARCHIVING_INITDB_OPTIONS,
    ARCHIVING_SETTINGS,
    server_bindir,
)
from tests.ports import held_port
from tests.waiting import wait_for

PASSPHRASE = "physical backups (test passphrase)"
FAST_KDF = KdfParams(time_cost=1, memory_cost=8 * 1024, parallelism=1)
SHOP = "shop"
SHOP_SCALE = 0.002
SEED = 20251128
OS_USER = "postgres"


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout ---\n{self.out}\n--- stderr ---\n{self.err}"


def free_port() -> int:
    """A port for a server a test starts with ``--port`` (or a drill's next choice):
    held by this process so that no client connection takes it meanwhile
    (:func:`tests.ports.held_port`); PostgreSQL listens there all the same."""
    return held_port()


def _owner() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    entry = pwd.getpwnam(OS_USER)
    return entry.pw_uid, entry.pw_gid


def chown_tree(path: Path) -> None:
    owner = _owner()
    if owner is None:
        return
    os.chown(path, *owner)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in (*dirnames, *filenames):
            os.lchown(Path(dirpath, name), *owner)


@functools.cache
def server_respaldo() -> str:
    """The venv's ``respaldo``, checked to be runnable by the server's OS user: once per
    test process (the check starts it, 0.2-0.4 s at a load of 8, and the physical tests
    make some 35 archiving clusters; the answer does not change). A failed check is not
    kept: it fails each test that asks."""
    script = Path(sys.executable).with_name("respaldo")
    if _owner() is None:
        return str(script)
    probe = subprocess.run(
        ["runuser", "-u", OS_USER, "--", str(script), "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.fail(
            f"the {OS_USER} user cannot run {script}: {probe.stderr.strip()[-300:]}\n"
            "build the virtual environment with Debian's python3 (make setup does)"
        )
    return str(script)


@dataclass
class Archiving:
    """The archiving cluster and the respaldo configured for it."""

    pg: TempCluster
    base: Path
    config: Path
    respaldo_command: str
    capsys: pytest.CaptureFixture[str] | None = None

    @property
    def repo_dir(self) -> Path:
        return self.base / "repo"

    def settings(self) -> Settings:
        return load_settings(self.config)

    def run(self, *args: str) -> Run:
        """``respaldo --config CONFIG ARGS`` in this process (as root when we are)."""
        assert self.capsys is not None
        self.capsys.readouterr()
        code = invoke(["--config", str(self.config), *args])
        out, err = self.capsys.readouterr()
        return Run(code, out, err)

    def run_as_server(self, *args: str, env: dict[str, str] | None = None) -> Run:
        """The respaldo the server runs, as the server's user, in a real process."""
        prefix = ["runuser", "-u", OS_USER, "--"] if _owner() is not None else []
        done = subprocess.run(
            [*prefix, self.respaldo_command, "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=env,
        )
        return Run(done.returncode, done.stdout, done.stderr)

    def backup(self) -> dict[str, Any]:
        run = self.run("backup", "erp", "--type", "incremental", "--json")
        assert run.code == 0, str(run)
        record: dict[str, Any] = run.json()
        return record

    def switch_and_archive(self, timeout: float = 240.0) -> str:
        """Close the current WAL segment and wait until the archiver pushed it.

        ``timeout`` bounds a hang only (pytest's is 300 s): each segment is a
        ``respaldo wal-push`` process, seconds on a loaded machine, behind whatever the
        archiver still had queued; after three failed pushes in a row PostgreSQL retries
        only a minute later. 60 s was a bound such a machine could miss."""
        # With nothing written since the last switch, pg_switch_wal() closes nothing and
        # names the segment closed before: a caller waiting for a new segment then waited
        # for the background writer's next WAL record (up to 15 s, twice in the status
        # test that swaps archive_command). A message in the WAL makes every call close one.
        self.pg.scalar("SELECT pg_logical_emit_message(false, 'respaldo-test', 'switch')")
        segment = str(self.pg.scalar("SELECT pg_walfile_name(pg_switch_wal())"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = self.pg.query(
                "SELECT last_archived_wal, last_failed_wal, failed_count FROM pg_stat_archiver"
            )[0]
            if row[0] is not None and str(row[0]) >= segment:
                return segment
            time.sleep(0.1)
        log = self.pg.logfile.read_text(errors="replace")[-3000:]
        raise AssertionError(f"segment {segment} was not archived: {row}\n{log}")

    def new_datadir(self) -> Path:
        """A not yet existing data directory below a base the server's user may enter."""
        base = Path(tempfile.mkdtemp(prefix="restored-", dir=self.base))
        chown_tree(base)
        return base / "data"

    def restored(self, datadir: Path, port: int) -> TempCluster:
        """A TempCluster handle on a restored server (same superuser and password)."""
        return replace(self.pg, base=datadir.parent, port=port)

    def start_as_printed(self, run: Run, servers: list[TempCluster]) -> TempCluster:
        """Start a server restored without ``--start`` with the command the restore
        printed, as a user would paste it; wait until it promoted, on the port the
        restore said; add it to ``servers``."""
        found = re.search(
            r"start it with: (.+) \(it recovers, then promotes; it listens on \S+ port (\d+)\)",
            run.err,
        )
        assert found is not None, str(run)
        command, port = shlex.split(found.group(1)), int(found.group(2))
        datadir = Path(command[command.index("-D") + 1])
        started = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        restored = self.restored(datadir, port)
        servers.append(restored)
        assert started.returncode == 0, started.stdout + started.stderr

        def promoted() -> bool:
            try:
                return restored.scalar("SELECT pg_is_in_recovery()") is False
            except psycopg.OperationalError:  # not accepting connections yet
                return False

        wait_for("the restored server to promote", promoted)
        return restored

    def restore_started(
        self, backup_id: str, servers: list[TempCluster], *options: str, to_the_end: bool = False
    ) -> tuple[TempCluster, Path, Run]:
        """``restore BACKUP --target-datadir NEW OPTIONS --start`` on a free port
        (``OPTIONS`` default to ``--immediate``, or to none ``to_the_end``: recovery to the
        end of the archived WAL); asserts that it worked and adds the restored server to
        ``servers`` (``restored_servers``: stopped after the test)."""
        datadir = self.new_datadir()
        port = free_port()
        run = self.run(
            "restore",
            backup_id,
            "--target-datadir",
            str(datadir),
            *(options or (() if to_the_end else ("--immediate",))),
            "--start",
            "--port",
            str(port),
        )
        assert run.code == 0, str(run)
        restored = self.restored(datadir, port)
        servers.append(restored)
        return restored, datadir, run


def write_config(base: Path, pg: TempCluster, extra: str = "") -> Path:
    passfile = secret_file(base / "passphrase", PASSPHRASE)
    dbpass = secret_file(base / "db.pass", pg.password.get_secret_value())
    config = local_config(
        base,
        f"""
[[databases]]
name = "erp"
dsn = "postgresql://{pg.superuser}@{pg.host}:{pg.port}/{SHOP}"
password_file = "{dbpass}"
{extra}""",
        settings=f'passphrase_file = "{passfile}"\nworkers = 2',
    )
    config.chmod(0o644)
    return config


@contextmanager
def archiving_cluster(
    major: int | None,
    *,
    initdb_options: Sequence[str] = (),
    settings: dict[str, str] | None = None,
    mirror: bool = False,
    sample_erp: bool = True,
) -> Iterator[Archiving]:
    """A cluster of PostgreSQL ``major`` (None: the system's) archiving through respaldo,
    with the sample ERP in ``shop``; removed with its repository at the end.
    With ``mirror``, respaldo has a second repository, ``offsite`` (``base/offsite``).
    Without ``sample_erp``, ``shop`` is empty: for a test that reads only tables of its
    own (the load, its WAL archived and replayed, its rows in every backup and restore
    are seconds of each such test on a loaded machine)."""
    base = Path(tempfile.mkdtemp(prefix="respaldo-physical-"))
    # Cleaned up even when the cluster or the repository could not be made.
    cluster: TempCluster | None = None
    try:
        command = server_respaldo()
        config = base / "respaldo.toml"
        cluster = TempCluster.create(
            bindir=server_bindir(major),
            settings={
                "archive_mode": "on",
                "archive_command": f"{command} --config {config} wal-push %p",
                **(settings or {}),
            },
            initdb_options=initdb_options,
        )
        offsite = f'[[repositories]]\nname = "offsite"\nurl = "file://{base / "offsite"}"\n'
        write_config(base, cluster, offsite if mirror else "")
        initialize(load_settings(config), kdf=FAST_KDF)
        chown_tree(base)
        cluster.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(SHOP)))
        if sample_erp:
            sample.load(cluster.conninfo_kwargs(SHOP), SHOP_SCALE, SEED)
        archiving = Archiving(cluster, base, config, command)
        # The first push records the cluster in the repository as the server's user.
        archiving.switch_and_archive()
        yield archiving
    finally:
        if cluster is not None:
            cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def archiving_session(pg_major: int | None) -> Iterator[Archiving]:
    options = ARCHIVING_INITDB_OPTIONS.get(pg_major, ())
    settings = ARCHIVING_SETTINGS.get(pg_major)
    with archiving_cluster(pg_major, initdb_options=options, settings=settings) as archiving:
        yield archiving


@pytest.fixture
def archiving(
    archiving_session: Archiving, capsys: pytest.CaptureFixture[str]
) -> Iterator[Archiving]:
    archiving_session.capsys = capsys
    yield archiving_session
    archiving_session.capsys = None


@pytest.fixture
def archiving_alone(
    pg_major: int | None, capsys: pytest.CaptureFixture[str]
) -> Iterator[Archiving]:
    """An archiving cluster of one test alone, for a test that changes its settings,
    restarts, re-creates or kills it (the session's cluster must stay as it is)."""
    with archiving_cluster(pg_major) as archiving:
        archiving.capsys = capsys
        yield archiving


@pytest.fixture
def own_archiving(pg_major: int | None, capsys: pytest.CaptureFixture[str]) -> Iterator[Archiving]:
    """An archiving cluster and repository of one test alone, set up as the session's is
    (its major's initdb options and settings) but without the sample ERP: for a test that
    damages the repository or counts its runs, which the session's shared cluster must
    not see, and reads no ERP table."""
    with archiving_cluster(
        pg_major,
        initdb_options=ARCHIVING_INITDB_OPTIONS.get(pg_major, ()),
        settings=ARCHIVING_SETTINGS.get(pg_major),
        sample_erp=False,
    ) as archiving:
        archiving.capsys = capsys
        yield archiving


@pytest.fixture
def mirrored(pg_major: int | None, capsys: pytest.CaptureFixture[str]) -> Iterator[Archiving]:
    """As :func:`own_archiving`, with a second repository, ``offsite``."""
    with archiving_cluster(
        pg_major,
        initdb_options=ARCHIVING_INITDB_OPTIONS.get(pg_major, ()),
        settings=ARCHIVING_SETTINGS.get(pg_major),
        mirror=True,
    ) as archiving:
        archiving.capsys = capsys
        yield archiving


def archive_item(run: Run) -> dict[str, Any]:
    """The one WAL archiving item (``archive:<db>``) of ``respaldo status --json``'s run."""
    databases: list[dict[str, Any]] = run.json()["databases"]
    (item,) = [i for db in databases for i in db["items"] if i["check"] == "archive"]
    return dict(item)


def archive_verdict(run: Run) -> tuple[str, str]:
    """The level and the reason of :func:`archive_item`."""
    item = archive_item(run)
    return str(item["level"]), str(item["reason"])


@pytest.fixture
def restored_servers() -> Iterator[list[TempCluster]]:
    """Restored servers a test started; stopped (not removed) at the end of the test."""
    servers: list[TempCluster] = []
    yield servers
    for server in servers:
        try:
            server.stop("immediate")
        except Exception as exc:  # a failed stop must not hide the test's own result
            print(f"could not stop restored server in {server.datadir}: {exc}")


Mark = TypeVar("Mark")


def rows_around(
    archiving: Archiving, mark: Callable[[TempCluster], Mark]
) -> tuple[dict[str, Any], sql.Identifier, Mark]:
    """A new table (in ``shop``), a backup of it empty, rows 1 and 2 committed after it
    and their WAL archived, ``mark`` called on the server between the two commits: (the
    backup's record, the table, what ``mark`` returned). A restore to that mark has row 1
    alone."""
    pg = archiving.pg
    table = sql.Identifier(f"t_{uuid.uuid4().hex[:10]}")
    insert = sql.SQL("INSERT INTO {} VALUES (%s)").format(table)
    pg.execute(sql.SQL("CREATE TABLE {} (id int)").format(table), dbname=SHOP)
    record = archiving.backup()
    pg.execute(insert, (1,), dbname=SHOP)
    between = mark(pg)
    pg.execute(insert, (2,), dbname=SHOP)
    archiving.switch_and_archive()
    return record, table, between


def rows_around_an_instant(
    archiving: Archiving,
) -> tuple[dict[str, Any], sql.Identifier, datetime]:
    """:func:`rows_around` an instant between the two commits (the server's clock)."""
    return rows_around(archiving, lambda pg: pg.scalar("SELECT clock_timestamp()"))


@dataclass(frozen=True)
class MadridTarget:
    """A target time written with the summer offset in December, for a Madrid installation."""

    config: Path  # the archiving cluster's configuration, [schedules] time_zone = Europe/Madrid
    record: dict[str, Any]  # a backup of ``table`` while it was empty
    table: sql.Identifier  # rows 1 and 2 committed after the backup, and archived
    between: datetime  # after row 1's commit, before row 2's
    summer: datetime  # the same instant, written with +02:00 (Madrid is at +01:00 in December)


def madrid_summer_target(archiving: Archiving) -> MadridTarget:
    """A new table, a backup, rows 1 and 2 committed after it and their WAL archived; the
    instant between the two rows as a Madrid user with a summer-time habit would write it.
    Asserts that Madrid's offset at that instant is indeed +01:00 (the tests run in
    December; the warning they look for is only said when the offsets differ)."""
    config = archiving.base / f"madrid-{uuid.uuid4().hex[:8]}.toml"
    config.write_text(archiving.config.read_text() + '\n[schedules]\ntime_zone = "Europe/Madrid"\n')
    record, table, between = rows_around_an_instant(archiving)
    assert between.astimezone(ZoneInfo("Europe/Madrid")).utcoffset() == timedelta(hours=1)
    summer = between.astimezone(timezone(timedelta(hours=2)))
    return MadridTarget(config, record, table, between, summer)

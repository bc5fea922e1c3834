"""One respaldo installation for one fault scenario: config, repositories, sources, runs.

A :class:`World` is made fresh for every scenario in the test's ``tmp_path``: a SQLite
catalog, a primary repository ``local`` (a directory, a directory on a tiny tmpfs for the
full-disk scenarios, or an S3 bucket behind the fault proxy), a second repository
``offsite`` (a directory) for copies, the database ``erp`` (this test's copy of the sample
ERP, tiny scale) and the file set ``uploads`` (a few files of random bytes). Chunks and
packs are small, so that even this little data makes dozens of packs: a fault can strike
between two of them.

Every respaldo process of the scenario gets ``TMPDIR`` pointing at a directory of its own
(:attr:`World.tmpdir`), and this process's :mod:`tempfile` too: anything respaldo leaves in
its temporary directory (password files, spools, scratch directories) is found there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql
from sample.cluster import TempCluster
from tests.integration.cli import secret_file
from tests.integration.logical.support import databases
from tests.servers.faultproxy import FaultProxy

from respaldo.catalog import BackupRecord, BackupRecords, open_catalog
from respaldo.cli.main import invoke
from respaldo.config import Settings, load_settings
from respaldo.operations.repositories import open_repository
from respaldo.repository import KdfParams, Repository

PASSPHRASE = "fault scenarios (test passphrase)"
FAST_KDF = KdfParams(time_cost=1, memory_cost=8 * 1024, parallelism=1)
CHILD = Path(__file__).with_name("child.py")
ROOT = Path(__file__).parents[2]
PROCESS_TIMEOUT = 240.0


@dataclass(frozen=True)
class Run:
    """What one command did: exit status, stdout, stderr (and the fault point, if any)."""

    code: int
    out: str
    err: str
    mark: str = ""
    """The audit event the child acted on ("" when no fault was planted or reached)."""

    def json(self) -> Any:
        return json.loads(self.out)

    def __str__(self) -> str:
        return (
            f"exit {self.code} (fault at: {self.mark or '-'})\n--- stdout ---\n{self.out}"
            f"\n--- stderr ---\n{self.err}"
        )


@dataclass(frozen=True)
class Plant:
    """Where a child process is to be killed (or frozen): see tests/faults/child.py."""

    event: str
    match: str
    count: int = 1
    action: str = "kill"


@dataclass
class World:
    pg: TempCluster
    tmp: Path
    dbname: str
    config: Path
    capsys: pytest.CaptureFixture[str]
    tree: Path
    repo_dir: Path | None
    proxy: FaultProxy | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def tmpdir(self) -> Path:
        return self.tmp / "tmpdir"

    @property
    def offsite_dir(self) -> Path:
        return self.tmp / "offsite"

    @property
    def catalog_file(self) -> Path:
        return self.tmp / "catalog.db"

    # --- running respaldo ------------------------------------------------------------------

    def run(self, *args: str) -> Run:
        """``respaldo --config CONFIG ARGS`` in this process (output captured)."""
        self.capsys.readouterr()
        code = invoke(["--config", str(self.config), *args])
        out, err = self.capsys.readouterr()
        return Run(code, out, err)

    def ok(self, *args: str) -> Run:
        run = self.run(*args)
        assert run.code == 0, f"{args}: {run}"
        return run

    def env(self) -> dict[str, str]:
        return {**os.environ, "TMPDIR": str(self.tmpdir), "PYTHONPATH": str(ROOT)}

    def spawn(
        self,
        args: tuple[str, ...],
        plant: Plant | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> subprocess.Popen[str]:
        env = self.env() | (extra_env or {})
        if plant is not None:
            env |= {
                "FAULT_EVENT": plant.event,
                "FAULT_MATCH": plant.match,
                "FAULT_COUNT": str(plant.count),
                "FAULT_ACTION": plant.action,
                "FAULT_MARK": str(self.mark_file),
            }
        self.mark_file.unlink(missing_ok=True)
        return subprocess.Popen(
            [sys.executable, str(CHILD), "--config", str(self.config), *args],
            env=env,
            cwd=self.tmp,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    @property
    def mark_file(self) -> Path:
        return self.tmp / "fault.mark"

    def mark(self) -> str:
        try:
            return self.mark_file.read_text().strip()
        except FileNotFoundError:
            return ""

    def run_process(
        self, *args: str, plant: Plant | None = None, extra_env: dict[str, str] | None = None
    ) -> Run:
        """A real respaldo process, with ``plant`` (if any) set to strike inside it and
        ``extra_env`` added to its environment."""
        process = self.spawn(args, plant, extra_env)
        out, err = process.communicate(timeout=PROCESS_TIMEOUT)
        return Run(process.returncode, out, err, self.mark())

    @contextmanager
    def frozen(self, args: tuple[str, ...], plant: Plant) -> Iterator[subprocess.Popen[str]]:
        """A respaldo process stopped (SIGSTOP) at ``plant``; continued when the block ends."""
        process = self.spawn(args, Plant(plant.event, plant.match, plant.count, "stop"))
        try:
            wait_for(
                "the process to stop at its fault point",
                lambda: _stopped(process),
                process=process,
            )
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)

    # --- looking behind the CLI ----------------------------------------------------------

    def settings(self) -> Settings:
        return load_settings(self.config)

    def repository(self, name: str | None = None) -> Repository:
        return open_repository(self.settings(), name)

    def records(self) -> list[BackupRecord]:
        """Every catalog record, read without the start-up check of the CLI."""
        catalog = open_catalog(f"sqlite:///{self.catalog_file}")
        try:
            with catalog.begin() as session:
                return BackupRecords(session).list()
        finally:
            catalog.close()

    def completed(self) -> set[str]:
        return {r.id for r in self.records() if r.status == "completed"}

    def backup(self, source: str = "erp") -> str:
        run = self.ok("backup", source, "--json")
        record: dict[str, Any] = run.json()
        assert record["status"] == "completed", record
        return str(record["id"])

    def drop_database(self, name: str) -> None:
        self.pg.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )

    def databases(self) -> set[str]:
        return databases(self.pg)

    def restart_postgres(self) -> None:
        """``pg_ctl restart -m fast``: every session is terminated, the server comes back."""
        self.pg._run(
            [
                str(self.pg.bindir / "pg_ctl"),
                f"--pgdata={self.pg.datadir}",
                f"--log={self.pg.logfile}",
                "--mode=fast",
                "--wait",
                "--timeout=60",
                "restart",
            ],
            what="pg_ctl restart",
        )


def _stopped(process: subprocess.Popen[str]) -> bool:
    try:
        stat = Path(f"/proc/{process.pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # The state is the field after the parenthesised command name.
    return stat.rsplit(")", 1)[1].split()[0] == "T"


def wait_for(
    what: str,
    check: Callable[[], bool],
    *,
    process: subprocess.Popen[str] | None = None,
    timeout: float = 120,
) -> None:
    """Poll ``check`` until it holds; fail early if ``process`` exits meanwhile.

    The timeout only bounds a hang: on a loaded machine polls are late, never wrong.
    """
    deadline = time.monotonic() + timeout
    while not check():
        if process is not None and process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(
                f"the process exited ({process.returncode}) before {what}:\n{out}\n{err}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def write_tree(tree: Path) -> None:
    """The file set: a few files of random bytes, large enough to span several chunks."""
    for rel, size in (("a/big.bin", 200_000), ("a/b/mid.bin", 120_000), ("c.bin", 90_000)):
        path = tree / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
    (tree / "notes.txt").write_text("hola\n" * 500)


def write_config(
    tmp: Path, pg: TempCluster, dbname: str, tree: Path, primary: str, extra: str = ""
) -> Path:
    password_file = secret_file(tmp / "erp.pass", pg.password.get_secret_value())
    passphrase_file = secret_file(tmp / "passphrase", PASSPHRASE)
    dsn = f"postgresql://{pg.superuser}@{pg.host}:{pg.port}/{dbname}"
    text = f"""
cache_dir = "{tmp / "cache"}"
passphrase_file = "{passphrase_file}"
pack_size = 65536
workers = 2

[catalog]
url = "sqlite:///{tmp / "catalog.db"}"

[chunker]
min_size = 512
avg_size = 2048
max_size = 8192

[locks]
wait_seconds = 0

{primary}

[[repositories]]
name = "offsite"
url = "file://{tmp / "offsite"}"

[[databases]]
name = "erp"
dsn = "{dsn}"
password_file = "{password_file}"

[[file_sets]]
name = "uploads"
paths = ["{tree}"]
{extra}
"""
    path = tmp / "respaldo.toml"
    path.write_text(text)
    return path


def make_tmpfs(path: Path, size: str) -> None:
    """Mount a tmpfs of ``size`` on ``path`` (a real full disk; needs root)."""
    path.mkdir(parents=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"cannot mount a tmpfs for the full-disk scenario: {done.stderr}"


def unmount(path: Path) -> None:
    subprocess.run(["umount", "--lazy", str(path)], capture_output=True, check=False)


def use_tmpdir(monkeypatch: pytest.MonkeyPatch, tmpdir: Path) -> None:
    """Point this process's tempfile (for in-process runs) and its children at ``tmpdir``."""
    tmpdir.mkdir(exist_ok=True)
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))

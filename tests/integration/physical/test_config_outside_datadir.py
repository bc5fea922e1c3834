"""A server that keeps its configuration outside its data directory, as Debian's and
Ubuntu's packages do (``/etc/postgresql/<major>/<cluster>``): its base backup holds no
``postgresql.conf`` nor ``pg_hba.conf``, and PostgreSQL refused to start the restored
copy ("could not access the server configuration file"), so neither ``restore --start``
nor the restore test of such a backup ever worked. The restore writes a minimal
configuration instead, and says so.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import pytest
from sample.cluster import TempCluster

from respaldo.operations.context import Context
from respaldo.operations.drill import run_drill
from tests.integration.physical.conftest import (
    OS_USER,
    Archiving,
    archiving_cluster,
    chown_tree,
)

pytestmark = pytest.mark.integration

MOVED = ("postgresql.conf", "pg_hba.conf", "pg_ident.conf", "respaldo_test.conf")


@pytest.fixture
def packaged(capsys: pytest.CaptureFixture[str]) -> Iterator[Archiving]:
    """An archiving cluster restarted with its configuration files in ``base/etc``."""
    with archiving_cluster(None) as archiving:
        archiving.capsys = capsys
        pg = archiving.pg
        pg.stop("fast")
        etc = archiving.base / "etc"
        etc.mkdir()
        for name in MOVED:
            shutil.move(pg.datadir / name, etc / name)
        with (etc / "postgresql.conf").open("a") as conf:
            conf.write(f"hba_file = '{etc}/pg_hba.conf'\nident_file = '{etc}/pg_ident.conf'\n")
        chown_tree(etc)
        # The port and socket stay those of respaldo_test.conf, which the config names.
        started = subprocess.run(
            ["runuser", "-u", OS_USER, "--", str(pg.bindir / "pg_ctl"), "-D", str(pg.datadir),
             "-l", str(pg.logfile), "-w", "-o", f"-c config_file={etc}/postgresql.conf", "start"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert started.returncode == 0, started.stdout + started.stderr
        yield archiving


def test_a_backup_of_a_server_configured_outside_its_datadir_restores_and_drills(
    packaged: Archiving, restored_servers: list[TempCluster]
) -> None:
    record = packaged.backup()
    restored, datadir, run = packaged.restore_started(record["id"], restored_servers)
    assert "the backup holds no postgresql.conf" in run.err, str(run)
    # Reached over loopback with the role's password, as the drill's checks connect.
    assert restored.scalar("SELECT pg_is_in_recovery()") is False
    hosts = [line.split()[3] for line in (datadir / "pg_hba.conf").read_text().splitlines()
             if line.startswith("host")]  # fmt: skip
    assert hosts == ["127.0.0.1/32", "::1/128"]
    with Context.open(packaged.settings()) as ctx:
        result = run_drill(ctx, record["id"], respaldo_command=packaged.respaldo_command)
    assert result.passed, result.checks

"""One repository, three writers: root's CLI, the service's user and the server's
``archive_command``. A physical backup run as root into a fresh repository (it records
the cluster in ``clusters/`` before any WAL push did) used to leave ``clusters/`` owned by
root, 0700, and every later push by ``postgres`` failed. respaldo as root now writes as
the owner of the repository's root directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import sql
from sample.cluster import TempCluster

from respaldo.config import load_settings
from respaldo.operations.initialize import initialize
from tests.integration.physical.conftest import (
    FAST_KDF,
    SHOP,
    Archiving,
    chown_tree,
    server_respaldo,
    write_config,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="the case is root and the server's user"),
]


@pytest.fixture
def fresh(capsys: pytest.CaptureFixture[str]) -> Iterator[Archiving]:
    """A cluster archiving into a repository that its user owns and nobody pushed to yet."""
    base = Path(tempfile.mkdtemp(prefix="respaldo-owner-"))
    cluster: TempCluster | None = None
    try:
        command = server_respaldo()
        config = base / "respaldo.toml"
        cluster = TempCluster.create(
            settings={
                "archive_mode": "on",
                "archive_command": f"{command} --config {config} wal-push %p",
            }
        )
        write_config(base, cluster)
        (base / "repo").mkdir()
        chown_tree(base)  # the config, the secrets and the repository's root: the server's
        # init as root, after the handover: what it writes is the owner's too.
        initialize(load_settings(config), kdf=FAST_KDF)
        cluster.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(SHOP)))
        yield Archiving(cluster, base, config, command, capsys)
    finally:
        if cluster is not None:
            cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)


def test_a_backup_as_root_then_wal_push_as_the_server_both_succeed(fresh: Archiving) -> None:
    assert not (fresh.repo_dir / "clusters").exists()  # nobody recorded the cluster yet
    record = fresh.backup()  # as root, in this process: it writes clusters/erp
    assert record["status"] == "completed"
    owner = (fresh.repo_dir / "clusters").stat()
    assert owner.st_uid == fresh.repo_dir.stat().st_uid != 0
    # The server's archive_command, as postgres, into what root wrote first.
    fresh.switch_and_archive()
    (row,) = fresh.pg.query("SELECT failed_count FROM pg_stat_archiver")
    assert row == (0,)
    check = fresh.run("check", "erp")
    assert check.code == 0, str(check)
    for path in (fresh.repo_dir).rglob("*"):
        assert path.stat().st_uid != 0, f"{path} is owned by root"

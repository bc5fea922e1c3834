"""Two servers whose ``wal-push --async`` share a spool (one config for both, its
default spool or the same ``--spool``): each archive command takes only its own
server's verdicts.

Before, a verdict was ``<spool>/<file>.ok`` whoever's file it was: the pusher of one
server pushes up to 32 files ahead of its archiver, and the other server's archive
command for a segment of the same name (two clusters at similar WAL positions share
them) found that ``.ok``, told its server "archived", and the server recycled a segment
that was never stored: a gap in its archive that nothing reported.
"""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest
from sample.cluster import TempCluster

from respaldo.operations.wal import open_wal_repository
from respaldo.repository.wal import list_wal
from tests.integration.physical.conftest import OS_USER, Archiving, chown_tree
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def _switch(cluster: TempCluster, times: int) -> list[str]:
    cluster.execute("CREATE TABLE IF NOT EXISTS filler (v text)")
    segments = []
    for _ in range(times):
        cluster.execute("INSERT INTO filler SELECT repeat('x', 100) FROM generate_series(1, 100)")
        segments.append(str(cluster.scalar("SELECT pg_walfile_name(pg_switch_wal())")))
    return segments


def test_servers_sharing_a_spool_take_only_their_own_verdicts(archiving: Archiving) -> None:
    spool = archiving.base / f"spool-shared-{uuid.uuid4().hex[:8]}"
    config = archiving.base / "two-servers.toml"
    text = archiving.config.read_text()
    block = text[text.index("[[databases]]") :]
    config.write_text(
        text.replace('name = "erp"', 'name = "erp_a"')
        + "\n"
        + block.replace('name = "erp"', 'name = "erp_b"')
    )
    chown_tree(config)

    def command(database: str) -> list[str]:
        return [
            archiving.respaldo_command, "--config", str(config), "wal-push", "--async",
            "--spool", str(spool), "--database", database,
        ]  # fmt: skip

    settings = archiving.settings()
    # Server A's archiver is held back (its command fails) while its pusher, started by
    # one archive command run by hand as its server would, pushes every file it finds
    # waiting in A's queue, ahead of an archiver that does not ask for them.
    a = TempCluster.create(settings={"archive_mode": "on", "archive_command": "/bin/false"})
    b: TempCluster | None = None
    try:
        a_id = str(a.scalar("SELECT system_identifier FROM pg_control_system()"))
        a_segments = _switch(a, 5)
        prefix = ["runuser", "-u", OS_USER, "--"] if os.geteuid() == 0 else []
        first = str(a.datadir / "pg_wal" / a_segments[0])
        done = subprocess.run(
            [*prefix, *command("erp_a"), first],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr

        def a_pushed() -> bool:
            archived = list_wal(open_wal_repository(settings), a_id)
            return all(f"wal/{a_id}/00000001/{s}" in archived for s in a_segments)

        wait_for("server A's pusher to push its waiting segments", a_pushed)

        command_b = " ".join([*command("erp_b"), "%p"])
        b = TempCluster.create(settings={"archive_mode": "on", "archive_command": command_b})
        b_id = str(b.scalar("SELECT system_identifier FROM pg_control_system()"))
        b_segments = _switch(b, 3)
        # The point of the test: B's segments bear names A's pusher has verdicts for.
        assert set(b_segments[1:]) <= set(a_segments[1:]), (a_segments, b_segments)

        def b_archived() -> bool:
            assert b is not None
            last = b.scalar("SELECT last_archived_wal FROM pg_stat_archiver")
            return last is not None and str(last) >= b_segments[-1]

        wait_for("server B to archive its segments", b_archived)
        archived = list_wal(open_wal_repository(settings), b_id)
        missing = [s for s in b_segments if f"wal/{b_id}/00000001/{s}" not in archived]
        assert not missing, f"server B was told these were archived: {missing}"
    finally:
        a.destroy()
        if b is not None:
            b.destroy()

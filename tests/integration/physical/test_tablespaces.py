"""A tablespace created after a physical backup: recovery past it must not write into
the directory the original server's tablespace is in.

Replaying ``CREATE TABLESPACE`` links the restored server to the location the record
names, an absolute path; PostgreSQL does not check in recovery that it is unused. On the
machine of the original server (a restore test, a restore next to production), the copy
wrote its rows into the original's table files. ``wal-fetch`` refuses such a segment.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import pytest
from psycopg import sql
from sample.cluster import TempCluster

from tests.integration.physical.conftest import SHOP, Archiving, chown_tree, free_port

pytestmark = pytest.mark.integration


def _files(directory: Path) -> dict[str, tuple[int, int]]:
    found = {}
    for dirpath, _dirs, names in os.walk(directory):
        for name in names:
            stat = Path(dirpath, name).stat()
            found[os.path.relpath(Path(dirpath, name), directory)] = (
                stat.st_size,
                stat.st_mtime_ns,
            )
    return found


def test_recovery_past_a_tablespace_in_use_here_stops_before_writing_into_it(
    archiving: Archiving, restored_servers: list[TempCluster]
) -> None:
    pg = archiving.pg
    record = archiving.backup()
    location = Path(tempfile.mkdtemp(prefix="tablespace-", dir=archiving.base))
    chown_tree(location)
    space = sql.Identifier(f"ts_{uuid.uuid4().hex[:8]}")
    table = sql.Identifier(f"t_{uuid.uuid4().hex[:8]}")
    pg.execute(
        sql.SQL("CREATE TABLESPACE {} LOCATION {}").format(space, sql.Literal(str(location)))
    )
    try:
        pg.execute(
            sql.SQL("CREATE TABLE {} (id int) TABLESPACE {}").format(table, space), dbname=SHOP
        )
        pg.execute(
            sql.SQL("INSERT INTO {} SELECT generate_series(1, 1000)").format(table), dbname=SHOP
        )
        pg.execute("CHECKPOINT")
        archiving.switch_and_archive()
        before = _files(location)
        datadir, port = archiving.new_datadir(), free_port()
        run = archiving.run(
            "restore", record["id"], "--target-datadir", str(datadir),
            "--start", "--port", str(port),
        )  # fmt: skip
        if run.code == 0:  # stopped at the end of the test, not left running
            restored_servers.append(archiving.restored(datadir, port))
        assert run.code == 1, str(run)
        first = run.err.splitlines()[0]
        assert "creates a tablespace in a directory that is in use" in first, run.err
        assert f"creates a tablespace (CREATE TABLESPACE) in {location}" in run.err
        assert "recover to a target before the tablespace was created" in run.err  # the hint
        assert not (datadir / "postmaster.pid").exists()
        # Nothing of the original's tablespace was touched, and no link leads there.
        assert _files(location) == before
        assert list((datadir / "pg_tblspc").iterdir()) == []
        # A backup of the cluster as it is now is refused, saying why.
        run = archiving.run("backup", "erp", "--type", "incremental")
        assert run.code == 1, str(run)
        assert "tablespaces are not supported" in run.err
    finally:
        pg.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table), dbname=SHOP)
        pg.execute(sql.SQL("DROP TABLESPACE {}").format(space))

"""Incremental physical backups (PostgreSQL 17+, ``summarize_wal = on``): the server sends
only the changed blocks, the restore combines the chain with pg_combinebackup, and the
restored cluster holds the same data; retention keeps a kept backup's chain.

The PostgreSQL 18 archiving cluster of this suite summarizes WAL
(tests/integration/majors.py); the system's (15) cannot, and takes full backups.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sample.cluster import TempCluster
from sample.day_of_work import day_of_work

from respaldo.operations.context import Context
from respaldo.operations.prune import plan
from respaldo.operations.repositories import open_repository
from tests.integration.logical.support import table_checksums
from tests.integration.majors import ON_PG18
from tests.integration.physical.conftest import SEED, SHOP, Archiving, free_port

pytestmark = pytest.mark.integration


@ON_PG18
def test_an_incremental_backup_restores_through_its_chain(
    archiving: Archiving, restored_servers: list[TempCluster]
) -> None:
    pg = archiving.pg
    first = archiving.backup()
    day_of_work(pg.conninfo_kwargs(SHOP), SEED, 1)
    expected = table_checksums(pg, SHOP)
    second = archiving.backup()
    repo = open_repository(archiving.settings())
    meta = repo.load_manifest(second["id"]).meta
    assert meta["backup_method"] == "incremental", meta.get("full_reason")
    assert meta["incremental_of"] == first["id"]
    assert meta["chain"][-1] == first["id"]
    # Only the changed blocks came from the server: far less than the first backup's
    # files (the WAL segments, 64 MiB each on this cluster, come whole either way).
    root = repo.load_manifest(meta["chain"][0]).meta
    assert root["backup_method"] == "full"
    full_files = root["file_bytes"]
    assert meta["file_bytes"] < full_files / 2, (meta["file_bytes"], full_files)

    datadir = archiving.new_datadir()
    port = free_port()
    run = archiving.run(
        "restore",
        second["id"],
        "--target-datadir",
        str(datadir),
        "--immediate",
        "--start",
        "--port",
        str(port),
    )
    assert run.code == 0, str(run)
    restored = archiving.restored(datadir, port)
    restored_servers.append(restored)
    assert table_checksums(restored, SHOP) == expected
    assert not (datadir / ".respaldo-combine").exists()

    # Retention keeps the chain of the backup it keeps.
    ctx = Context.open(archiving.settings())
    try:
        decisions = {d.backup.id: d for d in plan(ctx, now=datetime.now(UTC)).decisions}
    finally:
        ctx.close()
    for parent in meta["chain"]:
        assert decisions[parent].keep, decisions[parent].rule


def test_before_postgresql_17_every_physical_backup_is_full(archiving: Archiving) -> None:
    archiving.backup()
    record = archiving.backup()
    meta = open_repository(archiving.settings()).load_manifest(record["id"]).meta
    assert meta["backup_method"] == "full"
    assert "has no incremental backups (17+)" in meta["full_reason"]
    assert "chain" not in meta

"""A physical restore of an incremental backup while a real prune, in its own process,
expires the backup's chain by its rules: the restore's running job keeps the backup and
its chain ('being restored', 'parent of kept'), the restored server holds the backup's
data, and the next prune, once the restore is over, expires them."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
from sample.cluster import TempCluster
from sample.day_of_work import day_of_work

from respaldo.catalog.backups import BackupRecords
from respaldo.operations.context import Context
from tests.integration.logical.support import table_checksums
from tests.integration.majors import ON_PG18
from tests.integration.physical.conftest import SEED, SHOP, Archiving
from tests.manifest_hook import after_manifest_read

pytestmark = pytest.mark.integration


def _prune(config: Path) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("respaldo")
    return subprocess.run(
        [str(script), "--config", str(config), "prune", "--wait", "0"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@ON_PG18
@pytest.mark.parametrize("after", ["own", "parent"])
def test_an_incremental_restore_keeps_its_chain_from_a_prune_meanwhile(
    archiving: Archiving,
    restored_servers: list[TempCluster],
    after: str,
) -> None:
    # A chain (a full one, or the suite's last one, then an incremental one), the
    # incremental one then found damaged by a verify, so the next
    # backup starts a new chain: the rules (the newest only) expire the old one.
    full = archiving.backup()
    day_of_work(archiving.pg.conninfo_kwargs(SHOP), SEED, 1)
    expected = table_checksums(archiving.pg, SHOP)
    incremental = archiving.backup()
    ctx = Context.open(archiving.settings())
    try:
        with ctx.catalog.begin() as session:
            records = BackupRecords(session)
            assert records.get(incremental["id"]).parent_id == full["id"]
            records.set_verified(
                incremental["id"], datetime.now(UTC), verified=False, problem="test"
            )
        newest = archiving.backup()
        with ctx.catalog.begin() as session:
            assert BackupRecords(session).get(newest["id"]).parent_id is None
    finally:
        ctx.close()
    # Beside the suite's (the restored server's respaldo reads it as its own user).
    config = archiving.base / f"retention-{after}.toml"
    config.write_text(
        archiving.config.read_text()
        + "\n[retention]\nkeep_until_expires = false\nkeep_last = 1\nmin_keep = 1\n"
    )
    config.chmod(0o644)
    respaldo = replace(archiving, config=config)
    # The restore loads its own manifest, then its chain's: the prune runs after one
    # or the other (before, after its own: the parent was gone when its turn came).
    hook = incremental["id"] if after == "own" else full["id"]
    with after_manifest_read(hook, partial(_prune, config)) as pruned:
        restored, _datadir, _run = respaldo.restore_started(incremental["id"], restored_servers)

    assert len(pruned) == 1
    out = pruned[0].stdout + pruned[0].stderr
    # Before, both were deleted: after its own manifest, the restore then failed ("is
    # incremental on backup ..., which is gone"); after the parent's, it restored, and
    # the backup restored and its chain were gone. (Other tests' backups in the
    # session's repository are the prune's to delete: no count is asserted.)
    assert "being restored" in out and "parent of kept" in out, out
    assert table_checksums(restored, SHOP) == expected
    ids = {p.name for p in (archiving.repo_dir / "manifests").iterdir()}
    assert {full["id"], incremental["id"], newest["id"]} <= ids
    # Once the restore is over, the rules have their way.
    again = _prune(config)
    assert again.returncode == 0, again.stdout + again.stderr
    ids = {p.name for p in (archiving.repo_dir / "manifests").iterdir()}
    assert not {full["id"], incremental["id"]} & ids

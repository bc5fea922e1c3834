"""``verify --all`` while a prune deletes backups: the backups it deleted are no longer
the repository's, and the others are still verified."""

from __future__ import annotations

import pytest

from respaldo.operations.context import Context
from respaldo.operations.verify import verify
from tests.integration.logical.conftest import Respaldo

pytestmark = pytest.mark.integration


def test_verify_all_skips_the_backups_a_prune_deletes_while_it_reads(
    respaldo: Respaldo,
) -> None:
    with respaldo.config.open("a") as fh:
        fh.write("\n[retention]\nkeep_until_expires = false\nkeep_last = 1\nmin_keep = 1\n")
    first, second, newest = (respaldo.backup()["id"] for _ in range(3))
    pruned: list[int] = []

    def prune_once(_bytes: int) -> None:
        # As verify reads the oldest backup (the other manifests listed already), a real
        # prune, in its own process, deletes the two older ones. Its collection then
        # finds verify's lease and gives up at once (--wait 0), as it would have waited.
        if not pruned:
            run = respaldo.run_process("prune", "--wait", "0")
            pruned.append(run.code)
            assert "2 backups deleted" in run.err, str(run)

    ctx = Context.open(respaldo.settings())
    try:
        result = verify(ctx, everything=True, advance=prune_once)
    finally:
        ctx.close()

    assert pruned == [1]  # its collection was held off by verify's lease
    manifests = {p.name for p in (respaldo.repo_dir / "manifests").iterdir()}
    assert manifests == {newest}, (first, second)
    # The oldest was read whole (its manifest was loaded before the prune), the second
    # was gone when its turn came, and the newest was verified: before, verify stopped
    # at the second with "no backup ... in file://..." and verified nothing more.
    assert result.ok, result.problems
    assert result.backups == 2
    # The prune finishes its work once verify is done, and what is left is whole.
    assert respaldo.run("prune").code == 0
    run = respaldo.run("verify", "--all")
    assert run.code == 0, str(run)

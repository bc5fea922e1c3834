"""``prune`` sent SIGTERM (``systemctl stop``, ``timeout``) between deleting a backup's
manifest and its catalog record (``terminated_prune.py`` sends it at that point).

Before, the KeyboardInterrupt cut the two apart: the record stayed ``completed`` with no
manifest behind it, ``list`` showed it as a good backup and ``verify --all`` exited 3
calling it lost, until the next prune. The two steps are now
shielded (:func:`respaldo.cancellation.shielded`): the interrupt is raised once the
record is deleted too.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sample.cluster import TempCluster

from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import script_child

pytestmark = pytest.mark.integration

TERMINATED = Path(__file__).with_name("terminated_prune.py")


def test_a_prune_terminated_between_a_manifest_and_its_record(
    respaldo: Respaldo, pg: TempCluster
) -> None:
    text = respaldo.config.read_text()
    keep_one = "[retention]\nkeep_until_expires = false\nkeep_last = 1\nmin_keep = 1\n\n"
    respaldo.config.write_text(text.replace("[catalog]", keep_one + "[catalog]", 1))
    ids = [respaldo.backup()["id"] for _ in range(3)]

    with script_child(TERMINATED, "--config", str(respaldo.config), "prune") as child:
        out, err = child.communicate(timeout=120)
    assert child.returncode == 143, err
    assert "terminated after deleting manifests/" in out, out
    assert err.splitlines()[-1] == "respaldo: terminated (SIGTERM)", err
    (job,) = [j for j in respaldo.run("jobs", "--json").json() if j["kind"] == "prune"]
    assert (job["status"], job["error"]) == ("cancelled", "terminated by SIGTERM")

    # Catalog and repository agree: every backup listed completed has its manifest.
    completed = {r.id for r in respaldo.records() if r.status == "completed"}
    assert completed == set(respaldo.repository().backup_ids())
    assert ids[-1] in completed
    run = respaldo.run("verify", "--all")
    assert run.code == 0, str(run)

    # The next prune finishes the work.
    run = respaldo.run("prune")
    assert run.code == 0, str(run)
    assert {r.id for r in respaldo.records()} == {ids[-1]}
    assert respaldo.repository().backup_ids() == [ids[-1]]
    assert respaldo.run("verify", "--all").code == 0

"""A physical backup sent SIGTERM once its manifest is stored completes, exit 0.

The physical kind writes its manifest through the same ``BackupWriter.commit`` as the
others (see tests/integration/logical/test_backup_terminated.py): before, it exited 143,
its job cancelled and its record failed while the manifest stood.
"""

from __future__ import annotations

import pytest

from tests.integration.logical.support import script_child
from tests.integration.logical.test_backup_terminated import TERMINATED
from tests.integration.physical.conftest import Archiving

pytestmark = pytest.mark.integration


def test_a_physical_backup_signalled_after_its_manifest_completes(archiving: Archiving) -> None:
    argv = ["repo/manifests/", "1", "--config", str(archiving.config)]
    with script_child(TERMINATED, *argv, "backup", "erp", "--type", "incremental") as child:
        out, err = child.communicate(timeout=300)
    assert "terminated after writing" in out, (out, err)
    assert child.returncode == 0, err
    backup_id = out.splitlines()[-1]
    said = " ".join(err.split())
    assert f"completed before the signal took effect (terminated by SIGTERM): {backup_id}" in said
    listed = archiving.run("list", "--json")
    (record,) = [r for r in listed.json() if r["id"] == backup_id]
    assert record["status"] == "completed", record
    jobs = [j for j in archiving.run("jobs", "--json").json() if j.get("resultId") == backup_id]
    assert [j["status"] for j in jobs] == ["completed"], jobs
    run = archiving.run("verify", backup_id)
    assert run.code == 0, str(run)

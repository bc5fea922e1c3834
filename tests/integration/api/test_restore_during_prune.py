"""A restore started from the API (run by the app's workers, as under ``respaldo
serve``) keeps the backup it reads from a prune run meanwhile, as one from the CLI does."""

from __future__ import annotations

from functools import partial

import pytest
from fastapi.testclient import TestClient

from tests.integration.api.conftest import finished
from tests.integration.logical.conftest import Respaldo
from tests.manifest_hook import after_manifest_read

pytestmark = pytest.mark.integration


def test_a_restore_job_of_the_api_keeps_its_backup_from_a_prune_meanwhile(
    api: TestClient, respaldo: Respaldo
) -> None:
    with respaldo.config.open("a") as fh:
        fh.write("\n[retention]\nkeep_until_expires = false\nkeep_last = 1\nmin_keep = 1\n")
    older, newest = (respaldo.backup()["id"] for _ in range(2))
    # In the worker's thread, the restore has read the manifest: a real prune, in its
    # own process, decides.
    with after_manifest_read(
        older, partial(respaldo.run_process, "prune", "--wait", "0")
    ) as pruned:
        started = api.post(f"/admin/backups/{older}/restore")
        assert started.status_code == 202, started.text
        job = finished(api, started.json()["jobId"])

    assert job["status"] == "completed", job
    assert len(pruned) == 1
    # Before the restore's job counted: "1 backups deleted", the backup just restored
    # gone.
    assert "0 backups deleted, 2 kept" in pruned[0].err, str(pruned[0])
    assert "being restored" in pruned[0].out, str(pruned[0])
    assert {r.id for r in respaldo.records()} == {older, newest}
    assert respaldo.run("prune").code == 0
    assert [r.id for r in respaldo.records()] == [newest]

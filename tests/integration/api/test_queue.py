"""With a PostgreSQL catalog, what the API starts goes to the queue and a ``respaldo
worker`` process runs it (test_workers' site: the catalog a database of the test
cluster); the answer still comes at once, with the pending record and the job."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from respaldo.cli.main import invoke
from respaldo.config import load_settings
from respaldo.domain import JobKind, Role
from respaldo.operations.jobs import cli_request, run_now
from respaldo.operations.snapshot import backup_source
from tests.integration.api.conftest import client
from tests.integration.logical.test_workers import Site, site  # noqa: F401
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def ended(api: TestClient, job_id: int) -> dict[str, Any] | None:
    job: dict[str, Any] = api.get(f"/admin/jobs/{job_id}").json()
    return job if job["status"] not in ("queued", "running") else None


def test_a_backup_and_a_restore_started_by_the_api_run_on_a_worker(site: Site) -> None:  # noqa: F811
    worker = site.worker("w1")
    with client(load_settings(site.config), Role.ADMIN, "erp-page") as api:
        created = api.post("/admin/backups", json={"type": "full", "database": "erp2"})
        assert created.status_code == 202, created.text
        record = created.json()
        assert record["status"] == "pending"
        wait_for("the backup", lambda: ended(api, record["jobId"]) is not None)
        job = ended(api, record["jobId"])
        assert job is not None
        assert (job["status"], job["queueName"], job["resultId"]) == (
            "completed",
            "default",
            record["id"],
        ), job
        assert job["workerPid"] == worker.pid
        (listed,) = api.get("/admin/backups", params={"database": "erp2"}).json()
        assert (listed["id"], listed["status"]) == (record["id"], "completed")

        restore = api.post(f"/admin/backups/{record['id']}/restore")
        assert restore.status_code == 202, restore.text
        wait_for("the restore", lambda: ended(api, restore.json()["jobId"]) is not None)
        done = ended(api, restore.json()["jobId"])
        assert done is not None and done["status"] == "completed", done
        assert done["workerPid"] == worker.pid


def run_cli(site: Site, *args: str) -> tuple[int, str, str]:  # noqa: F811
    """``respaldo ARGS`` with the site's config, run to its end in this process (the CLI's
    own entry, as ``Respaldo.run``): its exit status, stdout and stderr. A process of its
    own cost 3-10 s of Python start-up and imports each on a loaded machine, five times
    in this file; what these tests guard is the prune and the restore, not the start-up
    (test_workers starts real ``respaldo`` processes)."""
    capsys = site.respaldo.capsys
    capsys.readouterr()
    code = invoke(["--config", str(site.config), *args])
    out, err = capsys.readouterr()
    return code, out, err


def _backups_of_which_prune_keeps_one(site: Site, count: int) -> list[str]:  # noqa: F811
    """``count`` backups of erp2, oldest first, under a retention that expires all but the
    newest, unless something (a queued restore) keeps one."""
    with site.config.open("a") as fh:
        fh.write("\n[retention]\nkeep_until_expires = false\nkeep_last = 1\nmin_keep = 1\n")
    ids = []
    # Made as ``respaldo backup erp2`` makes them (run_now: a job record, run here), but in
    # this process: each command's own process cost 3-10 s of Python start-up and imports
    # on a loaded machine, and what these tests guard is the prune and the restore.
    with site.context() as ctx:
        for _ in range(count):
            result = run_now(
                ctx,
                cli_request(JobKind.BACKUP, "erp2", {"type": None}),
                lambda job_ctx: backup_source(job_ctx, "erp2", None),
                result_id=lambda done: done.view.id,
            )
            assert result.view.status == "completed", result.view
            ids.append(result.view.id)
    return ids


def test_a_queued_restore_keeps_its_backup_from_a_prune(site: Site) -> None:  # noqa: F811
    """A restore asked for through the API waits in the queue until a worker is free; a
    prune meanwhile deleted its backup ('1 backups deleted'), and the restore, once a
    worker took it, failed: 'no backup ... in file:///...'. Now the queued restore keeps
    it, as a running one does, and the restore then completes; with no queued restore
    left, the next prune expires it. A restore whose backup was deleted all the same (by
    hand, here; or a prune between its last look and the deletion) fails saying so,
    with nothing created (the CLI's restore, here)."""
    older, middle, newest = _backups_of_which_prune_keeps_one(site, 3)
    with client(load_settings(site.config), Role.ADMIN, "erp-page") as api:
        queued = api.post(f"/admin/backups/{older}/restore")
        assert queued.status_code == 202, queued.text
        job_id = queued.json()["jobId"]
        assert api.get(f"/admin/jobs/{job_id}").json()["status"] == "queued"

        code, out, err = run_cli(site, "prune", "--wait", "0")
        assert code == 0, err
        assert "1 backup deleted, 2 kept" in err, out + err
        row = next(line for line in out.splitlines() if older in line)
        assert "keep" in row and "being restored" in row, out
        assert middle not in {r["id"] for r in api.get("/admin/backups").json()}
        # And a deletion by hand is refused while the restore waits (deletion.py reads
        # the same queue).
        refused = api.delete(f"/admin/backups/{older}")
        assert refused.status_code == 409, refused.text

        site.worker("w1")
        wait_for("the restore", lambda: ended(api, job_id) is not None)
        done = ended(api, job_id)
        assert done is not None and done["status"] == "completed", done
        restored = done["target"]
        assert (
            site.pg.scalar("SELECT count(*) FROM pg_database WHERE datname = %s", (restored,)) == 1
        )

        code, out, err = run_cli(site, "prune", "--wait", "0")
        assert code == 0, err
        assert "1 backup deleted, 1 kept" in err, out + err
        assert {r["id"] for r in api.get("/admin/backups").json()} == {newest}

    # The restore of a backup gone meanwhile, however it went, says why.
    code, out, err = run_cli(site, "restore", older, "--target-database", "never_made")
    said = " ".join(err.split())
    assert code != 0 and "Traceback" not in err, out + err
    assert f"no backup {older} in file://" in said
    assert "and the catalog does not list it either: it was deleted after it" in said
    assert "nothing was changed" in said and "'respaldo list'" in said
    assert site.pg.scalar("SELECT count(*) FROM pg_database WHERE datname = 'never_made'") == 0


def test_a_restore_left_queued_with_no_worker_expires_and_frees_its_backup(
    site: Site,  # noqa: F811
) -> None:
    """A restore queued through the API while no worker takes its queue (the worker
    machine gone) waited, and kept its backup and chain from every prune, for ever; and
    it would have started by surprise whenever a worker came back. Once it has waited
    longer than [queue] expire_hours with no live worker for its queue, whatever opens
    the catalog first fails it as expired (and alerts): the next prune expires the
    backup, and a worker started later runs nothing."""
    older, newest = _backups_of_which_prune_keeps_one(site, 2)
    with client(load_settings(site.config), Role.ADMIN, "erp-page") as api:
        queued = api.post(f"/admin/backups/{older}/restore")
        assert queued.status_code == 202, queued.text
        job_id = queued.json()["jobId"]

        # Within [queue] expire_hours (24) it still keeps its backup.
        code, out, err = run_cli(site, "prune", "--wait", "0")
        assert code == 0 and "0 backups deleted, 2 kept" in err, out + err
        assert api.get(f"/admin/jobs/{job_id}").json()["status"] == "queued"

        # A day and an hour later (by the catalog's clock, which judges it).
        site.pg.execute(
            "UPDATE jobs SET created_at = created_at - interval '25 hours' WHERE id = %s",
            (job_id,),
            dbname=site.catalog,
        )
        code, out, err = run_cli(site, "prune", "--wait", "0")
        assert code == 0, err
        assert "1 backup deleted, 1 kept" in err, out + err
        job = api.get(f"/admin/jobs/{job_id}").json()
        assert job["status"] == "failed", job
        said = job["error"]
        assert said.startswith("expired: waited in queue 'default' since "), said
        assert "more than [queue] expire_hours = 24, and no live worker takes that" in said
        assert {r["id"] for r in api.get("/admin/backups").json()} == {newest}
        assert not [j for j in site.jobs() if j.kind.value == "restore" and j.id != job_id]

        # A worker that comes back takes the queue's entries in order: the expired
        # restore's, which runs nothing, then a backup's queued after it.
        site.worker("w1")
        created = api.post("/admin/backups", json={"type": "full", "database": "erp2"})
        assert created.status_code == 202, created.text
        wait_for("the backup", lambda: ended(api, created.json()["jobId"]) is not None)
        assert api.get(f"/admin/jobs/{job_id}").json()["status"] == "failed"
    restored = job["target"]
    assert site.pg.scalar("SELECT count(*) FROM pg_database WHERE datname = %s", (restored,)) == 0

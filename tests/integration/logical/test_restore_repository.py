"""``restore --repository NAME``: read the backup from that repository, and from no other.

Without it a restore reads the primary and takes what the primary lacks or holds damaged
from the mirrors; with it (a disaster-recovery rehearsal from the offsite copy, a primary
that opens but is slow or suspect) only the named repository is read: its own damage is
an error, not silently mended from another copy.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sample.cluster import TempCluster

from respaldo.operations.repositories import open_repository
from respaldo.repository.packs import pack_name
from respaldo.repository.reader import read_list
from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import databases, flip_byte, table_checksums
from tests.integration.logical.test_quarantine_cli import _add_mirror

pytestmark = pytest.mark.integration


def _damage_in(respaldo: Respaldo, name: str, root: Path, backup_id: str) -> str:
    """Flip a byte in the middle of the backup's dump in repository ``name`` (at
    ``root``); return the damaged pack's name."""
    repo = open_repository(respaldo.settings(), name)
    stream = repo.load_manifest(backup_id).stream("dump")
    entries = read_list(repo, stream.lists[0])
    location = repo.index.get(entries[len(entries) // 2][0])
    assert location is not None
    pack = pack_name(location.pack_id)
    flip_byte(root / pack, location.offset + location.length // 2)
    return pack


def test_restore_reads_the_named_mirror_and_only_it(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    _add_mirror(respaldo)
    backup_id = respaldo.backup()["id"]  # copied to the mirror at its end
    # The primary's copy is damaged: the mirror alone serves the restore, no chunk of it
    # read from the primary (which a fallback would say in a warning).
    _damage_in(respaldo, "local", respaldo.repo_dir, backup_id)
    run = respaldo.restore(backup_id, new_dbname, "--repository", "offsite")
    assert "read from" not in run.err and "warning" not in run.err, run.err
    assert table_checksums(pg, new_dbname) == table_checksums(pg, respaldo.dbname)


def test_damage_in_the_named_repository_is_not_mended_from_another(
    respaldo: Respaldo, new_dbname: str
) -> None:
    offsite = _add_mirror(respaldo)
    backup_id = respaldo.backup()["id"]
    pack = _damage_in(respaldo, "offsite", offsite, backup_id)
    run = respaldo.run("restore", backup_id, "-t", new_dbname, "--repository", "offsite")
    assert run.code != 0, str(run)
    assert pack in run.err and backup_id in run.err, run.err
    assert new_dbname not in databases(respaldo.pg)
    # Without --repository the primary's good copy serves it.
    respaldo.restore(backup_id, new_dbname)


def test_an_unknown_repository_is_refused_before_anything_is_done(
    respaldo: Respaldo, new_dbname: str
) -> None:
    backup_id = respaldo.backup()["id"]
    before = databases(respaldo.pg)
    run = respaldo.run("restore", backup_id, "-t", new_dbname, "--repository", "nowhere")
    assert run.code == 1, str(run)
    assert "nowhere" in run.err and "local" in run.err, run.err
    assert databases(respaldo.pg) == before


def test_the_api_restores_from_the_named_repository_through_the_same_operation(
    respaldo: Respaldo, new_dbname: str
) -> None:
    from tests.integration.api.conftest import client, finished

    offsite = _add_mirror(respaldo)
    backup_id = respaldo.backup()["id"]
    pack = _damage_in(respaldo, "offsite", offsite, backup_id)
    before = databases(respaldo.pg)
    with client(respaldo.settings()) as api:
        unknown = api.post(
            f"/admin/backups/{backup_id}/restore",
            json={"targetDatabase": new_dbname, "repository": "nowhere"},
        )
        assert unknown.status_code == 422, unknown.text
        assert "nowhere" in unknown.json()["detail"]
        assert api.get("/admin/jobs").json() == [] or all(
            j["kind"] != "restore" for j in api.get("/admin/jobs").json()
        )
        started = api.post(
            f"/admin/backups/{backup_id}/restore",
            json={"targetDatabase": new_dbname, "repository": "offsite"},
        )
        assert started.status_code == 202, started.text
        job = finished(api, started.json()["jobId"])
        assert job["status"] == "failed", job
        assert pack in job["error"], job
        assert databases(respaldo.pg) == before

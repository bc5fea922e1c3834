"""Garbage collection and leases on a real S3-compatible server (SeaweedFS): the same
put/list/get/delete protocol as on disk, no rename, no append."""

from __future__ import annotations

import io

import pytest

from respaldo.errors import RepositoryLocked
from respaldo.repository import BackupWriter, collect_garbage, verify_repository
from tests.servers.s3 import S3Endpoint
from tests.unit.repository.helpers import (
    STARTED,
    init_repo,
    names,
    open_repo,
    random_bytes,
    read_stream,
    write_backup,
)

pytestmark = pytest.mark.integration


def test_collection_on_s3(s3_server: S3Endpoint) -> None:
    storage = s3_server.storage()
    repo = init_repo(storage)
    base = random_bytes(100_000, seed=5)
    backups = {}
    for i in range(4):
        data = base[: 30_000 + 20_000 * i] + random_bytes(10_000, seed=50 + i)
        backups[f"b{i}"] = (write_backup(repo, f"b{i}", {"dump": data})[0], data)
    for backup_id in ("b0", "b1"):
        storage.delete(f"manifests/{backup_id}")

    with BackupWriter(repo, "running") as writer:
        writer.write_stream("dump", io.BytesIO(random_bytes(20_000, seed=9)))
        with pytest.raises(RepositoryLocked):
            collect_garbage(repo, wait=0)
        writer.commit(kind="full", source="erp", started_at=STARTED)

    report = collect_garbage(repo)
    assert report.bytes_reclaimed > 0 and report.packs_deleted + report.packs_repacked > 0
    fresh = open_repo(storage)
    for backup_id in ("b2", "b3"):
        manifest, data = backups[backup_id]
        assert read_stream(fresh, manifest) == data
    verified = verify_repository(fresh)
    assert verified.ok, verified.problems
    assert verified.unreferenced_packs == 0
    assert names(storage, "locks/") == []
    assert not collect_garbage(fresh).changed

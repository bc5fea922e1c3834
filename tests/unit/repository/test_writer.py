"""BackupWriter: commit rules, aborts, and what a failed writer leaves behind."""

from __future__ import annotations

import io

import pytest

from respaldo.errors import InvalidObjectName, RepositoryError
from respaldo.repository import BackupWriter, Repository, verify_repository
from respaldo.storage.memory import MemoryStorage
from tests.unit.repository.helpers import (
    STARTED,
    names,
    open_repo,
    random_bytes,
    read_stream,
    write_backup,
)

pytestmark = pytest.mark.unit


class Boom(Exception):
    pass


def test_aborted_writer_leaves_no_manifest(mem_repo: Repository) -> None:
    storage = mem_repo.storage
    with pytest.raises(Boom), BackupWriter(mem_repo, "b1") as writer:
        writer.write_stream("dump", io.BytesIO(random_bytes(64 * 1024)))
        raise Boom
    assert names(storage, "manifests/") == []
    assert mem_repo.backup_ids() == []


def test_chunks_of_an_aborted_writer_are_safe_to_deduplicate_against(
    memory_storage: MemoryStorage, mem_repo: Repository
) -> None:
    """A failed backup (pg_dump died) must not leave chunks in the in-memory index that no
    index file describes: a later backup in the same process would reference them, and
    after a restart its chunks could not be found (or GC would delete their packs)."""
    data = random_bytes(96 * 1024, seed=7)
    with pytest.raises(Boom), BackupWriter(mem_repo, "failed") as writer:
        writer.write_stream("dump", io.BytesIO(data))
        assert names(memory_storage, "packs/"), "the test needs packs uploaded before the failure"
        raise Boom
    manifest, _ = write_backup(mem_repo, "ok", {"dump": data})

    reopened = open_repo(memory_storage)
    assert read_stream(reopened, manifest) == data
    assert verify_repository(reopened).ok


def test_commit_refuses_an_existing_backup_id_and_keeps_the_first_manifest(
    mem_repo: Repository,
) -> None:
    storage = mem_repo.storage
    first, _ = write_backup(mem_repo, "b1", {"dump": random_bytes(5000, seed=1)})
    before = storage.get("manifests/b1")
    with pytest.raises(RepositoryError, match="exists already"):
        write_backup(mem_repo, "b1", {"dump": random_bytes(5000, seed=2)})
    assert storage.get("manifests/b1") == before
    assert read_stream(mem_repo, mem_repo.load_manifest("b1")) == random_bytes(5000, seed=1)
    assert first.streams == mem_repo.load_manifest("b1").streams


def test_invalid_backup_id_is_refused_before_anything_is_written(mem_repo: Repository) -> None:
    before = names(mem_repo.storage)
    for bad in ("../escape", "", "a b", ".hidden"):
        with pytest.raises(InvalidObjectName):
            BackupWriter(mem_repo, bad)
    assert names(mem_repo.storage) == before


def test_stream_names_must_be_unique_within_a_backup(mem_repo: Repository) -> None:
    with BackupWriter(mem_repo, "b1") as writer:
        writer.write_stream("dump", io.BytesIO(b"one"))
        with pytest.raises(RepositoryError, match="written twice"):
            writer.write_stream("dump", io.BytesIO(b"two"))
        manifest = writer.commit(kind="full", source="erp", started_at=STARTED)
    assert [s.name for s in manifest.streams] == ["dump"]
    assert read_stream(mem_repo, manifest) == b"one"

"""Several writers at once: in threads of one process, or as separate Repository objects
(what two processes are to each other)."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable

import pytest

from respaldo.errors import RepositoryError
from respaldo.repository import BackupWriter, Repository, verify_backups, verify_repository
from respaldo.storage.base import Storage
from tests.unit.repository.helpers import (
    STARTED,
    TrickleReader,
    open_repo,
    random_bytes,
    read_stream,
    write_backup,
)

pytestmark = pytest.mark.unit


def _run_in_threads(jobs: list[Callable[[], None]]) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(jobs))

    def run(job: Callable[[], None]) -> None:
        try:
            barrier.wait(timeout=10)
            job()
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()
    if errors:
        raise errors[0]


def _writer_job(repo: Repository, backup_id: str, data: bytes) -> Callable[[], None]:
    def job() -> None:
        with BackupWriter(repo, backup_id) as writer:
            # Small reads make the two writers interleave chunk by chunk.
            writer.write_stream("dump", TrickleReader(data, step=512))
            writer.commit(kind="full", source=backup_id, started_at=STARTED)

    return job


@pytest.mark.parametrize("shared", [True, False], ids=["one-repository", "two-repositories"])
def test_two_writers_at_once(storage: Storage, repo: Repository, shared: bool) -> None:
    write_backup(repo, "b0", {"dump": random_bytes(10_000, seed=99)})
    other = repo if shared else open_repo(storage)
    datas = {"b1": random_bytes(120_000, seed=1), "b2": random_bytes(120_000, seed=2)}
    _run_in_threads([_writer_job(repo, "b1", datas["b1"]), _writer_job(other, "b2", datas["b2"])])

    reopened = open_repo(storage)
    assert reopened.backup_ids() == ["b0", "b1", "b2"]
    for backup_id, data in datas.items():
        assert read_stream(reopened, reopened.load_manifest(backup_id)) == data
    report = verify_repository(reopened)
    assert report.ok, report.problems
    assert report.unreferenced_packs == 0
    assert verify_backups(reopened, ["b1", "b2"]).ok


@pytest.mark.parametrize("shared", [True, False], ids=["one-repository", "two-repositories"])
def test_two_writers_of_the_same_data_at_once(
    storage: Storage, repo: Repository, shared: bool
) -> None:
    """Both may store a chunk (neither has indexed it yet); either copy is valid."""
    other = repo if shared else open_repo(storage)
    data = random_bytes(100_000, seed=5)
    _run_in_threads([_writer_job(repo, "b1", data), _writer_job(other, "b2", data)])
    reopened = open_repo(storage)
    for backup_id in ("b1", "b2"):
        assert read_stream(reopened, reopened.load_manifest(backup_id)) == data
    assert verify_repository(reopened).ok
    # And a third backup of it, after both, stores nothing new.
    _, stats = write_backup(reopened, "b3", {"dump": data})
    assert stats.new_chunks == 0


def test_same_backup_id_from_two_writers_keeps_the_first(
    storage: Storage, repo: Repository
) -> None:
    first = random_bytes(30_000, seed=1)
    one = BackupWriter(repo, "b1")
    two = BackupWriter(open_repo(storage), "b1")
    one.write_stream("dump", io.BytesIO(first))
    two.write_stream("dump", io.BytesIO(random_bytes(30_000, seed=2)))
    one.commit(kind="full", source="erp", started_at=STARTED)
    manifest_bytes = storage.get("manifests/b1")
    with pytest.raises(RepositoryError, match="b1 exists already"):
        two.commit(kind="full", source="erp", started_at=STARTED)
    assert storage.get("manifests/b1") == manifest_bytes
    reopened = open_repo(storage)
    assert read_stream(reopened, reopened.load_manifest("b1")) == first
    # The loser's packs are indexed (and reusable), not damage.
    assert verify_repository(reopened).ok


def test_readers_while_a_writer_runs(storage: Storage, repo: Repository) -> None:
    old = random_bytes(50_000, seed=1)
    write_backup(repo, "b1", {"dump": old})
    manifest = repo.load_manifest("b1")
    results: list[bytes] = []

    def read() -> None:
        for _ in range(3):
            results.append(read_stream(repo, manifest))

    _run_in_threads([_writer_job(repo, "b2", random_bytes(100_000, seed=2)), read, read])
    assert results == [old] * 6

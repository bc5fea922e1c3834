"""The index is an accelerator: lost or damaged, it is rebuilt from the pack headers."""

from __future__ import annotations

import pytest

from respaldo.errors import IntegrityError, RepositoryLocked
from respaldo.repository import (
    Lease,
    LockKind,
    Repository,
    collect_garbage,
    rebuild_index,
    verify_repository,
)
from respaldo.repository.crypto import AAD_INDEX
from respaldo.repository.index import GROUP, MAGIC
from respaldo.storage.base import Storage
from tests.unit.repository.helpers import (
    DelegatingStorage,
    flip_byte,
    names,
    open_repo,
    random_bytes,
    read_stream,
    write_backup,
)

pytestmark = pytest.mark.unit


@pytest.fixture
def two(repo: Repository) -> dict[str, bytes]:
    datas = {"b1": random_bytes(60_000, seed=1), "b2": random_bytes(60_000, seed=2)}
    for backup_id, data in datas.items():
        write_backup(repo, backup_id, {"dump": data})
    return datas


def test_lost_index_is_rebuilt(storage: Storage, repo: Repository, two: dict[str, bytes]) -> None:
    chunks = len(repo.index)
    packs = names(storage, "packs/")
    for name in names(storage, "index/"):
        storage.delete(name)

    reopened = open_repo(storage)
    assert len(reopened.index) == 0
    with pytest.raises(IntegrityError, match="not in the index") as info:
        read_stream(reopened, reopened.load_manifest("b1"))
    assert info.value.backup == "b1"
    lost = verify_repository(reopened)
    assert not lost.ok
    assert lost.unreferenced_packs == len(packs)
    assert {p.backup for p in lost.problems} == {"b1", "b2"}

    report = rebuild_index(reopened)
    assert report.problems == []
    assert report.packs == len(packs)
    assert report.chunks == chunks
    assert report.index_files_written == 1
    assert report.index_files_removed == 0
    assert len(reopened.index) == chunks  # rebuild reloads the index it wrote
    for backup_id, data in two.items():
        assert read_stream(reopened, reopened.load_manifest(backup_id)) == data
    again = open_repo(storage)
    verified = verify_repository(again)
    assert verified.ok, verified.problems
    assert verified.unreferenced_packs == 0
    assert verified.packs == len(packs)
    assert verified.backups == 2


def test_damaged_index_is_replaced(
    storage: Storage, repo: Repository, two: dict[str, bytes]
) -> None:
    old = names(storage, "index/")
    flip_byte(storage, old[0], 50)
    assert list(open_repo(storage).damaged_index_files) == [old[0]]
    # The way 'respaldo index rebuild' opens a repository.
    damaged = open_repo(storage, load_index=False)
    report = rebuild_index(damaged)
    assert report.index_files_removed == len(old)
    new = names(storage, "index/")
    assert not set(new) & set(old)
    reopened = open_repo(storage)
    assert verify_repository(reopened).ok
    for backup_id, data in two.items():
        assert read_stream(reopened, reopened.load_manifest(backup_id)) == data


def test_rebuild_is_idempotent(storage: Storage, repo: Repository, two: dict[str, bytes]) -> None:
    first = rebuild_index(repo)
    second = rebuild_index(repo)
    assert (second.packs, second.chunks) == (first.packs, first.chunks)
    assert second.index_files_removed == first.index_files_written == 1
    assert len(names(storage, "index/")) == 1
    assert verify_repository(open_repo(storage)).ok


def test_rebuild_reports_a_pack_with_a_damaged_header(
    storage: Storage, repo: Repository, two: dict[str, bytes]
) -> None:
    packs = names(storage, "packs/")
    flip_byte(storage, packs[0], -8)
    report = rebuild_index(repo)
    assert [p.obj for p in report.problems] == [packs[0]]
    assert report.packs == len(packs) - 1


def test_rebuild_indexes_packs_of_an_interrupted_backup(
    storage: Storage, repo: Repository, two: dict[str, bytes]
) -> None:
    """Packs that no index file describes (a writer killed before its index) are found
    by rebuild, after which their chunks deduplicate."""
    before = set(names(storage, "index/"))
    data = random_bytes(60_000, seed=3)
    write_backup(repo, "b3", {"dump": data})
    # What a writer killed after its packs, before its index and manifest, leaves.
    storage.delete("manifests/b3")
    for name in set(names(storage, "index/")) - before:
        storage.delete(name)
    reopened = open_repo(storage)
    assert verify_repository(reopened).unreferenced_packs > 0
    rebuild_index(reopened)
    report = verify_repository(reopened)
    assert report.ok
    assert report.unreferenced_packs == 0
    _, stats = write_backup(reopened, "b4", {"dump": data})
    assert stats.new_chunks == 0


def test_index_with_an_authentic_but_malformed_body_is_an_integrity_error(
    storage: Storage, repo: Repository, two: dict[str, bytes]
) -> None:
    """A decoder must turn every malformed plaintext into IntegrityError, not a crash:
    the file is then left out as damaged."""
    name = "index/" + "0" * 64
    for body in (
        b"XXXX\x01",
        MAGIC + b"\x00" * (GROUP.size - 1),
        MAGIC + GROUP.pack(b"\x00" * 32, 5),
    ):
        blob = repo.sealer.seal(body, AAD_INDEX)
        storage.put(name, blob)
        with pytest.raises(IntegrityError, match="index file is damaged"):
            repo._read_index_file(name)
        assert "index file is damaged" in open_repo(storage).damaged_index_files[name]
    storage.delete("index/" + "0" * 64)
    assert verify_repository(open_repo(storage)).ok


class _CollectBeforeIndexPut(DelegatingStorage):
    """A store that, the first time an index file is put, first lets garbage collection
    run to its end (another process's ``prune``, at the worst moment for a rebuild that
    has read every pack header already)."""

    def __init__(self, inner: Storage) -> None:
        super().__init__(inner)
        self.outcome: list[object] = []

    def put(self, name: str, data: bytes) -> None:
        if name.startswith("index/") and not self.outcome:
            try:
                self.outcome.append(collect_garbage(open_repo(self.inner)))
            except RepositoryLocked as exc:
                self.outcome.append(exc)
        self.inner.put(name, data)


def test_a_rebuild_and_a_collection_never_run_at_once(
    storage: Storage, repo: Repository, two: dict[str, bytes]
) -> None:
    """A rebuild reads every pack header, then writes index files describing them; a
    collection that ran in between deleted dead packs that the rebuild's index still
    describes. The next backup of the same data deduplicated against those chunks and
    was called completed while its packs were gone."""
    storage.delete("manifests/b1")  # prune expired it: its packs are dead
    racing = _CollectBeforeIndexPut(storage)

    rebuild_index(open_repo(racing, load_index=False))

    assert isinstance(racing.outcome[0], RepositoryLocked), racing.outcome
    manifest, _ = write_backup(open_repo(storage), "b3", {"dump": two["b1"]})
    assert read_stream(open_repo(storage), manifest) == two["b1"]
    assert verify_repository(open_repo(storage)).ok


def test_a_rebuild_waits_for_backups_and_says_so(repo: Repository) -> None:
    backup = Lease.acquire(repo.storage, LockKind.SHARED, "backup b9", refresh=False)
    try:
        with pytest.raises(RepositoryLocked) as info:
            rebuild_index(repo)
    finally:
        backup.release()
    assert "backup b9" in str(info.value)
    assert "index rebuild waits for running backups" in info.value.hint
    assert "prune" not in info.value.hint

    rebuild = Lease.acquire(repo.storage, LockKind.EXCLUSIVE, "index rebuild", refresh=False)
    try:
        with pytest.raises(RepositoryLocked, match="index rebuild is running"):
            write_backup(repo, "b10", {"dump": random_bytes(1000)})
    finally:
        rebuild.release()

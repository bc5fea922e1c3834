"""Bytes damaged on their way from S3 are not damage in the bucket.

A repository on SeaweedFS behind the fault proxy (tests/servers/faultproxy.py), which
spoils one answer: a bit inverted in a pack's bytes (a bad NIC or middlebox on a
connection without TLS), or half of them with a Content-Length that says so (a broken
gateway). The object in the bucket is whole. What must not happen is that a verification
(or a garbage collection) that met such an answer records the good copy as damaged:
quarantined, it is out of every index, restores of every backup that uses it fail with
"no good copy", and ``repair`` without a mirror records those backups as lost. A reader
reads a copy that fails again before it calls it damaged; a restore that met the bad
answer reads the stream whole all the same.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from respaldo.repository import (
    Repository,
    collect_garbage,
    iter_stream,
    rebuild_index,
    verify_backups,
)
from respaldo.repository.quarantine import (
    QUARANTINE_PREFIX,
    DamagedCopy,
    Quarantine,
    write_record,
)
from respaldo.repository.verify import quarantine_damaged
from respaldo.repository.wal import get_wal, put_wal
from respaldo.storage.retry import RetryingStorage
from tests.servers.faultproxy import Fault, FaultProxy, Rule
from tests.servers.s3 import S3Endpoint
from tests.unit.repository.helpers import init_repo, names, open_repo, random_bytes, write_backup

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

FAULTS: list[Fault] = ["flip", "short"]


@pytest.fixture
def proxy(s3_server: S3Endpoint) -> Iterator[FaultProxy]:
    proxy = FaultProxy(s3_server.endpoint_url).start()
    yield proxy
    proxy.stop()


def _repository(s3_server: S3Endpoint, proxy: FaultProxy) -> Repository:
    """A repository with two backups (the second deduplicated against the first), opened
    afresh through the proxy: its index says where every chunk is."""
    store = RetryingStorage(s3_server.storage(endpoint_url=proxy.url), sleep=lambda _: None)
    repo = init_repo(store)
    data = random_bytes(96 * 1024, seed=7)
    write_backup(repo, "b1", {"dump": data})
    write_backup(repo, "b2", {"dump": data[48 * 1024 :] + random_bytes(8 * 1024, seed=8)})
    return open_repo(store)


@pytest.mark.parametrize("fault", FAULTS)
def test_a_pack_read_spoiled_in_transit_is_not_quarantined(
    s3_server: S3Endpoint, proxy: FaultProxy, fault: Fault
) -> None:
    repo = _repository(s3_server, proxy)
    proxy.add(Rule(fault, path="/packs/", method="GET", times=1))

    report = verify_backups(repo, ["b1", "b2"])

    assert [entry.action for entry in proxy.injected()] == [fault]
    assert report.ok, report.problems
    assert quarantine_damaged(repo, report) == 0
    assert names(repo.storage, QUARANTINE_PREFIX) == []


@pytest.mark.parametrize("fault", FAULTS)
def test_a_restore_reads_past_a_pack_read_spoiled_in_transit(
    s3_server: S3Endpoint, proxy: FaultProxy, fault: Fault
) -> None:
    repo = _repository(s3_server, proxy)
    manifest = repo.load_manifest("b1")
    proxy.add(Rule(fault, path="/packs/", method="GET", times=1))

    restored = b"".join(iter_stream(repo, manifest, "dump"))

    assert proxy.injected()
    assert restored == random_bytes(96 * 1024, seed=7)


def _repository_to_repack(s3_server: S3Endpoint, proxy: FaultProxy) -> Repository:
    """A repository with one pack that garbage collection must repack, opened afresh
    through the proxy: b1 (streams "dump" and "extra") fits in one pack, and b2 stores
    "dump" again, all of it deduplicated against b1's chunks, its chunk list included.
    Deleting b1 leaves its pack with live chunks ("dump", written first: they fill most
    of the pack, its middle byte included) and dead ones ("extra" and its list).

    Not :func:`_repository`'s data: there, where the chunker cuts (seeded from the
    repository's random key) decides whether a pack holds both live and dead chunks,
    and about one key in a thousand leaves every pack wholly live or wholly dead, with
    nothing to repack; where the bit is inverted (the middle of the pack) decides
    whether it spoils a live chunk, which one key in sixteen does not."""
    store = RetryingStorage(s3_server.storage(endpoint_url=proxy.url), sleep=lambda _: None)
    repo = init_repo(store)
    dump = random_bytes(12 * 1024, seed=7)
    write_backup(repo, "b1", {"dump": dump, "extra": random_bytes(1024, seed=8)})
    write_backup(repo, "b2", {"dump": dump})
    assert len(names(store, "packs/")) == 1, "b1 no longer fits in one pack: shrink it"
    return open_repo(store)


def test_garbage_collection_does_not_quarantine_a_pack_spoiled_in_transit(
    s3_server: S3Endpoint, proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    repo = _repository_to_repack(s3_server, proxy)
    repo.storage.delete("manifests/b1")
    # Repacking reads packs whole (the mark before it reads ranges).
    proxy.add(Rule("flip", path="/packs/", method="GET", times=1, ranged=False))

    with caplog.at_level(logging.WARNING, logger="respaldo.repository.gc"):
        report = collect_garbage(repo, repack_threshold=0.01)

    assert [entry.action for entry in proxy.injected()] == ["flip"]
    # The inverted bit spoiled a live chunk, and the pack was read again.
    assert "read whole a second time" in caplog.text
    assert report.packs_repacked == 1 and report.damaged == 0, report
    assert names(repo.storage, QUARANTINE_PREFIX) == []
    reopened = open_repo(repo.storage)
    assert verify_backups(reopened, ["b2"]).ok


WHOLE = ["manifests", "index", "quarantine", "wal"]


@pytest.mark.parametrize("kind", WHOLE)
def test_an_object_read_whole_and_spoiled_in_transit_is_read_again(
    s3_server: S3Endpoint, proxy: FaultProxy, kind: str
) -> None:
    """Objects read whole (a manifest, an index file, a quarantine record, a WAL file)
    fail authentication when a bit flips on the way: before, verification reported the
    backup's manifest damaged, an index file was left out as damaged, a quarantine
    record put the repository in the state *quarantine damaged* (every backup storing
    everything anew, collection refused) and wal-fetch stopped a recovery."""
    repo = _repository(s3_server, proxy)
    segment = random_bytes(20_000, seed=9)
    if kind == "quarantine":
        pack_id, entries = next(iter(repo.index.by_pack(lambda p, c: True).items()))
        damaged = DamagedCopy.of(entries[0].chunk_id, f"packs/{pack_id[:2]}/{pack_id}", "test")
        write_record(repo.storage, repo.sealer, [damaged])
    if kind == "wal":
        put_wal(repo, "7000000000000000001", "00000001", "000000010000000000000003", segment)
    proxy.add(Rule("flip", path=f"/{kind}/", method="GET", times=1))

    if kind == "manifests":
        assert verify_backups(repo, ["b1"]).ok
    elif kind == "index":
        assert open_repo(repo.storage).damaged_index_files == {}
    elif kind == "quarantine":
        assert not Quarantine.load(repo.storage, repo.sealer).unreadable
    else:
        got = get_wal(repo, "7000000000000000001", "00000001", "000000010000000000000003")
        assert got == segment

    assert [entry.action for entry in proxy.injected()] == ["flip"]


def test_an_index_rebuild_reads_a_pack_header_spoiled_in_transit_again(
    s3_server: S3Endpoint, proxy: FaultProxy
) -> None:
    """A rebuild describes every pack from its header: a header that failed on its way
    was left out, and with it every chunk of its pack (restores of the backups that need
    them failed with "not in the index" until the next rebuild)."""
    repo = _repository(s3_server, proxy)
    packs = len(names(repo.storage, "packs/"))
    proxy.add(Rule("flip", path="/packs/", method="GET", times=1))

    report = rebuild_index(repo)

    assert proxy.injected()
    assert report.packs == packs and report.problems == []
    assert verify_backups(open_repo(repo.storage), ["b1", "b2"]).ok

"""verify --subset n/t: t slices partition the chunks, and damage is found in its slice."""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime
from typing import Any

import pytest

from respaldo.repository import BackupWriter, ChunkerParams, KdfParams, Repository, verify
from respaldo.repository.verify import in_subset, parse_subset, verify_subset
from respaldo.storage.memory import MemoryStorage

pytestmark = pytest.mark.unit


@pytest.fixture
def repo() -> Repository:
    repo = Repository.init(
        MemoryStorage("subset"),
        "pw",
        chunker=ChunkerParams(256, 1024, 4096),
        kdf=KdfParams(1, 1024, 1),
        pack_size=16 * 1024,
    )
    with BackupWriter(repo, "b1") as writer:
        writer.write_stream("dump", io.BytesIO(os.urandom(150_000)))
        writer.commit(kind="full", source="erp", started_at=datetime.now(UTC))
    return repo


def test_slices_partition_every_chunk(repo: Repository) -> None:
    reports = [verify_subset(repo, n, 5) for n in range(1, 6)]
    assert all(r.ok for r in reports)
    assert sum(r.chunks for r in reports) == len(repo.index)
    assert all(r.chunks > 0 for r in reports)


def test_damage_is_reported_by_the_slice_holding_it(repo: Repository) -> None:
    pack_id, entries = next(iter(repo.index.by_pack().items()))
    victim = entries[0]
    name = f"packs/{pack_id[:2]}/{pack_id}"
    blob = bytearray(repo.storage.get(name))
    blob[victim.offset + 20] ^= 0x01
    repo.storage.put(name, bytes(blob))
    hits = [n for n in range(1, 4) if in_subset(victim.chunk_id, n, 3)]
    assert len(hits) == 1
    for n in range(1, 4):
        report = verify_subset(repo, n, 3)
        assert report.ok == (n != hits[0])
    bad = verify_subset(repo, hits[0], 3)
    assert any(victim.chunk_id.hex()[:16] in str(p) and name in str(p) for p in bad.problems)


@pytest.mark.parametrize("text", ["0/3", "4/3", "x", "1/0", "1-3", ""])
def test_bad_subsets_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="subset"):
        parse_subset(text)


def test_a_slice_is_listed_a_range_of_packs_at_a_time_with_the_same_result(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A damaged chunk, so that the problems (and their order) are compared too.
    everything = repo.index.by_pack()
    pack_id, entries = sorted(everything.items())[len(everything) // 2]
    victim = entries[-1]
    name = f"packs/{pack_id[:2]}/{pack_id}"
    blob = bytearray(repo.storage.get(name))
    blob[victim.offset + 20] ^= 0x01
    repo.storage.put(name, bytes(blob))
    n = next(n for n in range(1, 4) if in_subset(victim.chunk_id, n, 3))
    chosen = {
        pack: [e for e in es if in_subset(e.chunk_id, n, 3)] for pack, es in everything.items()
    }
    largest = max(len(es) for es in chosen.values())
    batch = largest + 2  # several packs a range, several ranges
    assert sum(len(es) for es in chosen.values()) > 3 * batch

    listed: list[int] = []
    whole_listing = repo.index.by_pack

    def by_pack(*args: Any) -> dict[str, list[Any]]:
        groups = whole_listing(*args)
        listed.append(sum(len(es) for es in groups.values()))
        return groups

    monkeypatch.setattr(repo.index, "by_pack", by_pack)
    monkeypatch.setattr(verify, "SUBSET_BATCH", 10**9, raising=False)
    at_once = verify_subset(repo, n, 3)
    listed.clear()
    monkeypatch.setattr(verify, "SUBSET_BATCH", batch, raising=False)
    in_ranges = verify_subset(repo, n, 3)
    assert (in_ranges.packs, in_ranges.chunks, in_ranges.bytes) == (
        at_once.packs,
        at_once.chunks,
        at_once.bytes,
    )
    assert [str(p) for p in in_ranges.problems] == [str(p) for p in at_once.problems]
    assert any(victim.chunk_id.hex()[:16] in str(p) for p in in_ranges.problems)
    assert in_ranges.packs == sum(1 for es in chosen.values() if es)
    # Only the slice's entries were ever listed, at most a batch of them at a time.
    assert sum(listed) == in_ranges.chunks == sum(len(es) for es in chosen.values())
    assert len(listed) > 1 and max(listed) <= batch

"""verify --subset n/t: t slices partition the chunks, and damage is found in its slice."""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime

import pytest

from respaldo.repository import BackupWriter, ChunkerParams, KdfParams, Repository
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

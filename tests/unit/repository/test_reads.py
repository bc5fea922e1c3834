"""How restores read packs: few requests for scattered chunks, no chunk read twice."""

from __future__ import annotations

import pytest

from respaldo.repository import Repository, iter_stream
from respaldo.repository import reader as reader_module
from respaldo.repository.copy import copy_backup
from respaldo.repository.reader import fetch_chunks, iter_ranges
from respaldo.storage.memory import MemoryStorage
from tests.unit.repository.helpers import (
    KDF,
    CountingStorage,
    compressible_bytes,
    init_repo,
    open_repo,
    random_bytes,
    read_stream,
    stream_entries,
    write_backup,
)

pytestmark = pytest.mark.unit

BIG_PACKS = 4 * 1024 * 1024


def _day_of_work(data: bytes, changes: int, seed: int = 3) -> bytes:
    """``data`` with ``changes`` small edits spread evenly over it."""
    edited = bytearray(data)
    step = len(data) // changes
    for i in range(changes):
        at = i * step + step // 2
        edited[at : at + 8] = random_bytes(8, seed=seed + i)
    return bytes(edited)


def test_a_stream_after_a_day_of_work_is_read_in_a_few_requests(
    memory_storage: MemoryStorage,
) -> None:
    data = random_bytes(2 * 1024 * 1024, seed=1)
    repo = init_repo(memory_storage, pack_size=BIG_PACKS)
    write_backup(repo, "b1", {"dump": data})
    changed = _day_of_work(data, 150)
    second, stats = write_backup(repo, "b2", {"dump": changed})
    assert stats.new_chunks >= 150  # the edits are spread: old and new chunks alternate

    counting = CountingStorage(memory_storage)
    reopened = open_repo(counting, pack_size=BIG_PACKS)
    counting.gets.clear()
    assert read_stream(reopened, second) == changed
    # Read in stream order, old pack / new chunk / old pack ... would be about 300
    # requests; grouped by pack, each pack is read in ranges of up to 8 MiB.
    pack_reads = counting.gets_under("packs/")
    assert len(pack_reads) <= 6, pack_reads
    # The gaps bridged are the old versions of the edited chunks: a small share.
    assert counting.bytes_read < 1.25 * (len(changed) + 200_000)


def _entries_and_counter(
    memory_storage: MemoryStorage,
) -> tuple[Repository, CountingStorage, list[tuple[bytes, int]]]:
    data = random_bytes(600_000, seed=2)
    repo = init_repo(memory_storage, pack_size=BIG_PACKS)
    manifest, _ = write_backup(repo, "b1", {"dump": data})
    counting = CountingStorage(memory_storage)
    reopened = open_repo(counting, pack_size=BIG_PACKS)
    entries = stream_entries(reopened, manifest)
    counting.gets.clear()
    counting.bytes_read = 0
    return reopened, counting, entries


def test_chunks_far_apart_in_a_pack_are_two_requests_not_one_long_one(
    memory_storage: MemoryStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, counting, entries = _entries_and_counter(memory_storage)
    first, last = entries[0], entries[-1]
    locations = [repo.index.get(cid) for cid, _ in (first, last)]
    assert all(loc is not None for loc in locations)
    distance = locations[1].offset - locations[0].offset  # type: ignore[union-attr]
    wanted = sum(loc.length for loc in locations if loc is not None)

    monkeypatch.setattr(reader_module, "GAP_MAX", distance)  # close enough: one range
    results = list(fetch_chunks(repo, [first, last]))
    assert [r.data is not None for r in results] == [True, True]
    assert len(counting.gets) == 1

    counting.gets.clear()
    counting.bytes_read = 0
    monkeypatch.setattr(reader_module, "GAP_MAX", distance // 2)  # too far: two ranges
    results = list(fetch_chunks(repo, [first, last]))
    assert [r.data is not None for r in results] == [True, True]
    assert len(counting.gets) == 2
    assert counting.bytes_read == wanted


def test_a_chunk_repeated_in_a_stream_is_read_once_and_yielded_each_time(
    memory_storage: MemoryStorage,
) -> None:
    repo, counting, entries = _entries_and_counter(memory_storage)
    one = entries[5]
    results = list(fetch_chunks(repo, [one, entries[6], one, one]))
    assert [r.chunk_id for r in results] == [one[0], entries[6][0], one[0], one[0]]
    assert results[0].data == results[2].data == results[3].data is not None
    assert len(counting.gets) == 1


def test_reading_only_the_start_of_a_stream_fetches_only_its_start(
    memory_storage: MemoryStorage,
) -> None:
    # What reading a dump's table of contents does (restore, ls): the first chunk must
    # not wait for, nor cost, a whole 16 MiB window.
    data = random_bytes(12 * 1024 * 1024, seed=4)
    repo = init_repo(memory_storage, pack_size=BIG_PACKS)
    manifest, _ = write_backup(repo, "b1", {"dump": data})
    counting = CountingStorage(memory_storage)
    reopened = open_repo(counting, pack_size=BIG_PACKS)
    counting.bytes_read = 0
    stream = iter_stream(reopened, manifest, "dump")
    first = next(stream)
    stream.close()  # type: ignore[attr-defined]
    assert data.startswith(first)
    # The first window and the one fetched ahead of it: a few MiB, not the stream.
    assert counting.bytes_read < 4 * 1024 * 1024, counting.bytes_read


def test_ranges_of_a_stream_read_only_the_chunks_that_hold_them(
    memory_storage: MemoryStorage,
) -> None:
    data = random_bytes(3 * 1024 * 1024, seed=5)
    repo = init_repo(memory_storage, pack_size=BIG_PACKS)
    manifest, _ = write_backup(repo, "b1", {"dump": data})
    counting = CountingStorage(memory_storage)
    reopened = open_repo(counting, pack_size=BIG_PACKS)
    ranges = [
        (0, 1000),
        (1000, 1001),
        (1_500_000, 1_600_000),
        (3 * 1024 * 1024 - 10, 3 * 1024 * 1024),
    ]
    counting.bytes_read = 0
    out = list(iter_ranges(reopened, manifest, "dump", ranges))
    assert b"".join(out) == b"".join(data[a:b] for a, b in ranges)
    assert counting.bytes_read < 600_000  # the lists and a few chunks, not 3 MiB
    with pytest.raises(ValueError):
        list(iter_ranges(reopened, manifest, "dump", [(10, 20), (5, 30)]))


def test_windows_keep_order_across_many_windows(
    memory_storage: MemoryStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Windows of a few chunks each: order and content must survive the seams.
    monkeypatch.setattr(reader_module, "WINDOW_BYTES", 3000)
    repo, _, entries = _entries_and_counter(memory_storage)
    shuffled = entries[::-1] + entries[::3]
    results = list(fetch_chunks(repo, shuffled))
    assert [r.chunk_id for r in results] == [cid for cid, _ in shuffled]
    assert all(
        r.data is not None and len(r.data) == length
        for r, (_, length) in zip(results, shuffled, strict=True)
    )


def test_a_lost_pack_is_read_from_the_mirror_in_ranges_not_chunk_by_chunk(
    memory_storage: MemoryStorage,
) -> None:
    data = random_bytes(1_500_000, seed=4)
    primary = init_repo(memory_storage, pack_size=BIG_PACKS)
    manifest, stats = write_backup(primary, "b1", {"dump": data})
    mirror_store = CountingStorage(MemoryStorage("mirror-of-" + memory_storage.location))
    mirror = Repository.init_mirror(mirror_store, primary, "pw", kdf=KDF)
    copy_backup(primary, mirror, "b1")
    (pack,) = [info.name for info in memory_storage.list("packs/")]
    memory_storage.delete(pack)
    mirror_store.gets.clear()
    fallbacks: list[str] = []
    restored = b"".join(
        iter_stream(
            primary,
            manifest,
            "dump",
            fallbacks=[mirror],
            on_fallback=lambda bad, good: fallbacks.append(bad.obj),
        )
    )
    assert restored == data
    assert len(fallbacks) == stats.chunks  # every chunk, the list chunk too
    # One window, one pack: a handful of ranged reads instead of one per chunk (1,248).
    assert len(mirror_store.gets_under("packs/")) <= 3


def test_a_read_for_copying_holds_each_chunk_sealed_not_twice(
    memory_storage: MemoryStorage,
) -> None:
    """A copy (``keep_sealed``) gets each chunk's sealed bytes and the plaintext's
    length; the plaintext is opened and checked, then dropped: holding both, a copy to a
    mirror held every window twice."""
    data = compressible_bytes(400_000, seed=5)
    repo = init_repo(memory_storage)
    manifest, _ = write_backup(repo, "b1", {"dump": data})
    entries = stream_entries(repo, manifest)
    results = list(fetch_chunks(repo, entries, keep_sealed=True))
    assert all(r.problem is None and r.sealed for r in results)
    assert [r.data for r in results] == [b""] * len(entries)
    assert [r.size for r in results] == [length for _, length in entries]
    assert sum(r.size for r in results) == len(data)
    # Each is the chunk as stored: it opens to a plaintext of that length and id.
    for result in results:
        assert result.sealed is not None
        opened = repo.sealer.open_chunk(result.chunk_id, result.sealed)
        assert len(opened) == result.size

"""The in-memory chunk index: sorted arrays, a dict of additions, and their merge."""

from __future__ import annotations

import os
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from respaldo.repository import index as index_module
from respaldo.repository.index import ChunkIndex, Location, encode_index
from respaldo.repository.packs import PackEntry

pytestmark = pytest.mark.unit


def pid(n: int) -> str:
    return f"{n:064x}"


def entry(cid: bytes, offset: int) -> PackEntry:
    return PackEntry(cid, offset, 100 + offset % 50, 200 + offset % 70)


def test_lookups_in_loaded_files_and_first_file_wins() -> None:
    a, b, c = os.urandom(32), os.urandom(32), os.urandom(32)
    first = encode_index([(pid(1), [entry(a, 0), entry(b, 150)])])
    second = encode_index([(pid(2), [entry(b, 0), entry(c, 300)])])
    index = ChunkIndex.from_files([first, second])
    assert len(index) == 3
    assert index.get(a) == Location(pid(1), 0, 100, 200)
    assert index.get(b) == Location(pid(1), 150, 100, 210)  # the first file's, not pid(2)'s
    assert index.get(c) == Location(pid(2), 300, 100, 220)
    assert index.get(os.urandom(32)) is None
    assert a in index and os.urandom(32) not in index and "a string" not in index
    assert index.packs() == {pid(1), pid(2)}
    assert {p: [e.chunk_id for e in es] for p, es in index.by_pack().items()} == {
        pid(1): [a, b],
        pid(2): [c],
    }


def test_ids_that_share_their_first_eight_bytes_are_told_apart() -> None:
    head = os.urandom(8)
    ids = [head + os.urandom(24) for _ in range(5)]
    index = ChunkIndex.from_files(
        [encode_index([(pid(1), [entry(cid, i * 10) for i, cid in enumerate(ids[:3])])])]
    )
    index.add_pack(pid(2), [entry(ids[3], 0), entry(ids[0], 99)])  # ids[0] is known
    index.add_pack(pid(3), [entry(ids[4], 0)])
    assert [index.get(cid) for cid in ids] == [
        Location(pid(1), 0, 100, 200),
        Location(pid(1), 10, 110, 210),
        Location(pid(1), 20, 120, 220),
        Location(pid(2), 0, 100, 200),
        Location(pid(3), 0, 100, 200),
    ]
    assert index.get(head + os.urandom(24)) is None


@pytest.mark.parametrize("garbage", [b"", b"XXXX\x01", b"RIDX\x01" + b"\x00" * 10])
def test_a_malformed_index_file_is_a_value_error(garbage: bytes) -> None:
    with pytest.raises(ValueError, match=r"not an index|truncated"):
        ChunkIndex.from_files([garbage])


def test_a_group_longer_than_the_file_is_a_value_error() -> None:
    whole = encode_index([(pid(1), [entry(os.urandom(32), 0), entry(os.urandom(32), 1)])])
    with pytest.raises(ValueError, match="truncated"):
        ChunkIndex.from_files([whole[:-3]])


# --- a model: any mix of loads and additions answers like a dict ----------------------

ids_strategy = st.lists(st.integers(0, 40), min_size=0, max_size=30)


@settings(max_examples=60, deadline=None)
@given(
    files=st.lists(ids_strategy, max_size=4),
    additions=st.lists(ids_strategy, max_size=8),
    merge_every=st.integers(1, 20),
    shared_head=st.booleans(),
)
def test_the_index_answers_like_a_first_writer_wins_dict(
    files: list[list[int]], additions: list[list[int]], merge_every: int, shared_head: bool
) -> None:
    # Chunk ids from small numbers; with shared_head, all share their first 8 bytes.
    def cid(n: int) -> bytes:
        return (b"\x07" * 8 if shared_head else n.to_bytes(8, "big")) + n.to_bytes(24, "big")

    model: dict[bytes, Location] = {}
    blobs = []
    for f, numbers in enumerate(files):
        entries = [entry(cid(n), i * 7) for i, n in enumerate(numbers)]
        blobs.append(encode_index([(pid(f), entries)]))
        for e in entries:
            model.setdefault(e.chunk_id, Location(pid(f), e.offset, e.length, e.raw_length))
    original = index_module.DELTA_MERGE
    index_module.DELTA_MERGE = merge_every
    try:
        index = ChunkIndex.from_files(blobs)
        for a, numbers in enumerate(additions):
            entries = [entry(cid(n), i * 11) for i, n in enumerate(numbers)]
            index.add_pack(pid(100 + a), entries)
            for e in entries:
                model.setdefault(
                    e.chunk_id, Location(pid(100 + a), e.offset, e.length, e.raw_length)
                )
    finally:
        index_module.DELTA_MERGE = original
    assert len(index) == len(model)
    for n in range(42):
        assert index.get(cid(n)) == model.get(cid(n))
    assert index.packs() == {loc.pack_id for loc in model.values()}
    grouped = index.by_pack()
    assert sum(len(es) for es in grouped.values()) == len(model)
    for pack_id, es in grouped.items():
        assert [e.offset for e in es] == sorted(e.offset for e in es)
        for e in es:
            assert model[e.chunk_id] == Location(pack_id, e.offset, e.length, e.raw_length)


def test_readers_never_miss_a_chunk_while_additions_are_merged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(index_module, "DELTA_MERGE", 50)
    index = ChunkIndex()
    added: list[bytes] = []
    done = threading.Event()
    misses: list[bytes] = []

    def read() -> None:
        while not done.is_set():
            # The newest additions (those a merge moves) and a sample of the older ones.
            known = added[-100:] + added[:-100:97]
            misses.extend(cid for cid in known if cid not in index)
            time.sleep(0.0005)  # leave the writer the GIL

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    for p in range(200):
        entries = [entry(os.urandom(32), i) for i in range(20)]
        index.add_pack(pid(p), entries)
        added.extend(e.chunk_id for e in entries)  # published only once add_pack returned
    done.set()
    for thread in readers:
        thread.join()
    assert misses == []
    assert len(index) == 4000

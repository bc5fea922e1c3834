"""A stream read a window of chunks at a time (``iter_stream_batches``, what restores
use): the same bytes as chunk by chunk, across the stream's lists, and a damaged chunk
stops the read before any of its window is handed on."""

from __future__ import annotations

import pytest

from respaldo.errors import IntegrityError
from respaldo.repository import iter_stream_batches
from respaldo.repository import writer as writer_module
from respaldo.repository.reader import WINDOW_PLAIN_BYTES
from respaldo.storage.memory import MemoryStorage
from tests.unit.repository.helpers import (
    flip_byte,
    init_repo,
    pack_of_chunk,
    random_bytes,
    read_stream,
    stream_entries,
    write_backup,
)

pytestmark = pytest.mark.unit


def test_a_stream_read_a_window_at_a_time_is_the_whole_stream_across_its_lists(
    memory_storage: MemoryStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "LIST_ENTRIES_MAX", 16)  # many list chunks
    repo = init_repo(memory_storage)
    data = random_bytes(3 * 1024 * 1024, seed=7)
    manifest, _ = write_backup(repo, "b1", {"dump": data})
    assert len(manifest.stream("dump").lists) > 4

    batches = list(iter_stream_batches(repo, manifest, "dump"))
    assert b"".join(b"".join(batch) for batch in batches) == data == read_stream(repo, manifest)
    # Chunks, in order, grouped: fewer lists than chunks, none much over a window.
    chunks = [chunk for batch in batches for chunk in batch]
    assert [len(c) for c in chunks] == [n for _, n in stream_entries(repo, manifest)]
    assert len(batches) < len(chunks)
    limit = WINDOW_PLAIN_BYTES + max(len(c) for c in chunks)
    assert all(sum(map(len, batch)) <= limit for batch in batches)


def test_a_damaged_chunk_stops_the_read_before_its_window_is_handed_on(
    memory_storage: MemoryStorage,
) -> None:
    repo = init_repo(memory_storage)
    data = random_bytes(6 * 1024 * 1024, seed=8)
    manifest, _ = write_backup(repo, "b1", {"dump": data})
    entries = stream_entries(repo, manifest)
    damaged = len(entries) * 2 // 3
    pack, offset, length = pack_of_chunk(repo, entries[damaged][0])
    flip_byte(memory_storage, pack, offset + length // 2)
    starts = [0]
    for _, n in entries:
        starts.append(starts[-1] + n)

    handed: list[bytes] = []
    with pytest.raises(IntegrityError) as raised:
        for batch in iter_stream_batches(repo, manifest, "dump"):
            handed.extend(batch)
    assert pack in str(raised.value.obj)
    got = b"".join(handed)
    assert got == data[: len(got)]  # what came before is good
    assert len(got) <= starts[damaged]  # and nothing of the damaged chunk or after it
    assert len(handed) < damaged  # nor the good chunks before it in its window

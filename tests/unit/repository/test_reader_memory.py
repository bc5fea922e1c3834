"""What a reader holds: about two windows of plaintext, and sealed bytes only for copies.

Plaintext is what a restore's reader holds until pg_restore has taken it; chunks of a
dump compress 3-4 times, so windows bounded by their sealed size alone held several
times their size (a restore peaked at 345 MiB RSS)."""

from __future__ import annotations

import pytest

from respaldo.repository import reader
from respaldo.repository.reader import fetch_chunks
from respaldo.storage.memory import MemoryStorage
from tests.unit.repository.helpers import (
    compressible_bytes,
    init_repo,
    stream_entries,
    write_backup,
)

pytestmark = pytest.mark.unit

PLAIN_LIMIT = 32 * 1024


def test_a_window_holds_at_most_its_plaintext_limit_of_compressible_chunks(
    memory_storage: MemoryStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = init_repo(memory_storage)
    manifest, _ = write_backup(repo, "b1", {"dump": compressible_bytes(600_000)})
    entries = stream_entries(repo, manifest)
    assert sum(n for _, n in entries) == 600_000
    monkeypatch.setattr(reader, "FIRST_WINDOW_BYTES", 1 << 20)
    monkeypatch.setattr(reader, "WINDOW_BYTES", 1 << 20)  # sealed bytes would allow it all
    monkeypatch.setattr(reader, "WINDOW_PLAIN_BYTES", PLAIN_LIMIT, raising=False)
    lengths = dict(entries)
    windows = list(reader._windows(repo, entries))
    biggest_chunk = max(lengths.values())
    assert len(windows) > 1
    for window in windows:
        plain = sum(lengths[cid] for cid in set(window.ids))
        assert plain < PLAIN_LIMIT + biggest_chunk
    assert [cid for w in windows for cid in w.ids] == [cid for cid, _ in entries]


def test_readers_keep_sealed_bytes_only_when_asked(memory_storage: MemoryStorage) -> None:
    repo = init_repo(memory_storage)
    manifest, _ = write_backup(repo, "b1", {"dump": compressible_bytes(100_000)})
    entries = stream_entries(repo, manifest)
    plain = list(fetch_chunks(repo, entries))
    assert all(r.data is not None and r.sealed is None for r in plain)
    kept = list(fetch_chunks(repo, entries, keep_sealed=True))
    # A copy's read keeps the sealed bytes and the plaintext's length, not the plaintext.
    assert all(r.data == b"" and r.sealed is not None for r in kept)
    assert [r.size for r in kept] == [len(r.data or b"") for r in plain]

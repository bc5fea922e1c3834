"""Deduplication and compression: what a second backup costs."""

from __future__ import annotations

import io

import pytest

from respaldo.repository import Repository
from respaldo.repository.chunker import iter_chunks
from respaldo.repository.crypto import OVERHEAD
from respaldo.repository.manifest import LIST_ENTRY
from respaldo.repository.packs import ENTRY, TRAILER
from respaldo.storage.base import Storage
from respaldo.storage.memory import MemoryStorage
from tests.unit.repository.helpers import (
    compressible_bytes,
    init_repo,
    names,
    open_repo,
    random_bytes,
    read_stream,
    snapshot,
    write_backup,
)

pytestmark = pytest.mark.unit


def test_the_same_stream_again_stores_no_chunk(storage: Storage, repo: Repository) -> None:
    data = random_bytes(150_000, seed=1)
    first, first_stats = write_backup(repo, "b1", {"dump": data})
    before = snapshot(storage)
    # Through a new Repository object: dedup must work from the stored index alone.
    reopened = open_repo(storage)
    second, stats = write_backup(reopened, "b2", {"dump": data})
    assert stats.new_chunks == 0
    assert stats.packs == 0
    assert stats.chunks == first_stats.chunks
    assert stats.size_compressed == first_stats.size_compressed
    # Only the manifest is new.
    added = set(snapshot(storage)) - set(before)
    assert added == {"manifests/b2"}
    assert stats.stored_bytes == len(storage.get("manifests/b2")) < 2048
    assert second.streams[0].lists == first.streams[0].lists
    assert read_stream(reopened, second) == data


def test_the_same_stream_twice_in_one_backup(mem_repo: Repository) -> None:
    data = random_bytes(60_000, seed=2)
    manifest, stats = write_backup(mem_repo, "b1", {"dump": data, "copy": data})
    one = manifest.stream("dump")
    assert stats.new_chunks == one.chunks + 1  # the data chunks and one list chunk
    assert stats.chunks == 2 * stats.new_chunks
    assert read_stream(mem_repo, manifest, "copy") == data


def test_repeated_content_within_a_stream_is_stored_once(mem_repo: Repository) -> None:
    # A run of zeros (empty pages of a relation file) cuts into equal chunks; where the
    # cuts fall depends on the seed, so count them with the repository's own chunker.
    data = bytes(4096 * 32)
    cut = list(iter_chunks(io.BytesIO(data), mem_repo.chunker, mem_repo.keys.chunker_seed))
    manifest, stats = write_backup(mem_repo, "b1", {"dump": data})
    assert manifest.stream("dump").chunks == len(cut) >= 32
    assert stats.new_chunks == len(set(cut)) + 1 <= 3  # the chunk, a shorter tail, the list
    assert read_stream(mem_repo, manifest) == data


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda d: d[:200_000] + b"EDITED" + d[200_006:], id="overwrite"),
        pytest.param(lambda d: d[:200_000] + b"INSERTED ROW" + d[200_000:], id="insert"),
        pytest.param(lambda d: d[:200_000] + d[200_500:], id="delete"),
    ],
)
def test_a_small_edit_in_the_middle_adds_only_a_few_chunks(
    memory_storage: MemoryStorage, edit: object
) -> None:
    assert callable(edit)
    repo = init_repo(memory_storage)
    data = random_bytes(400_000, seed=3)
    first, first_stats = write_backup(repo, "b1", {"dump": data})
    changed: bytes = edit(data)
    second, stats = write_backup(repo, "b2", {"dump": changed})
    # The chunk(s) around the edit, and the list chunk that names them. How many chunks
    # the edit touches depends on the seed (1 usually, 7 seen in 300 seeds for the delete):
    # the bound is generous, but a chunker that lost sync would renew hundreds.
    assert first.stream("dump").chunks > 200  # 400 KB at ~1.3 KiB chunks: about 300
    # (Bounds with room: the cut points depend on the random repository key.)
    assert 2 <= stats.new_chunks <= 20, stats
    assert stats.stored_bytes < first_stats.stored_bytes // 5, (stats, first_stats)
    assert read_stream(repo, second) == changed
    assert read_stream(repo, first) == data


def test_incompressible_data_costs_only_the_format_overhead(mem_repo: Repository) -> None:
    data = random_bytes(200_000, seed=5)
    manifest, stats = write_backup(mem_repo, "b1", {"dump": data})
    chunks = manifest.stream("dump").chunks
    # A sealed chunk that does not compress is stored as is: 30 bytes more, no zstd frame.
    assert (
        stats.size_compressed <= len(data) + chunks * OVERHEAD + chunks * LIST_ENTRY.size + OVERHEAD
    )
    # Per chunk: seal, pack header entry, list entry, index entry; per pack: sealed
    # header and trailer; plus a manifest.
    per_chunk = OVERHEAD + ENTRY.size + LIST_ENTRY.size + ENTRY.size
    per_pack = OVERHEAD + TRAILER.size + 36
    bound = len(data) + chunks * per_chunk + stats.packs * per_pack + 4096
    assert stats.stored_bytes <= bound
    # And with production-sized chunks (16 times larger) that overhead is under 1%.
    assert (stats.stored_bytes - len(data)) / chunks < 200


def test_compressible_data_shrinks(memory_storage: MemoryStorage) -> None:
    repo = init_repo(memory_storage)
    data = compressible_bytes(200_000)
    manifest, stats = write_backup(repo, "b1", {"dump": data})
    # Kilobyte chunks compress worse than production's 16 KiB ones; still well under half.
    assert stats.size_compressed < len(data) // 2
    assert sum(i.size for i in memory_storage.list("packs/")) < len(data) * 0.6
    assert read_stream(repo, manifest) == data


def test_compression_level_is_honoured(memory_storage: MemoryStorage) -> None:
    data = compressible_bytes(100_000, seed=8)
    fast = init_repo(memory_storage, compression_level=1)
    _, fast_stats = write_backup(fast, "b1", {"dump": data})
    other = MemoryStorage("other")
    strong = init_repo(other, compression_level=19)
    _, strong_stats = write_backup(strong, "b1", {"dump": data})
    assert strong_stats.size_compressed < fast_stats.size_compressed


def test_compressible_level_stores_text_smaller_and_any_respaldo_reads_it(
    memory_storage: MemoryStorage,
) -> None:
    """Written with a second level for text, read back by a repository opened without it
    (and the other way round): the setting is the writer's alone, not the format's."""
    text = compressible_bytes(60_000, seed=3)
    plain = init_repo(MemoryStorage("plain"))
    _, plain_stats = write_backup(plain, "b1", {"dump": text})
    repo = init_repo(memory_storage, compressible_level=19)
    assert repo.sealer.compressible_level == 19
    manifest, _ = write_backup(repo, "b1", {"dump": text, "noise": random_bytes(30_000)})
    _, text_stats = write_backup(repo, "b2", {"dump": text})
    assert text_stats.size_compressed < plain_stats.size_compressed
    reader = open_repo(memory_storage)
    assert reader.sealer.compressible_level == 0
    assert read_stream(reader, manifest, "dump") == text
    assert read_stream(reader, manifest, "noise") == random_bytes(30_000)
    # And a repository written without it reads the same in one opened with it.
    older, _ = write_backup(reader, "b3", {"more": text[::-1]})
    again = open_repo(memory_storage, compressible_level=19)
    assert read_stream(again, older, "more") == text[::-1]


def test_two_repositories_do_not_share_chunk_ids(memory_storage: MemoryStorage) -> None:
    """Chunk ids are keyed: the same plaintext has different ids in different repositories,
    so an id reveals nothing about content to someone without the key."""
    first = init_repo(memory_storage)
    second = init_repo(MemoryStorage("other"))
    assert first.sealer.chunk_id(b"same data") != second.sealer.chunk_id(b"same data")
    assert first.sealer.chunk_id(b"same data") == first.sealer.chunk_id(b"same data")
    assert names(memory_storage, "packs/") == []

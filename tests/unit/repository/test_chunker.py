"""The chunker: compiled or nothing, bounded chunk sizes, cut points keyed per repository."""

from __future__ import annotations

import importlib.machinery
import io
import sys

import pytest

from respaldo.errors import ChunkerUnavailable
from respaldo.repository import ChunkerParams
from respaldo.repository.chunker import iter_chunks, load_fastcdc
from respaldo.storage.memory import MemoryStorage
from tests.unit.repository.helpers import (
    CHUNKER,
    TrickleReader,
    TrickleReadinto,
    init_repo,
    names,
    random_bytes,
    stream_entries,
    write_backup,
)

pytestmark = pytest.mark.unit


def _cut(data: bytes, seed: int, params: ChunkerParams = CHUNKER) -> list[bytes]:
    return list(iter_chunks(io.BytesIO(data), params, seed))


def test_load_fastcdc_returns_the_compiled_class() -> None:
    import pyfastcdc.cy

    cls = load_fastcdc()
    assert cls is pyfastcdc.cy.FastCDC
    # Not the pure-Python fallback: the class comes from an extension module.
    module = sys.modules[cls.__module__]
    assert str(module.__file__).endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
    assert cls is not getattr(sys.modules.get("pyfastcdc.py"), "FastCDC", None)


def test_missing_compiled_chunker_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyfastcdc.cy", None)
    with pytest.raises(ChunkerUnavailable) as info:
        load_fastcdc()
    assert "pyfastcdc.cy" in str(info.value)
    assert "reinstall pyfastcdc" in info.value.hint
    assert isinstance(info.value.__cause__, ImportError)


def test_init_refuses_without_the_compiled_chunker(
    monkeypatch: pytest.MonkeyPatch, memory_storage: MemoryStorage
) -> None:
    monkeypatch.setitem(sys.modules, "pyfastcdc.cy", None)
    with pytest.raises(ChunkerUnavailable):
        init_repo(memory_storage)
    assert names(memory_storage) == []


def test_chunks_rebuild_the_stream_within_bounds() -> None:
    data = random_bytes(100_000, seed=1)
    chunks = _cut(data, seed=42)
    assert b"".join(chunks) == data
    assert len(chunks) > 40
    assert all(len(c) <= CHUNKER.max_size for c in chunks)
    assert all(len(c) >= CHUNKER.min_size for c in chunks[:-1])
    # FastCDC's expected size is about avg + min; allow a wide margin for chance.
    mean = len(data) / len(chunks)
    assert CHUNKER.min_size < mean < CHUNKER.max_size


def test_empty_stream_has_no_chunks() -> None:
    assert _cut(b"", seed=1) == []


def test_chunks_are_independent_bytes() -> None:
    """The chunker reuses its buffer; what it yields must not change afterwards."""
    data = random_bytes(30_000, seed=2)
    chunks = _cut(data, seed=3)
    assert all(type(c) is bytes for c in chunks)
    assert b"".join(chunks) == data


def test_same_seed_same_cuts_whatever_the_read_sizes() -> None:
    data = random_bytes(50_000, seed=4)
    by_buffer = _cut(data, seed=7)
    by_read = list(iter_chunks(TrickleReader(data, step=33), CHUNKER, 7))
    by_readinto = list(iter_chunks(TrickleReadinto(data, step=33), CHUNKER, 7))
    assert by_buffer == by_read == by_readinto


def test_cut_points_depend_on_the_seed() -> None:
    data = random_bytes(50_000, seed=5)
    assert [len(c) for c in _cut(data, seed=1)] != [len(c) for c in _cut(data, seed=2)]


def test_two_repositories_cut_the_same_data_differently() -> None:
    """The gear table is seeded from the key: chunk sizes do not reveal known content."""
    data = random_bytes(50_000, seed=6)
    lengths = []
    for name in ("one", "two"):
        repo = init_repo(MemoryStorage(name))
        manifest, _ = write_backup(repo, "b1", {"dump": data})
        lengths.append([n for _, n in stream_entries(repo, manifest)])
        # And each repository cuts exactly as its own seed says.
        assert lengths[-1] == [len(c) for c in _cut(data, repo.keys.chunker_seed)]
    assert lengths[0] != lengths[1]
    assert sum(lengths[0]) == sum(lengths[1]) == len(data)


def test_seed_is_a_non_negative_63_bit_integer() -> None:
    for name in ("a", "b", "c"):
        seed = init_repo(MemoryStorage(name)).keys.chunker_seed
        assert 0 <= seed < 2**63


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ((32, 1024, 4096), "min_size 32 is out of range: it must be 64 to 1048576"),
        ((1024, 512, 4096), "min_size <= avg_size <= max_size"),
        ((256, 8192, 4096), "min_size <= avg_size <= max_size"),
        ((256, 1024, 32 * 1024 * 1024), "max_size 33554432 is out of range"),
        # Passed the old check (64 <= min <= avg <= max), then failed every backup.
        ((64, 128, 512), "avg_size 128 is out of range: it must be 256 to 4194304"),
        ((64, 256, 512), "max_size 512 is out of range: it must be 1024 to 16777216"),
    ],
)
def test_params_are_validated(sizes: tuple[int, int, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ChunkerParams(*sizes)


@pytest.mark.parametrize(
    "sizes", [(64, 256, 1024), (1024 * 1024, 4 * 1024 * 1024, 16 * 1024 * 1024)]
)
def test_params_at_the_bounds_chunk(sizes: tuple[int, int, int]) -> None:
    # Whatever ChunkerParams accepts, the compiled chunker accepts too.
    params = ChunkerParams(*sizes)
    data = random_bytes(3 * sizes[2])
    assert b"".join(_cut(data, 7, params)) == data


def test_params_round_trip_through_json() -> None:
    params = ChunkerParams(4096, 16384, 65536, normalization=2)
    doc = params.to_json()
    assert doc["algorithm"] == "fastcdc2020"
    assert ChunkerParams.from_json(doc) == params
    with pytest.raises(ValueError, match="unknown chunker"):
        ChunkerParams.from_json({**doc, "algorithm": "rabin"})

"""The cache's lookups (``ChunkIndex.get`` and ``get_many``, through ``CacheRun.first`` and
``first_many``, the short paths of every backup and restore) checked against a plain dict
of the index files' entries, the first not quarantined of each chunk in file order.

A lookup that misses a chunk the cache holds makes a backup store it again; one that
answers for a chunk that is not there, or with another copy's location, makes a backup
reference what does not exist. So the ids are made to land where the code has edges:
keys 0 and 2^64 - 1, keys on and beside the top table's slot boundaries, ids sharing
their key (in one file and in two), chunks with a copy in several files and two with
more copies than a block holds; and misses that the filter lets through (the key or the
filter's bytes of a known id), beside random ones. Every lookup runs on a cache that is
sound: it must answer without finding damage (no rebuild)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from respaldo.repository import index_cache
from respaldo.repository.index import ChunkIndex, Location, decode_index, encode_index
from respaldo.repository.packs import PackEntry

pytestmark = pytest.mark.unit

TOP = 2**64


def _id(rng: random.Random, key: int) -> bytes:
    return (key % TOP).to_bytes(8, "big") + rng.randbytes(24)


def _known_ids(rng: random.Random) -> tuple[list[bytes], set[bytes]]:
    """Ids at the edges (see the module's docstring) and many random ones; and those of
    the random ones with nothing else to them (no other id shares their key)."""
    ids = [_id(rng, k) for k in (0, 1, TOP - 2, TOP - 1)]
    for bits in range(1, index_cache.TOP_BITS + 1):
        shift = 64 - bits
        for slot in rng.sample(range(1, 2**bits), min(3, 2**bits - 1)):
            ids += [_id(rng, (slot << shift) + d) for d in (-1, 0, 1)]
    plain = [rng.randbytes(32) for _ in range(12000)]
    ids += plain
    bases = rng.sample(ids, 300)
    for base in bases:  # another id with the same key
        ids.append(base[:8] + rng.randbytes(24))
    more = rng.sample(ids, 100)
    for base in more:  # the same key and the filter's bytes too
        ids.append(base[:16] + rng.randbytes(16))
    return ids, set(plain) - set(bases) - set(more)


def _files(seed: int) -> tuple[list[tuple[str, bytes]], list[bytes], set[bytes]]:
    """(name, plaintext) of 24 index files in listing order, every id they hold, and the
    plain ones among them (random, in one copy, no other id with their key).
    Each id is in a pack of one file; 400 of them have copies in one to three other
    files too (before or after it), and two of them copies in 100 and in 160 packs
    more (over two and three blocks of the cache). Each copy has its own location."""
    rng = random.Random(seed)
    ids, plain = _known_ids(rng)
    rng.shuffle(ids)
    files: list[list[bytes]] = [[] for _ in range(24)]
    for n, cid in enumerate(ids):
        files[n % 24].append(cid)
    for n in rng.sample(range(len(ids)), 400):
        plain.discard(ids[n])
        others = [f for f in range(24) if f != n % 24]
        for f in rng.sample(others, rng.randint(1, 3)):
            files[f].append(ids[n])
    many = rng.sample(ids, 2)
    plain -= set(many)
    out = []
    for f, held in enumerate(files):
        rng.shuffle(held)
        packs = [(f"{seed:08x}{f:028x}{p:028x}", held[p::3]) for p in range(3)]
        for c, cid in enumerate(many):  # one pack each: a chunk is once in a pack
            copies = (100, 160)[c]
            packs += [
                (f"{seed:08x}{f:028x}{1000 + c * 200 + k:028x}", [cid])
                for k in range(f, copies, 24)
            ]
        groups = [
            (
                pack_id,
                [
                    PackEntry(
                        cid,
                        rng.randrange(36, 2**31),
                        rng.randrange(1, 2**20),
                        rng.randrange(1, 2**22),
                    )
                    for cid in chunks
                ],
            )
            for pack_id, chunks in packs
        ]
        out.append((f"index/{seed:04x}{f:060x}", encode_index(groups)))
    return out, ids, plain


def _misses(rng: random.Random, ids: list[bytes]) -> list[bytes]:
    """Ids nobody stored: random ones, ones past the first and last keys, and ones the
    filter lets through to a block (a known id's key and filter bytes, another tail; its
    filter bytes and another key)."""
    known = set(ids)
    keys = sorted(int.from_bytes(cid[:8], "big") for cid in ids)
    out = [rng.randbytes(32) for _ in range(500)]
    out += [cid[:16] + rng.randbytes(16) for cid in rng.sample(ids, 600)]
    out += [_id(rng, rng.randrange(TOP))[:8] + cid[8:] for cid in rng.sample(ids, 600)]
    out += [cid[:8] + rng.randbytes(24) for cid in rng.sample(ids, 300)]
    if keys[0] > 0:
        out.append(_id(rng, keys[0] - 1))
    out += [_id(rng, keys[-1]), _id(rng, 0), _id(rng, TOP - 1)]
    return [cid for cid in out if cid not in known]


def _oracle(
    files: list[tuple[str, bytes]], exclude: dict[str, set[bytes]]
) -> dict[bytes, Location]:
    """Each chunk's first copy not excluded, in file order: a dict, nothing else."""
    out: dict[bytes, Location] = {}
    for _, plaintext in files:
        for pack_id, entries in decode_index(plaintext):
            for e in entries:
                if e.chunk_id not in exclude.get(pack_id, ()):
                    out.setdefault(e.chunk_id, Location(pack_id, e.offset, e.length, e.raw_length))
    return out


def _load(
    cache: Path, files: list[tuple[str, bytes]], exclude: dict[str, set[bytes]]
) -> ChunkIndex:
    plain = dict(files)
    loaded = index_cache.load_cached(
        cache,
        "repo-id",
        lambda: {name: len(data) for name, data in files},
        plain.__getitem__,
        (KeyError,),
        exclude,
    )
    assert loaded is not None
    return loaded[0]


def _windows(probes: list[bytes], rng: random.Random) -> list[list[bytes]]:
    out: list[list[bytes]] = []
    at = 0
    while at < len(probes):
        size = rng.choice((1, 2, 5, 52, 80))
        out.append(probes[at : at + size])
        at += size
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("built", [False, True], ids=["main-written", "main-built"])
@pytest.mark.parametrize("quarantined", [False, True], ids=["plain", "quarantine"])
def test_get_and_get_many_answer_as_a_dict_of_the_index_files(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    seed: int,
    built: bool,
    quarantined: bool,
) -> None:
    """The main run (written by the side-run writer, or by the numpy build) holds 18
    files, three side runs the other six; random hits and misses, one by one and in
    windows of up to 80 ids (a block of a backup's stream), in random order and in key
    order (ids of one block in a row). Every id is asked but 9,500 of the plain random
    ones: those are there to fill over a hundred blocks, and the 1,700 or so asked stand
    for them (asking each took most of the test's time and tested nothing more)."""
    files, ids, plain = _files(seed)
    rng = random.Random(seed * 7)
    exclude: dict[str, set[bytes]] = {}
    if quarantined:
        # Every copy of some chunks, the first copy of others, single copies of more.
        for pack_id, entries in (g for _, p in files for g in decode_index(p)):
            for e in entries:
                if rng.random() < 0.03:
                    exclude.setdefault(pack_id, set()).add(e.chunk_id)
    cache = tmp_path / "cache"
    if built:
        with monkeypatch.context() as m:
            m.setattr(index_cache, "SIDE_RECORDS_MAX", 0)  # the numpy build writes it
            _load(cache, files[:18], exclude)
    else:
        _load(cache, files[:18], exclude)
    for end in (20, 22, 24):
        index = _load(cache, files[:end], exclude)
    assert index._run is not None and len(index._sides) == 3 and index._base is None
    main = index._run
    # Over a hundred blocks: the top table (about a slot a block) has empty slots too.
    assert main.blocks > 100
    oracle = _oracle(files, exclude)
    assert len(oracle) < len(set(ids)) if quarantined else len(oracle) == len(set(ids))
    misses = _misses(rng, ids)
    unasked = set(rng.sample(sorted(plain), 9500))
    asked_ids = [cid for cid in ids if cid not in unasked]
    probes = [*asked_ids, *misses, *rng.sample(asked_ids, 500)]  # some asked twice
    rng.shuffle(probes)
    in_order = sorted(probes)
    expected = [oracle.get(cid) for cid in probes]
    assert sum(e is None for e in expected) >= len(misses)
    caplog.clear()
    assert [index.get(cid) for cid in probes] == expected
    for asked in (probes, in_order):
        windows = _windows(asked, rng)
        got = [location for window in windows for location in index.get_many(window)]
        assert got == [oracle.get(cid) for cid in asked]
    # The cache was sound: every answer came from it, none from a rebuild.
    assert index._run is main and len(index._sides) == 3
    assert "damaged" not in caplog.text

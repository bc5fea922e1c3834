"""Sealing: authenticated encryption bound to a role, compression inside, keyed ids."""

from __future__ import annotations

import os
import tracemalloc

import pytest

from respaldo.repository.crypto import (
    AAD_CHUNK,
    BLOB_VERSION,
    NONCE_SIZE,
    OVERHEAD,
    KeySet,
    Sealer,
    SealError,
)

pytestmark = pytest.mark.unit

REPO_ID = "00112233445566778899aabbccddeeff"


@pytest.fixture
def sealer() -> Sealer:
    return Sealer(KeySet.derive(bytes(range(32)), REPO_ID))


def test_round_trip(sealer: Sealer) -> None:
    for data in (b"", b"x", os.urandom(5000), b"abc" * 5000):
        assert sealer.open(sealer.seal(data, b"role"), b"role") == data


def test_layout_and_overhead(sealer: Sealer) -> None:
    data = os.urandom(1000)  # incompressible: stored with one codec byte
    blob = sealer.seal(data, b"role")
    assert blob[0] == BLOB_VERSION
    assert len(blob) == len(data) + OVERHEAD
    assert data not in blob


def test_compressible_data_is_compressed(sealer: Sealer) -> None:
    data = b"the same row again\n" * 1000
    assert len(sealer.seal(data, b"role")) < len(data) // 10
    assert len(sealer.seal(data, b"role", compress=False)) == len(data) + OVERHEAD


@pytest.mark.parametrize("compress", [True, False], ids=["tried", "off"])
def test_sealing_holds_two_copies_at_most(sealer: Sealer, compress: bool) -> None:
    # An index file is sealed at a backup's peak (its every index flush): the payload,
    # the codec byte before it and the ciphertext were three copies at once.
    data = os.urandom(1 << 20)  # incompressible: the sealed size is the data's
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        blob = sealer.seal(data, b"role", compress=compress)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert sealer.open(blob, b"role") == data
    assert peak < 2.2 * len(data), f"{peak / len(data):.2f} times the data"


def test_opening_a_compressed_blob_does_not_copy_its_payload(sealer: Sealer) -> None:
    # Every chunk a restore reads is opened here: the decrypted body's payload was
    # copied (``plain[1:]``) before zstd read it, once more per chunk for nothing.
    half = os.urandom(1 << 19)
    data = half + bytes(1 << 19)  # compresses to about half
    blob = sealer.seal(data, b"role")
    packed = len(blob) - OVERHEAD
    assert packed < 0.6 * len(data)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        opened = sealer.open(blob, b"role")
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert opened == data
    # The decrypted body and the plaintext: a copy of the payload besides is one
    # ``packed`` more.
    assert peak < len(data) + 1.5 * packed, f"{(peak - len(data)) / packed:.2f} payloads"


def test_nonces_are_fresh(sealer: Sealer) -> None:
    blobs = {sealer.seal(b"same", b"role") for _ in range(50)}
    assert len(blobs) == 50
    assert len({b[1 : 1 + NONCE_SIZE] for b in blobs}) == 50


def test_wrong_associated_data_fails(sealer: Sealer) -> None:
    blob = sealer.seal(b"manifest of b1", b"respaldo/manifest/b1")
    with pytest.raises(SealError, match="authentication failed"):
        sealer.open(blob, b"respaldo/manifest/b2")


def test_every_flipped_byte_is_detected(sealer: Sealer) -> None:
    blob = sealer.seal(b"some data to protect" * 3, b"role")
    for i in range(len(blob)):
        damaged = bytearray(blob)
        damaged[i] ^= 0x01
        with pytest.raises(SealError):
            sealer.open(bytes(damaged), b"role")


def test_truncated_and_unknown_blobs(sealer: Sealer) -> None:
    blob = sealer.seal(b"data", b"role")
    with pytest.raises(SealError, match="truncated"):
        sealer.open(blob[: OVERHEAD - 1], b"role")
    with pytest.raises(SealError, match="unknown blob version"):
        sealer.open(bytes([2]) + blob[1:], b"role")
    with pytest.raises(SealError):
        sealer.open(blob[:-1], b"role")


def test_another_key_cannot_open(sealer: Sealer) -> None:
    other = Sealer(KeySet.derive(bytes(range(1, 33)), REPO_ID))
    with pytest.raises(SealError):
        other.open(sealer.seal(b"data", b"role"), b"role")


def test_same_master_key_in_another_repository_derives_other_keys() -> None:
    one = KeySet.derive(bytes(32), REPO_ID)
    two = KeySet.derive(bytes(32), "ff" * 16)
    assert one.encryption_key != two.encryption_key
    assert one.id_key != two.id_key
    assert one.chunker_seed != two.chunker_seed
    assert len({one.encryption_key, one.id_key}) == 2
    with pytest.raises(ValueError, match="32 bytes"):
        KeySet.derive(bytes(16), REPO_ID)


def test_chunk_is_checked_against_its_id(sealer: Sealer) -> None:
    good = b"the chunk"
    cid = sealer.chunk_id(good)
    assert len(cid) == 32
    assert sealer.open_chunk(cid, sealer.seal_chunk(cid, good)) == good
    # Authentic for that id, but not the content the id names: still refused.
    forged = sealer.seal(b"other content", AAD_CHUNK + cid)
    with pytest.raises(SealError, match="does not match its id"):
        sealer.open_chunk(cid, forged)
    # A chunk sealed under one id does not open under another.
    other = sealer.chunk_id(b"other content")
    with pytest.raises(SealError, match="authentication failed"):
        sealer.open_chunk(other, sealer.seal_chunk(cid, good))


def test_sealer_is_safe_across_threads(sealer: Sealer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    datas = [os.urandom(200) + b"x" * 3000 for _ in range(64)]
    with ThreadPoolExecutor(8) as pool:
        blobs = list(pool.map(lambda d: sealer.seal(d, b"role"), datas))
        opened = list(pool.map(lambda b: sealer.open(b, b"role"), blobs))
    assert opened == datas


# --- adaptive compression: a second, higher level for chunks that compress well ---------


def _rows(size: int) -> bytes:
    """Dump-like COPY lines (text and numbers): zstd level 1 shrinks them below half."""
    rows = (f"{i}\tcliente {i * 7919 % 1000}\t{i * 31 % 997}.50\tpagada\n" for i in range(size))
    return "".join(rows).encode()[:size]


def _adaptive() -> Sealer:
    return Sealer(KeySet.derive(bytes(range(32)), REPO_ID), 1, compressible_level=9)


def test_text_is_compressed_again_at_the_compressible_level(sealer: Sealer) -> None:
    data = _rows(16 * 1024)
    adaptive = _adaptive()
    assert len(adaptive.seal(data, b"role")) < len(sealer.seal(data, b"role"))


def test_chunks_that_compress_poorly_keep_level_1(sealer: Sealer) -> None:
    # Half random bytes: level 1 keeps more than half of it, so no second attempt; the
    # sealed size is exactly level 1's (zstd is deterministic).
    mixed = os.urandom(8 * 1024) + _rows(8 * 1024)
    adaptive = _adaptive()
    assert len(adaptive.seal(mixed, b"role")) == len(sealer.seal(mixed, b"role"))
    noise = os.urandom(16 * 1024)
    assert len(adaptive.seal(noise, b"role")) == len(noise) + OVERHEAD


def test_every_kind_of_chunk_round_trips_across_settings(sealer: Sealer) -> None:
    """Stored, level 1 and recompressed chunks open with either sealer: the second level
    writes the same codec (a zstd frame), so chunks written before it stay readable and
    repositories written with it stay readable by a respaldo without it."""
    adaptive = _adaptive()
    kinds = [b"", os.urandom(16 * 1024), os.urandom(8 * 1024) + _rows(8 * 1024), _rows(16 * 1024)]
    for data in kinds:
        for writer in (sealer, adaptive):
            blob = writer.seal_chunk(writer.chunk_id(data), data)
            for reader in (sealer, adaptive):
                assert reader.open_chunk(reader.chunk_id(data), blob) == data


@pytest.mark.parametrize("level", [0, 1])
def test_a_compressible_level_not_above_the_first_is_off(sealer: Sealer, level: int) -> None:
    data = _rows(16 * 1024)
    off = Sealer(KeySet.derive(bytes(range(32)), REPO_ID), 1, compressible_level=level)
    assert len(off.seal(data, b"role")) == len(sealer.seal(data, b"role"))


# --- a block's chunks sealed in one call (the backup writer's workers) -------------------


def _batch() -> list[bytes | memoryview]:
    """Every kind of chunk, as bytes and as windows on a block: empty, incompressible,
    half text, text, and text the compressor shrinks by one byte or not at all."""
    block = memoryview(_rows(48 * 1024) + os.urandom(3000))
    return [
        b"",
        os.urandom(16 * 1024),
        os.urandom(8 * 1024) + _rows(8 * 1024),
        _rows(16 * 1024),
        block[: 16 * 1024],
        block[16 * 1024 : 48 * 1024],
        block[48 * 1024 :],
        b"x",
    ]


@pytest.mark.parametrize("compressible_level", [0, 9])
def test_seal_chunks_makes_the_blobs_seal_chunk_makes(
    monkeypatch: pytest.MonkeyPatch, compressible_level: int
) -> None:
    """Byte for byte under the same nonces: the codec, the zstd frame, the layout."""
    writer = Sealer(KeySet.derive(bytes(range(32)), REPO_ID), 1, compressible_level=9)
    if not compressible_level:
        writer = Sealer(KeySet.derive(bytes(range(32)), REPO_ID))
    datas = _batch()
    ids = [writer.chunk_id(d) for d in datas]
    monkeypatch.setattr("os.urandom", lambda n: bytes(n))
    one_by_one = [writer.seal_chunk(cid, d) for cid, d in zip(ids, datas, strict=True)]
    assert writer.seal_chunks(ids, datas) == one_by_one
    assert all(isinstance(b, bytes) for b in one_by_one)


def test_seal_chunks_gives_each_chunk_a_fresh_nonce_and_blobs_that_open(sealer: Sealer) -> None:
    datas = _batch() * 4  # the same content several times: still a nonce each
    ids = [sealer.chunk_id(d) for d in datas]
    blobs = sealer.seal_chunks(ids, datas)
    assert len({b[1 : 1 + NONCE_SIZE] for b in blobs}) == len(datas)
    for cid, data, blob in zip(ids, datas, blobs, strict=True):
        assert sealer.open_chunk(cid, blob) == data
    # Bound to its own id as one sealed alone is.
    with pytest.raises(SealError, match="authentication failed"):
        sealer.open_chunk(ids[1], blobs[3])
    assert sealer.seal_chunks([], []) == []


def test_seal_chunks_refuses_ids_that_do_not_pair_with_the_chunks(sealer: Sealer) -> None:
    with pytest.raises(ValueError, match="one id per chunk"):
        sealer.seal_chunks([sealer.chunk_id(b"a")], [b"a", b"b"])

"""A pack of fixed chunks and nonce has a recorded id: any change to how packs are built
(in place in reused buffers, say) must keep their format to the byte."""

from __future__ import annotations

import hashlib
import random

import pytest

from respaldo.repository.crypto import KeySet, Sealer
from respaldo.repository.packs import PackBuilder, pack_id_of

REPO_ID = "00112233445566778899aabbccddeeff"
# The pack id of _CHUNKS built with a fixed nonce, recorded from the builder that joins a
# list of sealed chunks: the pack format must not change by a byte.
GOLDEN_PACK_ID = "b37298951bb1d534924878158eed018abed63526d9997217059c24e8f49e518e"


def _sealer() -> Sealer:
    return Sealer(KeySet.derive(bytes(range(32)), REPO_ID))


def _chunks() -> list[tuple[bytes, bytes, int]]:
    """(chunk id, sealed bytes, plain length), sealed chunks of varied sizes."""
    rng = random.Random(7)
    out = []
    for i in range(40):
        sealed = rng.randbytes(rng.randrange(1, 9000))
        out.append((hashlib.sha256(b"%d" % i).digest(), sealed, len(sealed) + i))
    return out


@pytest.fixture
def fixed_nonce(monkeypatch: pytest.MonkeyPatch) -> None:
    # The pack's nonce comes from os.urandom (respaldo.repository.crypto): all zeros here.
    monkeypatch.setattr("os.urandom", lambda n: bytes(n))


@pytest.mark.usefixtures("fixed_nonce")
def test_a_pack_has_the_bytes_of_the_joined_format() -> None:
    sealer = _sealer()
    builder = PackBuilder(50_000)
    for cid, sealed, raw in _chunks():
        builder.add(cid, sealed, raw)
    pack_id, data, _entries = builder.finish(sealer)
    assert pack_id == pack_id_of(data) == GOLDEN_PACK_ID

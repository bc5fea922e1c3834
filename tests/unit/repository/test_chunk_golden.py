"""Cut points and chunk ids are part of the repository format: pinned here, byte for byte.

Deduplication against the backups already in a repository works only while the same
bytes cut into the same chunks with the same ids. A faster chunking or hashing path must
therefore give exactly what these digests record (computed with the pipeline of
format version 1); a change that alters them needs a new format version, not new digests.
"""

from __future__ import annotations

import hashlib
import io
import types

import pytest

from respaldo.repository import BackupWriter, ChunkerParams, Repository
from respaldo.repository import repo as repo_module
from respaldo.repository.chunker import iter_chunks, load_fastcdc
from respaldo.repository.crypto import KeySet, Sealer
from respaldo.storage.memory import MemoryStorage
from tests.unit.repository.helpers import (
    KDF,
    STARTED,
    TrickleReadinto,
    compressible_bytes,
    random_bytes,
    stream_entries,
)

pytestmark = pytest.mark.unit

MASTER_KEY = bytes(range(32))
REPOSITORY_ID = "00" * 16
SMALL = ChunkerParams(256, 1024, 4096)
DEFAULT = ChunkerParams(4096, 16384, 65536)
# (number of chunks, SHA-256 of the lengths joined by commas, SHA-256 of the ids joined)
GOLDEN = {
    SMALL: (
        308,
        "3d34ddc9e93d1c58f901b8db6384013074864f7a69b47865ea24babf181dc395",
        "5c7668d76d0ea552dc80bcf4d4d4220f43f8ffb79a35a28eae6013d0d15fb191",
    ),
    DEFAULT: (
        18,
        "ee67880d499ca42db29e60dae9127e80c91aff9755e5319473e1535df2b6ab95",
        "b6f642b349c975a9b39482ce1833ba27caae033d233bc352d3a7d5e981af42a8",
    ),
}


def _data() -> bytes:
    """Text a dump's COPY lines look like, then incompressible bytes, then text again."""
    return (
        compressible_bytes(150_000, seed=11)
        + random_bytes(150_000, seed=12)
        + compressible_bytes(100_000, seed=13)
    )


def _digests(entries: list[tuple[bytes, int]]) -> tuple[int, str, str]:
    lengths = ",".join(str(n) for _, n in entries).encode()
    ids = b"".join(cid for cid, _ in entries)
    return len(entries), hashlib.sha256(lengths).hexdigest(), hashlib.sha256(ids).hexdigest()


def _fixed_repo(params: ChunkerParams) -> Repository:
    """A repository whose master key and id (so chunker seed and id key) are fixed."""
    fixed = types.SimpleNamespace(
        token_hex=lambda n: REPOSITORY_ID, token_bytes=lambda n: MASTER_KEY
    )
    mp = pytest.MonkeyPatch()
    mp.setattr(repo_module, "secrets", fixed)
    try:
        return Repository.init(MemoryStorage("golden"), "golden", chunker=params, kdf=KDF)
    finally:
        mp.undo()


@pytest.mark.parametrize("params", [SMALL, DEFAULT], ids=["small", "default"])
def test_the_reference_algorithm_still_cuts_as_recorded(params: ChunkerParams) -> None:
    """pyfastcdc's own cutting of the whole buffer, the definition the writer must match."""
    keys = KeySet.derive(MASTER_KEY, REPOSITORY_ID)
    sealer = Sealer(keys)
    fastcdc = load_fastcdc()(
        params.avg_size,
        min_size=params.min_size,
        max_size=params.max_size,
        normalized_chunking=params.normalization,
        seed=keys.chunker_seed,
    )
    chunks = [bytes(c.data) for c in fastcdc.cut_buf(_data())]
    assert _digests([(sealer.chunk_id(c), len(c)) for c in chunks]) == GOLDEN[params]


@pytest.mark.parametrize("params", [SMALL, DEFAULT], ids=["small", "default"])
def test_iter_chunks_cuts_as_recorded(params: ChunkerParams) -> None:
    keys = KeySet.derive(MASTER_KEY, REPOSITORY_ID)
    sealer = Sealer(keys)
    for source in (io.BytesIO(_data()), TrickleReadinto(_data(), step=777)):
        chunks = list(iter_chunks(source, params, keys.chunker_seed))
        assert _digests([(sealer.chunk_id(c), len(c)) for c in chunks]) == GOLDEN[params]


@pytest.mark.parametrize("params", [SMALL, DEFAULT], ids=["small", "default"])
def test_a_backup_stores_the_recorded_chunks(params: ChunkerParams) -> None:
    """The whole write path: the stream's list of (id, length) is the recorded one,
    from a file-like source read in one go and from a pipe that trickles."""
    repo = _fixed_repo(params)
    assert repo.keys == KeySet.derive(MASTER_KEY, REPOSITORY_ID)
    sources: dict[str, io.BytesIO | TrickleReadinto] = {
        "whole": io.BytesIO(_data()),
        "trickle": TrickleReadinto(_data(), step=777),
    }
    with BackupWriter(repo, "golden") as writer:
        for name, source in sources.items():
            writer.write_stream(name, source)
        manifest = writer.commit(kind="full", source="erp", started_at=STARTED)
    for name in sources:
        assert _digests(stream_entries(repo, manifest, name)) == GOLDEN[params]

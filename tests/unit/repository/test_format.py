"""The on-storage layout, checked from the bytes (docs/repository-format.md).

The format outlives the code that writes it: these tests read objects the way the spec
describes them, not through the code under test, so that a change to either shows.
"""

from __future__ import annotations

import hashlib
import struct

import pytest

from respaldo.repository import Repository
from respaldo.repository.crypto import AAD_INDEX, AAD_PACK_HEADER
from respaldo.storage.base import Storage
from tests.unit.repository.helpers import (
    compressible_bytes,
    names,
    random_bytes,
    stream_entries,
    write_backup,
)

pytestmark = pytest.mark.unit


def _header(repo: Repository, pack: bytes) -> list[tuple[bytes, int, int, int]]:
    (header_len,) = struct.unpack("<I", pack[-4:])
    sealed = pack[-4 - header_len : -4]
    plain = repo.sealer.open(sealed, AAD_PACK_HEADER)
    assert len(plain) % 44 == 0
    return [struct.unpack_from("<32sIII", plain, i) for i in range(0, len(plain), 44)]


def test_packs_and_index_files_match_the_spec(storage: Storage, repo: Repository) -> None:
    data = random_bytes(60_000, seed=1) + compressible_bytes(30_000)
    manifest, _ = write_backup(repo, "b1", {"dump": data})
    packs = names(storage, "packs/")
    assert len(packs) > 3
    from_headers: dict[bytes, tuple[str, int, int, int]] = {}
    for name in packs:
        prefix, shard, pack_id = name.split("/")
        blob = storage.get(name)
        assert prefix == "packs"
        assert pack_id == hashlib.sha256(blob).hexdigest()
        assert shard == pack_id[:2]
        entries = _header(repo, blob)
        # Chunks sit back to back from offset 0, then the header.
        offset = 0
        for cid, off, length, raw in entries:
            assert off == offset
            offset += length
            chunk = repo.sealer.open_chunk(cid, blob[off : off + length])
            assert len(chunk) == raw
            from_headers[cid] = (pack_id, off, length, raw)
        (header_len,) = struct.unpack("<I", blob[-4:])
        assert offset + header_len + 4 == len(blob)

    from_index: dict[bytes, tuple[str, int, int, int]] = {}
    for name in names(storage, "index/"):
        blob = storage.get(name)
        assert name == "index/" + hashlib.sha256(blob).hexdigest()
        plain = repo.sealer.open(blob, AAD_INDEX)
        assert plain[:5] == b"RIDX\x01"
        pos = 5
        while pos < len(plain):
            raw_pack, count = struct.unpack_from("<32sI", plain, pos)
            pos += 36
            for _ in range(count):
                cid, off, length, raw = struct.unpack_from("<32sIII", plain, pos)
                pos += 44
                from_index[cid] = (raw_pack.hex(), off, length, raw)
    assert from_index == from_headers

    # The list chunk: 36-byte entries, chunk id then plaintext length, in stream order.
    (list_id,) = manifest.streams[0].lists
    pack_id, off, length, _ = from_index[bytes.fromhex(list_id)]
    pack = storage.get(f"packs/{pack_id[:2]}/{pack_id}")
    listing = repo.sealer.open_chunk(bytes.fromhex(list_id), pack[off : off + length])
    listed = [struct.unpack_from("<32sI", listing, i) for i in range(0, len(listing), 36)]
    assert listed == stream_entries(repo, manifest)
    assert sum(n for _, n in listed) == len(data)
    assert len(listed) == manifest.streams[0].chunks


def test_manifest_plaintext_is_the_documented_json(repo: Repository) -> None:
    import json

    write_backup(repo, "b1", {"dump": b"data", "globals": b""}, meta={"rows": {"t": 1}})
    blob = repo.storage.get("manifests/b1")
    doc = json.loads(repo.sealer.open(blob, b"respaldo/manifest/b1"))
    assert set(doc) == {
        "version",
        "backup_id",
        "kind",
        "source",
        "started_at",
        "completed_at",
        "tool_version",
        "streams",
        "meta",
    }
    assert doc["version"] == 1
    assert doc["backup_id"] == "b1"
    assert doc["meta"] == {"rows": {"t": 1}}
    assert [set(s) for s in doc["streams"]] == [{"name", "size", "sha256", "chunks", "lists"}] * 2
    assert doc["streams"][1] == {
        "name": "globals",
        "size": 0,
        "sha256": hashlib.sha256(b"").hexdigest(),
        "chunks": 0,
        "lists": [],
    }


def test_nothing_but_config_and_keys_is_readable_without_the_key(
    storage: Storage, repo: Repository
) -> None:
    text = b"SELECT secret FROM payroll; -- a recognisable plaintext " * 50
    write_backup(repo, "b1", {"dump": text}, meta={"database": "payroll"})
    for name in names(storage):
        if name == "config" or name.startswith("keys/"):
            continue
        blob = storage.get(name)
        assert b"payroll" not in blob, name
        assert b"secret" not in blob, name

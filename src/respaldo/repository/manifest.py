"""Manifests: the one document that makes a backup exist.

``manifests/<backup id>`` is a sealed blob (associated data ``respaldo/manifest/<backup
id>``) holding UTF-8 JSON::

    {"version": 1, "backup_id": "…", "kind": "full", "source": "erp",
     "started_at": "…", "completed_at": "…", "tool_version": "0.1.0",
     "streams": [{"name": "dump", "size": 123, "sha256": "<hex>", "chunks": 4,
                  "lists": ["<chunk id hex>", …]}],
     "meta": {…source-specific: server version, system identifier, row counts…}}

A stream's chunk list is stored in *list chunks* (chunks like any other, deduplicated and
sealed the same way) so that the manifest, and the memory to write and read it, stays small
whatever the stream's size. A list chunk's plaintext is a run of 36-byte entries
``chunk id (32) | plain length (u32 little endian)``; the stream is the concatenation of
the listed chunks, in order.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from respaldo.repository.crypto import AAD_MANIFEST

MANIFEST_PREFIX = "manifests/"
LIST_ENTRY = struct.Struct("<32sI")
# 16384 entries of 36 bytes: list chunks of 576 KiB at most, one per ~256 MiB of stream.
LIST_ENTRIES_MAX = 16384


@dataclass(frozen=True)
class StreamInfo:
    name: str
    size: int
    sha256: str
    chunks: int
    lists: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "size": self.size,
            "sha256": self.sha256,
            "chunks": self.chunks,
            "lists": self.lists,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StreamInfo:
        return cls(
            str(data["name"]),
            int(data["size"]),
            str(data["sha256"]),
            int(data["chunks"]),
            [str(x) for x in data["lists"]],
        )


@dataclass
class Manifest:
    backup_id: str
    kind: str
    source: str
    started_at: datetime
    completed_at: datetime
    tool_version: str
    streams: list[StreamInfo]
    meta: dict[str, Any] = field(default_factory=dict)

    def stream(self, name: str) -> StreamInfo:
        for s in self.streams:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def size(self) -> int:
        return sum(s.size for s in self.streams)

    def to_bytes(self) -> bytes:
        doc = {
            "version": 1,
            "backup_id": self.backup_id,
            "kind": self.kind,
            "source": self.source,
            "started_at": self.started_at.isoformat(),
            "completed_at": self.completed_at.isoformat(),
            "tool_version": self.tool_version,
            "streams": [s.to_json() for s in self.streams],
            "meta": self.meta,
        }
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        doc = json.loads(data)
        if doc.get("version") != 1:
            raise ValueError(f"unknown manifest version {doc.get('version')!r}")
        return cls(
            backup_id=str(doc["backup_id"]),
            kind=str(doc["kind"]),
            source=str(doc["source"]),
            started_at=datetime.fromisoformat(doc["started_at"]),
            completed_at=datetime.fromisoformat(doc["completed_at"]),
            tool_version=str(doc["tool_version"]),
            streams=[StreamInfo.from_json(s) for s in doc["streams"]],
            meta=dict(doc.get("meta") or {}),
        )


def manifest_name(backup_id: str) -> str:
    return f"{MANIFEST_PREFIX}{backup_id}"


def manifest_aad(backup_id: str) -> bytes:
    return AAD_MANIFEST + backup_id.encode()


def encode_list(entries: list[tuple[bytes, int]]) -> bytes:
    return b"".join(LIST_ENTRY.pack(cid, length) for cid, length in entries)


def decode_list(data: bytes) -> list[tuple[bytes, int]]:
    if len(data) % LIST_ENTRY.size:
        raise ValueError("list chunk length is not a multiple of the entry size")
    return [(bytes(cid), int(n)) for cid, n in LIST_ENTRY.iter_unpack(data)]

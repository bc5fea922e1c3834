"""Synthetic WAL segments and base backup archives, shaped as PostgreSQL makes them."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import tarfile

import crc32c

from respaldo.postgres.wal import LONG_HEADER, SHORT_HEADER, XLP_LONG_HEADER

SEGMENT_SIZE = 1024 * 1024
PAGE = 8192
MAGIC = 0xD110


def make_segment(sysid: int, timeline: int, segno: int, *, valid_pages: int = 0) -> bytes:
    """A segment whose first ``valid_pages`` pages (all if 0) are its own and the rest stale
    pages of an older use of the file (another address), as in a recycled segment."""
    data = bytearray(os.urandom(SEGMENT_SIZE))
    start = segno * SEGMENT_SIZE
    pages = SEGMENT_SIZE // PAGE
    valid = valid_pages or pages
    for i in range(pages):
        offset = i * PAGE
        if i == 0:
            LONG_HEADER.pack_into(
                data, 0, MAGIC, XLP_LONG_HEADER, timeline, start, 0, sysid, SEGMENT_SIZE, PAGE
            )
        else:
            address = start + offset if i < valid else offset  # stale: segment 0's
            SHORT_HEADER.pack_into(data, offset, MAGIC, 0, timeline, address)
    return bytes(data)


def control_file(sysid: int) -> bytes:
    return struct.pack("<QI", sysid, 1300) + bytes(8192 - 12)


def file_checksum(data: bytes, algorithm: str, crc_byteorder: str = "little") -> str:
    """A file's ``Checksum`` in a ``backup_manifest``, as the server writes it."""
    if algorithm == "SHA256":
        return hashlib.sha256(data).hexdigest()
    assert algorithm == "CRC32C", algorithm
    return crc32c.crc32c(data).to_bytes(4, crc_byteorder).hex()  # type: ignore[arg-type]


def _member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    info.mtime = 1_700_000_000
    tar.addfile(info, io.BytesIO(data))


def base_backup(
    *,
    sysid: int = 7000000000000000001,
    files: dict[str, bytes] | None = None,
    wal: dict[str, bytes] | None = None,
    manifest_files: dict[str, bytes] | None = None,
    wal_range: tuple[str, str] = ("0/200028", "0/200100"),
    tamper_manifest: bool = False,
    checksums: str = "CRC32C",
    crc_byteorder: str = "little",
    checksum_of: dict[str, bytes] | None = None,
) -> bytes:
    """A tar as ``pg_basebackup -Ft -D - -X fetch --manifest-checksums=CHECKSUMS`` writes it.

    ``checksums``: the manifest's file checksum algorithm (CRC32C, SHA256 or NONE). A
    server writes a CRC32C as the hex of its four bytes in the machine's byte order
    (``crc_byteorder``: little on x86 and ARM, big on s390x, which the check refuses).
    ``checksum_of``: other contents for some paths, whose checksum the manifest then gives
    instead of their own (the manifest's own checksum still matches it)."""
    label = (
        b"START WAL LOCATION: 0/200028 (file 000000010000000000000002)\n"
        b"CHECKPOINT LOCATION: 0/200060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\n"
        b"START TIME: 2026-11-28 08:00:00 UTC\nLABEL: test\nSTART TIMELINE: 1\n"
    )
    content = {
        "backup_label": label,
        "global/pg_control": control_file(sysid),
        "base/1/1259": os.urandom(40_000),
        "PG_VERSION": b"15\n",
        **(files or {}),
    }
    segments = wal if wal is not None else {"000000010000000000000002": make_segment(sysid, 1, 2)}
    listed = manifest_files if manifest_files is not None else content
    claimed = {**listed, **(checksum_of or {})}
    entries = [
        {
            "Path": path,
            "Size": len(data),
            "Last-Modified": "2026-11-28 08:00:00 GMT",
            "Checksum-Algorithm": checksums,
            **(
                {}
                if checksums == "NONE"
                else {"Checksum": file_checksum(claimed[path], checksums, crc_byteorder)}
            ),
        }
        for path, data in listed.items()
    ]
    body = (
        '{ "PostgreSQL-Backup-Manifest-Version": 1,\n"Files": [\n'
        + ",\n".join(json.dumps(e) for e in entries)
        + '\n],\n"WAL-Ranges": [\n'
        + json.dumps({"Timeline": 1, "Start-LSN": wal_range[0], "End-LSN": wal_range[1]})
        + "\n],\n"
    ).encode()
    checksum = hashlib.sha256(body).hexdigest()
    if tamper_manifest:
        body = body.replace(b"PG_VERSION", b"PG_VERSIoN")
    manifest = body + f'"Manifest-Checksum": "{checksum}"}}\n'.encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path, data in content.items():
            _member(tar, path, data)
        for name, data in segments.items():
            _member(tar, f"pg_wal/{name}", data)
        _member(tar, "backup_manifest", manifest)
    return buf.getvalue()

"""Sealing: compress, encrypt and authenticate one piece of data; and chunk ids.

A *sealed blob* is::

    version (1 byte, 0x01) | nonce (12 bytes) | AES-256-GCM(plaintext') with 16-byte tag

where ``plaintext' = codec (1 byte: 0x00 stored, 0x01 zstd frame) | payload``. The codec
byte is inside the encryption so that not even "this chunk compressed well" leaks.
Associated data binds a blob to its role and name (a chunk to its id, a manifest to its
backup id), so that a blob moved to another place fails authentication.

Nonces are random: safe for 2**32 seals per key (NIST SP 800-38D), i.e. about 64 TiB of
16 KiB chunks per repository.

Keys: the 256-bit master key never encrypts anything itself. HKDF-SHA256 derives from it,
with the repository id as salt, an encryption key, a chunk-id key, the chunker seed and
the key that authenticates the repository's ``config``.
"""

from __future__ import annotations

import hmac
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import blake3
import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

BLOB_VERSION = 1
NONCE_SIZE = 12
TAG_SIZE = 16
OVERHEAD = 1 + NONCE_SIZE + TAG_SIZE + 1
CODEC_STORED = 0
CODEC_ZSTD = 1

ID_SIZE = 32

AAD_CHUNK = b"respaldo/chunk/"
AAD_PACK_HEADER = b"respaldo/pack-header"
AAD_INDEX = b"respaldo/index"
AAD_MANIFEST = b"respaldo/manifest/"

# The one-byte prefixes, made once: ``bytes([x])`` per chunk was a list and a bytes each.
_VERSION_BYTE = bytes([BLOB_VERSION])
_STORED_BYTE = bytes([CODEC_STORED])
_ZSTD_BYTE = bytes([CODEC_ZSTD])


class SealError(Exception):
    """A blob failed authentication or could not be decoded. Callers add context."""


def _hkdf(master: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(master)


@dataclass(frozen=True)
class KeySet:
    """The keys derived from one master key for one repository."""

    encryption_key: bytes
    id_key: bytes
    chunker_seed: int
    config_key: bytes

    @classmethod
    def derive(cls, master_key: bytes, repository_id: str) -> KeySet:
        if len(master_key) != 32:
            raise ValueError("the master key must be 32 bytes")
        salt = bytes.fromhex(repository_id)
        seed_bytes = _hkdf(master_key, salt, b"respaldo chunker seed", 8)
        # pyfastcdc takes a signed 64-bit seed: keep 63 bits.
        seed = struct.unpack("<Q", seed_bytes)[0] >> 1
        return cls(
            encryption_key=_hkdf(master_key, salt, b"respaldo encryption key"),
            id_key=_hkdf(master_key, salt, b"respaldo chunk id key"),
            chunker_seed=seed,
            config_key=_hkdf(master_key, salt, b"respaldo config key"),
        )

    def __repr__(self) -> str:  # keys never reach a log by accident
        return "KeySet(<secret>)"


class Sealer:
    """Seals and opens blobs with one key set. Thread-safe (no shared mutable state
    beyond per-thread zstd contexts)."""

    def __init__(
        self, keys: KeySet, compression_level: int = 1, *, compressible_level: int = 0
    ) -> None:
        """``compressible_level``: when above ``compression_level``, data that the first
        level shrinks to at most half is compressed again at this level, and the smaller
        result kept (:meth:`_compress`). 0 (or not above the first level): off."""
        self._keys = keys
        self._aead = AESGCM(keys.encryption_key)
        self._level = compression_level
        self.compression_level = compression_level
        self.compressible_level = compressible_level
        self._second = compressible_level if compressible_level > compression_level else 0
        import threading

        self._local = threading.local()

    def _compressor(self, level: int) -> zstandard.ZstdCompressor:
        comps: dict[int, zstandard.ZstdCompressor] | None = getattr(self._local, "comps", None)
        if comps is None:
            comps = self._local.comps = {}
        comp = comps.get(level)
        if comp is None:
            comp = comps[level] = zstandard.ZstdCompressor(level=level)
        return comp

    def _compress(self, data: bytes | memoryview) -> bytes:
        """zstd at the first level; then, for data it shrank to at most half (text rows
        of a dump, not photos nor chunks that are half photo), at the compressible level.
        Measured on 16 KiB chunks of four dumps (docs/benchmarks.md): chunks above half
        gain nothing at higher levels, so only text pays the slower level's CPU. Both
        are plain zstd frames: any reader opens either."""
        packed = self._compressor(self._level).compress(data)
        if self._second and 2 * len(packed) <= len(data):
            again = self._compressor(self._second).compress(data)
            if len(again) < len(packed):
                return again
        return packed

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        dec = getattr(self._local, "decompressor", None)
        if dec is None:
            dec = zstandard.ZstdDecompressor()
            self._local.decompressor = dec
        return dec

    def chunk_id(self, data: bytes | memoryview) -> bytes:
        """Keyed BLAKE3 of the plaintext: equal data, equal id; ids reveal nothing."""
        return blake3.blake3(data, key=self._keys.id_key).digest()

    def seal(self, data: bytes | memoryview, aad: bytes, *, compress: bool = True) -> bytes:
        """Compress (when it helps) and encrypt ``data`` bound to ``aad``."""
        body = self._body(data, compress)
        nonce = os.urandom(NONCE_SIZE)
        sealed = self._aead.encrypt(nonce, body, aad)
        # Two copies of the sealed size at a time, not three (the compressed payload, the
        # body and the ciphertext): an index file is sealed at a backup's peak.
        del body
        return bytes([BLOB_VERSION]) + nonce + sealed

    def _body(self, data: bytes | memoryview, compress: bool) -> bytes:
        """The codec's byte and the payload: ``data`` compressed, if that makes it smaller."""
        if compress and data:
            packed = self._compress(data)
            # Incompressible data (photos in bytea) is kept as is: smaller, faster to open.
            if len(packed) < len(data):
                return bytes([CODEC_ZSTD]) + packed
        return bytes([CODEC_STORED]) + data

    def open(self, blob: bytes | memoryview, aad: bytes, *, max_size: int = 1 << 30) -> bytes:
        """Authenticate, decrypt and decompress a blob. Raises SealError."""
        if len(blob) < OVERHEAD:
            raise SealError("blob is truncated")
        if blob[0] != BLOB_VERSION:
            raise SealError(f"unknown blob version {blob[0]}")
        nonce = blob[1 : 1 + NONCE_SIZE]
        try:
            plain = self._aead.decrypt(nonce, blob[1 + NONCE_SIZE :], aad)
        except InvalidTag:
            raise SealError("authentication failed (data corrupt or tampered with)") from None
        codec = plain[0]
        if codec == CODEC_STORED:
            return plain[1:]
        if codec == CODEC_ZSTD:
            try:
                # zstd reads the frame through a view: ``plain[1:]`` copied every
                # compressed chunk once more before decompressing it (docs/benchmarks.md,
                # session 23: directory restore).
                return self._decompressor().decompress(
                    memoryview(plain)[1:], max_output_size=max_size
                )
            except zstandard.ZstdError as exc:
                raise SealError(f"decompression failed: {exc}") from None
        raise SealError(f"unknown codec {codec}")

    def seal_chunk(self, chunk_id: bytes, data: bytes | memoryview) -> bytes:
        return self.seal(data, AAD_CHUNK + chunk_id)

    def seal_chunks(
        self, chunk_ids: Sequence[bytes], datas: Sequence[bytes | memoryview]
    ) -> list[bytes]:
        """:meth:`seal_chunk` of each chunk, in order: the same blobs (each chunk its own
        zstd frame, a fresh random nonce each), with the per-call work done once for the
        batch. The backup writer's workers seal a block's new chunks (about 1 MiB of them)
        in one call: zstd compresses them all in one call that releases the GIL once
        (``multi_compress_to_buffer``, the frames ``compress`` makes, byte for byte), one
        ``os.urandom`` gives all the nonces, and each blob is built with one copy. A small
        gain: alone, on the 1 GB sample's chunks, the same CPU as a call per chunk within
        the noise (zstd's own work dominates); in the writer, the hand-offs of the GIL and
        a system call per chunk saved, 3.96 against 4.08 CPU-s per GiB (median of six
        pairs, -0.38 to +0.11)."""
        count = len(datas)
        if count != len(chunk_ids):
            raise ValueError("seal_chunks takes one id per chunk")
        if not count:
            return []
        # Slices of one random string are as random and as independent as separate ones.
        nonces = os.urandom(NONCE_SIZE * count)
        packed: list[bytes | memoryview | None]
        if self._second:  # the second pass decides chunk by chunk (_compress)
            packed = [self._compress(d) if d else None for d in datas]
        else:
            # zstd refuses an empty input (the chunker cuts none; a caller might).
            filled: list[bytes | bytearray | memoryview] = [d for d in datas if d]
            frames = iter(
                self._compressor(self._level).multi_compress_to_buffer(filled) if filled else ()
            )
            # A view of each frame, no copy: a segment keeps its collection's buffer alive
            # (the stub does not declare the buffer protocol BufferSegment has).
            packed = [memoryview(next(frames)) if d else None for d in datas]  # type: ignore[arg-type]
        encrypt = self._aead.encrypt
        sealed = []
        at = 0
        for chunk_id, data, frame in zip(chunk_ids, datas, packed, strict=True):
            nonce = nonces[at : at + NONCE_SIZE]
            at += NONCE_SIZE
            # Incompressible data is kept as is, as seal() does.
            if frame is not None and len(frame) < len(data):
                plain = _ZSTD_BYTE + frame
            else:
                plain = _STORED_BYTE + data
            body = encrypt(nonce, plain, AAD_CHUNK + chunk_id)
            sealed.append(b"".join((_VERSION_BYTE, nonce, body)))
        return sealed

    def open_chunk(self, chunk_id: bytes, blob: bytes | memoryview) -> bytes:
        """Open a chunk and check it against its id. Raises SealError."""
        data = self.open(blob, AAD_CHUNK + chunk_id)
        if not hmac.compare_digest(self.chunk_id(data), chunk_id):
            raise SealError("chunk content does not match its id")
        return data

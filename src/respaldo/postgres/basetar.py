"""The tar stream of a base backup, parsed as it passes and checked against its manifest.

``pg_basebackup --format=tar --pgdata=-`` writes one ustar archive to stdout: the data
directory (``backup_label`` first), then the WAL segments the backup needs
(``pg_wal/…``, with ``--wal-method=fetch``), then ``backup_manifest``, the JSON list of
every file with its size and checksum that the server computed while sending it.

:class:`TarParser` walks such a stream incrementally, whatever the size of the pieces
it is fed, and hands members and their data to a :class:`TarHandler`.
:class:`BaseBackupCheck` is the handler that checks the backup as pg_verifybackup would:
every file of the manifest present with its size and checksum, no file the manifest does
not know (WAL segments aside), the manifest's own checksum (always SHA-256), and every WAL
segment from the backup's start to its end present, of this cluster (system identifier in
the segment header equal to ``pg_control``'s). It also reads what a backup records: start,
checkpoint and stop LSN, timeline, system identifier.

File checksums: CRC32C or SHA-256 (:data:`CHECKSUMS`). The manifest comes last, so the
check computes, as the files pass, the algorithms it is told to expect: a new backup asks
the server for CRC32C, PostgreSQL's default and pg_verifybackup's, and computes only that;
a restore computes what the stored backup recorded (:func:`checksums_of`; backups taken
before CRC32C have SHA-256 manifests). Why CRC32C: the file check is there for accidental
damage between the server's disk and the repository (a bad copy, a cut or reordered
stream, a bug in this parser): CRC32C catches every burst of up to 32 bits and any other
damage but for one chance in 2^32 (:func:`_crc_hex`), and is what pg_verifybackup checks
by default. Deliberate tampering is not its business: end to end, the stream also gets its
SHA-256 and every chunk its keyed BLAKE3 id, and the repository authenticates both. SHA-256
per file cost a second pass over every byte here (38 ms of CPU per 64 MiB, with the CPU's
SHA instructions, against 5.5 ms for CRC32C) and on the server (a small cluster's backup:
0.09 CPU-s of the walsender against 0.06). An entry whose algorithm was not computed is a
problem, never a file passed unchecked.

Stale WAL pages. A segment that the server recycled still holds, after the last page it
wrote, pages of the WAL it held before. They are not WAL of this segment (their page
header carries another address, which is how recovery itself finds the end of WAL), and
``pg_basebackup --wal-method=stream`` would have written zeros there. With
``zero_stale_wal`` the parser replaces them with zeros as they pass: stored backups then
deduplicate (zeros cost nothing) instead of each carrying a few MiB of old WAL.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import crc32c

from respaldo.errors import BaseBackupInvalid
from respaldo.phrases import counted
from respaldo.postgres.wal import (
    LONG_HEADER,
    PG_CONTROL,
    SHORT_HEADER,
    control_system_identifier,
    format_lsn,
    page_address,
    parse_lsn,
    parse_segment_header,
    segment_range,
    segment_start,
)

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
MANIFEST = "backup_manifest"
BACKUP_LABEL = "backup_label"
_WAL_SEGMENT = re.compile(r"pg_wal/([0-9A-F]{24})")
_CAPTURED = frozenset((MANIFEST, BACKUP_LABEL, PG_CONTROL, "tablespace_map"))
_CAPTURE_LIMIT = 64 * 1024 * 1024  # backup_manifest of a cluster with a million files
_ZEROS = bytes(1024 * 1024)
CHECKSUMS = ("CRC32C", "SHA256")
"""The manifest file checksum algorithms a :class:`BaseBackupCheck` can compute."""


def checksums_of(recorded: object) -> frozenset[str]:
    """The algorithms to compute for a stored backup, from the ``backup_manifest_checksums``
    its manifest recorded (``"CRC32C"``, ``"SHA256"``, comma-joined if several). Anything
    else (not recorded, unknown) gives all of :data:`CHECKSUMS`: the check then still
    refuses whatever it cannot verify."""
    if isinstance(recorded, str):
        named = frozenset(recorded.split(","))
        if named and named <= frozenset(CHECKSUMS):
            return named
    return frozenset(CHECKSUMS)


class TarMember(NamedTuple):
    """One archive member: ``name`` is relative, without ``./`` or a trailing ``/``.

    A named tuple, not a frozen dataclass: a base backup has a member per relation
    file (1,500 in a 29 MiB cluster), and a frozen dataclass took about 4 µs to make
    against 0.6 µs."""

    name: str
    kind: str  # "file", "dir" or "symlink"
    size: int
    mode: int
    uid: int
    gid: int
    mtime: int
    linkname: str = ""


class TarHandler(Protocol):
    """Receives members in order; ``data`` views are only valid during the call."""

    def begin(self, member: TarMember) -> None: ...

    def data(self, member: TarMember, view: memoryview) -> None: ...

    def end(self, member: TarMember) -> None: ...


class Tee:
    """A handler that passes everything to several handlers, in order."""

    def __init__(self, *handlers: TarHandler) -> None:
        self.handlers = handlers

    def begin(self, member: TarMember) -> None:
        for h in self.handlers:
            h.begin(member)

    def data(self, member: TarMember, view: memoryview) -> None:
        for h in self.handlers:
            h.data(member, view)

    def end(self, member: TarMember) -> None:
        for h in self.handlers:
            h.end(member)


def is_wal_segment(name: str) -> bool:
    """True for a WAL segment's member name (``pg_wal/`` and 24 hex digits)."""
    return name.startswith("pg_wal/") and _WAL_SEGMENT.fullmatch(name) is not None


def _number(field: bytes) -> int:
    if field and field[0] & 0x80:  # base-256, for sizes of 8 GiB and more
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    text = field.split(b"\0", 1)[0]
    try:
        return int(text, 8)  # int() itself skips the spaces around the digits
    except ValueError:
        if not text.strip(b" "):
            return 0
        raise BaseBackupInvalid(f"tar header field {text!r} is not a number") from None


# Names whose every component starts with neither "." nor "/" are safe as they are (no
# empty, "." or ".." component, not absolute): one regular expression call instead of
# the general checks, for the thousands of members of a base backup.
_PLAIN_NAME = re.compile(r"[^./][^/]*(?:/[^./][^/]*)*")


def normalize_member_name(raw: str) -> str:
    """``./pg_wal/archive_status/`` -> ``pg_wal/archive_status``; refuses unsafe names.

    Absolute names, ``..`` and empty components would place a file outside the
    directory it is extracted into. Raises BaseBackupInvalid.
    """
    if _PLAIN_NAME.fullmatch(raw):
        return raw
    name = raw
    while name.startswith("./"):
        name = name[2:]
    name = name.rstrip("/")
    parts = name.split("/")
    if not name or raw.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise BaseBackupInvalid(f"unsafe member name {raw!r} in the base backup")
    return name


# name, mode, uid, gid, size, mtime, checksum, type, linkname, magic, version, uname,
# gname, devmajor, devminor, prefix: the ustar header's fields, in one unpack.
_HEADER = struct.Struct("100s8s8s8s12s12s8sc100s6s2s32s32s8s8s155s")
_KINDS = {b"0": "file", b"\0": "file", b"5": "dir", b"2": "symlink"}


def parse_header(block: bytes) -> TarMember:
    """One 512-byte ustar header. Raises BaseBackupInvalid."""
    (name, mode, uid, gid, size, mtime, stored, typeflag, linkname, magic, *_, prefix) = (
        _HEADER.unpack_from(block)
    )
    # The checksum counts its own field as eight spaces.
    if _number(stored) != sum(block) - sum(stored) + 8 * 32:
        raise BaseBackupInvalid("tar header checksum mismatch: the stream is not a tar archive")
    name = name.split(b"\0", 1)[0]
    if magic[:5] == b"ustar":
        prefix = prefix.split(b"\0", 1)[0]
        if prefix:
            name = prefix + b"/" + name
    kind = _KINDS.get(typeflag)
    if kind is None:
        raise BaseBackupInvalid(f"unexpected tar member type {typeflag!r} for {name!r}")
    return TarMember(
        normalize_member_name(name.decode("utf-8", "surrogateescape")),
        kind,
        _number(size) if kind == "file" else 0,
        _number(mode) & 0o7777,
        _number(uid),
        _number(gid),
        _number(mtime),
        linkname.split(b"\0", 1)[0].decode("utf-8", "surrogateescape"),
    )


class _WalPages:
    """Follows the pages of one WAL segment member and zeroes the stale ones."""

    def __init__(self, segment: str, size: int) -> None:
        self.segment = segment
        self.size = size
        self.offset = 0
        self.active = True
        self.stale = False
        self.page_size = 0
        self.magic = 0
        self.start = 0
        self.zeroed = 0

    def step(self, view: memoryview, pos: int, take: int, final: bool) -> int:
        """How many bytes from ``pos`` may pass now (stale ones zeroed); 0: need more."""
        if not self.active:
            self.offset += take
            return take
        if self.stale:
            self._zero(view, pos, take)
            return take
        if self.page_size == 0:
            need = LONG_HEADER.size
            if take < need:
                return self._short(take, final)
            header = parse_segment_header(view[pos : pos + need])
            if header is None or header.segment_size != self.size:
                self.active = False  # not what we expect: leave it exactly as it is
                return self.step(view, pos, take, final)
            self.page_size, self.magic = header.page_size, header.magic
            self.start = segment_start(self.segment, header.segment_size)
            if header.page_address != self.start:
                self.active = False
                return self.step(view, pos, take, final)
        elif self.offset % self.page_size == 0:
            if take < SHORT_HEADER.size:
                return self._short(take, final)
            magic, address = page_address(view, pos)
            if magic != self.magic or address != self.start + self.offset:
                self.stale = True
                return self.step(view, pos, take, final)
        passed = min(take, self.page_size - self.offset % self.page_size)
        self.offset += passed
        return passed

    def _short(self, take: int, final: bool) -> int:
        # A page header split across two reads: wait for the rest, unless there is none.
        if final or self.size - self.offset <= take:
            self.active = False
            self.offset += take
            return take
        return 0

    def _zero(self, view: memoryview, pos: int, take: int) -> None:
        done = 0
        while done < take:
            n = min(take - done, len(_ZEROS))
            view[pos + done : pos + done + n] = _ZEROS[:n]
            done += n
        self.zeroed += take
        self.offset += take


class TarParser:
    """Walks a tar stream fed in pieces of any size; see :meth:`feed`."""

    def __init__(self, handler: TarHandler, *, zero_stale_wal: bool = False) -> None:
        self.handler = handler
        self.zero_stale_wal = zero_stale_wal
        self.position = 0
        self.members = 0
        self.wal_zeroed = 0
        self._state = "header"
        self._member: TarMember | None = None
        self._remaining = 0
        self._pad = 0
        self._zero_blocks = 0
        self._wal: _WalPages | None = None

    @property
    def finished(self) -> bool:
        """True once the end-of-archive marker has been read."""
        return self._state == "end"

    def feed(self, buf: bytearray | bytes | memoryview, final: bool = False) -> int:
        """Parse from the start of ``buf``; return how many bytes were consumed.

        The caller keeps the bytes not consumed (at most a header's worth) and feeds them
        again, followed by more, next time; ``final`` says no more will come. With
        ``zero_stale_wal``, ``buf`` must be writable and the consumed part may have been
        changed (stale WAL pages zeroed): pass on the consumed bytes, not the input.
        Raises BaseBackupInvalid for anything that is not a well-formed archive.
        """
        view = memoryview(buf)
        pos, n = 0, len(view)
        while pos < n:
            if self._state == "header":
                if n - pos < BLOCK:
                    break
                block = bytes(view[pos : pos + BLOCK])
                pos += BLOCK
                if block == ZERO_BLOCK:
                    self._zero_blocks += 1
                    if self._zero_blocks == 2:
                        self._state = "end"
                    continue
                if self._zero_blocks:
                    raise BaseBackupInvalid("a zero block inside the archive")
                self._begin(parse_header(block))
            elif self._state == "data":
                take = min(self._remaining, n - pos)
                if self._wal is not None:
                    take = self._wal.step(view, pos, take, final)
                    if take == 0:
                        break
                assert self._member is not None
                self.handler.data(self._member, view[pos : pos + take])
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    self._end()
            elif self._state == "pad":
                take = min(self._pad, n - pos)
                pos += take
                self._pad -= take
                if self._pad == 0:
                    self._state = "header"
            else:  # after the end marker: record padding
                pos = n
        self.position += pos
        return pos

    def _begin(self, member: TarMember) -> None:
        self._member = member
        self.members += 1
        self._remaining = member.size
        self._pad = (-member.size) % BLOCK
        self._wal = None
        if self.zero_stale_wal and member.kind == "file" and is_wal_segment(member.name):
            self._wal = _WalPages(member.name.removeprefix("pg_wal/"), member.size)
        self.handler.begin(member)
        self._state = "data"
        if self._remaining == 0:
            self._end()

    def _end(self) -> None:
        assert self._member is not None
        self.handler.end(self._member)
        if self._wal is not None:
            self.wal_zeroed += self._wal.zeroed
            self._wal = None
        self._member = None
        self._state = "pad" if self._pad else "header"

    def close(self) -> None:
        """Raise BaseBackupInvalid unless the whole archive, end marker included, was read."""
        if self._state != "end":
            where = f" inside {self._member.name}" if self._member is not None else ""
            raise BaseBackupInvalid(
                f"the base backup ends early, after {self.position} bytes{where}",
                hint="pg_basebackup was interrupted or the stream was cut; take a new backup",
            )


# --- what a base backup says about itself -----------------------------------------------


@dataclass
class BaseBackupInfo:
    """What the archive and its manifest say; recorded in the backup's manifest."""

    system_identifier: int
    pg_control_version: int
    timeline: int
    start_lsn: int
    checkpoint_lsn: int
    stop_lsn: int
    start_time: str
    label: str
    files: int
    file_bytes: int
    segment_size: int
    wal_segments: list[str]
    manifest_version: int
    checksum_algorithm: str
    manifest_sha256: str
    wal_zeroed: int = 0

    def to_meta(self) -> dict[str, Any]:
        return {
            "system_identifier": str(self.system_identifier),
            "pg_control_version": self.pg_control_version,
            "timeline": self.timeline,
            "start_lsn": format_lsn(self.start_lsn),
            "checkpoint_lsn": format_lsn(self.checkpoint_lsn),
            "stop_lsn": format_lsn(self.stop_lsn),
            "start_time": self.start_time,
            "label": self.label,
            "files": self.files,
            "file_bytes": self.file_bytes,
            "wal_segment_size": self.segment_size,
            "wal_segments": self.wal_segments,
            "backup_manifest_version": self.manifest_version,
            "backup_manifest_checksums": self.checksum_algorithm,
            "backup_manifest_sha256": self.manifest_sha256,
            "wal_stale_bytes_zeroed": self.wal_zeroed,
        }


def parse_backup_label(text: str) -> dict[str, str]:
    """``KEY: value`` lines of a backup_label file."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            out[key.strip()] = value.strip()
    return out


@dataclass
class _Seen:
    size: int
    sha256: str | None
    crc32c: int | None


@dataclass
class BaseBackupCheck:
    """A :class:`TarHandler` that checks a base backup; call :meth:`result` at the end.

    ``checksums``: the file checksum algorithms to compute (a subset of
    :data:`CHECKSUMS`); the manifest's must be one of them."""

    checksums: frozenset[str] = frozenset(CHECKSUMS)
    files: dict[str, _Seen] = field(default_factory=dict)
    symlinks: list[str] = field(default_factory=list)
    _hash: Any = None
    _crc: int | None = None
    _capture: bytearray | None = None
    _captured: dict[str, bytes] = field(default_factory=dict)
    _wal_heads: dict[str, bytes] = field(default_factory=dict)
    _wal: bool = False  # the current member is a WAL segment

    def __post_init__(self) -> None:
        unknown = self.checksums - frozenset(CHECKSUMS)
        if unknown or not self.checksums:
            raise ValueError(f"cannot compute checksums {sorted(unknown)}")
        self._sha = "SHA256" in self.checksums
        self._crc32c = "CRC32C" in self.checksums

    def begin(self, member: TarMember) -> None:
        self._hash = None
        self._crc = None
        self._capture = None
        self._wal = False
        if member.kind == "symlink":
            self.symlinks.append(member.name)
        if member.kind != "file":
            return
        if is_wal_segment(member.name):
            self._wal = True
            self._capture = bytearray()  # the header only; segments are not in the manifest
        else:
            if member.name != MANIFEST:
                if self._sha:
                    self._hash = hashlib.sha256()
                if self._crc32c:
                    self._crc = 0
            if member.name in _CAPTURED:
                if member.size > _CAPTURE_LIMIT:
                    raise BaseBackupInvalid(f"{member.name} is {member.size} bytes: too large")
                self._capture = bytearray()

    def data(self, member: TarMember, view: memoryview) -> None:
        if self._crc is not None:
            self._crc = crc32c.crc32c(view, self._crc)
        if self._hash is not None:
            self._hash.update(view)
        if self._capture is not None:
            if self._wal:
                missing = LONG_HEADER.size - len(self._capture)
                if missing > 0:
                    self._capture += view[:missing]
            else:
                self._capture += view

    def end(self, member: TarMember) -> None:
        if member.kind != "file":
            return
        digest = self._hash.hexdigest() if self._hash is not None else None
        if member.name in self.files:
            raise BaseBackupInvalid(f"{member.name} is twice in the base backup")
        self.files[member.name] = _Seen(member.size, digest, self._crc)
        if self._capture is not None:
            if self._wal:
                self._wal_heads[member.name] = bytes(self._capture)
            else:
                self._captured[member.name] = bytes(self._capture)
        self._hash = None
        self._crc = None
        self._capture = None

    @property
    def manifest_bytes(self) -> bytes | None:
        """``backup_manifest`` as the server wrote it, once it has passed."""
        return self._captured.get(MANIFEST)

    def result(self, *, wal_zeroed: int = 0) -> BaseBackupInfo:
        """Check everything seen against the manifest; raise BaseBackupInvalid listing
        what is wrong (at most ten problems, with a count of the rest)."""
        problems: list[str] = []
        manifest_bytes = self._captured.get(MANIFEST)
        if manifest_bytes is None:
            raise BaseBackupInvalid(
                "the base backup has no backup_manifest",
                hint="the server must be PostgreSQL 13 or newer; manifests must not be disabled",
            )
        manifest = _parse_manifest(manifest_bytes, problems)
        label_text = self._captured.get(BACKUP_LABEL, b"").decode("utf-8", "replace")
        label = parse_backup_label(label_text)
        if not label:
            problems.append("backup_label is missing or empty")
        control = self._captured.get(PG_CONTROL)
        if control is None:
            raise BaseBackupInvalid("the base backup has no global/pg_control")
        sysid, control_version = control_system_identifier(control)
        if self.symlinks:
            # counted(): one tablespace said "1 links".
            links = counted(len(self.symlinks), "{count} link", "{count} links")
            problems.append(f"tablespaces are not supported ({links} in pg_tblspc)")
        algorithm = self._check_files(manifest, problems)
        wal_ranges = manifest.get("WAL-Ranges") or []
        segment_size, segments = self._check_wal(wal_ranges, sysid, problems)
        if problems:
            shown = "; ".join(problems[:10])
            more = f"; and {len(problems) - 10} more" if len(problems) > 10 else ""
            raise BaseBackupInvalid(
                f"the base backup does not match its backup_manifest: {shown}{more}",
                hint="the backup is not stored; take a new one, and check the server's "
                "disk if this happens again",
            )
        start_text = label.get("START WAL LOCATION", "").split(" ")[0]
        last_range = wal_ranges[-1] if wal_ranges else {}
        manifest_files = [f for f in manifest.get("Files", []) if isinstance(f, dict)]
        return BaseBackupInfo(
            system_identifier=sysid,
            pg_control_version=control_version,
            timeline=int(label.get("START TIMELINE", last_range.get("Timeline", 0))),
            start_lsn=parse_lsn(start_text) if start_text else 0,
            checkpoint_lsn=_lsn_or_zero(label.get("CHECKPOINT LOCATION", "")),
            stop_lsn=_lsn_or_zero(str(last_range.get("End-LSN", ""))),
            start_time=label.get("START TIME", ""),
            label=label.get("LABEL", ""),
            files=len(manifest_files),
            file_bytes=sum(int(f.get("Size", 0)) for f in manifest_files),
            segment_size=segment_size,
            wal_segments=segments,
            manifest_version=int(manifest.get("PostgreSQL-Backup-Manifest-Version", 0)),
            checksum_algorithm=algorithm,
            manifest_sha256=hashlib.sha256(manifest_bytes).hexdigest(),
            wal_zeroed=wal_zeroed,
        )

    def _check_files(self, manifest: dict[str, Any], problems: list[str]) -> str:
        algorithms = set()
        listed = set()
        for entry in manifest.get("Files", []):
            path = _manifest_path(entry)
            listed.add(path)
            seen = self.files.get(path)
            if seen is None:
                problems.append(f"{path} is missing")
                continue
            if int(entry.get("Size", -1)) != seen.size:
                problems.append(f"{path} is {seen.size} bytes, the manifest says {entry['Size']}")
                continue
            algorithm = str(entry.get("Checksum-Algorithm", "NONE")).upper()
            algorithms.add(algorithm)
            expected = str(entry.get("Checksum", "")).lower()
            if algorithm not in self.checksums:
                problems.append(
                    f"{path}: the manifest's checksum is {algorithm}, respaldo computed "
                    + ", ".join(sorted(self.checksums))
                )
            elif algorithm == "SHA256":
                if seen.sha256 != expected:
                    problems.append(f"{path} does not match its SHA-256")
            elif seen.crc32c is None or expected not in _crc_hex(seen.crc32c):
                problems.append(f"{path} does not match its CRC32C")
        for path in self.files:
            if path not in listed and path != MANIFEST and not is_wal_segment(path):
                problems.append(f"{path} is not in the manifest")
        return ",".join(sorted(algorithms)) or "NONE"

    def _check_wal(
        self, ranges: Sequence[Any], sysid: int, problems: list[str]
    ) -> tuple[int, list[str]]:
        heads = {name.removeprefix("pg_wal/"): head for name, head in self._wal_heads.items()}
        segment_size = 0
        for name, head in sorted(heads.items()):
            header = parse_segment_header(head)
            if header is None:
                problems.append(f"pg_wal/{name} has no WAL segment header")
                continue
            segment_size = segment_size or header.segment_size
            if header.system_identifier != sysid:
                problems.append(
                    f"pg_wal/{name} is from cluster {header.system_identifier}, "
                    f"pg_control says {sysid}"
                )
            if self.files[f"pg_wal/{name}"].size != header.segment_size:
                problems.append(f"pg_wal/{name} is not {header.segment_size} bytes")
        if not ranges:
            problems.append("the manifest lists no WAL range")
            return segment_size, sorted(heads)
        if not segment_size:
            problems.append("the base backup holds no WAL (pg_basebackup --wal-method=fetch)")
            return segment_size, []
        needed: list[str] = []
        for wal_range in ranges:
            try:
                timeline = int(wal_range["Timeline"])
                start = parse_lsn(str(wal_range["Start-LSN"]))
                end = parse_lsn(str(wal_range["End-LSN"]))
            except (KeyError, TypeError, ValueError):
                problems.append(f"unreadable WAL range {wal_range!r}")
                continue
            needed += segment_range(timeline, start, end, segment_size)
        for name in needed:
            if name not in heads:
                problems.append(f"WAL segment {name} of the backup's range is missing")
        return segment_size, sorted(heads)


def _crc_hex(crc: int) -> tuple[str]:
    """A CRC32C as a manifest writes it: the hex of its four bytes in the server's byte
    order. Only little-endian is accepted: respaldo reads pg_control and WAL headers
    little-endian already (a big-endian cluster's backup fails those checks), and taking
    the swapped order as well would let one 4-byte burst at each position pass."""
    return (crc.to_bytes(4, "little").hex(),)


def _lsn_or_zero(text: str) -> int:
    text = text.split(" ")[0]
    try:
        return parse_lsn(text) if text else 0
    except ValueError:
        return 0


def _manifest_path(entry: Any) -> str:
    if not isinstance(entry, dict):
        raise BaseBackupInvalid("backup_manifest: a file entry is not an object")
    if "Path" in entry:
        return str(entry["Path"])
    if "Encoded-Path" in entry:
        return bytes.fromhex(str(entry["Encoded-Path"])).decode("utf-8", "surrogateescape")
    raise BaseBackupInvalid("backup_manifest: a file entry has no path")


def _parse_manifest(data: bytes, problems: list[str]) -> dict[str, Any]:
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise BaseBackupInvalid(f"backup_manifest is not JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise BaseBackupInvalid("backup_manifest is not a JSON object")
    version = manifest.get("PostgreSQL-Backup-Manifest-Version")
    if version not in (1, 2):
        problems.append(f"unknown backup_manifest version {version!r}")
    # The checksum covers the text up to and including the newline that precedes the
    # "Manifest-Checksum" line (pg_verifybackup's rule).
    penultimate = data.rfind(b"\n", 0, data.rfind(b"\n"))
    expected = str(manifest.get("Manifest-Checksum", "")).lower()
    if penultimate < 0 or hashlib.sha256(data[: penultimate + 1]).hexdigest() != expected:
        problems.append("backup_manifest does not match its own checksum")
    return manifest

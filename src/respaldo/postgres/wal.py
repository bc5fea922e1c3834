"""WAL files as PostgreSQL names and writes them: names, segment headers, LSNs, pg_control.

Words used here:

WAL file
    What ``archive_command`` is asked to archive (``%p``) and ``restore_command`` to fetch
    (``%f``): a *segment* (``000000010000000A000000FF``: timeline, then the segment number
    in two halves), a *partial* segment (``….partial``, the last one of an old timeline
    after a promotion), a *history* file (``00000002.history``: where a timeline branched
    off) or a *backup history* file (``….00000028.backup``, written after each base backup).
LSN
    A WAL position, ``X/Y`` in hex (high and low 32 bits); :func:`parse_lsn` /
    :func:`format_lsn`.
long page header
    The first page of every segment starts with the system identifier of the cluster that
    wrote it, the segment size and the page size. :func:`read_segment_header` reads it, so
    a segment from another cluster is recognised by its content, not by where it came from.

Everything here is pure parsing of bytes and names: no I/O beyond reading the file asked
for, no server connection.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from respaldo.errors import InvalidWalFile

XLP_LONG_HEADER = 0x0002
# XLogPageHeaderData (magic, info, timeline, page address, remaining length; 24 bytes
# with alignment) followed by the long header's system id, segment size and page size.
LONG_HEADER = struct.Struct("<HHIQI4xQII")
SHORT_HEADER = struct.Struct("<HHIQ")
MIN_SEGMENT_SIZE = 1024 * 1024
MAX_SEGMENT_SIZE = 1024 * 1024 * 1024
MAX_SMALL_FILE = 1024 * 1024
"""History and backup history files are a few lines of text; anything larger is refused."""

_SEGMENT = re.compile(r"([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})")
_PARTIAL = re.compile(r"([0-9A-F]{24})\.partial")
_HISTORY = re.compile(r"([0-9A-F]{8})\.history")
_BACKUP = re.compile(r"([0-9A-F]{24})\.[0-9A-F]{8}\.backup")
_LSN = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")


class WalKind(StrEnum):
    SEGMENT = "segment"
    PARTIAL = "partial"
    HISTORY = "history"
    BACKUP = "backup"


@dataclass(frozen=True)
class WalName:
    """A validated WAL file name and what it says."""

    name: str
    kind: WalKind
    timeline: str
    """Eight upper-case hex digits, as in the name."""

    @property
    def has_header(self) -> bool:
        """Segments and partial segments start with a long page header; the others are text."""
        return self.kind in (WalKind.SEGMENT, WalKind.PARTIAL)

    @property
    def segment(self) -> str | None:
        """The 24-digit segment name for segments and partial segments."""
        return self.name[:24] if self.has_header else None


def parse_wal_name(name: str) -> WalName:
    """Validate a WAL file name (a bare name, no directory). Raises InvalidWalFile."""
    if _SEGMENT.fullmatch(name):
        return WalName(name, WalKind.SEGMENT, name[:8])
    if _PARTIAL.fullmatch(name):
        return WalName(name, WalKind.PARTIAL, name[:8])
    if _HISTORY.fullmatch(name):
        return WalName(name, WalKind.HISTORY, name[:8])
    if _BACKUP.fullmatch(name):
        return WalName(name, WalKind.BACKUP, name[:8])
    shown = name if len(name) <= 60 else name[:57] + "..."
    raise InvalidWalFile(
        f"{shown!r} is not the name of a WAL file",
        hint="archive_command passes %p (a path ending in the WAL file name) and "
        "restore_command %f and %p; check how respaldo is called",
    )


def parse_lsn(text: str) -> int:
    """``"16/B374D848"`` -> int. Raises ValueError."""
    match = _LSN.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not an LSN (like 0/1A2B3C4D)")
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def segments_per_id(segment_size: int) -> int:
    return 0x100000000 // segment_size


def segment_name(timeline: int, lsn: int, segment_size: int) -> str:
    """The name of the segment of ``timeline`` that holds ``lsn``."""
    segno = lsn // segment_size
    per = segments_per_id(segment_size)
    return f"{timeline:08X}{segno // per:08X}{segno % per:08X}"


def segment_start(name: str, segment_size: int) -> int:
    """The LSN where segment ``name`` (24 hex digits) begins."""
    match = _SEGMENT.fullmatch(name[:24])
    if match is None:
        raise ValueError(f"{name!r} is not a segment name")
    segno = int(match.group(2), 16) * segments_per_id(segment_size) + int(match.group(3), 16)
    return segno * segment_size


def segment_range(timeline: int, start: int, end: int, segment_size: int) -> list[str]:
    """Names of every segment of ``timeline`` holding WAL from ``start`` to ``end``."""
    first, last = start // segment_size, max(start, end - 1) // segment_size
    return [segment_name(timeline, n * segment_size, segment_size) for n in range(first, last + 1)]


@dataclass(frozen=True)
class SegmentHeader:
    """The long page header at the start of a segment."""

    magic: int
    timeline: int
    page_address: int
    system_identifier: int
    segment_size: int
    page_size: int


def parse_segment_header(data: bytes | memoryview) -> SegmentHeader | None:
    """The long page header at the start of ``data``, or None if it is not one."""
    if len(data) < LONG_HEADER.size:
        return None
    magic, info, tli, pageaddr, _rem, sysid, seg_size, page_size = LONG_HEADER.unpack_from(data)
    if not info & XLP_LONG_HEADER:
        return None
    if not (MIN_SEGMENT_SIZE <= seg_size <= MAX_SEGMENT_SIZE and seg_size & (seg_size - 1) == 0):
        return None
    if not (1024 <= page_size <= 65536 and page_size & (page_size - 1) == 0):
        return None
    return SegmentHeader(magic, tli, pageaddr, sysid, seg_size, page_size)


def page_address(data: bytes | memoryview, offset: int = 0) -> tuple[int, int]:
    """(magic, page address) of the page header at ``offset``."""
    magic, _info, _tli, pageaddr = SHORT_HEADER.unpack_from(data, offset)
    return magic, pageaddr


@dataclass(frozen=True)
class WalFile:
    """A WAL file read from disk and checked against its name."""

    name: WalName
    data: bytes
    system_identifier: int | None
    """From the segment header; None for history and backup history files."""
    header_timeline: int | None = None
    """The timeline of the segment's first page; None for history and backup history files.
    Earlier than the name's only in a new timeline's first segment, which only the
    timeline's history file can confirm (:func:`inherited_segment_problem`)."""


def read_wal_file(path: Path) -> WalFile:
    """Read a WAL file that ``archive_command`` was given and check it is what its name says.

    A segment must be exactly its header's segment size, start with a long page header
    of its name's timeline or an earlier one and be at the address its name implies. An
    earlier timeline is right only in the first segment of a timeline (it starts with its
    parent's pages): the caller must check it against the timeline's history file
    (:func:`inherited_segment_problem`). Raises InvalidWalFile (with the reason) or OSError.
    """
    wal_name = parse_wal_name(path.name)
    data = path.read_bytes()
    if not wal_name.has_header:
        if len(data) > MAX_SMALL_FILE:
            raise InvalidWalFile(f"{path.name} is {len(data)} bytes: too large for its kind")
        if wal_name.kind is WalKind.HISTORY:
            # Checked before archiving: a recovery that fetches it later cannot be helped.
            check_timeline_history(path.name, data.decode(errors="replace"))
        return WalFile(wal_name, data, None)
    header = parse_segment_header(data)
    if header is None:
        raise InvalidWalFile(f"{path.name} does not start with a WAL segment header")
    problems = []
    if len(data) != header.segment_size:
        problems.append(f"it is {len(data)} bytes, its header says {header.segment_size}")
    # The first segment of a new timeline begins as a copy of its parent's segment up
    # to the switch point (PostgreSQL copies it at a promotion): its first page carries
    # the parent's, an earlier, timeline (checked by the caller against the history
    # file). A later one than the name's cannot be there.
    if header.timeline > int(wal_name.timeline, 16):
        problems.append(f"its header is of timeline {header.timeline}")
    expected = segment_start(wal_name.name, header.segment_size)
    if header.page_address != expected:
        problems.append(
            f"its first page is at {format_lsn(header.page_address)}, "
            f"its name says {format_lsn(expected)}"
        )
    if problems:
        raise InvalidWalFile(f"{path.name} is not a valid WAL segment: {'; '.join(problems)}")
    return WalFile(wal_name, data, header.system_identifier, header.timeline)


RECOVERY_TARGETS = (
    "recovery_target",
    "recovery_target_lsn",
    "recovery_target_name",
    "recovery_target_time",
    "recovery_target_xid",
)
"""PostgreSQL's recovery target settings, of which at most one may be set."""

_SETTING = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=?\s*('(?:[^']|'')*'|[^\s#]*)")


def recovery_target_set(datadir: Path) -> bool | None:
    """Whether the server in ``datadir`` recovers to a target (one of
    :data:`RECOVERY_TARGETS` set, not empty), by its ``postgresql.conf`` and then its
    ``postgresql.auto.conf`` (the last occurrence of a setting wins; ``include``
    directives are not followed). None when they cannot be read. PostgreSQL (13 and
    later) stops with an error when the WAL ends before a target; without one, the end
    of the WAL it can fetch is where it promotes."""
    found: dict[str, str] = {}
    try:
        for name in ("postgresql.conf", "postgresql.auto.conf"):
            path = datadir / name
            if not path.exists():
                continue
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                match = _SETTING.match(line)
                if match is not None and match.group(1).lower() in RECOVERY_TARGETS:
                    found[match.group(1).lower()] = match.group(2).strip("'")
    except OSError:
        return None
    return any(found.values())


# --- timeline history files ------------------------------------------------------------


_TIMELINE_ID = re.compile(r"[0-9]{1,10}")


def parse_timeline_history(text: str) -> list[tuple[int, int]]:
    """The ``(timeline, switch LSN)`` entries of a ``<TLI>.history`` file, oldest first:
    each ancestor timeline and the LSN where its child branched off it (the last entry's
    child is the file's own timeline). Comments and blank lines are skipped. Raises
    InvalidWalFile for a line that is not ``<timeline> <LSN> [reason]``."""
    entries = []
    for line in text.splitlines():
        fields = line.split(maxsplit=2)
        if not fields or fields[0].startswith("#"):
            continue
        try:
            # ASCII digits only: int() alone would take "+3", "3_0" or other scripts' digits.
            if not _TIMELINE_ID.fullmatch(fields[0]):
                raise ValueError(fields[0])
            entries.append((int(fields[0]), parse_lsn(fields[1])))
        except (ValueError, IndexError):
            raise InvalidWalFile(f"not a timeline history line: {line[:80]!r}") from None
    return entries


def check_timeline_history(name: str, text: str) -> list[tuple[int, int]]:
    """The entries of history file ``name`` (``<TLI>.history``) if recovery can follow
    them, as PostgreSQL reads them (``readTimeLineHistory`` in its timeline.c): at least
    one ``parent <tab> switch point <tab> reason`` line, parents increasing and
    each before the file's own timeline, switch points not going back. Raises
    InvalidWalFile saying which rule a line breaks.

    A switch point past the WAL archived so far is not checked: PostgreSQL writes and
    archives the history file at the promotion, before the new timeline's segments, and
    its archiver takes ready history files before the old timeline's last segments."""
    timeline = int(name[:8], 16)

    def invalid(why: str) -> InvalidWalFile:
        return InvalidWalFile(
            f"{name} is not a valid timeline history file: {why}",
            hint="PostgreSQL writes '<parent timeline> <switch LSN> <reason>' lines, parents "
            "increasing and before the file's own timeline; a recovery reading this one "
            "would stop or follow the wrong WAL. Nothing was archived",
        )

    try:
        entries = parse_timeline_history(text)
    except InvalidWalFile as exc:
        raise invalid(str(exc)) from None
    if not entries:
        raise invalid(f"it names no parent timeline of timeline {timeline}")
    previous: tuple[int, int] | None = None
    for parent, switch in entries:
        if parent < 1:
            raise invalid("timeline 0 is no timeline (they start at 1)")
        if parent >= timeline:
            raise invalid(
                f"timeline {parent} cannot be a parent of timeline {timeline} (parents come "
                "before their children)"
            )
        if previous is not None and parent <= previous[0]:
            raise invalid(
                f"timeline {parent} follows timeline {previous[0]} (parents must be in "
                "increasing order)"
            )
        if previous is not None and switch < previous[1]:
            raise invalid(
                f"timeline {parent} ends at {format_lsn(switch)}, before the switch point of "
                f"its parent timeline {previous[0]} ({format_lsn(previous[1])})"
            )
        previous = (parent, switch)
    return entries


def inherited_segment_problem(
    name: str, header_timeline: int, segment_size: int, history: list[tuple[int, int]]
) -> str | None:
    """Why segment ``name`` may not start with pages of ``header_timeline`` (earlier than
    its name's), given its timeline's ``history`` (:func:`parse_timeline_history`); None
    if it may.

    It may only if it is the segment PostgreSQL copied at the promotion: the switch point
    to its name's timeline lies inside it (not at its start: then the new timeline starts
    a fresh segment), and the timeline its first page belongs to on that history is
    ``header_timeline``. Any other such segment is another timeline's, copied under this
    name; recovery would read its pages as the end of the WAL.
    """
    timeline = int(name[:8], 16)
    start = segment_start(name, segment_size)
    if not history:
        return f"the history of timeline {timeline} is empty"
    switch = history[-1][1]
    if not start < switch < start + segment_size:
        return (
            f"it starts with pages of timeline {header_timeline}, but it does not hold the "
            f"switch point of timeline {timeline} (at {format_lsn(switch)}, after timeline "
            f"{history[-1][0]})"
        )
    parent = next(tli for tli, end in history if start < end)
    if parent != header_timeline:
        return (
            f"it starts with pages of timeline {header_timeline}, but on the history of "
            f"timeline {timeline} the WAL at {format_lsn(start)} is of timeline {parent}"
        )
    return None


# --- pg_control ------------------------------------------------------------------------

PG_CONTROL = "global/pg_control"
_CONTROL_HEAD = struct.Struct("<QI")


def control_system_identifier(data: bytes | memoryview) -> tuple[int, int]:
    """(system identifier, pg_control version) from the start of a ``pg_control`` file."""
    if len(data) < _CONTROL_HEAD.size:
        raise InvalidWalFile("pg_control is truncated")
    sysid, version = _CONTROL_HEAD.unpack_from(data)
    return int(sysid), int(version)

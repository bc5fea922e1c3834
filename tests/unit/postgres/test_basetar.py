"""The base backup checker: a tar parsed in pieces of any size, checked against its manifest."""

from __future__ import annotations

import io
import random
import tarfile
from pathlib import Path
from typing import Any

import pytest

from respaldo.errors import BaseBackupInvalid
from respaldo.postgres.basebackup import BaseBackupReader
from respaldo.postgres.basetar import CHECKSUMS, checksums_of, normalize_member_name
from respaldo.postgres.datadir import extract_base_backup
from respaldo.postgres.wal import parse_lsn
from tests.unit.postgres.support import PAGE, SEGMENT_SIZE, base_backup, make_segment

pytestmark = pytest.mark.unit


class Trickle(io.RawIOBase):
    """A pipe that hands out pieces of random size, as a real one may."""

    def __init__(self, data: bytes, seed: int) -> None:
        self.data = data
        self.pos = 0
        self.rng = random.Random(seed)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        n = min(size if size >= 0 else len(self.data), self.rng.randint(1, 100_000))
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out


def read_all(
    archive: bytes, seed: int = 1, checksums: frozenset[str] | None = None
) -> tuple[bytes, BaseBackupReader]:
    raw = Trickle(archive, seed)
    reader = (
        BaseBackupReader(raw)  # type: ignore[arg-type]
        if checksums is None
        else BaseBackupReader(raw, checksums=checksums)  # type: ignore[arg-type]
    )
    rng = random.Random(seed)
    out = bytearray()
    while True:
        buf = bytearray(rng.randint(1, 200_000))
        n = reader.readinto(buf)
        if not n:
            return bytes(out), reader
        out += buf[:n]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_good_backup_passes_and_says_what_it_is(seed: int) -> None:
    archive = base_backup()
    out, reader = read_all(archive, seed)
    info = reader.finish()
    assert out == archive  # nothing stale to zero: every page is the segment's own
    assert info.system_identifier == 7000000000000000001
    assert info.timeline == 1
    assert info.start_lsn == parse_lsn("0/200028")
    assert info.stop_lsn == parse_lsn("0/200100")
    assert info.wal_segments == ["000000010000000000000002"]
    assert info.segment_size == SEGMENT_SIZE
    assert info.files == 4
    assert info.checksum_algorithm == "CRC32C"  # what pg_basebackup is asked for


@pytest.mark.parametrize("seed", [4, 5])
def test_stale_pages_of_recycled_segments_are_zeroed(seed: int) -> None:
    segment = make_segment(7000000000000000001, 1, 2, valid_pages=5)
    archive = base_backup(wal={"000000010000000000000002": segment})
    out, reader = read_all(archive, seed)
    info = reader.finish()
    assert info.wal_zeroed == SEGMENT_SIZE - 5 * PAGE
    with (
        tarfile.open(fileobj=io.BytesIO(out)) as tar,
        tarfile.open(fileobj=io.BytesIO(archive)) as orig,
    ):
        data = _read(tar, "pg_wal/000000010000000000000002")
        assert data[: 5 * PAGE] == segment[: 5 * PAGE]
        assert data[5 * PAGE :] == bytes(SEGMENT_SIZE - 5 * PAGE)
        # Everything else passes untouched.
        assert _read(tar, "base/1/1259") == _read(orig, "base/1/1259")


class CutAt(io.RawIOBase):
    """A pipe whose reads end exactly at the given offsets of the stream."""

    def __init__(self, data: bytes, cuts: list[int]) -> None:
        self.data = data
        self.pos = 0
        self.cuts = sorted(set(cuts))

    def readable(self) -> bool:
        return True

    def readinto(self, dest: Any) -> int:
        stop = next((c for c in self.cuts if c > self.pos), len(self.data))
        n = min(len(dest), stop - self.pos)
        dest[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


def test_headers_split_between_reads_are_carried_into_the_next_buffer() -> None:
    """The reader parses in the caller's (large) buffer; a tar header or a WAL page
    header that a read cuts in two is held back and parsed with the rest next time."""
    segment = make_segment(7000000000000000001, 1, 2, valid_pages=5)
    archive = base_backup(wal={"000000010000000000000002": segment})
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        headers = [m.offset for m in tar.getmembers()]
        wal = tar.getmember("pg_wal/000000010000000000000002").offset_data
    cuts = [h + 100 for h in headers] + [wal + i * PAGE + 10 for i in range(8)]
    reader = BaseBackupReader(CutAt(archive, cuts))  # type: ignore[arg-type]
    out = bytearray()
    buf = bytearray(1 << 20)
    while n := reader.readinto(buf):
        out += buf[:n]
    info = reader.finish()
    assert info.wal_zeroed == SEGMENT_SIZE - 5 * PAGE
    assert len(out) == len(archive)
    with tarfile.open(fileobj=io.BytesIO(bytes(out))) as tar:
        assert _read(tar, "pg_wal/000000010000000000000002")[: 5 * PAGE] == segment[: 5 * PAGE]


def _read(tar: tarfile.TarFile, name: str) -> bytes:
    member = tar.extractfile(name)
    assert member is not None
    return member.read()


def _problems(archive: bytes, checksums: frozenset[str] | None = None) -> str:
    _, reader = read_all(archive, checksums=checksums)
    with pytest.raises(BaseBackupInvalid) as caught:
        reader.finish()
    return f"{caught.value} (hint: {caught.value.hint})"


@pytest.mark.parametrize(("algorithm", "name"), [("CRC32C", "CRC32C"), ("SHA256", "SHA-256")])
def test_a_changed_file_is_caught(algorithm: str, name: str) -> None:
    archive = base_backup(files={"base/1/2608": b"a" * 5000}, checksums=algorithm)
    changed = archive.replace(b"a" * 5000, b"c" + b"a" * 4999)
    assert changed != archive
    problems = _problems(changed, frozenset([algorithm]))
    assert f"base/1/2608 does not match its {name}" in problems
    assert "hint: the backup is not stored" in problems


@pytest.mark.parametrize("algorithm", ["CRC32C", "SHA256"])
def test_a_wrong_checksum_in_the_manifest_is_caught(algorithm: str) -> None:
    # The manifest's own checksum matches: only the per-file check can see it.
    archive = base_backup(checksums=algorithm, checksum_of={"PG_VERSION": b"16\n"})
    problems = _problems(archive, frozenset(CHECKSUMS))
    assert "PG_VERSION does not match its" in problems
    assert "own checksum" not in problems


def test_a_crc32c_is_read_little_endian_only() -> None:
    # x86 and ARM servers write the CRC32C's four bytes little-endian. The swapped order
    # is refused: accepting it too would let a burst whose CRC is the swap of the
    # original's pass (and a big-endian cluster already fails the pg_control checks).
    _, reader = read_all(base_backup(crc_byteorder="little"))
    assert reader.finish().checksum_algorithm == "CRC32C"
    problems = _problems(base_backup(crc_byteorder="big"))
    assert "does not match its CRC32C" in problems


def test_an_algorithm_not_computed_is_not_passed_unchecked() -> None:
    # The backup asks pg_basebackup for CRC32C and computes only that: a manifest with
    # other checksums (or none) fails instead of passing with its files unchecked.
    problems = _problems(base_backup(checksums="SHA256"))
    assert "base/1/1259: the manifest's checksum is SHA256, respaldo computed CRC32C" in problems
    problems = _problems(base_backup(checksums="NONE"), frozenset(CHECKSUMS))
    assert "base/1/1259: the manifest's checksum is NONE, respaldo computed CRC32C, SHA256" in (
        problems
    )


def test_checksums_of_what_a_backup_recorded() -> None:
    assert checksums_of("CRC32C") == frozenset(["CRC32C"])
    assert checksums_of("SHA256") == frozenset(["SHA256"])
    assert checksums_of("CRC32C,SHA256") == frozenset(CHECKSUMS)
    # Unknown or not recorded: compute every algorithm respaldo checks.
    for recorded in (None, "", "NONE", "SHA512", 3):
        assert checksums_of(recorded) == frozenset(CHECKSUMS)


@pytest.mark.parametrize(
    ("algorithm", "recorded"),
    [("SHA256", "SHA256"), ("SHA256", None), ("CRC32C", "CRC32C"), ("CRC32C", None)],
)
def test_stored_backups_of_either_algorithm_extract(
    tmp_path: Path, algorithm: str, recorded: str | None
) -> None:
    # Backups stored before CRC32C carry SHA-256 manifests: they still restore, checked.
    archive = base_backup(files={"base/1/2608": b"a" * 5000}, checksums=algorithm)
    pieces = [archive[i : i + 7000] for i in range(0, len(archive), 7000)]
    target = tmp_path / "ok"
    target.mkdir()
    info = extract_base_backup(pieces, target, owner=None, checksums=checksums_of(recorded))
    assert info.checksum_algorithm == algorithm
    assert (target / "base/1/2608").read_bytes() == b"a" * 5000
    changed = archive.replace(b"a" * 5000, b"c" + b"a" * 4999)
    bad = tmp_path / "bad"
    bad.mkdir()
    with pytest.raises(BaseBackupInvalid, match="base/1/2608 does not match"):
        extract_base_backup([changed], bad, owner=None, checksums=checksums_of(recorded))


def test_missing_extra_and_foreign_files_are_caught() -> None:
    listed = {"PG_VERSION": b"15\n", "base/1/9999": b"gone"}
    missing = base_backup(manifest_files=listed)
    problems = _problems(missing)
    assert "base/1/9999 is missing" in problems
    assert "base/1/1259 is not in the manifest" in problems
    foreign = base_backup(wal={"000000010000000000000002": make_segment(99, 1, 2)})
    assert "is from cluster 99" in _problems(foreign)
    assert "holds no WAL" in _problems(base_backup(wal={}))
    gap = base_backup(wal_range=("0/200028", "0/300100"))
    assert "WAL segment 000000010000000000000003 of the backup's range is missing" in _problems(gap)
    assert "does not match its own checksum" in _problems(base_backup(tamper_manifest=True))


def test_a_cut_stream_is_caught() -> None:
    archive = base_backup()
    _, reader = read_all(archive[: len(archive) // 2])
    with pytest.raises(BaseBackupInvalid, match="ends early"):
        reader.finish()


@pytest.mark.parametrize("name", ["/etc/passwd", "../x", "a/../../x", "a//b", ""])
def test_unsafe_member_names_are_refused(name: str) -> None:
    with pytest.raises(BaseBackupInvalid):
        normalize_member_name(name)


def test_member_names_are_normalised() -> None:
    assert normalize_member_name("./pg_wal/archive_status/") == "pg_wal/archive_status"


def _with_tablespaces(archive: bytes, count: int) -> bytes:
    """``archive`` with ``count`` links in pg_tblspc, as a cluster with tablespaces has."""
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(archive)) as source,
        tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as target,
    ):
        for i in range(count):
            link = tarfile.TarInfo(f"pg_tblspc/{16384 + i}")
            link.type, link.linkname = tarfile.SYMTYPE, f"/srv/tablespace{i}"
            target.addfile(link)
        for member in source.getmembers():
            target.addfile(member, source.extractfile(member) if member.isfile() else None)
    return out.getvalue()


def test_one_tablespace_is_one_link() -> None:
    """A cluster with one tablespace was refused with "(1 links in pg_tblspc)"."""
    said = _problems(_with_tablespaces(base_backup(), 1))
    assert "tablespaces are not supported (1 link in pg_tblspc)" in said, said
    said = _problems(_with_tablespaces(base_backup(), 2))
    assert "tablespaces are not supported (2 links in pg_tblspc)" in said, said

"""The base backup checker: a tar parsed in pieces of any size, checked against its manifest."""

from __future__ import annotations

import io
import random
import tarfile
from typing import Any

import pytest

from respaldo.errors import BaseBackupInvalid
from respaldo.postgres.basebackup import BaseBackupReader
from respaldo.postgres.basetar import normalize_member_name
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


def read_all(archive: bytes, seed: int = 1) -> tuple[bytes, BaseBackupReader]:
    reader = BaseBackupReader(Trickle(archive, seed))  # type: ignore[arg-type]
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
    assert info.checksum_algorithm == "SHA256"


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


def _problems(archive: bytes) -> str:
    _, reader = read_all(archive)
    with pytest.raises(BaseBackupInvalid) as caught:
        reader.finish()
    return str(caught.value)


def test_a_changed_file_is_caught() -> None:
    archive = base_backup(files={"base/1/2608": b"a" * 5000})
    changed = archive.replace(b"a" * 5000, b"c" + b"a" * 4999)
    assert "base/1/2608 does not match its SHA-256" in _problems(changed)


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

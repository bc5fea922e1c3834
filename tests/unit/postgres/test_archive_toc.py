"""Reading a custom-format archive's table of contents (``read_toc``).

The archive here is synthetic but laid out as ``pg_dump -Fc`` (archive version 1.14) lays
one out: a header, then each entry's fields (integers as a sign byte and four
little-endian bytes, strings as an integer length and their bytes), then the data blocks.
"""

from __future__ import annotations

import io

import pytest

from respaldo.postgres.archive_offsets import OFFSET_NO_DATA, OFFSET_NOT_SET, read_toc

pytestmark = pytest.mark.unit


def _int(value: int) -> bytes:
    return bytes([1 if value < 0 else 0]) + abs(value).to_bytes(4, "little")


def _str(value: str | None) -> bytes:
    if value is None:
        return _int(-1)
    data = value.encode()
    return _int(len(data)) + data


def _entry(dump_id: int, kind: str, tag: str, depends: list[int], data: bool) -> bytes:
    return b"".join(
        [
            _int(dump_id),
            _int(1 if data else 0),
            _str("1259"),
            _str(str(16000 + dump_id)),
            _str(tag),
            _str(kind),
            _int(3 if data else 2),  # section
            _str(f"CREATE {kind} {tag};\n"),
            _str(None),
            _str(None),
            _str("s1"),
            _str(None),
            _str("heap"),
            _str("owner"),
            _str("false"),
            *[_str(str(d)) for d in depends],
            _str(None),
            bytes([OFFSET_NOT_SET if data else OFFSET_NO_DATA]) + bytes(8),
        ]
    )


def _archive(count: int) -> tuple[bytes, int]:
    """An archive of ``count`` entries (the odd ones with data), and where its table of
    contents ends."""
    head = b"PGDMP" + bytes([1, 14, 0, 4, 8, 1]) + _int(0)
    head += b"".join(_int(v) for v in (0, 0, 0, 1, 0, 126, 0))
    head += _str("many") + _str("15.18") + _str("15.18") + _int(count)
    entries = [
        _entry(n, "TABLE DATA" if n % 2 else "TABLE", f"t{n}", [n - 1] if n > 1 else [], n % 2 == 1)
        for n in range(1, count + 1)
    ]
    toc = head + b"".join(entries)
    return toc + b"\x01" + _int(1) + _int(0), len(toc)


class _Counting(io.BytesIO):
    reads = 0

    def read(self, size: int | None = -1, /) -> bytes:
        self.reads += 1
        return super().read(size)


def test_the_table_of_contents_is_read_whole_and_where_each_entry_is() -> None:
    data, end = _archive(3000)
    fh = _Counting(data)
    toc = read_toc(fh)
    assert toc is not None
    assert [e.dump_id for e in toc.entries] == list(range(1, 3001))
    assert toc.entries[0].kind == "TABLE DATA" and toc.entries[1].kind == "TABLE"
    assert (toc.entries[1].namespace, toc.entries[1].tag, toc.entries[1].depends) == (
        "s1",
        "t2",
        (1,),
    )
    assert [e.state for e in toc.entries[:2]] == [OFFSET_NOT_SET, OFFSET_NO_DATA]
    # Each entry's offset field is where the entry says: its state byte, then 8 bytes.
    assert all(data[e.state_at] == e.state and e.extra_end == e.state_at + 9 for e in toc.entries)
    assert toc.end == end
    assert fh.tell() == end  # left at the first data block, though read ahead of it
    # A read for each field was 60 s of a 20,000-table restore (on its spool, each read
    # waits on a lock): the reads are a few large ones, not one for each of its fields.
    assert fh.reads <= 3


def test_an_archive_that_ends_in_its_table_of_contents_is_not_read() -> None:
    data, end = _archive(40)
    assert read_toc(io.BytesIO(data[: end - 3])) is None

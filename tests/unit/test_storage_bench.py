"""bench.storage_bench's model of a dump without pg_dump's per-row length words: what it
takes out is exactly the words a reader could compute again, and it puts them back byte
for byte (its figures in docs/benchmarks.md rest on both)."""

from __future__ import annotations

import pytest
from bench.storage_bench import put_row_lengths, strip_row_lengths

pytestmark = pytest.mark.unit


def _part(row: bytes) -> bytes:
    """A part as ``pg_dump -Fc -Z0`` writes it: a zero sign byte, the length, the row."""
    return b"\x00" + len(row).to_bytes(4, "little") + row


def test_the_words_before_rows_are_taken_out_and_put_back() -> None:
    rows = [b"1\tana\t2024-01-01\n", b"2\tluis\t\\N\n", b"3\t" + b"x" * 300 + b"\n"]
    # A table of contents before (no newline before its bytes), then a block's parts
    # after a newline, then the block's end (a zero length) and bytes after it.
    data = b"TOC\x00\x01header\n" + b"".join(map(_part, rows)) + b"\x00" * 5 + b"tail"
    stripped, where = strip_row_lengths(data)
    assert stripped == b"TOC\x00\x01header\n" + b"".join(rows) + b"\x00" * 5 + b"tail"
    assert len(where) == 3
    assert put_row_lengths(stripped, where) == data


def test_a_word_that_does_not_reach_the_next_newline_stays() -> None:
    # A length one byte short of the row, and one cut off by the end of the data: the
    # reader could not compute either, so neither is taken out.
    wrong = b"\n\x00" + (4).to_bytes(4, "little") + b"abcd\n"
    cut = b"\n\x00" + (9).to_bytes(4, "little") + b"abc"
    for data in (wrong, cut, wrong + cut):
        stripped, where = strip_row_lengths(data)
        assert stripped == data
        assert len(where) == 0
        assert put_row_lengths(stripped, where) == data

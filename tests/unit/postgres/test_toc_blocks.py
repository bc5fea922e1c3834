"""Feeding pg_restore only the data blocks it will restore (``restore --table``).

The archive here is synthetic but laid out as ``pg_dump -Fc -Z0`` lays one out: a header
and table of contents, then one block per table (a type byte 1, the entry's dump id as a
sign byte and four little-endian bytes, then each COPY row as a length and the row, and
a zero length at the end).
"""

from __future__ import annotations

import random

import pytest

from respaldo.postgres.toc import BlockStarts, DataBlocks, only_blocks

pytestmark = pytest.mark.unit


def _int(value: int) -> bytes:
    return bytes([0]) + value.to_bytes(4, "little")


def _block(dump_id: int, rows: list[bytes]) -> bytes:
    return b"\x01" + _int(dump_id) + b"".join(_int(len(r)) + r for r in rows) + _int(0)


# The end of a table of contents: a last entry's offset field (flag, 8 zero bytes).
HEAD = b"PGDMP\x01\x0e\x00\x04\x08" + b"toc entries " * 50 + b"\x01" + b"\x00" * 8
BLOCKS = {
    3790: _block(3790, [b"1\tAna\n", b"2\tLuis\n"] * 40),
    3817: _block(3817, [b"%d\tF-%08d\t\\\\x00ff\n" % (i, i) for i in range(300)]),
    3819: _block(3819, [b"x" * 256 + b"\n", b"y\n"]),  # a row length with zero bytes
    3821: _block(3821, [b"9\t\xc3\xb1\n"]),
}
ORDER = (3790, 3817, 3819, 3821)
# Then the large objects' block (type 3): raw bytes, zeros included.
ARCHIVE = HEAD + b"".join(BLOCKS[i] for i in ORDER) + b"\x03" + _int(3830) + b"\x00" * 9 + b"lo"


def _feed(data: bytes, sizes: list[int]) -> list[bytes]:
    pieces, at = [], 0
    for size in sizes:
        pieces.append(data[at : at + size])
        at += size
    pieces.append(data[at:])
    return [p for p in pieces if p]


@pytest.mark.parametrize("wanted", [{3817}, {3790}, {3819, 3821}, {3790, 3821}, {3821}])
@pytest.mark.parametrize("piece", [1, 7, 11, 4096, len(ARCHIVE)])
def test_only_the_wanted_blocks_follow_the_table_of_contents(wanted: set[int], piece: int) -> None:
    blocks = DataBlocks(order=ORDER, wanted=frozenset(wanted))
    out = b"".join(only_blocks(_feed(ARCHIVE, [piece] * (len(ARCHIVE) // piece)), blocks))
    # After the last wanted block nothing more is sent; what follows the last table's
    # block (large objects) is no table's, and goes along if that block is wanted.
    tail = ARCHIVE[len(HEAD) + sum(len(b) for b in BLOCKS.values()) :] if 3821 in wanted else b""
    assert out == HEAD + b"".join(BLOCKS[i] for i in ORDER if i in wanted) + tail


def test_a_first_block_not_recognised_goes_along() -> None:
    # Should the table of contents not end in zero bytes, the first block is not told
    # apart from it: it goes along, and pg_restore skips it itself.
    head = HEAD[:-1] + b"\x07"
    blocks = DataBlocks(order=ORDER, wanted=frozenset({3819}))
    out = b"".join(only_blocks([head + ARCHIVE[len(HEAD) :]], blocks))
    assert out == head + BLOCKS[3790] + BLOCKS[3819]


def test_random_splits_change_nothing() -> None:
    rng = random.Random(7)
    blocks = DataBlocks(order=ORDER, wanted=frozenset({3819}))
    expected = HEAD + BLOCKS[3819]
    for _ in range(50):
        sizes = [rng.randint(1, 40) for _ in range(len(ARCHIVE) // 20)]
        assert b"".join(only_blocks(_feed(ARCHIVE, sizes), blocks)) == expected


def test_an_id_that_is_no_data_entry_is_no_block_start() -> None:
    # A block end and "\x01\x00" followed by an id the table of contents does not list
    # as data is not taken for a block: it goes along with the block it is in.
    odd = _block(3790, [b"a\n"])[:-5] + _int(0) + b"\x01" + _int(99) + b"rest"
    blocks = DataBlocks(order=(3790,), wanted=frozenset({3790}))
    assert b"".join(only_blocks([HEAD + odd], blocks)) == HEAD + odd


class _Pipe:
    """pg_dump's stdout: reads of any size, as a pipe gives them."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self.pieces = _feed(data, sizes)

    def read(self, size: int = -1) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""


@pytest.mark.parametrize("piece", [1, 5, 11, 333, len(ARCHIVE)])
def test_block_starts_are_noted_as_the_dump_passes(piece: int) -> None:
    scanner = BlockStarts(_Pipe(ARCHIVE, [piece] * (len(ARCHIVE) // piece)))  # type: ignore[arg-type]
    passed = b"".join(iter(lambda: scanner.read(65536), b""))
    assert passed == ARCHIVE
    at, expected = len(HEAD), {}
    for dump_id in ORDER:
        expected[dump_id] = at
        at += len(BLOCKS[dump_id])
    # The large objects' block ends the last table's.
    assert scanner.starts == {**expected, 3830: at}

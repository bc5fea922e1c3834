"""How ``restore --jobs N`` splits a dump's table data among its workers
(operations/restore_parallel.py: :func:`plan_blocks`), and when it does not."""

from __future__ import annotations

from respaldo.operations.restore_parallel import plan_blocks
from respaldo.postgres.archive_offsets import OFFSET_NO_DATA, OFFSET_NOT_SET, ArchiveToc, TocEntry

TOC_END = 1000


def _toc() -> ArchiveToc:
    """A table of contents: a table, four tables' data, a sequence value, large objects,
    an index."""
    entries = [
        TocEntry(10, "TABLE", OFFSET_NO_DATA, 0),
        TocEntry(20, "TABLE DATA", OFFSET_NOT_SET, 0),
        TocEntry(21, "TABLE DATA", OFFSET_NOT_SET, 0),
        TocEntry(22, "TABLE DATA", OFFSET_NOT_SET, 0),
        TocEntry(23, "TABLE DATA", OFFSET_NOT_SET, 0),
        TocEntry(30, "SEQUENCE SET", OFFSET_NO_DATA, 0),
        TocEntry(40, "BLOBS", OFFSET_NOT_SET, 0),
        TocEntry(50, "INDEX", OFFSET_NO_DATA, 0),
    ]
    return ArchiveToc(entries, TOC_END, 4, 8)


# Block sizes: 20 -> 100, 21 -> 5000, 22 -> 3000, 23 -> 2500, large objects 400.
NOTED = {"20": 1000, "21": 1100, "22": 6100, "23": 9100, "40": 11600}
SIZE = 12000


def test_the_tables_are_split_by_size_each_worker_in_archive_order() -> None:
    plan = plan_blocks(_toc(), NOTED, SIZE, 2)
    assert plan is not None
    # Biggest first, each to the least loaded: 21 (5000) | 22 (3000), then 23 (2500)
    # to the second (5500), 20 (100) to the first (5100).
    assert sorted(plan.workers) == [[20, 21], [22, 23]]
    assert plan.starts[21] == 1100 and plan.ends[21] == 6100
    assert plan.ends[40] == SIZE  # the last block ends with the dump
    # Everything else is left to the last pg_restore (its sections choose).
    assert plan.rest() == [10, 30, 40, 50]


def test_more_workers_than_tables_leaves_none_idle() -> None:
    plan = plan_blocks(_toc(), NOTED, SIZE, 8)
    assert plan is not None
    assert sorted(plan.workers) == [[20], [21], [22], [23]]


def test_notes_that_do_not_fit_the_archive_are_not_used() -> None:
    toc = _toc()
    assert plan_blocks(toc, None, SIZE, 2) is None  # an older backup: no notes
    assert plan_blocks(toc, {"x": 1}, SIZE, 2) is None
    missing = {k: v for k, v in NOTED.items() if k != "22"}
    assert plan_blocks(toc, missing, SIZE, 2) is None
    # The first block must start right where the table of contents ends.
    assert plan_blocks(toc, {**NOTED, "20": 900}, SIZE, 2) is None
    # Blocks in another order than the table of contents'.
    assert plan_blocks(toc, {**NOTED, "22": 9200}, SIZE, 2) is None
    # A block past the end of the dump.
    assert plan_blocks(toc, NOTED, 11600, 2) is None
    # Notes of entries without data (the backup's scan saw a block start in the table
    # of contents) do not matter.
    assert plan_blocks(toc, {**NOTED, "10": 5}, SIZE, 2) is not None

"""How ``restore --jobs N`` splits a dump's table data among its workers
(operations/restore_parallel.py: :func:`plan_blocks`), and when it does not."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from respaldo.operations import restore_parallel
from respaldo.operations.restore_feed import Arrivals
from respaldo.operations.restore_parallel import (
    ROW_BYTES,
    Plan,
    early_entries,
    plan_blocks,
    rows_of,
)
from respaldo.postgres import ConnInfo
from respaldo.postgres.archive_offsets import (
    OFFSET_NO_DATA,
    OFFSET_NOT_SET,
    SECTION_DATA,
    SECTION_POST_DATA,
    SECTION_PRE_DATA,
    ArchiveToc,
    TocEntry,
)

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
    plan.early.append(50)  # built by a worker: not again
    assert plan.rest() == [10, 30, 40]


def test_the_split_weighs_each_table_s_rows_as_well_as_its_bytes() -> None:
    """At 1 GB a table of photos (few rows, many bytes) went to one worker by bytes and
    every other table to the other, which then took 2.4 times as long to load."""
    data = SECTION_DATA
    entries = [
        TocEntry(20, "TABLE DATA", OFFSET_NOT_SET, 0, section=data, namespace="docs", tag="fotos"),
        TocEntry(21, "TABLE DATA", OFFSET_NOT_SET, 0, section=data, namespace="a", tag="rows1"),
        TocEntry(22, "TABLE DATA", OFFSET_NOT_SET, 0, section=data, namespace="a", tag="rows2"),
        TocEntry(23, "TABLE DATA", OFFSET_NOT_SET, 0, section=data, namespace="a", tag="rows3"),
    ]
    toc = ArchiveToc(entries, TOC_END, 4, 8)
    # Bytes: 20 -> 6000, 21, 22, 23 -> 1500 each.
    noted = {"20": 1000, "21": 7000, "22": 8500, "23": 10000}
    by_bytes = plan_blocks(toc, noted, 11500, 2)
    assert by_bytes is not None and sorted(by_bytes.workers) == [[20], [21, 22, 23]]
    per_table = 3000 // ROW_BYTES  # each of 21-23 weighs 4500 with its rows
    meta = {"row_counts": {"docs.fotos": 1, **{f"a.rows{n}": per_table for n in (1, 2, 3)}}}
    weighed = plan_blocks(toc, noted, 11500, 2, rows_of(meta))
    assert weighed is not None and sorted(weighed.workers) == [[20, 23], [21, 22]]


def test_rows_are_found_under_the_backup_s_own_keys() -> None:
    def entry(schema: str, table: str) -> TocEntry:
        return TocEntry(1, "TABLE DATA", OFFSET_NOT_SET, 0, namespace=schema, tag=table)

    rows = rows_of(
        {"row_counts": {"a.t": 5, '"a.b".c': 7, "x.line\nbreak": 9}, "row_counts_format": 2}
    )
    assert rows(entry("a", "t")) == 5
    assert rows(entry("a.b", "c")) == 7  # quoted in format 2
    assert rows(entry("x", "line\nbreak")) == 9
    assert rows(entry("a", "unknown")) == 0
    assert rows_of({})(entry("a", "t")) == 0  # a backup from before row counts


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


def test_a_worker_builds_the_indexes_and_foreign_keys_that_need_only_its_own_tables() -> None:
    pre, post = SECTION_PRE_DATA, SECTION_POST_DATA
    entries = [
        TocEntry(1, "FUNCTION", OFFSET_NO_DATA, 0, section=pre),
        TocEntry(10, "TABLE", OFFSET_NO_DATA, 0, section=pre),
        TocEntry(11, "TABLE", OFFSET_NO_DATA, 0, section=pre),
        TocEntry(12, "TABLE", OFFSET_NO_DATA, 0, section=pre),  # its data left out
        TocEntry(20, "TABLE DATA", OFFSET_NOT_SET, 0, section=SECTION_DATA, depends=(10,)),
        TocEntry(21, "TABLE DATA", OFFSET_NOT_SET, 0, section=SECTION_DATA, depends=(11,)),
        TocEntry(30, "CONSTRAINT", OFFSET_NO_DATA, 0, section=post, depends=(10,)),
        TocEntry(31, "INDEX", OFFSET_NO_DATA, 0, section=post, depends=(10, 1, 9999)),
        TocEntry(32, "INDEX", OFFSET_NO_DATA, 0, section=post, depends=(11,)),
        TocEntry(33, "INDEX", OFFSET_NO_DATA, 0, section=post, depends=(12,)),
        TocEntry(34, "FK CONSTRAINT", OFFSET_NO_DATA, 0, section=post, depends=(10, 11, 30)),
        TocEntry(35, "INDEX", OFFSET_NO_DATA, 0, section=post, depends=(10, 30)),
        TocEntry(36, "TRIGGER", OFFSET_NO_DATA, 0, section=post, depends=(10,)),
        TocEntry(37, "FK CONSTRAINT", OFFSET_NO_DATA, 0, section=post, depends=(11, 30)),
        TocEntry(38, "FK CONSTRAINT", OFFSET_NO_DATA, 0, section=post, depends=(10, 12)),
    ]
    toc = ArchiveToc(entries, TOC_END, 4, 8)
    # 31 needs a function and an id the archive does not hold (a section boundary); 35
    # a constraint built in the same list, before it.
    assert early_entries(toc, [20]) == [30, 31, 35]
    assert early_entries(toc, [21]) == [32]
    # A foreign key between one worker's tables is checked by that worker (34, 37), not
    # after every worker has finished.
    assert early_entries(toc, [20, 21]) == [30, 31, 32, 34, 35, 37]
    # Left for the end: a foreign key to a table of another worker (34, 37 for one
    # worker alone: 37 needs constraint 30, which another builds), an index of a table
    # without data of its own (33) and a foreign key to it (38), triggers (36).
    assert early_entries(toc, []) == []


def _partitioned() -> ArchiveToc:
    """A table partitioned in two (40, 41 of 12), a table 10 it refers to; 43 is a
    partitioned table with one partition (44) and one partitioned one (45: its
    partition 46)."""
    pre, post, data = SECTION_PRE_DATA, SECTION_POST_DATA, SECTION_DATA
    entries = [
        TocEntry(10, "TABLE", OFFSET_NO_DATA, 0, section=pre),
        TocEntry(12, "TABLE", OFFSET_NO_DATA, 0, section=pre),
        TocEntry(40, "TABLE", OFFSET_NO_DATA, 0, section=pre, depends=(12,)),
        TocEntry(41, "TABLE", OFFSET_NO_DATA, 0, section=pre, depends=(12,)),
        TocEntry(43, "TABLE", OFFSET_NO_DATA, 0, section=pre),
        TocEntry(44, "TABLE", OFFSET_NO_DATA, 0, section=pre, depends=(43,)),
        TocEntry(45, "TABLE", OFFSET_NO_DATA, 0, section=pre, depends=(43,)),
        TocEntry(46, "TABLE", OFFSET_NO_DATA, 0, section=pre, depends=(45,)),
        TocEntry(50, "TABLE ATTACH", OFFSET_NO_DATA, 0, section=pre, depends=(40, 12)),
        TocEntry(51, "TABLE ATTACH", OFFSET_NO_DATA, 0, section=pre, depends=(12, 41)),
        TocEntry(52, "TABLE ATTACH", OFFSET_NO_DATA, 0, section=pre, depends=(44, 43)),
        TocEntry(53, "TABLE ATTACH", OFFSET_NO_DATA, 0, section=pre, depends=(45, 43)),
        TocEntry(54, "TABLE ATTACH", OFFSET_NO_DATA, 0, section=pre, depends=(46, 45)),
        TocEntry(20, "TABLE DATA", OFFSET_NOT_SET, 0, section=data, depends=(10,)),
        TocEntry(21, "TABLE DATA", OFFSET_NOT_SET, 0, section=data, depends=(40,)),
        TocEntry(22, "TABLE DATA", OFFSET_NOT_SET, 0, section=data, depends=(41,)),
        TocEntry(23, "TABLE DATA", OFFSET_NOT_SET, 0, section=data, depends=(44,)),
        TocEntry(24, "TABLE DATA", OFFSET_NOT_SET, 0, section=data, depends=(46,)),
        TocEntry(60, "CONSTRAINT", OFFSET_NO_DATA, 0, section=post, depends=(10,)),
        TocEntry(61, "CONSTRAINT", OFFSET_NO_DATA, 0, section=post, depends=(12,)),
        TocEntry(62, "CONSTRAINT", OFFSET_NO_DATA, 0, section=post, depends=(40, 61)),
        TocEntry(63, "CONSTRAINT", OFFSET_NO_DATA, 0, section=post, depends=(41, 61)),
        TocEntry(64, "INDEX ATTACH", OFFSET_NO_DATA, 0, section=post, depends=(62, 61, 40, 12)),
        TocEntry(65, "INDEX ATTACH", OFFSET_NO_DATA, 0, section=post, depends=(63, 61, 41, 12)),
        TocEntry(66, "FK CONSTRAINT", OFFSET_NO_DATA, 0, section=post, depends=(12, 10, 60)),
        TocEntry(67, "INDEX", OFFSET_NO_DATA, 0, section=post, depends=(43,)),
    ]
    return ArchiveToc(entries, TOC_END, 4, 8)


def test_a_partitioned_table_counts_as_loaded_once_all_its_partitions_are() -> None:
    toc = _partitioned()
    # Every partition of 12 and the table 10 it refers to: its primary key, the
    # partitions' keys attached to it, its foreign key.
    assert early_entries(toc, [20, 21, 22]) == [60, 61, 62, 63, 64, 65, 66]
    # One partition of two: nothing of the partitioned table, nor what needs its key.
    assert early_entries(toc, [20, 21]) == [60]
    assert early_entries(toc, [21, 22]) == [61, 62, 63, 64, 65]
    # Partitions at two levels: 43 once 44 and, through 45, 46 are loaded.
    assert early_entries(toc, [23]) == []
    assert early_entries(toc, [23, 24]) == [67]


def test_the_workers_post_data_steps_together_use_no_more_connections_than_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``restore --jobs 4``: four workers, each with indexes of its own to build once its
    tables are loaded. Each one's step ran ``pg_restore --jobs 4`` whatever the others
    did: up to 16 sessions on the target server at once, each index build with its own
    ``maintenance_work_mem``. Their sessions together stay within ``jobs``: a worker
    still loading holds one, a post-data step takes what is left (at least one)."""
    pre, post = SECTION_PRE_DATA, SECTION_POST_DATA
    entries = []
    for w in range(4):
        table, data = 10 + w, 20 + w
        entries += [
            TocEntry(table, "TABLE", OFFSET_NO_DATA, 0, section=pre),
            TocEntry(data, "TABLE DATA", OFFSET_NOT_SET, 0, section=SECTION_DATA, depends=(table,)),
        ]
    entries += [
        TocEntry(30 + 10 * w + i, "INDEX", OFFSET_NO_DATA, 0, section=post, depends=(10 + w,))
        for w in range(4)
        for i in range(5)
    ]
    plan = Plan(ArchiveToc(entries, TOC_END, 4, 8), {}, {}, [[20 + w] for w in range(4)], jobs=4)
    in_flight: list[int] = []
    most = [0]

    class FakePgRestore:
        # Each step's pg_restore, while it runs, starts the next worker's step: all four
        # at once, as when the workers end together.
        def __init__(self, *_args: object, jobs: int = 1, **_kwargs: object) -> None:
            self.jobs = jobs

        def __enter__(self) -> None:
            in_flight.append(self.jobs)
            most[0] = max(most[0], sum(in_flight))
            if len(started) < 4:
                step(len(started))

        def __exit__(self, *exc: object) -> None:
            in_flight.pop()

        def cancel(self) -> None:
            raise AssertionError("the read was not abandoned")

    arrivals = Arrivals()

    started: list[int] = []

    def step(w: int) -> None:
        started.append(w)
        restore_parallel._post_data_early(
            arrivals, tmp_path / "dump", plan, [20 + w], ConnInfo(dbname="x"), False, None, None
        )

    monkeypatch.setattr(restore_parallel, "pg_restore", FakePgRestore)
    step(0)
    assert sorted(plan.early) == [30 + 10 * w + i for w in range(4) for i in range(5)]
    # The first step starts while three workers still load (one session each).
    assert most[0] <= 4


def test_a_step_given_fewer_sessions_than_it_could_use_asks_again_for_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``restore --jobs 2``, the two workers done loading together: each step was given
    one session for its whole list, and the one with more to build went on alone on one
    session long after the other had ended (at 1 GB, 4 s with the other core idle). A
    step short of sessions runs a part of its list, then asks again: once the other step
    has ended, the rest of the list runs on both sessions."""
    pre, post = SECTION_PRE_DATA, SECTION_POST_DATA
    entries = []
    for w in range(2):
        entries += [
            TocEntry(10 + w, "TABLE", OFFSET_NO_DATA, 0, section=pre),
            TocEntry(
                20 + w, "TABLE DATA", OFFSET_NOT_SET, 0, section=SECTION_DATA, depends=(10 + w,)
            ),
        ]
    light = [30]
    heavy = list(range(40, 56))
    entries += [TocEntry(i, "INDEX", OFFSET_NO_DATA, 0, section=post, depends=(10,)) for i in light]
    entries += [TocEntry(i, "INDEX", OFFSET_NO_DATA, 0, section=post, depends=(11,)) for i in heavy]
    plan = Plan(ArchiveToc(entries, TOC_END, 4, 8), {}, {}, [[20], [21]], jobs=2)
    runs: list[tuple[list[int], int]] = []
    light_running = threading.Event()
    heavy_started = threading.Event()
    light_over = threading.Event()
    lock = threading.Lock()
    in_flight: list[int] = []
    most = [0]

    class FakePgRestore:
        # The light worker's step runs until the heavy one's first part has run; the
        # heavy one's first part ends once the light step is over.
        def __init__(self, *_args: object, jobs: int = 1, use_list: Path, **_kw: object) -> None:
            self.jobs = jobs
            self.ids = [int(line.rstrip(";")) for line in use_list.read_text().split()]

        def __enter__(self) -> None:
            with lock:
                runs.append((self.ids, self.jobs))
                in_flight.append(self.jobs)
                most[0] = max(most[0], sum(in_flight))
            if self.ids == light:
                light_running.set()
                assert heavy_started.wait(30)

        def __exit__(self, *exc: object) -> None:
            with lock:
                in_flight.remove(self.jobs)
            if self.ids != light and not heavy_started.is_set():
                heavy_started.set()
                assert light_over.wait(30)

        def cancel(self) -> None:
            raise AssertionError("the read was not abandoned")

    arrivals = Arrivals()

    def step(w: int) -> None:
        restore_parallel._post_data_early(
            arrivals, tmp_path / "dump", plan, [20 + w], ConnInfo(dbname="x"), False, None, None
        )

    def light_step() -> None:
        step(0)
        light_over.set()

    monkeypatch.setattr(restore_parallel, "pg_restore", FakePgRestore)
    other = threading.Thread(target=light_step)
    other.start()
    assert light_running.wait(30)
    step(1)
    other.join()
    assert sorted(plan.early) == light + heavy
    assert most[0] <= 2
    heavy_runs = [(ids, jobs) for ids, jobs in runs if ids != light]
    # A quarter on the one session left, then (the light step over) the rest on two.
    assert heavy_runs == [(heavy[:4], 1), (heavy[4:], 2)]

"""What a parallel dump reads from pg_dump --verbose: finished table files, kept errors."""

from __future__ import annotations

import os
import threading

import pytest

from respaldo.errors import InvalidInput
from respaldo.operations.pardump import _Finished, check_jobs
from respaldo.postgres.commands import _Drain


def test_finished_table_files_are_queued_and_chatter_is_not_kept() -> None:
    finished = _Finished()
    assert finished.line(b"pg_dump: finished item 3804 TABLE DATA empleados") is False
    assert finished.line(b"pg_dump: finished item 3842 BLOBS BLOBS") is False  # after exit
    assert finished.line(b"pg_dump: reading extensions") is False
    assert finished.line(b'pg_dump: dumping contents of table "core.clientes"') is False
    assert finished.line(b"pg_dump: error: query failed: server closed the connection") is True
    assert finished.line(b"pg_dump: detail: Query was: COPY core.clientes TO stdout;") is True
    assert finished.line(b"Command was: LOCK TABLE core.clientes IN ACCESS SHARE MODE") is True
    finished.end()
    assert finished.queue.get_nowait() == 3804
    assert finished.queue.get_nowait() is None


def test_the_drain_hands_over_whole_lines_split_across_reads() -> None:
    finished = _Finished()
    read, write = os.pipe()
    drain = _Drain(os.fdopen(read, "rb"), 1024, finished)
    drain.start()
    writer = threading.Thread(
        target=lambda: [
            os.write(write, part)
            for part in (b"pg_dump: finished it", b"em 7 TABLE DATA t\npg_dump: err", b"or: x")
        ]
    )
    writer.start()
    writer.join()
    os.close(write)
    drain.join()
    assert finished.queue.get_nowait() == 7
    assert finished.queue.get_nowait() is None
    assert drain.data() == b"pg_dump: error: x\n"


@pytest.mark.parametrize("jobs", [0, -2, 65])
def test_jobs_out_of_range_are_refused(jobs: int) -> None:
    with pytest.raises(InvalidInput, match="must be between 1 and 64") as caught:
        check_jobs(jobs)
    assert caught.value.field == "jobs"
    assert caught.value.hint


def test_jobs_in_range_are_taken() -> None:
    assert check_jobs(1) == 1
    assert check_jobs(64) == 64

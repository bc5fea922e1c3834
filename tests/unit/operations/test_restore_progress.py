"""A restore's progress is passed on once per PROGRESS_STEP bytes and at the end, not per
chunk: per chunk, the callback (a progress bar, a job's cancellation check) cost about
0.35 CPU-s per GiB restored."""

from __future__ import annotations

from itertools import pairwise

from respaldo.operations.restore_parallel import PROGRESS_STEP, stepped


def test_progress_is_reported_once_a_step_and_at_the_end() -> None:
    total = 10 * PROGRESS_STEP + 12_345
    told: list[int] = []
    progress = stepped(told.append, total)
    done = 0
    chunks = 0
    while done < total:
        done = min(total, done + 20_000)
        chunks += 1
        progress(done)
    progress(done)  # told twice: reported once
    assert chunks > 500
    assert told[-1] == total
    assert len(told) <= total // PROGRESS_STEP + 2
    assert all(b - a >= PROGRESS_STEP for a, b in pairwise(told[:-1]))
    assert told == sorted(set(told))

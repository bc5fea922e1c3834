"""A worker stops when it is asked to, even when a cancellation is lost on the way.

On Python 3.11 ``asyncio.wait_for`` returns what it waited for when that arrives just as
the task waiting is cancelled: the cancellation is lost, and the task runs on. psycopg_pool
waits for a free connection that way, so any of a worker's tasks that talks to the queue
can lose one. A worker stopped by one cancellation and a wait without end then never
exits. Here the coroutine a cancellation lands in loses the first one on purpose, where
the worker talks to the queue.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from respaldo.operations import queue
from respaldo.operations.context import Context
from tests.integration.api.conftest import CatalogRole

pytestmark = pytest.mark.integration


@pytest.fixture
def ctx(catalog_role: CatalogRole, tmp_path: Path) -> Iterator[Context]:
    with catalog_role.context(tmp_path) as context:
        yield context


class LosesOneCancellation:
    """An async function of any arguments that waits until cancelled, loses the first
    cancellation (returns ``[]`` as if what it waited for had come) and obeys the next."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.lost = 0

    async def __call__(self, *args: Any) -> list[int]:
        self.entered.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if self.lost:
                raise
            self.lost += 1
        return []


def stops(worker: queue.WorkerThread) -> bool:
    """Whether ``worker.stop()`` returns; a worker that never stops fails the test here,
    not at the suite's timeout (the bound is far above the second or so it takes)."""
    stopping = threading.Thread(target=worker.stop, daemon=True)
    stopping.start()
    stopping.join(timeout=120)
    return not stopping.is_alive()


@pytest.mark.parametrize("where", ["sweep", "procrastinate's start"])
def test_a_worker_stops_although_a_cancellation_was_lost(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """The code a cancellation lands in drops the first one: in the worker's own sweep,
    or in procrastinate's worker as it starts (its prune of stalled workers)."""
    from procrastinate.manager import JobManager

    loses = LosesOneCancellation()
    if where == "sweep":
        monkeypatch.setattr(queue, "_settle_stalled", loses)
    else:
        monkeypatch.setattr(JobManager, "prune_stalled_workers", loses)
    worker = queue.WorkerThread(ctx, queue.WorkerOptions(name="w"))
    worker.start()
    assert loses.entered.wait(120), f"the worker's {where} never ran"
    assert stops(worker)
    assert loses.lost == 1  # the path under test was taken
    assert worker.error is None
    assert queue.list_workers(ctx) == []

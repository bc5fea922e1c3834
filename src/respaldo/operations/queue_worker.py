"""procrastinate's worker as ``respaldo worker`` runs it: one that says when it stops
taking jobs on its own.

procrastinate's loop ends when a fetch of the next job fails (the worker's own row in
``procrastinate_workers`` is gone: another worker pruned it once this one's procrastinate
heartbeat had stopped; the catalog refuses the query). It then takes no new job, but waits
for the jobs it runs (up to ``[queue] shutdown_timeout_seconds``) before its ``run()``
raises; meanwhile respaldo's own heartbeat went on showing a worker taking jobs.
procrastinate has no public hook for that moment: the method overridden here is its
loop's, in the one minor version respaldo pins (pyproject.toml).

Imported only where a worker runs, as procrastinate is (``queue._worker_main``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from procrastinate.worker import Worker


class TellingWorker(Worker):
    """procrastinate's :class:`~procrastinate.worker.Worker` that calls ``gave_up(exc)``
    as soon as its loop stops taking jobs because fetching one raised ``exc``."""

    def __init__(self, *, gave_up: Callable[[BaseException], None], **options: Any) -> None:
        super().__init__(**options)
        self._gave_up = gave_up

    async def _fetch_and_process_jobs(self) -> None:
        try:
            await super()._fetch_and_process_jobs()  # type: ignore[no-untyped-call]
        except Exception as exc:
            self._gave_up(exc)
            raise

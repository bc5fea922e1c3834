"""Worker threads that run submitted jobs in this process: how ``respaldo serve`` runs
what the API asks for without holding the request open.

The API submits a job (a catalog row, ``queued``) and hands its id to :meth:`Workers.start`,
which returns at once; a worker thread runs it with
:func:`~respaldo.operations.scheduled.run_queued`, from its row alone. At most
``size`` jobs run at once; the others wait, ``queued``, in submission order.
:meth:`Workers.stop` (SIGTERM) cancels every job handed over and waits until each has
recorded ``cancelled``; nothing is left ``queued`` or ``running``.

A job waiting for a free thread names this process as its runner (:func:`jobs.submit`)
and its lease is renewed here every ``[jobs] renew_seconds`` until a thread starts it: if
the process dies first (kill -9, power loss), the next process to open the catalog fails
the job as not started and sends its alert, instead of leaving it queued forever.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from respaldo.cancellation import CancelToken
from respaldo.errors import RespaldoError
from respaldo.operations import jobs
from respaldo.operations.context import Context
from respaldo.operations.scheduled import run_queued

log = logging.getLogger(__name__)

Runner = Callable[[Context, int, CancelToken], Any]
"""``runner(ctx, job_id, token)`` runs a submitted job (tests pass their own)."""


def _run(ctx: Context, job_id: int, token: CancelToken) -> Any:
    return run_queued(ctx, job_id, token=token)


class Workers:
    """A pool of threads running submitted jobs of one :class:`Context`."""

    def __init__(self, ctx: Context, *, size: int = 2, runner: Runner = _run) -> None:
        self.ctx = ctx
        self._runner = runner
        self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="job")
        self._lock = threading.Lock()
        self._tokens: dict[int, CancelToken] = {}
        self._futures: dict[int, Future[None]] = {}
        self._stopping = False
        self._stopped = threading.Event()
        self._renewer: threading.Thread | None = None

    def start(self, job_id: int) -> None:
        """Run the queued job ``job_id`` in a worker thread; returns at once.

        Once :meth:`stop` was called, the job is recorded ``cancelled`` here instead and
        JobCancelled is raised."""
        token = CancelToken()
        with self._lock:
            if not self._stopping:
                self._tokens[job_id] = token
                self._futures[job_id] = self._pool.submit(self._work, job_id, token)
                if self._renewer is None:
                    self._renewer = threading.Thread(
                        target=self._renew, name="queued-jobs-lease", daemon=True
                    )
                    self._renewer.start()
                return
        token.cancel("respaldo serve is stopping")
        self._runner(self.ctx, job_id, token)

    def _work(self, job_id: int, token: CancelToken) -> None:
        try:
            self._runner(self.ctx, job_id, token)
        except (RespaldoError, Exception):
            # The job recorded its error; a thread pool would only swallow it.
            log.warning("job %s ended with an error", job_id, exc_info=True)
        finally:
            with self._lock:
                self._tokens.pop(job_id, None)
                self._futures.pop(job_id, None)

    def _renew(self) -> None:
        # Renews every job handed over; the catalog renews only those still queued (a
        # started one renews its own lease, operations/jobs.py).
        while not self._stopped.wait(self.ctx.settings.jobs.renew_seconds):
            try:
                jobs.renew_queued(self.ctx, self.running())
            except (RespaldoError, Exception):  # a busy catalog: try again next time
                log.warning("could not renew the lease of the queued jobs", exc_info=True)

    def running(self) -> list[int]:
        """Ids of the jobs handed to the workers that have not ended yet."""
        with self._lock:
            return sorted(self._futures)

    def wait(self, job_id: int, timeout: float | None = None) -> None:
        """Return once the job handed over as ``job_id`` has ended (at once if it is not
        one of ours)."""
        with self._lock:
            future = self._futures.get(job_id)
        if future is not None:
            future.exception(timeout)

    def stop(self, reason: str) -> None:
        """Start nothing more, cancel every job handed over with ``reason`` and return
        once each has recorded how it ended (``cancelled``: a job that had not started
        yet starts and stops at once, see :func:`~respaldo.operations.jobs.run`)."""
        with self._lock:
            self._stopping = True
            tokens = list(self._tokens.values())
        for token in tokens:
            token.cancel(reason)
        self._pool.shutdown(wait=True)
        self._stopped.set()
        if self._renewer is not None:
            self._renewer.join()

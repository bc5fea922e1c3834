"""``respaldo`` with each job that ``respaldo serve``'s workers run under cProfile
(``physical_bench --via-service --service-profile FILE``): the switch lives here, in
the bench, not in the product.

The environment variable ``RESPALDO_BENCH_PROFILE`` names the prefix of the files:
job N's statistics go to ``PREFIX.N``. cProfile sees the job's own thread only (the
threads a job starts, e.g. the writer's compression workers, are not in it), and its
clock is that thread's CPU time (``time.thread_time``): the figures are CPU seconds,
waits (pg_basebackup's pipe, fsync, SQLite's locks) cost nothing in them; the bench
has the wall times.
"""

from __future__ import annotations

import cProfile
import os
import time
from typing import Any

from respaldo.operations import workers


def main() -> None:
    prefix = os.environ["RESPALDO_BENCH_PROFILE"]
    original = workers.run_queued  # type: ignore[attr-defined]

    def profiled(ctx: Any, job_id: int, **kwargs: Any) -> Any:
        profile = cProfile.Profile(time.thread_time)
        profile.enable()
        try:
            return original(ctx, job_id, **kwargs)
        finally:
            profile.disable()
            profile.dump_stats(f"{prefix}.{job_id}")

    # workers._run looks run_queued up in its module at each call.
    workers.run_queued = profiled  # type: ignore[attr-defined]
    from respaldo.cli.entry import run

    run()


if __name__ == "__main__":
    main()

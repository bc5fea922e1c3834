"""``respaldo`` with each job that ``respaldo serve``'s workers run measured: the switch
lives here, in the bench, not in the product.

``RESPALDO_BENCH_PROFILE`` (``physical_bench --via-service --service-profile FILE``)
names the prefix of cProfile files: job N's statistics go to ``PREFIX.N``. cProfile sees
the job's own thread only (the threads a job starts, e.g. the writer's compression
workers, are not in it), and its clock is that thread's CPU time
(``time.thread_time``): the figures are CPU seconds, waits (pg_basebackup's pipe, fsync,
SQLite's locks) cost nothing in them; the bench has the wall times.

``RESPALDO_BENCH_PHASES`` (``physical_bench --via-service --phases N``) names the prefix
of JSON files: job N's parts (:func:`bench.physical_phases.instrument`: the session, the
writer's lease, pg_basebackup's stream, the check, the commit, the records), each as
[process CPU s, wall s], go to ``PREFIX.N``, with the whole job as ``job``. No profiler:
the figures are the real ones, threads included in the CPU.
"""

from __future__ import annotations

import cProfile
import json
import os
import time
from pathlib import Path
from typing import Any

from respaldo.operations import workers


def main() -> None:
    profile_prefix = os.environ.get("RESPALDO_BENCH_PROFILE")
    phases_prefix = os.environ.get("RESPALDO_BENCH_PHASES")
    original = workers.run_queued  # type: ignore[attr-defined]
    parts: dict[str, list[float]] = {}
    if phases_prefix:
        from bench.physical_phases import instrument

        instrument(parts)

    def measured(ctx: Any, job_id: int, **kwargs: Any) -> Any:
        parts.clear()
        profile = cProfile.Profile(time.thread_time) if profile_prefix else None
        cpu, wall = time.process_time(), time.perf_counter()
        if profile is not None:
            profile.enable()
        try:
            return original(ctx, job_id, **kwargs)
        finally:
            if profile is not None:
                profile.disable()
                profile.dump_stats(f"{profile_prefix}.{job_id}")
            if phases_prefix:
                parts["job"] = [time.process_time() - cpu, time.perf_counter() - wall]
                Path(f"{phases_prefix}.{job_id}").write_text(json.dumps(parts))

    # workers._run looks run_queued up in its module at each call.
    workers.run_queued = measured  # type: ignore[attr-defined]
    from respaldo.cli.entry import run

    run()


if __name__ == "__main__":
    main()

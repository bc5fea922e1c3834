"""What judging job leases by a PostgreSQL catalog's clock costs a renewal: one more
round trip (``SELECT clock_timestamp()``) in each renewal's transaction.

Run::

    .venv/bin/python -m bench.lease_clock_bench --renewals 200 --runs 8

Starts a throwaway PostgreSQL cluster, starts one job in a catalog there, then in
``--runs`` paired rounds (interleaved: A B, B A, ...) times ``--renewals`` renewals
(``Jobs.renew``, each in its own transaction, as the lease's thread does) by the
catalog's clock (A) and with the time given by the caller, this machine's clock, which
asks the server nothing more (B: what renewals cost before). Reports the time per
renewal, min / median / max, the paired difference, and the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, datetime

from psycopg import sql
from sample.cluster import TempCluster

from respaldo.catalog import Catalog, Jobs, open_catalog
from respaldo.domain import JobKind, TriggeredBy


def _per_renewal(catalog: Catalog, job_id: int, renewals: int, *, by_catalog: bool) -> float:
    """Microseconds per renewal."""
    started = time.perf_counter()
    for _ in range(renewals):
        with catalog.begin() as session:
            Jobs(session).renew(job_id, now=None if by_catalog else datetime.now(UTC))
    return (time.perf_counter() - started) / renewals * 1e6


def _line(name: str, values: list[float]) -> str:
    return f"| {name} | {min(values):.0f} | {statistics.median(values):.0f} | {max(values):.0f} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renewals", type=int, default=200)
    parser.add_argument("--runs", type=int, default=8)
    args = parser.parse_args()
    pg = TempCluster.create()
    try:
        pg.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier("lease_bench")))
        secret = pg.password.get_secret_value()
        url = f"postgresql://{pg.superuser}:{secret}@{pg.host}:{pg.port}/lease_bench"
        catalog = open_catalog(url, create=True)
        try:
            with catalog.begin() as session:
                jobs = Jobs(session)
                job = jobs.submit(
                    JobKind.BACKUP, target="bench", triggered_by=TriggeredBy.CLI, requested_by="b"
                )
                jobs.start(job.id, pid=os.getpid())
                job_id = job.id
            for by_catalog in (True, False):  # warm both paths up, unmeasured
                _per_renewal(catalog, job_id, args.renewals, by_catalog=by_catalog)
            clock: list[float] = []
            given: list[float] = []
            for run in range(args.runs):
                for by_catalog in (True, False) if run % 2 else (False, True):
                    took = _per_renewal(catalog, job_id, args.renewals, by_catalog=by_catalog)
                    (clock if by_catalog else given).append(took)
        finally:
            catalog.close()
    finally:
        pg.destroy()
    print("| µs per renewal | min | median | max |")
    print("|---|---|---|---|")
    print(_line("catalog's clock (A)", clock))
    print(_line("time given (B)", given))
    print(_line("paired A - B", [a - b for a, b in zip(clock, given, strict=True)]))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{args.runs} runs of {args.renewals} renewals; load average {load}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

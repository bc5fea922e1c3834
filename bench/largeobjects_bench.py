"""What recording a backup's large objects costs (``respaldo.postgres.largeobjects``: their
count, bytes and a digest of their contents, read with ``lo_get`` part by part), against
the dump of the same database that the backup takes anyway.

Run::

    .venv/bin/python -m bench.largeobjects_bench --mib 64 256 --runs 5

Starts a throwaway PostgreSQL cluster; for each size, a database with ``--mib`` MiB of
random (incompressible) large objects, 8 big ones and ``--small`` small ones (1-3 KiB,
default 2000: an ERP's attachments are many and small), and nothing else. Then
``--runs`` paired rounds (interleaved: A B, B A, ...) of the record as a backup takes
it (A, one read-only transaction) and ``pg_dump --format=custom --compress=0`` of the
same database to /dev/null (B, what the backup streams). Reports seconds, min / median /
max, the paired ratio A / B, and the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from psycopg import sql
from sample.cluster import TempCluster

from respaldo.postgres import pg_dump
from respaldo.postgres.server import large_objects


def _load(pg: TempCluster, dbname: str, mib: int, small_count: int) -> None:
    pg.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    small = sum(1024 + i % 2048 for i in range(small_count))
    big = (mib * 1024 * 1024 - small) // 8
    with pg.connect(dbname) as conn:
        for _ in range(8):
            conn.execute("SELECT lo_from_bytea(0, %s)", (os.urandom(big),))
        for i in range(small_count):
            conn.execute("SELECT lo_from_bytea(0, %s)", (os.urandom(1024 + i % 2048),))
        conn.commit()
    pg.execute("VACUUM ANALYZE pg_largeobject", dbname=dbname)


def _record(pg: TempCluster, dbname: str) -> float:
    started = time.perf_counter()
    large_objects(pg.conninfo(dbname))
    return time.perf_counter() - started


def _dump(pg: TempCluster, dbname: str) -> float:
    started = time.perf_counter()
    with pg_dump(pg.conninfo(dbname)) as dump:
        while dump.stdout.read(1 << 20):
            pass
    return time.perf_counter() - started


def _line(name: str, values: list[float], digits: int = 2) -> str:
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"| {name} | {low:.{digits}f} | {mid:.{digits}f} | {high:.{digits}f} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--small", type=int, default=2000, help="small large objects")
    args = parser.parse_args()
    pg = TempCluster.create()
    try:
        for mib in args.mib:
            dbname = f"lo_{mib}"
            _load(pg, dbname, mib, args.small)
            found = large_objects(pg.conninfo(dbname))
            print(f"\n{mib} MiB: {found.count} large objects, {found.bytes} bytes")
            # Warm-up: both then read from the cache.
            _record(pg, dbname)
            _dump(pg, dbname)
            record, dump, ratio = [], [], []
            for run in range(args.runs):
                if run % 2:
                    b, a = _dump(pg, dbname), _record(pg, dbname)
                else:
                    a, b = _record(pg, dbname), _dump(pg, dbname)
                record.append(a)
                dump.append(b)
                ratio.append(a / b)
            print("| seconds | min | median | max |\n|---|---|---|---|")
            print(_line("record (A)", record))
            print(_line("pg_dump -Fc -Z0 (B)", dump))
            print(_line("paired A / B", ratio))
            print(f"load average: {os.getloadavg()}")
            pg.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(dbname)))
    finally:
        pg.destroy()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

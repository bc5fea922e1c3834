"""What the check of a backup's packs before its manifest costs
(``repository/pack_check.py``), on a repository of many packs.

Run::

    .venv/bin/python -m bench.pack_check_bench --packs 20000 --s3-packs 3000

Fills a local directory with ``--packs`` small pack objects (their names are what
counts, not their bytes) and, unless ``--s3-packs 0``, a SeaweedFS bucket (the test
suite's server) with ``--s3-packs``; then times, median of ``--runs``, the check of a
backup that references every pack (a stat each on disk, one listing on S3) and of one
that references 32 (a stat each), a listing of ``packs/`` and one stat, and what noting
the packs costs a backup's sealing threads per 1 MiB block of 64 chunks
(``PackUse.used``). Prints the
load average: compare figures only with figures taken in the same minute.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from respaldo.repository import pack_check
from respaldo.repository.index import Location
from respaldo.repository.packs import pack_name
from respaldo.storage.base import Storage
from respaldo.storage.local import LocalStorage


class _Repo:
    """What check_packs reads of a repository when nothing is missing: its store."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage


def _use(pack_ids: list[str]) -> pack_check.PackUse:
    use = pack_check.PackUse()
    use.used(Location(p, 0, 90, 90) for p in pack_ids)
    return use


def _median_ms(storage: Storage, use: pack_check.PackUse, runs: int) -> float:
    repo: Any = _Repo(storage)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        pack_check.check_packs(repo, use, "bench")
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def _report(kind: str, storage: Storage, ids: list[str], runs: int) -> None:
    every = _median_ms(storage, _use(ids), runs)
    few = _median_ms(storage, _use(ids[: pack_check.STAT_AT_MOST]), runs)
    listings = []
    for _ in range(runs):
        started = time.perf_counter()
        sum(1 for _ in storage.list("packs/"))
        listings.append(time.perf_counter() - started)
    started = time.perf_counter()
    for pack_id in ids[:300]:
        storage.stat(pack_name(pack_id))
    stat = (time.perf_counter() - started) / min(300, len(ids)) * 1000
    print(
        f"{kind}: {len(ids)} packs; the check of all of them: {every:.0f} ms; "
        f"of {pack_check.STAT_AT_MOST}: {few:.1f} ms; one listing of packs/: "
        f"{statistics.median(listings) * 1000:.0f} ms; one stat: {stat:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packs", type=int, default=20000)
    parser.add_argument("--s3-packs", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}")

    root = Path(tempfile.mkdtemp(prefix="pack-check-bench-")) / "repo"
    ids = [secrets.token_hex(32) for _ in range(args.packs)]
    for pack_id in ids:
        path = root / pack_name(pack_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 100)
    _report("local", LocalStorage(root), ids, args.runs)

    use = pack_check.PackUse()
    block = [Location(ids[i % len(ids)], i * 100, 8000, 16000) for i in range(64)]
    rounds = 20000
    started = time.perf_counter()
    for _ in range(rounds):
        use.used(block)
    per_block = (time.perf_counter() - started) / rounds * 1e6
    print(f"PackUse.used: {per_block:.1f} us per 1 MiB block of 64 chunks")

    if args.s3_packs:
        from tests.servers.s3 import SeaweedFS

        server = SeaweedFS()
        endpoint = server.start()
        try:
            s3 = endpoint.storage()
            s3_ids = [secrets.token_hex(32) for _ in range(args.s3_packs)]
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda p: s3.put(pack_name(p), b"x" * 100), s3_ids))
            _report("seaweedfs", s3, s3_ids, args.runs)
        finally:
            server.stop()
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()

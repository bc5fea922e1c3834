"""One table back: ``restore --table`` of one table against the full restore of the same backup.

Run::

    .venv/bin/python -m bench.table_bench --scale 1.0 --repeat 5 --workdir /tmp/tbench

It starts a throwaway cluster below ``--workdir``, loads the sample ERP database at
``--scale`` (1.0 is about 1 GB; ``finanzas.facturas`` then has 150,000 rows), vacuums it
and takes one respaldo backup into a new local repository; none of that is measured.
Then, ``--repeat`` times, in turn: the full ``respaldo restore`` of that backup into a new
database, and ``respaldo restore --table T`` of each ``--table`` (default
``finanzas.facturas``, whose data sits in the middle of the dump, and
``obras.proyectos``, the last table pg_dump writes: the worst case, since the restore
reads the dump as far as the table's data). Each measured command is its own process,
as a user runs it (the processes and the machine are measured as in
:mod:`bench.logical_bench`); the databases are dropped between runs.

Reported: each command's median, minimum and maximum wall time, and the ratio table /
full run pair by pair (each table restore against the full restore just before it, so
that a machine whose speed drifts affects both alike): median, minimum and maximum.

Results go to stdout as a Markdown table and to ``bench/results/table.json``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sample import generate
from sample.cluster import TempCluster

from bench.logical_bench import DB, MIB, Bench, Setup, respaldo_argv
from bench.measure import add_common_arguments, add_sample_arguments, finish, log, machine

RESULTS = Path(__file__).resolve().parent / "results" / "table.json"
TARGET_RATIO = 0.2
"""The issue's target: one table in at most a fifth of the full restore's time (at 1 GB)."""


def restore_table(bench: Bench, setup: Setup, backup_id: str, table: str) -> dict[str, Any]:
    """One measured ``respaldo restore --table`` into a new database (dropped after)."""
    target = "bench_table"
    bench.cluster.execute(f'DROP DATABASE IF EXISTS "{target}"')
    argv = respaldo_argv(setup, "restore", backup_id, "--target-database", target, "--table", table)
    err_path = bench.out / f"restore-table-{table}.err"
    try:
        with err_path.open("wb") as err:
            result = bench.runner.run(argv, bench.respaldo_env, stderr=err)
        result["rows"] = int(bench.cluster.scalar(f"SELECT count(*) FROM {table}", dbname=target))
        return result
    finally:
        bench.cluster.execute(f'DROP DATABASE IF EXISTS "{target}"')


def spread(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def run(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    setup = Setup(16 * 1024, 1, workdir / "setups" / "main")
    report: dict[str, Any] = {
        "benchmark": "table",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(("pyfastcdc", "blake3", "zstandard", "cryptography")),
    }
    (workdir / "cluster").mkdir(exist_ok=True)
    with TempCluster.create(base_dir=workdir / "cluster") as cluster:
        version = cluster.scalar("SHOW server_version")
        log(f"cluster: PostgreSQL {version} on port {cluster.port}")
        cluster.execute(f"CREATE DATABASE {DB}")
        log(f"loading the sample ERP database at scale {args.scale} (seed {args.seed})…")
        t0 = time.perf_counter()
        written = generate.load(cluster.conninfo_kwargs(DB), args.scale, args.seed)
        bench = Bench(args, cluster, log)
        size = bench.database_size()
        loaded = time.perf_counter() - t0
        log(f"  {sum(written.values()):,} rows, {size / MIB:.0f} MiB in {loaded:.0f} s")
        bench.settle()
        bench.init(setup)
        backup = bench.backup(setup, "table")
        backup_id = backup["backup_id"]
        log(f"  backup {backup_id}: {backup['size_bytes'] / MIB:.0f} MiB of dump")
        report["params"] = {
            "scale": args.scale,
            "seed": args.seed,
            "server_version": version,
            "tables": args.table,
            "repeat": args.repeat,
        }
        report["database"] = {"rows": written, "size_bytes": size}
        report["backup"] = {"dump_bytes": backup["size_bytes"]}
        full: list[dict[str, Any]] = []
        tables: dict[str, list[dict[str, Any]]] = {t: [] for t in args.table}
        for i in range(args.repeat):
            full.append(bench.restore(setup, backup_id, "bench_full", 1))
            log(f"  #{i + 1} full restore: {full[-1]['seconds']:.2f} s")
            for table in args.table:
                tables[table].append(restore_table(bench, setup, backup_id, table))
                log(f"  #{i + 1} --table {table}: {tables[table][-1]['seconds']:.2f} s")
        full_seconds = [r["seconds"] for r in full]
        report["results"] = {
            "full": {"seconds": spread(full_seconds), "runs": full},
            "tables": {
                table: {
                    "rows": runs[0]["rows"],
                    "seconds": spread([r["seconds"] for r in runs]),
                    "ratio": spread(
                        [r["seconds"] / f for r, f in zip(runs, full_seconds, strict=True)]
                    ),
                    "runs": runs,
                }
                for table, runs in tables.items()
            },
        }
    return report


def table(report: dict[str, Any]) -> Iterator[str]:
    p, res = report["params"], report["results"]
    yield (
        f"One table back: scale {p['scale']} ({report['database']['size_bytes'] / MIB:.0f} MiB "
        f"database, {report['backup']['dump_bytes'] / MIB:.0f} MiB dump), {p['repeat']} runs "
        f"each, PostgreSQL {p['server_version']}; seconds and ratio: median (min–max)"
    )
    yield ""
    yield "| restore | rows | seconds | ratio to full (pair by pair) |"
    yield "| --- | ---: | --- | --- |"

    def fmt(s: dict[str, float], digits: int) -> str:
        return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"

    yield f"| full | | {fmt(res['full']['seconds'], 2)} | 1 |"
    for name, t in res["tables"].items():
        met = "≤" if t["ratio"]["median"] <= TARGET_RATIO else ">"
        yield (
            f"| --table {name} | {t['rows']:,} | {fmt(t['seconds'], 2)} | "
            f"{fmt(t['ratio'], 3)} ({met} {TARGET_RATIO}) |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.table_bench",
        description="restore --table of one table against the full restore of one backup.",
    )
    add_sample_arguments(parser, 1.0)
    add_common_arguments(
        parser, workdir=Path("/tmp/tbench"), workdir_help="cluster, repository", results=RESULTS
    )
    parser.add_argument("--repeat", type=int, default=5, help="runs of each restore (5)")
    parser.add_argument(
        "--table",
        action="append",
        default=None,
        help="a table to restore alone (repeatable; finanzas.facturas and obras.proyectos)",
    )
    args = parser.parse_args(argv)
    if args.scale <= 0 or args.repeat < 1:
        parser.error("--scale must be positive and --repeat at least 1")
    args.table = args.table or ["finanzas.facturas", "obras.proyectos"]
    report = run(args, log)
    return finish(report, args.json, table(report))


if __name__ == "__main__":
    raise SystemExit(main())

"""Peak memory of ``respaldo backup`` and ``respaldo restore`` next to their throughput.

Run::

    .venv/bin/python -m bench.memory_bench --scale 0.2 --workdir /tmp/mbench --repeat 3

It starts a throwaway cluster and loads the sample ERP database at ``--scale`` (as
:mod:`bench.logical_bench` does, whose setup and process runner it reuses; nothing of
that is measured), makes a repository with the production key derivation cost, then
measures, each as its own process, ``--repeat`` times in turn:

- ``pg_dump -Fc -Z0 > /dev/null`` and ``pg_restore`` of a ``pg_dump -Fc`` file into a new
  database: the throughput reference;
- ``respaldo backup erp`` and ``respaldo restore ID --target-database NEW`` (single job).

For each: wall seconds, CPU seconds (user + system of the process and its reaped
children, from ``wait4``), the database's size over the wall time (MiB/s), and the peak
RSS of the respaldo process alone (sampled every 50 ms; pg_dump and pg_restore are
other processes, listed apart), min / median / max over the runs. The load average is
recorded with each run: on a shared machine the wall times are noisy, the CPU seconds and
the peaks much less so. Results go to stdout as Markdown and to
``bench/results/memory.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sample import generate
from sample.cluster import TempCluster

from bench.logical_bench import DB, MIB, Bench, Setup
from bench.measure import add_common_arguments, add_sample_arguments, finish, log, machine

RESULTS = Path(__file__).resolve().parent / "results" / "memory.json"
RESPALDO_NAMES = ("respaldo", "python3", "python")
"""What psutil calls the respaldo process (the console script, or the interpreter)."""


def _respaldo_peak(run: dict[str, Any]) -> int:
    by_name: dict[str, int] = run["peak_rss_by_program"]
    return max((by_name.get(name, 0) for name in RESPALDO_NAMES), default=0)


def _spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def summarize(runs: list[dict[str, Any]], database_bytes: int) -> dict[str, Any]:
    return {
        "runs": len(runs),
        "seconds": _spread([r["seconds"] for r in runs]),
        "cpu_seconds": _spread([r["cpu_seconds"] for r in runs]),
        "mib_per_second": _spread([database_bytes / MIB / r["seconds"] for r in runs]),
        "respaldo_peak_rss": _spread([float(_respaldo_peak(r)) for r in runs]),
        "peak_rss_by_program": {
            name: max(r["peak_rss_by_program"].get(name, 0) for r in runs)
            for name in sorted({n for r in runs for n in r["peak_rss_by_program"]})
        },
        "load_average": _spread([r["load_average"] for r in runs]),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    setup = Setup(16 * 1024, 1, workdir / "setups" / "main")
    report: dict[str, Any] = {
        "benchmark": "memory",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(("zstandard", "cryptography")),
    }
    (workdir / "cluster").mkdir(exist_ok=True)
    with TempCluster.create(base_dir=workdir / "cluster") as cluster:
        cluster.execute(f"CREATE DATABASE {DB}")
        log(f"loading the sample ERP database at scale {args.scale}…")
        generate.load(cluster.conninfo_kwargs(DB), args.scale, args.seed)
        bench = Bench(args, cluster, log)
        bench.settle()
        size = bench.database_size()
        report["params"] = {"scale": args.scale, "seed": args.seed, "repeat": args.repeat}
        report["database_bytes"] = size
        bench.init(setup)
        dump = bench.out / "erp.dump"
        subprocess.run(
            [bench.tool("pg_dump"), "-Fc", "-f", str(dump), "--no-password", bench.dsn(DB)],
            env=bench.pg_env,
            check=True,
        )
        runs: dict[str, list[dict[str, Any]]] = {
            "pg_dump -Fc -Z0 > /dev/null": [],
            "respaldo backup": [],
            "pg_restore": [],
            "respaldo restore": [],
        }

        def measured(name: str, fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
            load = os.getloadavg()[0]
            result = fn(*args)
            result["load_average"] = load
            runs[name].append(result)
            log(
                f"  {name}: {result['seconds']:.2f} s, {result['cpu_seconds']:.2f} CPU-s, "
                f"respaldo peak {_respaldo_peak(result) / MIB:.0f} MiB (load {load:.1f})"
            )
            return result

        for i in range(args.repeat):
            measured("pg_dump -Fc -Z0 > /dev/null", bench.pg_dump_null)
            backup_id = measured("respaldo backup", bench.backup, setup, f"m{i}")["backup_id"]
            measured("pg_restore", bench.pg_restore, dump, "pg_restored", 1)
            measured("respaldo restore", bench.restore, setup, backup_id, "restored", 1)
        report["results"] = {name: summarize(r, size) for name, r in runs.items() if r}
        report["raw"] = runs
    return report


def table(report: dict[str, Any]) -> list[str]:
    size = report["database_bytes"] / MIB
    lines = [
        f"Database {size:.0f} MiB (scale {report['params']['scale']}), "
        f"{report['params']['repeat']} runs each; min / median / max.",
        "",
        "| command | wall s | CPU s | MiB/s | respaldo peak RSS MiB | load average |",
        "|---|---|---|---|---|---|",
    ]

    def mmm(spread: dict[str, float], fmt: str = "{:.2f}", scale: float = 1.0) -> str:
        return " / ".join(fmt.format(spread[k] / scale) for k in ("min", "median", "max"))

    for name, res in report["results"].items():
        peak = mmm(res["respaldo_peak_rss"], "{:.0f}", MIB) if name.startswith("respaldo") else "–"
        lines.append(
            f"| {name} | {mmm(res['seconds'])} | {mmm(res['cpu_seconds'])} | "
            f"{mmm(res['mib_per_second'], '{:.0f}')} | {peak} | "
            f"{mmm(res['load_average'], '{:.1f}')} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    add_sample_arguments(parser, default_scale=0.2)
    add_common_arguments(
        parser,
        workdir=Path("/tmp/respaldo-memory-bench"),
        workdir_help="scratch directory (cluster, repository, dump)",
        results=RESULTS,
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command (3)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    report = run(args)
    report["total_seconds"] = time.perf_counter() - t0
    return finish(report, args.json, table(report))


if __name__ == "__main__":
    raise SystemExit(main())

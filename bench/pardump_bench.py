"""Parallel dumps: ``respaldo backup --jobs N`` against pg_dump in the same run.

Run::

    .venv/bin/python -m bench.pardump_bench --scale 0.3 --repeat 3 --workdir /tmp/pdbench
    .venv/bin/python -m bench.pardump_bench --cluster /work/bigdata/s10 --repeat 1

It starts a throwaway cluster below ``--workdir``, loads the sample ERP database at
``--scale`` (1.0 is about 890 MiB), vacuums and checkpoints it; none of that is measured.
With ``--cluster DIR`` it measures instead the database of a long-lived cluster made by
:mod:`bench.bigdb` (a 10 GB one takes too long to load for every run), and leaves it be.
Then, ``--repeat`` rounds, each measuring in turn (every command its own process, as a
user runs it, measured as in :mod:`bench.logical_bench`: wall time, CPU, peak RSS of its
process tree):

(a) ``pg_dump -Fc -f FILE``: the specification's way (default compression, one process);
(b) ``pg_dump -Fd -j N -Z0 -f DIR``: the floor of a parallel dump to a local directory;
(c) ``respaldo backup erp --jobs N`` into a new, empty repository (a first backup: every
    chunk is new, nothing deduplicates against an earlier backup);
(d) ``respaldo backup erp`` (one pg_dump, custom format) into a new repository;
(e) ``pg_restore -j N`` of (b)'s directory into a new database;
(f) ``respaldo restore --jobs N`` of (c)'s backup into a new database.

Ratios are taken pair by pair within a round (so that a machine whose load drifts
affects both sides alike) and reported as median, minimum and maximum.

Results go to stdout as Markdown tables and to ``bench/results/pardump.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from sample import generate
from sample.cluster import TempCluster

from bench.bigdb import attach
from bench.logical_bench import (
    DB,
    MIB,
    Bench,
    Setup,
    pairs_table,
    respaldo_argv,
    restore_pairs,
    tree_bytes,
)
from bench.measure import add_common_arguments, add_sample_arguments, finish, log, machine

RESULTS = Path(__file__).resolve().parent / "results" / "pardump.json"
TARGETS = {
    "backup / pg_dump -Fc": 0.25,
    "backup / pg_dump -Fd -Z0": 1.2,
    "restore / pg_restore -j": 1.0,
}
"""The issue's targets (stated for a 10 GB database)."""


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def pg_dump_dir(bench: Bench, path: Path, jobs: int) -> dict[str, Any]:
    shutil.rmtree(path, ignore_errors=True)
    argv = [
        bench.tool("pg_dump"),
        "-Fd",
        f"-j{jobs}",
        "-Z0",
        "-f",
        str(path),
        "--no-password",
        bench.dsn(DB),
    ]
    result = bench.runner.run(argv, bench.pg_env, fsync=path / "toc.dat")
    result["bytes"] = tree_bytes(path)
    return result


def respaldo_backup(bench: Bench, setup: Setup, tag: str, jobs: int) -> dict[str, Any]:
    """A first backup into a new repository (``setup`` is initialised anew, not measured)."""
    bench.init(setup)
    err_path = bench.out / f"backup-{tag}.err"
    out_path = bench.out / f"backup-{tag}.out"
    argv = respaldo_argv(setup, "backup", DB, "--jobs", str(jobs))
    with out_path.open("wb") as out, err_path.open("wb") as err:
        result = bench.runner.run(argv, bench.respaldo_env, stdout=out, stderr=err)
    result["backup_id"] = out_path.read_text().strip().splitlines()[-1]
    result["repository_bytes"] = tree_bytes(setup.repo)
    return result


@contextlib.contextmanager
def _database(
    args: argparse.Namespace, log: Callable[[str], None]
) -> Iterator[tuple[TempCluster, int | None]]:
    """The cluster to measure and the rows of its database (None: not counted): the
    long-lived one of ``--cluster``, or a throwaway one loaded at ``--scale``."""
    if args.cluster is not None:
        cluster = attach(args.cluster)
        log(f"cluster {args.cluster}: PostgreSQL on port {cluster.port}")
        yield cluster, None
        return
    (args.workdir / "cluster").mkdir(exist_ok=True)
    with TempCluster.create(base_dir=args.workdir / "cluster") as cluster:
        log(f"cluster: PostgreSQL on port {cluster.port}")
        cluster.execute(f"CREATE DATABASE {DB}")
        log(f"loading the sample ERP database at scale {args.scale} (seed {args.seed})…")
        t0 = time.perf_counter()
        written = generate.load(cluster.conninfo_kwargs(DB), args.scale, args.seed)
        rows = sum(written.values())
        log(f"  {rows:,} rows in {time.perf_counter() - t0:.0f} s")
        Bench(args, cluster, log).settle()
        yield cluster, rows


def run(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    parallel = Setup(16 * 1024, 1, workdir / "setups" / "parallel")
    serial = Setup(16 * 1024, 1, workdir / "setups" / "serial")
    jobs = args.jobs
    report: dict[str, Any] = {
        "benchmark": "pardump",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(("pyfastcdc", "blake3", "zstandard", "cryptography")),
    }
    with _database(args, log) as (cluster, rows):
        version = cluster.scalar("SHOW server_version")
        bench = Bench(args, cluster, log)
        size = bench.database_size()
        report["params"] = {
            "cluster": str(args.cluster) if args.cluster else None,
            "scale": args.scale,
            "seed": args.seed,
            "jobs": jobs,
            "repeat": args.repeat,
            "server_version": version,
        }
        report["database"] = {"size_bytes": size, "rows": rows}
        fc_file = bench.out / "spec.dump"
        fd_dir = bench.out / "dir.dump"
        runs: dict[str, list[dict[str, Any]]] = {
            k: []
            for k in (
                "pg_dump -Fc",
                "pg_dump -Fd",
                "backup --jobs",
                "backup",
                "pg_restore -j",
                "restore --jobs",
            )
        }
        for i in range(args.repeat):
            steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
                ("pg_dump -Fc", lambda: bench.pg_dump_file(fc_file)),
                ("pg_dump -Fd", lambda: pg_dump_dir(bench, fd_dir, jobs)),
                ("backup --jobs", partial(respaldo_backup, bench, parallel, f"par{i}", jobs)),
                ("backup", partial(respaldo_backup, bench, serial, f"ser{i}", 1)),
                ("pg_restore -j", lambda: bench.pg_restore(fd_dir, "bench_pg", jobs)),
                (
                    "restore --jobs",
                    lambda: bench.restore(
                        parallel, runs["backup --jobs"][-1]["backup_id"], "bench_r", jobs
                    ),
                ),
            ]
            for name, step in steps:
                runs[name].append(step())
                r = runs[name][-1]
                log(
                    f"  #{i + 1} {name}: {r['seconds']:.2f} s, "
                    f"peak RSS {r['tree_peak_rss'] / MIB:.0f} MiB"
                )
                # What no later step reads goes at once: at 10 GB the outputs of a round
                # would not all fit on the disk together.
                if name == "pg_dump -Fc":
                    fc_file.unlink()
                elif name == "backup" and not args.keep:
                    shutil.rmtree(serial.root)
        shutil.rmtree(fd_dir, ignore_errors=True)
        fc_file.unlink(missing_ok=True)

        def ratio(a: str, b: str) -> dict[str, float]:
            return spread(
                [x["seconds"] / y["seconds"] for x, y in zip(runs[a], runs[b], strict=True)]
            )

        report["results"] = {
            name: {
                "seconds": spread([r["seconds"] for r in rs]),
                "tree_peak_rss": max(r["tree_peak_rss"] for r in rs),
                "peak_rss_by_program": rs[-1]["peak_rss_by_program"],
                "cpu_seconds": spread([r["cpu_seconds"] for r in rs]),
                "server_cpu_seconds": spread([r["server_cpu_seconds"] for r in rs]),
                "background_cores": spread([r["background_cores"] for r in rs]),
                "runs": rs,
            }
            for name, rs in runs.items()
        }
        report["ratios"] = {
            "backup / pg_dump -Fc": ratio("backup --jobs", "pg_dump -Fc"),
            "backup / pg_dump -Fd -Z0": ratio("backup --jobs", "pg_dump -Fd"),
            "serial backup / pg_dump -Fc": ratio("backup", "pg_dump -Fc"),
            "backup / serial backup": ratio("backup --jobs", "backup"),
            "restore / pg_restore -j": ratio("restore --jobs", "pg_restore -j"),
        }
        report["sizes"] = {
            "pg_dump -Fc": runs["pg_dump -Fc"][-1]["bytes"],
            "pg_dump -Fd -Z0": runs["pg_dump -Fd"][-1]["bytes"],
            "repository (parallel)": runs["backup --jobs"][-1]["repository_bytes"],
            "repository (serial)": runs["backup"][-1]["repository_bytes"],
        }
        if not args.keep:
            shutil.rmtree(workdir / "setups", ignore_errors=True)
    return report


def run_restore_pairs(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    """--restore-pairs N: one ``pg_dump -Fd -j N -Z0`` directory and one ``backup --jobs
    N`` (unmeasured), then N pairs of ``respaldo restore --jobs`` against ``createdb`` +
    ``pg_restore -j`` of the directory (see :func:`bench.logical_bench.restore_pairs`)."""
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    parallel = Setup(16 * 1024, 1, workdir / "setups" / "parallel")
    report: dict[str, Any] = {
        "benchmark": "pardump restore pairs",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(("pyfastcdc", "blake3", "zstandard", "cryptography")),
        "params": {"scale": args.scale, "seed": args.seed, "pairs": args.restore_pairs},
    }
    with _database(args, log) as (cluster, _):
        bench = Bench(args, cluster, log)
        report["database"] = {"size_bytes": bench.database_size()}
        fd_dir = bench.out / "dir.dump"
        report["pg_dump -Fd"] = pg_dump_dir(bench, fd_dir, args.jobs)
        backup_id = respaldo_backup(bench, parallel, "par", args.jobs)["backup_id"]
        log(f"backup {backup_id} (--jobs {args.jobs}); paired restores…")
        report["restores"] = restore_pairs(
            bench,
            parallel,
            backup_id,
            fd_dir,
            pairs=args.restore_pairs,
            jobs_list=[args.jobs],
            baseline_src=args.baseline_src,
        )
        shutil.rmtree(fd_dir, ignore_errors=True)
    if not args.keep:
        shutil.rmtree(workdir / "setups", ignore_errors=True)
    return report


def _fmt(s: dict[str, float], digits: int) -> str:
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def table(report: dict[str, Any]) -> Iterator[str]:
    p, res = report["params"], report["results"]
    yield (
        f"Parallel dump: scale {p['scale']} ({report['database']['size_bytes'] / MIB:.0f} MiB "
        f"database), --jobs {p['jobs']}, {p['repeat']} rounds, PostgreSQL "
        f"{p['server_version']}, {report['machine']['nproc']} cores; median (min–max)"
    )
    yield ""
    yield "| command | seconds | CPU s (own tree) | server CPU s | peak RSS of the tree |"
    yield "| --- | --- | --- | --- | ---: |"
    for name, r in res.items():
        yield (
            f"| {name} | {_fmt(r['seconds'], 2)} | {_fmt(r['cpu_seconds'], 1)} | "
            f"{_fmt(r['server_cpu_seconds'], 1)} | {r['tree_peak_rss'] / MIB:.0f} MiB |"
        )
    yield ""
    yield "| ratio (pair by pair) | median (min–max) | target |"
    yield "| --- | --- | --- |"
    for name, s in report["ratios"].items():
        target = TARGETS.get(name)
        mark = (
            "" if target is None else f"≤ {target} ({'met' if s['median'] <= target else 'missed'})"
        )
        yield f"| {name} | {_fmt(s, 3)} | {mark} |"
    yield ""
    yield "| size | MiB |"
    yield "| --- | ---: |"
    for name, n in report["sizes"].items():
        yield f"| {name} | {n / MIB:.0f} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pardump_bench",
        description="respaldo backup/restore --jobs against pg_dump -Fc, -Fd -j and pg_restore -j.",
    )
    add_sample_arguments(parser, 0.3)
    add_common_arguments(
        parser, workdir=Path("/tmp/pdbench"), workdir_help="cluster, repositories", results=RESULTS
    )
    parser.add_argument("--repeat", type=int, default=3, help="rounds (3)")
    parser.add_argument("--jobs", type=int, default=2, help="workers of every parallel command (2)")
    parser.add_argument(
        "--cluster",
        type=Path,
        default=None,
        help="measure the long-lived database made by bench.bigdb in this directory",
    )
    parser.add_argument(
        "--restore-pairs",
        type=int,
        default=0,
        metavar="N",
        help="only this: N pairs of restore --jobs against createdb + pg_restore -j of the "
        "directory (no backups measured)",
    )
    parser.add_argument(
        "--baseline-src",
        type=Path,
        default=None,
        help="with --restore-pairs: also restore with the respaldo of this src/ directory",
    )
    args = parser.parse_args(argv)
    if args.cluster is not None:  # the scale it was loaded at, for the report
        args.scale = json.loads((args.cluster / "database.json").read_text())["scale"]
    if args.scale <= 0 or args.repeat < 1 or args.jobs < 2:
        parser.error("--scale must be positive, --repeat at least 1, --jobs at least 2")
    if args.restore_pairs:
        pairs = run_restore_pairs(args, log)
        return finish(pairs, args.json, pairs_table(pairs))
    report = run(args, log)
    return finish(report, args.json, table(report))


if __name__ == "__main__":
    raise SystemExit(main())

"""Peak memory of ``respaldo backup`` and ``respaldo restore`` against the database's size.

Run::

    .venv/bin/python -m bench.memory_bench --scale 0.2 --workdir /tmp/mbench --repeat 3
    .venv/bin/python -m bench.memory_bench --scale 0.1,0.3 --repeat 1
    .venv/bin/python -m bench.memory_bench --cluster $BIGDATA/s1 \
        --cluster $BIGDATA/s4 --cluster $BIGDATA/s10 --repeat 1 --no-reference

Each point of the curve is a database: one the benchmark loads in a throwaway cluster
for each scale of the comma-separated ``--scale`` list (as :mod:`bench.logical_bench`
does, whose setup and process runner it reuses; nothing of that is measured), or the
long-lived one of each ``--cluster DIR`` made by :mod:`bench.bigdb` (loading 10 GB takes
too long to repeat). For each, a new repository with the production key derivation
cost (derived once before the measurements, as the key cache does for every process
after the first on a machine), then, each as its own process, ``--repeat`` times in turn
(every backup a first one, into a new, empty repository):

- ``pg_dump -Fc -Z0 > /dev/null`` and ``pg_restore`` of a ``pg_dump -Fc`` file into a new
  database: the throughput reference (left out with ``--no-reference``);
- ``respaldo backup erp`` and ``respaldo restore ID --target-database NEW`` (single job);
- ``respaldo backup erp --jobs N`` and ``respaldo restore ID --jobs N`` of that backup
  (``--jobs``, default 2; 1 leaves them out);
- with ``--baseline-src DIR`` (another source tree's ``src``, say an export of ``main``),
  ``respaldo backup erp`` (and ``--jobs N``) by that tree's respaldo too, each right after
  this one's, into a new repository of its own: a paired before/after of the same round
  (A B A B);
- with ``--backup-only``, no restores;
- with ``--store local,s3,mirror`` (default ``local``), each round of the commands above
  into a repository of each kind in turn: a local directory; a prefix of a bucket on an S3
  server the benchmark starts itself (SeaweedFS's ``weed mini`` on free ports of 127.0.0.1,
  as the test suite's :class:`tests.servers.s3.SeaweedFS`; stopped and removed at the end),
  backed up to and restored from; a local repository with that S3 prefix as its mirror
  (a second ``[[repositories]]``: the backup, then its copy there, by the same process; its
  backups only, a restore reads the local repository). Results of a store other than
  ``local`` are named ``COMMAND [STORE]``. S3 is on the loopback interface: the server's
  CPU is not the respaldo process's, and its memory is not counted;
- with ``--restore-table SCHEMA.TABLE``, ``respaldo restore ID --table SCHEMA.TABLE``
  instead of the whole restore: where the disk has no room for a second copy of a 10 GB
  database, it measures the same open of the repository (the chunk index's part, what
  grew with the size) and reading of the dump.

For each: wall seconds, CPU seconds (user + system of the process and its reaped
children, from ``wait4``), the database's size over the wall time (MiB/s), and the peak
RSS of the respaldo process alone (sampled every 50 ms; pg_dump and pg_restore are
other processes, listed apart), min / median / max over the runs. The load average is
recorded with each run: on a shared machine the wall times are noisy, the CPU seconds and
the peaks much less so. Results go to stdout as Markdown and to
``bench/results/memory.json``; with more than one point, a last table gives the curve
(median peak of each command against the database's size) and the ratio of the largest
database's peak to the smallest's, the issue's "within 10%" (1.10 at most).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sample import generate
from sample.cluster import TempCluster

# The test suite's SeaweedFS start (free ports on 127.0.0.1, identities, SSE-S3 key),
# importable from the repository root, as bench.offsite_bench uses it.
from tests.servers.s3 import REGION, S3Endpoint, SeaweedFS, new_prefix

from bench.bigdb import attach
from bench.logical_bench import DB, MIB, Bench, Setup, respaldo_argv
from bench.measure import add_common_arguments, finish, log, machine

RESULTS = Path(__file__).resolve().parent / "results" / "memory.json"
RESPALDO_NAMES = ("respaldo", "python3", "python")
"""What psutil calls the respaldo process (the console script, or the interpreter)."""
STORES = ("local", "s3", "mirror")
"""Where the repository is (``--store``): a local directory; an S3 prefix on the bench's
own SeaweedFS server; a local repository with an S3 mirror (every backup copied there
by the same process, as a configured secondary is)."""


@dataclass(frozen=True)
class StoreSetup(Setup):
    """A :class:`~bench.logical_bench.Setup` whose repository is on ``store``."""

    store: str = "local"
    s3: S3Endpoint | None = None
    secret_file: Path | None = None
    prefix: str = ""

    def repositories_toml(self) -> str:
        local = super().repositories_toml()
        if self.store == "local":
            return local
        assert self.s3 is not None and self.secret_file is not None
        # SSE off and the STANDARD class (no header): what any S3-compatible server takes.
        s3 = (
            "\n[[repositories]]\n"
            f'name = "{"s3" if self.store == "s3" else "offsite"}"\n'
            f'url = "s3://{self.s3.bucket}/{self.prefix}"\n'
            f'endpoint_url = "{self.s3.endpoint_url}"\n'
            f'region = "{REGION}"\n'
            f'access_key_id = "{self.s3.access_key_id}"\n'
            f'secret_access_key_file = "{self.secret_file}"\n'
            'storage_class = "STANDARD"\n'
        )
        return s3 if self.store == "s3" else local + s3


def label(command: str, store: str) -> str:
    """A result's name: the command, and the store unless it is the local one."""
    return command if store == "local" else f"{command} [{store}]"


@contextmanager
def s3_server(stores: list[str], workdir: Path) -> Iterator[tuple[S3Endpoint, Path] | None]:
    """A SeaweedFS server of the bench's own (and a 0600 file with its secret) when a
    store needs one; stopped and removed at the end."""
    if all(store == "local" for store in stores):
        yield None
        return
    weed = SeaweedFS()
    try:
        endpoint = weed.start()
        log(f"SeaweedFS S3 gateway at {endpoint.endpoint_url}, bucket {endpoint.bucket}")
        secret = workdir / "s3.secret"
        secret.unlink(missing_ok=True)
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(endpoint.secret_access_key + "\n")
        yield endpoint, secret
    finally:
        weed.stop()
        log("SeaweedFS stopped")


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
        "user_seconds": _spread([r["user_seconds"] for r in runs]),
        "sys_seconds": _spread([r["sys_seconds"] for r in runs]),
        "mib_per_second": _spread([database_bytes / MIB / r["seconds"] for r in runs]),
        "respaldo_peak_rss": _spread([float(_respaldo_peak(r)) for r in runs]),
        "tree_peak_rss": _spread([float(r["tree_peak_rss"]) for r in runs]),
        "peak_rss_by_program": {
            name: max(r["peak_rss_by_program"].get(name, 0) for r in runs)
            for name in sorted({n for r in runs for n in r["peak_rss_by_program"]})
        },
        "load_average": _spread([r["load_average"] for r in runs]),
    }


def measure_point(
    args: argparse.Namespace,
    cluster: TempCluster,
    name: str,
    server: tuple[S3Endpoint, Path] | None = None,
) -> dict[str, Any]:
    """Every command of the benchmark on ``cluster``'s database ``erp``, ``--repeat`` times,
    into a repository on each of ``args.store`` in turn (``server``: the S3 one)."""
    workdir: Path = args.workdir / name
    workdir.mkdir(parents=True, exist_ok=True)
    bench = Bench(argparse.Namespace(**{**vars(args), "workdir": workdir}), cluster, log)
    size = bench.database_size()
    log(f"{name}: database {size / MIB:.0f} MiB")
    point: dict[str, Any] = {"name": name, "database_bytes": size}
    dump = bench.out / "erp.dump"
    if args.reference:
        subprocess.run(
            [bench.tool("pg_dump"), "-Fc", "-f", str(dump), "--no-password", bench.dsn(DB)],
            env=bench.pg_env,
            check=True,
        )
    runs: dict[str, list[dict[str, Any]]] = {}

    def measured(label: str, fn: Callable[..., dict[str, Any]], *fargs: Any) -> dict[str, Any]:
        load = os.getloadavg()[0]
        result = fn(*fargs)
        result["load_average"] = load
        runs.setdefault(label, []).append(result)
        log(
            f"  {label}: {result['seconds']:.2f} s, {result['cpu_seconds']:.2f} CPU-s, "
            f"respaldo peak {_respaldo_peak(result) / MIB:.1f} MiB, its tree's "
            f"{result['tree_peak_rss'] / MIB:.1f} (load {load:.1f})"
        )
        return result

    def setup(store: str, kind: str) -> StoreSetup:
        root = workdir / "setups" / f"{store}-{kind}"
        if store == "local":
            return fresh_setup(bench, root)
        assert server is not None
        endpoint, secret = server
        return fresh_setup(bench, root, store, endpoint, secret)

    try:
        for i in range(args.repeat):
            if args.reference:
                measured("pg_dump -Fc -Z0 > /dev/null", bench.pg_dump_null)
            # The stores take turns within a round, so that the load of the moment
            # weighs on each alike.
            for store in args.store:
                measure_store(args, bench, store, i, setup, measured)
            if args.reference:
                measured("pg_restore", bench.pg_restore, dump, "pg_restored", 1)
    finally:
        dump.unlink(missing_ok=True)
        if not args.keep:
            shutil.rmtree(workdir / "setups", ignore_errors=True)
    point["results"] = {label: summarize(r, size) for label, r in runs.items()}
    point["raw"] = runs
    return point


def measure_store(
    args: argparse.Namespace,
    bench: Bench,
    store: str,
    i: int,
    setup: Callable[[str, str], StoreSetup],
    measured: Callable[..., dict[str, Any]],
) -> None:
    """One round of the commands into a repository on ``store``. A mirror's restore reads
    the local repository, the same as ``local``'s: only its backups are measured."""
    jobs = args.jobs
    # Every backup is a first one, into a new repository: a backup that deduplicates
    # against an earlier one stores (and holds) less, and would not compare with the
    # same command on a database of another size.
    serial = setup(store, "serial")
    parallel = setup(store, "parallel") if jobs > 1 else None
    tag = f"{store}{i}"
    backup_id = measured(label("respaldo backup", store), bench.backup, serial, f"m{tag}")[
        "backup_id"
    ]
    if args.baseline_src is not None:
        baseline = setup(store, "baseline")
        measured(
            label("respaldo backup (baseline)", store),
            baseline_backup,
            bench,
            baseline,
            f"b{i}",
            args.baseline_src,
        )
    parallel_id = None
    if parallel is not None:
        parallel_id = measured(
            label(f"respaldo backup --jobs {jobs}", store),
            parallel_backup,
            bench,
            parallel,
            f"p{tag}",
            jobs,
        )["backup_id"]
        if args.baseline_src is not None:
            measured(
                label(f"respaldo backup --jobs {jobs} (baseline)", store),
                parallel_backup,
                bench,
                setup(store, "parallel-baseline"),
                f"bp{tag}",
                jobs,
                args.baseline_src,
            )
    if args.backup_only or store == "mirror":
        return
    if args.restore_table:
        measured(
            label(f"respaldo restore --table {args.restore_table}", store),
            table_restore,
            bench,
            serial,
            backup_id,
            args.restore_table,
        )
    else:
        measured(label("respaldo restore", store), bench.restore, serial, backup_id, "restored", 1)
    if parallel is not None and parallel_id is not None:
        measured(
            label(f"respaldo restore --jobs {jobs}", store),
            bench.restore,
            parallel,
            parallel_id,
            "restored",
            jobs,
        )


def fresh_setup(
    bench: Bench,
    root: Path,
    store: str = "local",
    s3: S3Endpoint | None = None,
    secret_file: Path | None = None,
) -> StoreSetup:
    """A new, empty repository (on ``store``; an S3 one on a new prefix of ``s3``'s
    bucket) whose key is derived and cached already.

    The first process to open a repository on a machine derives its passphrase's key
    (argon2id, 64 MiB) and caches it: a one-off that has nothing to do with the
    database's size, so it is done here, outside the measurements."""
    prefix = new_prefix() if s3 is not None else ""
    setup = StoreSetup(
        16 * 1024, 1, root, store=store, s3=s3, secret_file=secret_file, prefix=prefix
    )
    bench.init(setup)
    subprocess.run(
        respaldo_argv(setup, "key", "list"),
        env=bench.respaldo_env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return setup


def baseline_backup(bench: Bench, setup: Setup, tag: str, src: Path) -> dict[str, Any]:
    """``respaldo backup erp`` by the respaldo of source tree ``src`` (its ``src``
    directory), into ``setup``'s repository."""
    err_path = bench.out / f"backup-{tag}.err"
    argv = respaldo_argv(setup, "backup", setup.dbname, src=src)
    with err_path.open("wb") as err:
        return bench.runner.run(argv, bench.respaldo_env, stdout=subprocess.DEVNULL, stderr=err)


def parallel_backup(
    bench: Bench, setup: Setup, tag: str, jobs: int, src: Path | None = None
) -> dict[str, Any]:
    """``respaldo backup erp --jobs N`` into ``setup``'s repository (by the respaldo of
    source tree ``src``, if given)."""
    out_path = bench.out / f"backup-{tag}.out"
    err_path = bench.out / f"backup-{tag}.err"
    argv = respaldo_argv(setup, "backup", setup.dbname, "--jobs", str(jobs), "--json", src=src)
    with out_path.open("wb") as out, err_path.open("wb") as err:
        result = bench.runner.run(argv, bench.respaldo_env, stdout=out, stderr=err)
    result["backup_id"] = json.loads(out_path.read_text())["id"]
    return result


def table_restore(bench: Bench, setup: Setup, backup_id: str, table: str) -> dict[str, Any]:
    """``respaldo restore ID --table TABLE`` into a new database (dropped afterwards):
    the same open of the repository and reading of the dump as a whole restore, but only
    one table's rows written (``--restore-table``: a 10 GB restore needs 10 GB of disk)."""
    target = "restored_table"
    bench.cluster.execute(f'DROP DATABASE IF EXISTS "{target}"')
    argv = respaldo_argv(setup, "restore", backup_id, "--target-database", target, "--table", table)
    err_path = bench.out / f"restore-table-{backup_id}.err"
    try:
        with err_path.open("wb") as err:
            return bench.runner.run(argv, bench.respaldo_env, stderr=err)
    finally:
        bench.cluster.execute(f'DROP DATABASE IF EXISTS "{target}"')


def run(args: argparse.Namespace) -> dict[str, Any]:
    args.workdir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "benchmark": "memory",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(("zstandard", "cryptography")),
        "params": {
            "scales": args.scale,
            "clusters": [str(c) for c in args.cluster],
            "seed": args.seed,
            "repeat": args.repeat,
            "jobs": args.jobs,
            "stores": args.store,
        },
        "points": [],
    }
    with s3_server(args.store, args.workdir) as server:
        for scale in args.scale:
            (args.workdir / "cluster").mkdir(exist_ok=True)
            with TempCluster.create(base_dir=args.workdir / "cluster") as cluster:
                cluster.execute(f"CREATE DATABASE {DB}")
                log(f"loading the sample ERP database at scale {scale}…")
                generate.load(cluster.conninfo_kwargs(DB), scale, args.seed)
                Bench(args, cluster, log).settle()
                point = measure_point(args, cluster, f"scale-{scale}", server)
                report["points"].append(point)
        for directory in args.cluster:
            point = measure_point(args, attach(directory), directory.name, server)
            report["points"].append(point)
    report["points"].sort(key=lambda p: p["database_bytes"])
    return report


def table(point: dict[str, Any], repeat: int) -> list[str]:
    size = point["database_bytes"] / MIB
    lines = [
        f"Database {size:.0f} MiB ({point['name']}), {repeat} runs each; min / median / max.",
        "",
        "| command | wall s | CPU s | MiB/s | respaldo peak RSS MiB | load average |",
        "|---|---|---|---|---|---|",
    ]

    def mmm(spread: dict[str, float], fmt: str = "{:.2f}", scale: float = 1.0) -> str:
        return " / ".join(fmt.format(spread[k] / scale) for k in ("min", "median", "max"))

    for name, res in point["results"].items():
        peak = mmm(res["respaldo_peak_rss"], "{:.0f}", MIB) if name.startswith("respaldo") else "–"
        lines.append(
            f"| {name} | {mmm(res['seconds'])} | {mmm(res['cpu_seconds'])} | "
            f"{mmm(res['mib_per_second'], '{:.0f}')} | {peak} | "
            f"{mmm(res['load_average'], '{:.1f}')} |"
        )
    return lines


def curve(points: list[dict[str, Any]]) -> list[str]:
    """Median peak RSS (MiB), wall and CPU seconds of each respaldo command per size."""
    names = [n for n in points[-1]["results"] if n.startswith("respaldo")]
    lines = [
        "| database MiB | " + " | ".join(f"{n}: peak MiB, wall s, CPU s" for n in names) + " |",
        "|---:|" + "---|" * len(names),
    ]
    for p in points:
        cells = []
        for n in names:
            r = p["results"].get(n)
            cells.append(
                "–"
                if r is None
                else f"{r['respaldo_peak_rss']['median'] / MIB:.0f}, "
                f"{r['seconds']['median']:.1f}, {r['cpu_seconds']['median']:.1f}"
            )
        lines.append(f"| {p['database_bytes'] / MIB:.0f} | " + " | ".join(cells) + " |")
    lines += ["", "| command | peak at largest / peak at smallest (target ≤ 1.10) |", "|---|---|"]
    for n in names:
        first, last = points[0]["results"].get(n), points[-1]["results"].get(n)
        if first is not None and last is not None:
            ratio = last["respaldo_peak_rss"]["median"] / first["respaldo_peak_rss"]["median"]
            lines.append(f"| {n} | {ratio:.3f} |")
    return lines


def scales(text: str) -> list[float]:
    """``--scale``: one or more comma-separated positive scales."""
    values = [float(x) for x in text.split(",") if x.strip()]
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError("positive scales separated by commas")
    return values


def stores(text: str) -> list[str]:
    """``--store``: one or more comma-separated stores of :data:`STORES`."""
    values = [x.strip() for x in text.split(",") if x.strip()]
    if not values or any(v not in STORES for v in values):
        raise argparse.ArgumentTypeError(f"stores among {', '.join(STORES)}, comma-separated")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--scale",
        type=scales,
        default=[],
        help="sample scales to load, comma-separated; 1.0 ≈ 890 MiB (0.2 without --cluster)",
    )
    parser.add_argument("--seed", type=int, default=1, help="sample data seed (1)")
    parser.add_argument(
        "--cluster",
        type=Path,
        action="append",
        default=[],
        help="a long-lived database made by bench.bigdb (repeatable)",
    )
    add_common_arguments(
        parser,
        workdir=Path("/tmp/respaldo-memory-bench"),
        workdir_help="scratch directory (cluster, repository, dump)",
        results=RESULTS,
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command (3)")
    parser.add_argument(
        "--jobs", type=int, default=2, help="workers of the parallel backup and restore (2)"
    )
    parser.add_argument(
        "--restore-table",
        metavar="SCHEMA.TABLE",
        help="restore only this table instead of the whole database (the repository's "
        "open and the dump's reading are the same; the disk needs no room for a copy)",
    )
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="another source tree's src directory: its backup too, paired with this one's",
    )
    parser.add_argument(
        "--backup-only", action="store_true", help="leave out the restores (backups only)"
    )
    parser.add_argument(
        "--store",
        type=stores,
        default=["local"],
        help="where the repository is, comma-separated: local (a directory), s3 (a prefix "
        "on a SeaweedFS server the bench starts), mirror (local with an S3 mirror: the "
        "backup and its copy; no restore) (local)",
    )
    parser.add_argument(
        "--no-reference",
        dest="reference",
        action="store_false",
        help="leave out pg_dump and pg_restore (the throughput reference)",
    )
    args = parser.parse_args(argv)
    if not args.scale and not args.cluster:
        args.scale = [0.2]
    t0 = time.perf_counter()
    report = run(args)
    report["total_seconds"] = time.perf_counter() - t0
    tables = [table(p, args.repeat) for p in report["points"]]
    if len(report["points"]) > 1:
        tables.append(curve(report["points"]))
    return finish(report, args.json, *tables)


if __name__ == "__main__":
    raise SystemExit(main())

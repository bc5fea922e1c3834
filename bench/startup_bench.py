"""Start-up of the processes the server and cron start: ``respaldo --help`` and ``wal-push``.

Run::

    .venv/bin/python -m bench.startup_bench --runs 15 --workdir /tmp/sbench

No cluster is needed: the WAL segments pushed are synthetic 16 MiB segments shaped as
PostgreSQL writes them (a long page header naming the cluster, then a short header per
8 KiB page; the rest random, so compression does not flatter it), one new segment per
push, into a local repository made with the production key derivation cost (argon2id,
64 MiB, 3 passes). Measured, each as its own process, in turn (A B C … A B C …) so that
the machine's drift hits every command alike:

- ``python -c pass``: the interpreter alone, the floor;
- ``respaldo --help``;
- ``respaldo wal-push SEGMENT`` with the per-machine key cache (``key_cache = true``, the
  default: the key derived once, by the first push, which is not counted);
- ``respaldo wal-push SEGMENT`` with ``key_cache = false``: argon2id in every process.

For each: wall seconds, CPU seconds (user + system) and peak RSS (both from GNU time,
``/usr/bin/time``), min /
median / max over ``--runs``, and the median of each run's ratio to ``python -c pass``
taken in the same round. The load average before and after is printed: on a shared
machine the wall times are noisy, CPU seconds much less.

``--one-shot`` measures instead the fixed cost of the one-shot commands cron and an
operator run, on a database so small that the work is next to nothing (the sample ERP at
``--scale``, 0.002 by default: about 9 MiB with the empty database)::

    .venv/bin/python -m bench.startup_bench --one-shot --runs 7 --baseline /tmp/base

A throwaway cluster (archive_mode on) holds the database; respaldo runs as the server's
user (as physical_bench does). In each round, in turn: ``createdb`` + ``pg_restore`` of
the database's ``pg_dump -Fc`` file into a new database, ``respaldo restore ID
--target-database NEW`` of a logical backup of it, ``pg_basebackup -c fast -Ft -D DIR``,
and ``respaldo backup DB --type incremental`` (a physical backup into the repository
that holds the earlier ones); with ``--baseline``, the same two respaldo commands by that
source tree. CPU includes the children (pg_restore, pg_basebackup, psql). The ratios are
taken per round.

respaldo's modules are compiled first (``compileall``), as an installed package's are:
where ``PYTHONDONTWRITEBYTECODE`` is set (this project's development machines), every
process would otherwise compile its source again, about 0.05 CPU-s of a ``wal-push``.
Results go to stdout as Markdown and to ``bench/results/startup.json``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.measure import add_common_arguments, finish, machine
from respaldo.postgres.wal import LONG_HEADER, SHORT_HEADER, XLP_LONG_HEADER

RESULTS = Path(__file__).resolve().parent / "results" / "startup.json"
PASSPHRASE = "respaldo start-up benchmark passphrase"  # noqa: S105 (a throwaway repository)
SEGMENT = 16 * 1024 * 1024
PAGE = 8192
MAGIC = 0xD110  # PostgreSQL 15's XLOG_PAGE_MAGIC
SYSTEM_ID = 7300000000000000001
MIB = 1024 * 1024
TIME = "/usr/bin/time"  # GNU time (Debian package time)


def segment(segno: int, timeline: int = 1) -> bytes:
    """A 16 MiB WAL segment of cluster SYSTEM_ID, as ``wal-push`` checks it."""
    data = bytearray(os.urandom(SEGMENT))
    start = segno * SEGMENT
    for i in range(SEGMENT // PAGE):
        if i == 0:
            LONG_HEADER.pack_into(
                data, 0, MAGIC, XLP_LONG_HEADER, timeline, start, 0, SYSTEM_ID, SEGMENT, PAGE
            )
        else:
            SHORT_HEADER.pack_into(data, i * PAGE, MAGIC, 0, timeline, start + i * PAGE)
    return bytes(data)


def segment_name(segno: int, timeline: int = 1) -> str:
    return f"{timeline:08X}{segno // 256:08X}{segno % 256:08X}"


class Segments:
    """New segments on demand, in ``<dir>/pg_wal`` (as the server's ``%p`` is)."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "pg_wal"
        self.dir.mkdir(parents=True)
        self.next = 1

    def new(self) -> Path:
        path = self.dir / segment_name(self.next)
        path.write_bytes(segment(self.next))
        self.next += 1
        return path


def write_config(root: Path, *, key_cache: bool) -> Path:
    config = root / f"respaldo-{'cache' if key_cache else 'nocache'}.toml"
    config.write_text(
        f'passphrase_file = "{root / "passphrase"}"\n'
        f'cache_dir = "{root / "cache"}"\n'
        f"key_cache = {'true' if key_cache else 'false'}\n"
        f'\n[catalog]\nurl = "sqlite:///{root / "catalog.db"}"\n'
        f'\n[[repositories]]\nname = "local"\nurl = "file://{root / "repo"}"\n'
        '\n[[databases]]\nname = "erp"\ndsn = "postgresql://bench@127.0.0.1:1/erp"\n'
    )
    return config


def timed(argv: list[str], scratch: Path, env: dict[str, str] | None = None) -> dict[str, float]:
    """One process: wall, CPU (user + system) and peak RSS. The figures come from GNU
    time, a small C program: wait4's figures for a child of this Python process would
    count the parent's memory copied between fork and exec (about 50 MiB) as the child's."""
    out = scratch / "time.out"
    t0 = time.perf_counter()
    done = subprocess.run(
        [TIME, "-f", "%U %S %M", "-o", str(out), *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
        env=env,
    )
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode(errors='replace')[-2000:]}")
    user, system, rss_kib = out.read_text().split()[-3:]
    return {
        "seconds": wall,
        "cpu_seconds": float(user) + float(system),
        "peak_rss": int(rss_kib) * 1024,
    }


def compile_package(package: Path | None = None) -> None:
    """Write the bytecode of respaldo's modules, as installing the package does."""
    import respaldo

    package = package or Path(respaldo.__file__).parent
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)


# The console script's entry point, for a baseline source tree run with PYTHONPATH.
ENTRY = "from respaldo.cli.entry import run; run()"


def _spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    root: Path = args.workdir.absolute()
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / "passphrase").write_text(PASSPHRASE + "\n")
    (root / "passphrase").chmod(0o600)
    cached, uncached = write_config(root, key_cache=True), write_config(root, key_cache=False)
    respaldo = str(Path(sys.executable).with_name("respaldo"))
    compile_package()
    subprocess.run([respaldo, "--config", str(cached), "init"], check=True, capture_output=True)
    segments = Segments(root)
    timed([respaldo, "--config", str(cached), "wal-push", str(segments.new())], root)  # derives
    commands: dict[str, Any] = {
        "python -c pass": lambda: [sys.executable, "-c", "pass"],
        "respaldo --help": lambda: [respaldo, "--help"],
        "respaldo wal-push (key cache)": lambda: [
            respaldo,
            "--config",
            str(cached),
            "wal-push",
            str(segments.new()),
        ],
        "respaldo wal-push (key_cache = false)": lambda: [
            respaldo,
            "--config",
            str(uncached),
            "wal-push",
            str(segments.new()),
        ],
    }
    envs: dict[str, dict[str, str]] = {}
    if args.baseline is not None:
        # The same push by another version's source (an export of an older commit), in
        # the same rounds: the paired before/after of a change.
        compile_package(args.baseline / "src" / "respaldo")
        name = "baseline wal-push (key cache)"
        commands[name] = lambda: [
            sys.executable,
            "-c",
            ENTRY,
            "--config",
            str(cached),
            "wal-push",
            str(segments.new()),
        ]
        envs[name] = {**os.environ, "PYTHONPATH": str(args.baseline.absolute() / "src")}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in commands}
    load_before = os.getloadavg()[0]
    for i in range(args.runs + 1):  # the first round warms the page cache: not counted
        for name, argv in commands.items():
            result = timed(argv(), root, envs.get(name))
            if i:
                runs[name].append(result)
        for path in segments.dir.iterdir():
            path.unlink()  # keep the disk use of a long run at a few segments
    load_after = os.getloadavg()[0]
    floor = runs["python -c pass"]
    results = {}
    for name, rs in runs.items():
        results[name] = {
            "seconds": _spread([r["seconds"] for r in rs]),
            "cpu_seconds": _spread([r["cpu_seconds"] for r in rs]),
            "peak_rss": _spread([r["peak_rss"] for r in rs]),
            "wall_over_python": statistics.median(
                r["seconds"] / f["seconds"] for r, f in zip(rs, floor, strict=True)
            ),
            "runs": rs,
        }
    return {
        "benchmark": "startup",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(("argon2-cffi", "pydantic", "typer")),
        "runs": args.runs,
        "load_average": {"before": load_before, "after": load_after},
        "results": results,
    }


def _mmm(spread: dict[str, float], fmt: str, scale: float = 1.0) -> str:
    """``spread``'s min / median / max, each formatted by ``fmt`` after dividing by ``scale``."""
    return " / ".join(fmt.format(spread[k] / scale) for k in ("min", "median", "max"))


def table(report: dict[str, Any]) -> list[str]:
    load = report["load_average"]
    lines = [
        f"{report['runs']} runs of each, in turn; min / median / max; load average "
        f"{load['before']:.1f} before, {load['after']:.1f} after.",
        "",
        "| command | wall s | CPU s | peak RSS MiB | wall / `python -c pass` (median) |",
        "|---|---|---|---|---|",
    ]

    for name, res in report["results"].items():
        lines.append(
            f"| `{name}` | {_mmm(res['seconds'], '{:.3f}')} | {_mmm(res['cpu_seconds'], '{:.3f}')}"
            f" | {_mmm(res['peak_rss'], '{:.0f}', MIB)} | {res['wall_over_python']:.1f} |"
        )
    baseline = report["results"].get("baseline wal-push (key cache)")
    if baseline is not None:
        ours = report["results"]["respaldo wal-push (key cache)"]["runs"]
        pairs = list(zip(ours, baseline["runs"], strict=True))
        for figure, label in (("seconds", "wall"), ("cpu_seconds", "CPU")):
            ratios = _spread([a[figure] / b[figure] for a, b in pairs if b[figure]])
            lines.append(
                f"\n`wal-push` / baseline `wal-push`, {label}, per round: {_mmm(ratios, '{:.2f}')}"
            )
    return lines


# --- the one-shot commands (--one-shot) -----------------------------------------------


_Steps = tuple[list[list[str]], dict[str, str] | None]
"""One measured command: the processes it takes (timed one after the other, summed) and
their environment."""


def one_shot(args: argparse.Namespace) -> dict[str, Any]:
    """The fixed cost of ``respaldo restore`` and ``respaldo backup --type incremental``
    against ``pg_restore`` and ``pg_basebackup`` on a tiny database (module docstring)."""
    from sample import generate
    from sample.cluster import TempCluster

    from bench.physical_bench import DB, as_server, chown_tree, server_respaldo
    from bench.physical_bench import write_config as physical_config

    root: Path = args.workdir.absolute()
    if root.exists():
        shutil.rmtree(root)
    (root / "respaldo").mkdir(parents=True)
    compile_package()
    cluster = TempCluster.create(
        base_dir=root,
        settings={"archive_mode": "on", "archive_command": "/bin/true"},
    )
    try:
        respaldo = server_respaldo()
        config = physical_config(root / "respaldo", cluster, PASSPHRASE)
        chown_tree(root / "respaldo")

        def argv(*words: str, src: Path | None = None) -> list[str]:
            if src is None:
                return as_server([respaldo, "--config", str(config), *words])
            return as_server(
                [
                    "env",
                    f"PYTHONPATH={src}",
                    sys.executable,
                    "-c",
                    ENTRY,
                    "--config",
                    str(config),
                    *words,
                ]
            )

        def run_quiet(command: list[str], env: dict[str, str] | None = None) -> str:
            done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
            return done.stdout

        run_quiet(argv("init"))
        cluster.execute(f"CREATE DATABASE {DB}")
        generate.load(cluster.conninfo_kwargs(DB), args.scale, 1)
        cluster.execute("VACUUM ANALYZE", dbname=DB)
        pg_env = {**os.environ, **cluster.libpq_env(DB)}
        dump = root / "erp.dump"
        run_quiet([str(cluster.bindir / "pg_dump"), "-Fc", "-f", str(dump), DB], pg_env)
        backup_id = run_quiet(argv("backup", DB)).split()[-1]
        run_quiet(argv("backup", DB, "--type", "incremental"))  # the first: a full one
        baseline = None
        if args.baseline is not None:
            baseline = args.baseline.absolute() / "src"
            compile_package(baseline / "respaldo")
            subprocess.run(["chmod", "-R", "a+rX", str(baseline)], check=True)
        target = root / "basebackup"
        scratch = root / "time-out"
        scratch.mkdir()
        chown_tree(scratch)
        commands: dict[str, Callable[[str], _Steps]] = {
            "createdb + pg_restore": lambda db: (
                [
                    [str(cluster.bindir / "createdb"), db],
                    [str(cluster.bindir / "pg_restore"), "-d", db, str(dump)],
                ],
                pg_env,
            ),
            "respaldo restore": lambda db: (
                [argv("restore", backup_id, "--target-database", db)],
                None,
            ),
            "pg_basebackup -c fast": lambda db: (
                [[str(cluster.bindir / "pg_basebackup"), "-c", "fast", "-Ft", "-D", str(target)]],
                pg_env,
            ),
            "respaldo backup --type incremental": lambda db: (
                [argv("backup", DB, "--type", "incremental")],
                None,
            ),
        }
        if baseline is not None:
            commands["baseline restore"] = lambda db: (
                [argv("restore", backup_id, "--target-database", db, src=baseline)],
                None,
            )
            commands["baseline backup --type incremental"] = lambda db: (
                [argv("backup", DB, "--type", "incremental", src=baseline)],
                None,
            )
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in commands}
        load_before = os.getloadavg()[0]
        for i in range(args.runs + 1):  # the first round warms the page cache: not counted
            for n, (name, make) in enumerate(commands.items()):
                db = f"oneshot_{i}_{n}"
                steps, env = make(db)
                parts = [timed(step, scratch, env) for step in steps]
                result = {key: sum(part[key] for part in parts) for key in parts[0]}
                result["peak_rss"] = max(part["peak_rss"] for part in parts)
                result["load"] = os.getloadavg()[0]
                if i:
                    runs[name].append(result)
                shutil.rmtree(target, ignore_errors=True)
                if "restore" in name:
                    cluster.execute(f"DROP DATABASE IF EXISTS {db}")
        load_after = os.getloadavg()[0]
    finally:
        cluster.destroy()
    results = {
        name: {
            "seconds": _spread([r["seconds"] for r in rs]),
            "cpu_seconds": _spread([r["cpu_seconds"] for r in rs]),
            "peak_rss": _spread([r["peak_rss"] for r in rs]),
            "runs": rs,
        }
        for name, rs in runs.items()
    }
    ratios: dict[str, dict[str, dict[str, float]]] = {}
    pairs = [
        ("respaldo restore", "createdb + pg_restore"),
        ("respaldo backup --type incremental", "pg_basebackup -c fast"),
        ("respaldo restore", "baseline restore"),
        ("respaldo backup --type incremental", "baseline backup --type incremental"),
    ]
    for mine, theirs in pairs:
        if theirs not in runs:
            continue
        both = list(zip(runs[mine], runs[theirs], strict=True))
        ratios[f"{mine} / {theirs}"] = {
            label: _spread([a[figure] / b[figure] for a, b in both if b[figure]])
            for figure, label in (("seconds", "wall"), ("cpu_seconds", "cpu"))
        }
    return {
        "benchmark": "startup one-shot",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(("pydantic", "sqlalchemy", "typer")),
        "runs": args.runs,
        "scale": args.scale,
        "load_average": {"before": load_before, "after": load_after},
        "results": results,
        "ratios": ratios,
    }


def one_shot_table(report: dict[str, Any]) -> list[str]:
    load = report["load_average"]
    lines = [
        f"Sample ERP at scale {report['scale']}; {report['runs']} rounds, in turn; min / median"
        f" / max; load average {load['before']:.1f} before, {load['after']:.1f} after.",
        "",
        "| command | wall s | CPU s (with children) | peak RSS MiB |",
        "|---|---|---|---|",
    ]

    for name, res in report["results"].items():
        lines.append(
            f"| `{name}` | {_mmm(res['seconds'], '{:.3f}')} | {_mmm(res['cpu_seconds'], '{:.3f}')}"
            f" | {_mmm(res['peak_rss'], '{:.0f}', MIB)} |"
        )
    lines += ["", "| per round | wall | CPU |", "|---|---|---|"]
    for name, ratio in report["ratios"].items():
        wall, cpu = _mmm(ratio["wall"], "{:.2f}"), _mmm(ratio["cpu"], "{:.2f}")
        lines.append(f"| {name} | {wall} | {cpu} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    add_common_arguments(
        parser,
        workdir=Path("/tmp/respaldo-startup-bench"),
        workdir_help="scratch directory (repository, segments)",
        results=RESULTS,
    )
    parser.add_argument("--runs", type=int, default=10, help="counted runs of each (10)")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a source tree of another version (e.g. git archive of main): its wal-push "
        "runs in the same rounds",
    )
    parser.add_argument(
        "--one-shot",
        action="store_true",
        help="measure instead one-shot respaldo restore and backup --type incremental "
        "against pg_restore and pg_basebackup on a tiny database (needs PostgreSQL)",
    )
    parser.add_argument(
        "--scale", type=float, default=0.002, help="with --one-shot: sample scale (0.002)"
    )
    args = parser.parse_args(argv)
    if args.one_shot:
        if args.json == RESULTS:
            args.json = RESULTS.with_name("startup_one_shot.json")
        report = one_shot(args)
        return finish(report, args.json, one_shot_table(report))
    report = run(args)
    return finish(report, args.json, table(report))


if __name__ == "__main__":
    raise SystemExit(main())

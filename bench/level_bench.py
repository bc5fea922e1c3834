"""Stored bytes and backup time of a first backup at several zstd levels, on several datasets.

Run::

    .venv/bin/python -m bench.level_bench --scales 0.1 0.3 --levels 1 1+6 1+9 --repeat 3

A level is ``N`` (``compression_level = N``) or ``N+M`` (``compression_level = N`` and
``compressible_level = M``: chunks that level N shrinks to at most half are compressed
again at level M, the smaller kept).

For each scale it starts a throwaway cluster (:class:`sample.cluster.TempCluster`), loads
the sample ERP database (:func:`sample.generate.load`; about a quarter of its disk, and
most of its dump, is incompressible bytea "photos") and derives, at the largest scale
only, two more databases from it with ``CREATE DATABASE … TEMPLATE``:

- ``erp_tenth``: photos kept until they are about a tenth of the uncompressed dump's
  bytes (every k-th photo), the "tenth incompressible attachments" case;
- ``erp_text``: no photos, no documents, no large objects: rows of text and numbers only.

Each dataset is dumped once with ``pg_dump -Fc`` (default compression, what the
specification asked for) and ``pg_dump -Fc -Z0`` (the uncompressed size). Then, for every
level and repeat, a new repository (the defaults but the compression levels) gets a first
``respaldo backup`` of it through the CLI: its wall time, the CPU time of respaldo's process
tree (user + sys, pg_dump included) and the repository's bytes on disk (packs, index,
manifest, keys: what ``du -sb`` counts). Ratios are stored bytes over the ``-Fc`` file.

Then one day of ERP work (:func:`sample.day_of_work.day_of_work`, day 1, as
``bench.logical_bench`` does it) is applied to the dataset's database, and each level's
last repository gets a second backup: the bytes it stores new over the first backup's
(the "day-of-work fraction", what deduplication leaves of a daily backup). The database is
changed by that day: each dataset is measured after all its first backups.

Results go to stdout as Markdown and to ``bench/results/levels.json``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sample import generate
from sample.cluster import TempCluster
from sample.day_of_work import day_of_work

from bench.logical_bench import DB, Bench, Setup
from bench.measure import log, machine, parse_run_finish

RESULTS = Path(__file__).resolve().parent / "results" / "levels.json"
MIB = 1024 * 1024
TENTH = 0.10


def derive(cluster: TempCluster, bench: LevelBench) -> dict[str, str]:
    """Create erp_tenth and erp_text from erp; returns dataset name -> database name."""
    cluster.execute("CREATE DATABASE erp_text TEMPLATE erp")
    cluster.execute("DELETE FROM docs.fotos", dbname="erp_text")
    cluster.execute("DELETE FROM docs.documentos", dbname="erp_text")
    cluster.execute("SELECT lo_unlink(oid) FROM pg_largeobject_metadata", dbname="erp_text")
    photos = int(cluster.scalar("SELECT sum(octet_length(datos)) FROM docs.fotos", dbname=DB))
    count = int(cluster.scalar("SELECT count(*) FROM docs.fotos", dbname=DB))
    raw = bench.pg_dump_z0_bytes(DB)
    other = raw - photos
    # Keep every k-th photo so that photos / (other + photos / k) is about TENTH.
    k = max(1, round(photos * (1 - TENTH) / (TENTH * other)))
    cluster.execute("CREATE DATABASE erp_tenth TEMPLATE erp")
    cluster.execute(f"DELETE FROM docs.fotos WHERE id % {k} <> 0", dbname="erp_tenth")
    log(f"  erp_tenth keeps every {k}th of {count} photos")
    for name in ("erp_text", "erp_tenth"):
        cluster.execute("VACUUM (ANALYZE)", dbname=name)
    return {
        "ERP with photos": DB,
        "ERP, photos a tenth of the dump": "erp_tenth",
        "ERP text only": "erp_text",
    }


@dataclass(frozen=True)
class LevelSetup(Setup):
    """A Setup with a second, "compressible" level (0: off)."""

    compressible: int = 0

    def write_config(self, cluster: TempCluster, password_file: Path) -> None:
        super().write_config(cluster, password_file)
        text = self.config.read_text()
        line = f"compression_level = {self.level}\n"
        assert line in text
        extra = f"compressible_level = {self.compressible}\n"
        self.config.write_text(text.replace(line, line + extra, 1))


def parse_level(text: str) -> tuple[int, int]:
    """``"1"`` -> (1, 0); ``"1+6"`` -> (1, 6)."""
    first, _, second = text.partition("+")
    return int(first), int(second or 0)


class LevelBench(Bench):
    def pg_dump_z0_bytes(self, dbname: str) -> int:
        path = self.out / "z0.dump"
        argv = [
            self.tool("pg_dump"),
            "-Fc",
            "-Z0",
            "-f",
            str(path),
            "--no-password",
            self.dsn(dbname),
        ]
        subprocess.run(argv, env=self.pg_env, check=True)
        size = int(path.stat().st_size)
        path.unlink()
        return size

    def pg_dump_fc(self, dbname: str) -> dict[str, Any]:
        path = self.out / "fc.dump"
        path.unlink(missing_ok=True)
        argv = [self.tool("pg_dump"), "-Fc", "-f", str(path), "--no-password", self.dsn(dbname)]
        result = self.runner.run(argv, self.pg_env, fsync=path)
        result["bytes"] = path.stat().st_size
        path.unlink()
        return result


def run_dataset(
    bench: LevelBench,
    cluster: TempCluster,
    dbname: str,
    levels: list[str],
    repeat: int,
    root: Path,
    seed: int,
) -> dict[str, Any]:
    out: dict[str, Any] = {"database": dbname}
    out["pg_dump -Z0 bytes"] = bench.pg_dump_z0_bytes(dbname)
    fc = [bench.pg_dump_fc(dbname) for _ in range(repeat)]
    out["pg_dump -Fc"] = {
        "bytes": fc[0]["bytes"],
        "seconds": [r["seconds"] for r in fc],
        "cpu_seconds": [r["cpu_seconds"] for r in fc],
    }
    kept: dict[str, LevelSetup] = {}
    for spec in levels:
        level, compressible = parse_level(spec)
        runs = []
        tag = f"{dbname}-z{spec}"
        for i in range(repeat):
            setup = LevelSetup(16 * 1024, level, root / tag, dbname, compressible)
            bench.init(setup)
            r = bench.backup(setup, f"{tag}-{i}")
            runs.append(r)
            log(
                f"  {dbname} zstd {spec} #{i + 1}: {r['seconds']:.2f} s, "
                f"{r['cpu_seconds']:.2f} CPU s, {r['repository_bytes'] / MIB:.1f} MiB"
            )
        kept[spec] = setup
        # Each repository has its own chunker seed (keyed), so cut points and stored bytes
        # differ a little from one repository to the next: the median of the repeats.
        out[f"zstd {spec}"] = {
            "bytes": int(statistics.median(r["repository_bytes"] for r in runs)),
            "all_bytes": [r["repository_bytes"] for r in runs],
            "seconds": [r["seconds"] for r in runs],
            "cpu_seconds": [r["cpu_seconds"] for r in runs],
        }
    log(f"  {dbname}: one day of work…")
    day_of_work(cluster.conninfo_kwargs(dbname), seed, 1)
    cluster.execute("VACUUM (ANALYZE)", dbname=dbname)
    for spec, setup in kept.items():
        r = bench.backup(setup, f"{dbname}-z{spec}-day")
        entry = out[f"zstd {spec}"]
        entry["day_stored_new_bytes"] = r["stored_new_bytes"]
        entry["day_cpu_seconds"] = r["cpu_seconds"]
        entry["day_fraction"] = r["stored_new_bytes"] / entry["all_bytes"][-1]
        log(f"  {dbname} zstd {spec} day of work: {entry['day_fraction']:.2%} stored new")
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir: Path = args.workdir
    report: dict[str, Any] = {
        "benchmark": "levels",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(("zstandard",)),
        "params": {"scales": args.scales, "levels": args.levels, "repeat": args.repeat},
        "datasets": {},
    }
    for scale in args.scales:
        (workdir / "cluster").mkdir(parents=True, exist_ok=True)
        with TempCluster.create(base_dir=workdir / "cluster") as cluster:
            cluster.execute(f"CREATE DATABASE {DB}")
            log(f"loading the sample ERP database at scale {scale}…")
            generate.load(cluster.conninfo_kwargs(DB), scale, args.seed)
            args.workdir = workdir / f"s{scale}"
            bench = LevelBench(args, cluster, log)
            bench.settle()
            datasets = {"ERP with photos": DB}
            if scale == max(args.scales):
                # Derived before any day of work changes erp.
                datasets = derive(cluster, bench)
            for label, dbname in datasets.items():
                key = f"{label}, scale {scale}"
                report["datasets"][key] = run_dataset(
                    bench,
                    cluster,
                    dbname,
                    args.levels,
                    args.repeat,
                    workdir / f"s{scale}" / "r",
                    args.seed,
                )
    args.workdir = workdir
    return report


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def table(report: dict[str, Any]) -> Iterator[str]:
    levels = report["params"]["levels"]
    yield (
        "| dataset | -Z0 MiB | -Fc MiB | -Fc s | "
        + " | ".join(f"zstd {lv}: stored/-Fc | s | CPU s | day stored" for lv in levels)
        + " |"
    )
    yield "|---|--:|--:|--:|" + "--:|--:|--:|--:|" * len(levels)
    for name, d in report["datasets"].items():
        fc = d["pg_dump -Fc"]
        cells = [
            name,
            f"{d['pg_dump -Z0 bytes'] / MIB:.1f}",
            f"{fc['bytes'] / MIB:.1f}",
            _spread(fc["seconds"]),
        ]
        for lv in levels:
            r = d[f"zstd {lv}"]
            cells += [
                f"{r['bytes'] / fc['bytes']:.3f}",
                _spread(r["seconds"]),
                _spread(r["cpu_seconds"]),
                f"{r['day_fraction']:.2%}",
            ]
        yield "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.level_bench",
        description="First-backup stored bytes and time by zstd level, several datasets.",
    )
    parser.add_argument("--scales", type=float, nargs="+", default=[0.1, 0.3])
    parser.add_argument(
        "--levels",
        nargs="+",
        default=["1", "1+6", "1+9"],
        help="N or N+M (compressible_level M); default 1 1+6 1+9",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="first backups per level (3)")
    return parse_run_finish(
        parser,
        argv,
        run,
        table,
        workdir=Path("/tmp/levelbench"),
        workdir_help="clusters, repositories",
        results=RESULTS,
    )


if __name__ == "__main__":
    raise SystemExit(main())

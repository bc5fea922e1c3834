"""Incremental physical backups (PostgreSQL 17+) against the full pg_basebackup stream.

Run::

    .venv/bin/python -m bench.incremental_bench --scale 0.2 --workdir /tmp/ibench [--keep]

It starts a throwaway PostgreSQL 18 cluster (the ``respaldo[pg18]`` extra) with
``summarize_wal = on`` below ``--workdir``, loads the sample ERP at ``--scale`` (1.0 is
about 1 GB) and makes a repository; none of that is measured. Then, on that one cluster:

1. a full physical backup (the base of the chain);
2. one day of ERP work (:func:`sample.day_of_work.day_of_work`);
3. an incremental backup (what respaldo does by default on 17+) and, of the same state, a
   full one (``pg_basebackup`` streamed whole, what respaldo does before 17): for each the
   wall time, the bytes the server read and sent (the tar stream: a full backup reads
   every file whole, an incremental only the changed blocks the WAL summaries name, plus
   the files that are not relations), the bytes of its files, and the bytes the
   repository stored new (after deduplication and compression);
4. a restore of each (no start): wall time; the incremental's goes through
   ``pg_combinebackup`` over the chain.

Each figure is one run on a shared machine: the load average is recorded with it. With
``--keep`` the cluster and repository stay, and the commands that repeat the server side
(``pg_basebackup`` full and incremental against step 1's manifest) and the two restores
are printed, for an external timer to run several times. Results go to stdout as Markdown
and to ``bench/results/incremental.json``.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sample import generate
from sample.cluster import TempCluster
from sample.day_of_work import day_of_work

from bench.physical_bench import write_config
from respaldo.config import load_settings
from respaldo.operations.context import Context
from respaldo.operations.initialize import initialize
from respaldo.operations.physical import backup_cluster
from respaldo.operations.physical_chain import MANIFEST_STREAM
from respaldo.operations.physical_restore import restore_datadir
from respaldo.postgres.toolsets import BUNDLED_MAJOR, find_tools
from respaldo.repository import KdfParams, iter_stream

RESULTS = Path(__file__).resolve().parent / "results" / "incremental.json"
PASSPHRASE = "respaldo incremental benchmark passphrase"  # noqa: S105 (a throwaway repository)
DB = "erp"
SEED = 20250630
MIB = 1024 * 1024


def backup(ctx: Context, method: str) -> dict[str, Any]:
    started = time.monotonic()
    result = backup_cluster(ctx, DB, method="full" if method == "full" else "auto")
    seconds = time.monotonic() - started
    meta = result.manifest.meta
    assert meta["backup_method"] == method, meta.get("full_reason")
    return {
        "id": result.record.id,
        "method": method,
        "seconds": round(seconds, 2),
        "server_bytes": result.manifest.stream("base").size,
        "file_bytes": int(meta["file_bytes"]),
        "wal_bytes": len(meta["wal_segments"]) * int(meta["wal_segment_size"]),
        "stored_new_bytes": result.stats.stored_bytes,
        "load_average": round(os.getloadavg()[0], 2),
    }


def restore(ctx: Context, backup_id: str, target: Path) -> float:
    started = time.monotonic()
    restore_datadir(ctx, backup_id, target)
    return round(time.monotonic() - started, 2)


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(args.workdir).absolute()
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    workdir.chmod(0o755)
    base = workdir / "respaldo"
    base.mkdir()
    bindir = find_tools("server", BUNDLED_MAJOR).bindir
    cluster = TempCluster.create(
        base_dir=workdir, bindir=bindir, settings={"summarize_wal": "on", "max_wal_size": "2GB"}
    )
    results: dict[str, Any] = {"scale": args.scale, "server": f"PostgreSQL {BUNDLED_MAJOR}"}
    try:
        config = write_config(base, cluster, PASSPHRASE)
        settings = load_settings(config)
        initialize(settings, kdf=KdfParams(time_cost=1, memory_cost=8 * 1024, parallelism=1))
        cluster.execute(f"CREATE DATABASE {DB}")
        print(f"loading the sample ERP at scale {args.scale} ...", file=sys.stderr)
        generate.load(cluster.conninfo_kwargs(DB), args.scale, SEED)
        cluster.execute("VACUUM ANALYZE", dbname=DB)
        cluster.execute("CHECKPOINT")
        results["database_bytes"] = int(cluster.scalar(f"SELECT pg_database_size('{DB}')"))
        ctx = Context.open(settings)
        try:
            results["base"] = backup(ctx, "full")
            changes = day_of_work(cluster.conninfo_kwargs(DB), SEED, 1)
            results["day_rows"] = sum(c.inserted + c.updated for c in changes.values())
            cluster.execute("CHECKPOINT")
            results["incremental"] = backup(ctx, "incremental")
            results["full"] = backup(ctx, "full")
            for kind in ("incremental", "full"):
                target = workdir / f"restored-{kind}"
                results[kind]["restore_seconds"] = restore(ctx, results[kind]["id"], target)
                shutil.rmtree(target)
            if args.keep:
                repo = ctx.repository()
                manifest = repo.load_manifest(results["base"]["id"])
                path = workdir / "base_backup_manifest"
                path.write_bytes(b"".join(iter_stream(repo, manifest, MANIFEST_STREAM)))
                results["kept"] = {
                    "config": str(config),
                    "base_backup_manifest": str(path),
                    "pg_env": {k: v for k, v in cluster.libpq_env(DB).items() if k != "PGPASSWORD"},
                    "bindir": str(bindir),
                    "datadir": str(cluster.datadir),
                }
        finally:
            ctx.close()
    finally:
        if args.keep:
            # TempCluster stops itself at exit; a kept one is stopped by pg_ctl stop -D DATADIR.
            atexit.unregister(cluster.destroy)
        else:
            cluster.destroy()
    results["at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return results


def report(results: dict[str, Any]) -> str:
    inc, full = results["incremental"], results["full"]
    rows = [
        ("wall time of the backup (s)", inc["seconds"], full["seconds"]),
        (
            "bytes the server read and sent (MiB)",
            inc["server_bytes"] / MIB,
            full["server_bytes"] / MIB,
        ),
        ("  of which data files (MiB)", inc["file_bytes"] / MIB, full["file_bytes"] / MIB),
        ("  of which WAL (MiB)", inc["wal_bytes"] / MIB, full["wal_bytes"] / MIB),
        (
            "stored new in the repository (MiB)",
            inc["stored_new_bytes"] / MIB,
            full["stored_new_bytes"] / MIB,
        ),
        ("wall time of the restore (s)", inc["restore_seconds"], full["restore_seconds"]),
    ]
    lines = [
        f"Sample ERP at scale {results['scale']} ({results['database_bytes'] / MIB:.0f} MiB), "
        f"{results['server']}, after one day of work ({results['day_rows']} rows):",
        "",
        "| | incremental | full stream |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {a:.1f} | {b:.1f} |" for name, a, b in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=0.2)
    parser.add_argument("--workdir", default="/tmp/respaldo-bench/incremental")
    parser.add_argument("--keep", action="store_true", help="leave the cluster running")
    parser.add_argument("--json", default=str(RESULTS))
    args = parser.parse_args(argv)
    results = run(args)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(report(results))
    if "kept" in results:
        print(json.dumps(results["kept"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

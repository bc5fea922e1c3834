"""Parallel dumps: ``respaldo backup --jobs N`` against pg_dump in the same run.

Run::

    .venv/bin/python -m bench.pardump_bench --scale 0.3 --repeat 3 --workdir /tmp/pdbench
    .venv/bin/python -m bench.pardump_bench --cluster $BIGDATA/s10 --repeat 1

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

With ``--baseline-src DIR`` (the ``src`` directory of another version of respaldo, e.g.
``git archive main src | tar -x -C /tmp/base`` gives ``/tmp/base/src``), each round also
runs (c) and (d) with that code (same interpreter and libraries): before/after figures
of a change in the same run. ``--no-restore`` leaves (e) and (f) out;
``--parallel-only`` leaves out (a), (d) and the serial baseline: the -Fd ratio alone, a
round in a third of the time; ``--serial-restore`` adds (g) ``respaldo restore`` (one
job) of (d)'s backup, so that a run at 10 GB gives the four peaks of
:mod:`bench.memory_bench`'s curve too;
``--lean-disk`` removes (b)'s directory once measured and dumps it again, unmeasured,
for (e), which then comes last. ``--stages``
adds, after the rounds, the write path's stages one at a time over (b)'s files
(``--stage-mib`` of them), in this process: CPU seconds per GiB of each step, and of the
whole ``BackupWriter`` over them (:func:`writer_stages`).

Ratios are taken pair by pair within a round (so that a machine whose load drifts
affects both sides alike) and reported as median, minimum and maximum, of wall time and
of the CPU time of each command's process tree.

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
from typing import Any, cast

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
BASE_PAR = "backup --jobs (baseline)"
BASE_SER = "backup (baseline)"
SERIAL_STEPS = ("pg_dump -Fc", "backup", BASE_SER)
"""What ``--parallel-only`` leaves out."""


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _after_pg_dump(run: dict[str, Any]) -> float:
    """Seconds a backup went on after its pg_dump was last seen running: how far
    respaldo's storing trailed the dump (sampled every 50 ms)."""
    seen = run.get("seen_by_program", {}).get("pg_dump")
    return float(run["seconds"] - seen[1]) if seen else 0.0


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


def respaldo_backup(
    bench: Bench, setup: Setup, tag: str, jobs: int, src: Path | None = None
) -> dict[str, Any]:
    """A first backup into a new repository (``setup`` is initialised anew, not measured),
    with the code of the checkout ``src`` if given."""
    bench.init(setup)
    err_path = bench.out / f"backup-{tag}.err"
    out_path = bench.out / f"backup-{tag}.out"
    argv = respaldo_argv(setup, "backup", DB, "--jobs", str(jobs), src=src)
    with out_path.open("wb") as out, err_path.open("wb") as err:
        result = bench.runner.run(argv, bench.respaldo_env, stdout=out, stderr=err)
    result["backup_id"] = out_path.read_text().strip().splitlines()[-1]
    result["repository_bytes"] = tree_bytes(setup.repo)
    return result


def writer_stages(directory: Path, root: Path, limit: int) -> dict[str, Any]:
    """Each step of the write path alone over the files of a ``pg_dump -Fd`` directory
    (the largest first, up to ``limit`` bytes), then the whole ``BackupWriter`` over the
    same files, one stream per file as a parallel backup stores them. CPU seconds per GiB
    of input (this process's, all its threads) and wall seconds; the steps run on one
    thread, on data in memory, into a new local repository with a cheap KDF."""
    import hashlib
    import os

    import zstandard

    from bench.measure import build_packs
    from respaldo.repository import BackupWriter, ChunkerParams, KdfParams, Repository
    from respaldo.repository.chunker import BlockCutter, load_fastcdc
    from respaldo.storage.local import LocalStorage

    shutil.rmtree(root, ignore_errors=True)
    repo = Repository.init(
        LocalStorage(root / "repo"),
        "stages",
        chunker=ChunkerParams(4096, 16384, 65536),
        kdf=KdfParams(time_cost=1, memory_cost=8 * 1024, parallelism=1),
    )
    files: list[Path] = []
    total = 0
    for path in sorted(directory.iterdir(), key=lambda p: -p.stat().st_size):
        if total >= limit:
            break
        files.append(path)
        total += path.stat().st_size
    gib = total / 2**30
    steps: dict[str, tuple[float, float]] = {}

    def step(name: str, fn: Callable[[], object]) -> None:
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        steps[name] = ((time.process_time() - c0) / gib, time.perf_counter() - w0)

    def read_cut() -> None:
        cutter = BlockCutter(repo.chunker, repo.keys.chunker_seed)
        for path in files:
            with path.open("rb") as fh:
                for block in cutter.blocks(fh):
                    cutter.release(block)

    step("read and cut (BlockCutter, 1 MiB blocks)", read_cut)
    datas = [p.read_bytes() for p in files]
    params = repo.chunker
    fastcdc = load_fastcdc()(
        params.avg_size,
        min_size=params.min_size,
        max_size=params.max_size,
        normalized_chunking=params.normalization,
        seed=repo.keys.chunker_seed,
    )
    chunks = [c.data for d in datas for c in fastcdc.cut_buf(d)]
    step("SHA-256 of the streams", lambda: [hashlib.sha256(d).digest() for d in datas])
    sealer = repo.sealer
    ids: list[bytes] = []
    step("keyed BLAKE3 chunk ids", lambda: ids.extend(map(sealer.chunk_id, chunks)))

    def each(fn: Callable[[Any], object], items: list[Any]) -> None:
        # Each result dropped at once, as the writer drops it: a list holding every result
        # made the per-chunk steps pay ~0.35 CPU-s per GiB of page faults on fresh memory
        # (zstd -1 on the 1 GB sample's chunks: 1.65-1.69 kept, 1.26-1.30 dropped).
        for item in items:
            fn(item)

    comp = zstandard.ZstdCompressor(level=sealer.compression_level)
    step(
        f"zstd -{sealer.compression_level}, chunk by chunk",
        lambda: each(comp.compress, chunks),
    )
    step(
        "AES-256-GCM, chunk by chunk",
        lambda: each(lambda c: sealer.seal(c, b"x", compress=False), chunks),
    )
    # Each primitive at its best, on 1 MiB pieces: what the per-chunk calls above cost
    # beyond it is per-call overhead (a chunk is about 19 KiB of the sample's dump).
    pieces = [memoryview(d)[i : i + MIB] for d in datas for i in range(0, len(d), MIB)]
    step(
        "  keyed BLAKE3 over 1 MiB pieces (at its best)", lambda: list(map(sealer.chunk_id, pieces))
    )
    step(
        f"  zstd -{sealer.compression_level} over 1 MiB pieces (at its best)",
        lambda: each(comp.compress, pieces),
    )
    compressed = b"".join(comp.compress(c) for c in chunks)
    step(
        "  AES-256-GCM over 1 MiB pieces of the compressed chunks (at its best)",
        lambda: [
            sealer.seal(compressed[i : i + MIB], b"x", compress=False)
            for i in range(0, len(compressed), MIB)
        ],
    )
    step("  os.urandom(12) a chunk (the nonces)", lambda: [os.urandom(12) for _ in chunks])
    pieces.clear()  # the memory, before the writer runs
    compressed = b""
    pairs = list(zip(ids, chunks, strict=True))
    step("seal_chunk (zstd + AES-GCM)", lambda: each(lambda i: sealer.seal_chunk(*i), pairs))
    sealed = list(map(sealer.seal_chunk, ids, chunks))  # for the packs, not measured
    sealed_bytes = sum(map(len, sealed))
    # As the writer's workers seal: a block's chunks (about 1 MiB) per call.
    batches: list[tuple[list[bytes], list[bytes]]] = [([], [])]
    batch_bytes = 0
    for cid, chunk in zip(ids, chunks, strict=True):
        if batch_bytes >= MIB:
            batches.append(([], []))
            batch_bytes = 0
        batches[-1][0].append(cid)
        batches[-1][1].append(chunk)
        batch_bytes += len(chunk)
    step(
        "seal_chunks, a block's chunks per call (the writer's workers)",
        lambda: each(lambda b: sealer.seal_chunks(*b), batches),
    )
    batches.clear()
    pairs.clear()
    step(
        "pack building (join + SHA-256)",
        lambda: build_packs(ids, sealed, cast(list[bytes], chunks), sealer, repo.pack_size),
    )
    count = len(chunks)
    for held in (sealed, chunks, datas, ids):  # free the memory before the writer runs
        held.clear()

    def write() -> None:
        with BackupWriter(repo, "stages") as writer:
            for path in files:
                with path.open("rb") as fh:
                    writer.write_stream(f"dump/{path.name}", fh)
            writer.commit(kind="full", source="bench", started_at=datetime.now(UTC))

    step(f"BackupWriter over the files ({repo.workers} workers, local store, fsync)", write)
    shutil.rmtree(root, ignore_errors=True)
    return {"bytes": total, "chunks": count, "sealed_bytes": sealed_bytes, "steps": steps}


def lean_pg_restore(bench: Bench, fd_dir: Path, jobs: int) -> dict[str, Any]:
    """``pg_restore -j`` of a ``-Fd`` directory dumped again just before (not measured):
    with ``--lean-disk`` the measured dump's directory is removed at once, so that the
    directory, the repositories and a restored database never take the disk together
    (at 10 GB: 9.5 + 3.7 + 10 GB)."""
    pg_dump_dir(bench, fd_dir, jobs)
    return bench.pg_restore(fd_dir, "bench_pg", jobs)


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
    base_par = Setup(16 * 1024, 1, workdir / "setups" / "base-parallel")
    base_ser = Setup(16 * 1024, 1, workdir / "setups" / "base-serial")
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
            "baseline_src": str(args.baseline_src) if args.baseline_src else None,
        }
        report["database"] = {"size_bytes": size, "rows": rows}
        fc_file = bench.out / "spec.dump"
        fd_dir = bench.out / "dir.dump"
        base: Path | None = args.baseline_src
        names = ["pg_dump -Fc", "pg_dump -Fd", "backup --jobs", "backup"]
        if base is not None:
            names += [BASE_PAR, BASE_SER]
        if args.parallel_only:
            names = [n for n in names if n not in SERIAL_STEPS]
        if args.restore:
            names += ["pg_restore -j", "restore --jobs"]
            if args.serial_restore:
                names += ["restore"]
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in names}
        for i in range(args.repeat):
            steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
                ("pg_dump -Fc", lambda: bench.pg_dump_file(fc_file)),
                ("pg_dump -Fd", lambda: pg_dump_dir(bench, fd_dir, jobs)),
                ("backup --jobs", partial(respaldo_backup, bench, parallel, f"par{i}", jobs)),
                ("backup", partial(respaldo_backup, bench, serial, f"ser{i}", 1)),
            ]
            if base is not None:
                steps += [
                    (BASE_PAR, partial(respaldo_backup, bench, base_par, f"bpar{i}", jobs, base)),
                    (BASE_SER, partial(respaldo_backup, bench, base_ser, f"bser{i}", 1, base)),
                ]
            if args.parallel_only:
                steps = [(n, f) for n, f in steps if n not in SERIAL_STEPS]
            if args.restore:
                restores: list[tuple[str, Callable[[], dict[str, Any]]]] = [
                    ("pg_restore -j", lambda: bench.pg_restore(fd_dir, "bench_pg", jobs)),
                    (
                        "restore --jobs",
                        lambda: bench.restore(
                            parallel, runs["backup --jobs"][-1]["backup_id"], "bench_r", jobs
                        ),
                    ),
                ]
                if args.serial_restore:
                    restores.append(
                        (
                            "restore",
                            lambda: bench.restore(
                                serial, runs["backup"][-1]["backup_id"], "bench_r", 1
                            ),
                        )
                    )
                if args.lean_disk:  # pg_restore -j last, of a directory dumped anew
                    restores = [
                        *restores[1:],
                        ("pg_restore -j", partial(lean_pg_restore, bench, fd_dir, jobs)),
                    ]
                steps += restores
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
                elif name in ("backup", BASE_PAR, BASE_SER) and not args.keep:
                    if name != "backup" or not args.serial_restore:
                        shutil.rmtree(
                            {"backup": serial, BASE_PAR: base_par, BASE_SER: base_ser}[name].root
                        )
                elif name == "pg_dump -Fd" and args.lean_disk:
                    shutil.rmtree(fd_dir)
                elif name == "backup --jobs" and not args.restore and not args.keep:
                    shutil.rmtree(parallel.root)  # no restore reads it
                elif name == "restore --jobs" and args.lean_disk and not args.keep:
                    shutil.rmtree(parallel.root)
                elif name == "pg_restore -j" and not args.stages:
                    shutil.rmtree(fd_dir)  # made anew by the next round's pg_dump -Fd
                elif name == "restore" and not args.keep:
                    shutil.rmtree(serial.root)
        if args.stages:
            bench.runner.wait_quiet()
            log("the write path's stages over the -Fd files…")
            report["stages"] = writer_stages(fd_dir, workdir / "stages", args.stage_mib * MIB)
        shutil.rmtree(fd_dir, ignore_errors=True)
        fc_file.unlink(missing_ok=True)

        def ratio(a: str, b: str, key: str = "seconds") -> dict[str, float]:
            return spread([x[key] / y[key] for x, y in zip(runs[a], runs[b], strict=True)])

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
        report["ratios"] = {"backup / pg_dump -Fd -Z0": ratio("backup --jobs", "pg_dump -Fd")}
        if not args.parallel_only:
            report["ratios"].update(
                {
                    "backup / pg_dump -Fc": ratio("backup --jobs", "pg_dump -Fc"),
                    "serial backup / pg_dump -Fc": ratio("backup", "pg_dump -Fc"),
                    "backup / serial backup": ratio("backup --jobs", "backup"),
                }
            )
        if args.restore:
            report["ratios"]["restore / pg_restore -j"] = ratio("restore --jobs", "pg_restore -j")
        report["cpu_ratios"] = {
            "backup / pg_dump -Fd -Z0": ratio("backup --jobs", "pg_dump -Fd", "cpu_seconds"),
        }
        if not args.parallel_only:
            report["cpu_ratios"]["backup / serial backup"] = ratio(
                "backup --jobs", "backup", "cpu_seconds"
            )
        report["pg_dump_tail"] = spread([_after_pg_dump(r) for r in runs["backup --jobs"]])
        if base is not None:
            pairs = [("backup --jobs", BASE_PAR), ("backup", BASE_SER)]
            for after, before in pairs[:1] if args.parallel_only else pairs:
                report["ratios"][f"{after} / {before}"] = ratio(after, before)
                report["cpu_ratios"][f"{after} / {before}"] = ratio(after, before, "cpu_seconds")
        report["sizes"] = {
            "pg_dump -Fd -Z0": runs["pg_dump -Fd"][-1]["bytes"],
            "repository (parallel)": runs["backup --jobs"][-1]["repository_bytes"],
        }
        if not args.parallel_only:
            report["sizes"]["pg_dump -Fc"] = runs["pg_dump -Fc"][-1]["bytes"]
            report["sizes"]["repository (serial)"] = runs["backup"][-1]["repository_bytes"]
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
    yield "| CPU ratio (own trees, pair by pair) | median (min–max) |"
    yield "| --- | --- |"
    for name, s in report.get("cpu_ratios", {}).items():
        yield f"| {name} | {_fmt(s, 3)} |"
    tail = report.get("pg_dump_tail")
    if tail:
        yield ""
        yield (
            f"backup --jobs went on {_fmt(tail, 2)} s after its pg_dump had ended "
            "(storing what pg_dump had written)"
        )
    stages = report.get("stages")
    if stages:
        yield ""
        yield (
            f"Write path, step by step over {stages['bytes'] / MIB:.0f} MiB of the -Fd files "
            f"({stages['chunks']:,} chunks, {stages['sealed_bytes'] / MIB:.0f} MiB sealed), "
            "one thread unless said:"
        )
        yield ""
        yield "| step | CPU-s per GiB | wall s |"
        yield "| --- | ---: | ---: |"
        for name, (cpu, wall) in stages["steps"].items():
            yield f"| {name} | {cpu:.2f} | {wall:.2f} |"
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
        help="the respaldo of this src/ directory too (before/after in one run): with "
        "--restore-pairs its restores, else each round's two backups",
    )
    parser.add_argument(
        "--no-restore", dest="restore", action="store_false", help="measure backups only"
    )
    parser.add_argument(
        "--parallel-only",
        action="store_true",
        help="leave out pg_dump -Fc and the serial backups (d): the -Fd ratio only",
    )
    parser.add_argument(
        "--serial-restore",
        action="store_true",
        help="also (g) respaldo restore (one job) of (d)'s backup: every point of the "
        "memory curve in one run",
    )
    parser.add_argument(
        "--lean-disk",
        action="store_true",
        help="remove the -Fd directory once measured and dump it again (unmeasured) for "
        "pg_restore -j, which comes last: a 10 GB run then needs about 20 GB of disk",
    )
    parser.add_argument(
        "--stages", action="store_true", help="time the write path's steps on the -Fd files"
    )
    parser.add_argument(
        "--stage-mib", type=int, default=1024, help="MiB of the -Fd files --stages reads (1024)"
    )
    args = parser.parse_args(argv)
    if args.baseline_src is not None and not (args.baseline_src / "respaldo").is_dir():
        parser.error(f"--baseline-src {args.baseline_src}: no respaldo package in it")
    if args.cluster is not None:  # the scale it was loaded at, for the report
        args.scale = json.loads((args.cluster / "database.json").read_text())["scale"]
    if args.scale <= 0 or args.repeat < 1 or args.jobs < 2:
        parser.error("--scale must be positive, --repeat at least 1, --jobs at least 2")
    if args.parallel_only and args.serial_restore:
        parser.error("--serial-restore needs the serial backups that --parallel-only leaves out")
    if args.restore_pairs:
        pairs = run_restore_pairs(args, log)
        return finish(pairs, args.json, pairs_table(pairs))
    report = run(args, log)
    return finish(report, args.json, table(report))


if __name__ == "__main__":
    raise SystemExit(main())

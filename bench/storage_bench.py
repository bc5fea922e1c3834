"""What a first backup would store, and what compressing it costs, under each candidate way
of compressing chunks: measured offline, chunk by chunk, on real dumps of several datasets.

Run::

    .venv/bin/python -m bench.storage_bench --scale 0.3 --workdir /tmp/storagebench

Two phases; the first is skipped when its dumps are already in ``WORKDIR/dumps``:

1. **Dumps.** A throwaway cluster gets the sample ERP database at ``--scale`` and, as
   ``bench.level_bench`` derives them, ``erp_tenth`` (photos about a tenth of the dump)
   and ``erp_text`` (no photos, documents or large objects); and a fourth dataset of
   another shape, ``pgbench -i`` at ``--pgbench-scale`` (narrow numeric rows and blank
   padding). Each is dumped with ``pg_dump -Fc`` (its size is the target's yardstick:
   gzip level 6 over each table as one stream) and ``pg_dump -Fc -Z0`` (what respaldo
   cuts and stores). Then one day of work (``sample.day_of_work`` day 1 on the ERP
   datasets; ``pgbench -t`` on pgbench) and a second ``-Z0`` dump: what a daily backup
   would add.

2. **Options.** Each ``-Z0`` dump is cut with the repository's chunker (a fresh
   repository's keyed seed; ``--avg`` KiB average chunks, 16 by default, min and max a
   quarter and 4 times it, as the defaults) and every chunk compressed the way an option
   says. Stored bytes are what the repository would hold: per chunk the sealed blob (the
   smaller of the zstd frame and the plaintext, plus 30 bytes of version, nonce, codec
   and GCM tag), its 44-byte pack-header entry and its 44-byte index entry (random ids:
   the index hardly compresses). CPU is the compressing thread's CPU time (the rest of
   the backup's CPU, chunking, ids, AES-GCM, pg_dump, is the same for every option), per
   GiB of the ``-Z0`` dump. "Day" is what the second dump's chunks not in the first
   would store, over the first backup's stored bytes.

Options: ``zN`` (level N per chunk), ``zN+M`` (level N, and M again for chunks that N
shrinks to at most half: ``compressible_level``), ``dictN@K`` (level N with a dictionary
trained on the first K compressible chunks of the dump, what a streaming first backup
could have; its stored size added, its training CPU reported apart), ``cN`` (level N with
chunks of ``--big`` KiB average), ``streamN`` (each stream as one zstd frame at level N:
a bound per-chunk compression cannot reach, for reference). A prefix names another input
for the same option: ``rows:`` the ``-Z0`` file without the five-byte length word
``pg_dump -Fc -Z0`` writes before every COPY row (:func:`strip_row_lengths`; what a
codec that takes them out would store), ``dir:`` each file of the ``-Fd -Z0`` dump a
stream of its own (what ``backup --jobs`` stores). Per dataset, the CPU of taking the
row lengths out and putting them back, a MiB at a time, is measured too (and checked).

Results go to stdout as Markdown and to ``bench/results/storage.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import zstandard

from bench.measure import log, machine, parse_run_finish

RESULTS = Path(__file__).resolve().parent / "results" / "storage.json"
MIB = 1024 * 1024
GIB = 1024 * MIB
#: Per chunk, besides its zstd frame or plaintext: blob version, nonce, codec byte and GCM
#: tag (docs/repository-format.md, "Sealed blobs"), the pack header's entry and the index's.
PER_CHUNK = 1 + 12 + 1 + 16 + 44 + 44
DATASETS = ("erp", "erp_tenth", "erp_text", "pgbench")
DEFAULT_OPTIONS = (
    "z1",
    "z2",
    "z3",
    "z6",
    "z1+6",
    "z1+9",
    "dict1@1000",
    "c1",
    "stream1",
    "rows:z1",
    "rows:z1+6",
    "rows:c1",
    "rows:stream1",
    "dir:z1",
    "dir:z1+6",
)


# --- phase 1: the dumps -----------------------------------------------------------------


def make_dumps(args: argparse.Namespace, dumps: Path) -> None:
    from sample import generate
    from sample.cluster import TempCluster
    from sample.day_of_work import day_of_work

    from bench.level_bench import LevelBench, derive
    from bench.logical_bench import DB

    dumps.mkdir(parents=True, exist_ok=True)
    (args.workdir / "cluster").mkdir(parents=True, exist_ok=True)
    with TempCluster.create(base_dir=args.workdir / "cluster") as cluster:
        cluster.execute(f"CREATE DATABASE {DB}")
        log(f"loading the sample ERP database at scale {args.scale}…")
        generate.load(cluster.conninfo_kwargs(DB), args.scale, args.seed)
        bench = LevelBench(args, cluster, log)
        names = derive(cluster, bench)  # erp, erp_tenth, erp_text
        cluster.execute("CREATE DATABASE pgbench")
        log(f"pgbench -i -s {args.pgbench_scale}…")
        pgbench = str(cluster.bindir / "pgbench")
        subprocess.run(
            [pgbench, "-i", "-q", "-s", str(args.pgbench_scale), bench.dsn("pgbench")],
            env=bench.pg_env,
            check=True,
            capture_output=True,
        )

        def dump(dbname: str, name: str, *extra: str, fmt: str = "-Fc") -> None:
            # -Fd's target is a directory pg_dump creates; -Fc's a file.
            path = dumps / name
            shutil.rmtree(path, ignore_errors=True)
            argv = [str(cluster.bindir / "pg_dump"), fmt, *extra, "-f", str(path)]
            subprocess.run(
                [*argv, "--no-password", bench.dsn(dbname)], env=bench.pg_env, check=True
            )

        real: dict[str, Any] = {}
        for dbname in [*names.values(), "pgbench"]:
            log(f"  dumping {dbname}…")
            dump(dbname, f"{dbname}.fc")
            dump(dbname, f"{dbname}.z0", "-Z0")
            dump(dbname, f"{dbname}.fd", "-Z0", fmt="-Fd")
            if args.real:
                real[dbname] = real_backups(bench, dbname, args.workdir / "real")
        (dumps / "real.json").write_text(json.dumps(real, indent=1))
        for dbname in names.values():
            log(f"  {dbname}: one day of work…")
            day_of_work(cluster.conninfo_kwargs(dbname), args.seed, 1)
        log("  pgbench: a day of transactions…")
        subprocess.run(
            [pgbench, "-n", "-t", str(args.pgbench_transactions), bench.dsn("pgbench")],
            env=bench.pg_env,
            check=True,
            capture_output=True,
        )
        for dbname in [*names.values(), "pgbench"]:
            dump(dbname, f"{dbname}.day.fd", "-Z0", fmt="-Fd")
            dump(dbname, f"{dbname}.day.z0", "-Z0")


def real_backups(bench: Any, dbname: str, root: Path) -> dict[str, Any]:
    """A first ``respaldo backup`` of ``dbname`` (the defaults: zstd 1, 16 KiB chunks)
    into a new repository, serial and ``--jobs 2``: the offline figures' check."""
    from bench.logical_bench import Setup, respaldo_argv, tree_bytes

    out: dict[str, Any] = {}
    for jobs in (1, 2):
        setup = Setup(16 * 1024, 1, root / f"{dbname}-j{jobs}", dbname)
        bench.init(setup)
        argv = respaldo_argv(setup, "backup", dbname, "--jobs", str(jobs))
        r = bench.runner.run(argv, bench.respaldo_env)
        out[f"jobs {jobs}"] = {
            "bytes": tree_bytes(setup.repo),
            "seconds": r["seconds"],
            "cpu_seconds": r["cpu_seconds"],
        }
        log(f"    respaldo backup --jobs {jobs}: {out[f'jobs {jobs}']}")
        shutil.rmtree(setup.root, ignore_errors=True)
    return out


# --- phase 2: the options ---------------------------------------------------------------


def cut(streams: list[bytes], avg: int, seed: int) -> list[bytes]:
    """The repository's chunker over each stream, ``seed``, ``avg`` KiB average chunks."""
    from respaldo.repository import ChunkerParams
    from respaldo.repository.chunker import iter_chunks

    params = ChunkerParams(min_size=avg * 256, avg_size=avg * 1024, max_size=avg * 4096)
    return [c for data in streams for c in iter_chunks(io.BytesIO(data), params, seed)]


def strip_row_lengths(data: bytes) -> tuple[bytes, Any]:
    """``data`` without the length word ``pg_dump -Fc -Z0`` writes before each COPY row
    (a zero sign byte and four bytes, little-endian), and where they were.

    A length word is taken out where it follows a newline and its length reaches exactly
    to the next newline (a text COPY row ends with its only newline), so that
    :func:`put_row_lengths` can compute it again from the bytes alone; any other is kept.
    Returns the bytes and the offsets (in them) where words go back. numpy, no loop per
    row: what a codec inside the sealer would have to do, for its CPU cost."""
    import numpy as np

    arr = np.frombuffer(data, np.uint8)
    nl = np.flatnonzero(arr == 10)
    at = nl + 1  # where a length word would start
    at = at[at + 5 < len(arr)]
    at = at[arr[at] == 0]
    length = (
        arr[at + 1].astype(np.int64)
        | arr[at + 2].astype(np.int64) << 8
        | arr[at + 3].astype(np.int64) << 16
        | arr[at + 4].astype(np.int64) << 24
    )
    following = np.searchsorted(nl, at + 5)
    ok = (following < len(nl)) & (length > 0)
    ok[ok] &= nl[following[ok]] == at[ok] + 4 + length[ok]
    at = at[ok]
    keep = np.ones(len(arr), bool)
    keep[(at[:, None] + np.arange(5)).ravel()] = False
    # Offsets in the stripped bytes: each earlier removal moved a word 5 bytes back.
    return arr[keep].tobytes(), at - 5 * np.arange(len(at))


def put_row_lengths(data: bytes, where: Any) -> bytes:
    """The inverse of :func:`strip_row_lengths`."""
    import numpy as np

    arr = np.frombuffer(data, np.uint8)
    nl = np.flatnonzero(arr == 10)
    length = nl[np.searchsorted(nl, where)] - where + 1
    words = np.zeros((len(where), 5), np.uint8)
    for i in range(4):
        words[:, i + 1] = (length >> (8 * i)) & 0xFF
    return np.insert(arr, np.repeat(where, 5), words.ravel()).tobytes()


def _stored(chunk: bytes, frame: bytes) -> int:
    return min(len(frame), len(chunk)) + PER_CHUNK


def compress_all(
    chunks: list[bytes], level: int, second: int = 0, dict_data: Any = None
) -> tuple[list[int], float]:
    """Stored bytes per chunk, and the CPU seconds of compressing them all."""
    first = zstandard.ZstdCompressor(level=level, dict_data=dict_data)
    again = zstandard.ZstdCompressor(level=second, dict_data=dict_data) if second else None
    sizes: list[int] = []
    cpu0 = time.thread_time()
    for chunk in chunks:
        frame = first.compress(chunk)
        if again is not None and 2 * len(frame) <= len(chunk):
            other = again.compress(chunk)
            if len(other) < len(frame):
                frame = other
        sizes.append(_stored(chunk, frame))
    return sizes, time.thread_time() - cpu0


def train(chunks: list[bytes], count: int, size: int) -> tuple[Any, float]:
    """A dictionary trained on the first ``count`` chunks level 1 shrinks to at most half."""
    probe = zstandard.ZstdCompressor(level=1)
    cpu0 = time.thread_time()
    samples: list[bytes | bytearray | memoryview] = []
    for c in chunks[: count * 4]:
        if 2 * len(probe.compress(c)) <= len(c) and len(samples) < count:
            samples.append(c)
    if len(samples) < 8:
        return None, time.thread_time() - cpu0
    d = zstandard.train_dictionary(size, samples, threads=1)
    return d, time.thread_time() - cpu0


def row_lengths_cost(data: bytes, piece: int = 1 << 20) -> dict[str, float]:
    """CPU-s per GiB of taking the row lengths out of ``data`` and putting them back, a
    ``piece`` (the writer's block) at a time; and a check that the bytes come back."""
    out, back = 0.0, 0.0
    for at in range(0, len(data), piece):
        part = data[at : at + piece]
        cpu0 = time.thread_time()
        stripped, where = strip_row_lengths(part)
        cpu1 = time.thread_time()
        again = put_row_lengths(stripped, where)
        back += time.thread_time() - cpu1
        out += cpu1 - cpu0
        if again != part:
            raise AssertionError(f"row lengths did not come back at {at}")
    gib = len(data) / GIB
    return {"strip_cpu_per_gib": out / gib, "put_back_cpu_per_gib": back / gib}


def measure(
    first: list[bytes], day: list[bytes], option: str, args: argparse.Namespace, seed: int
) -> dict[str, Any]:
    """One option (without its input's prefix) over the first backup's streams."""
    gib = sum(map(len, first)) / GIB
    if option.startswith("stream"):
        level = int(option[len("stream") :])
        cpu0 = time.thread_time()
        size = sum(len(zstandard.ZstdCompressor(level=level).compress(d)) for d in first)
        return {"bytes": size, "cpu_per_gib": (time.thread_time() - cpu0) / gib}
    extra_bytes, train_cpu, dict_data = 0, 0.0, None
    avg = args.avg
    if option.startswith("dict"):
        spec, _, count = option[len("dict") :].partition("@")
        level, second = int(spec), 0
        chunks = cut(first, avg, seed)
        dict_data, train_cpu = train(chunks, int(count), args.dict_size)
        if dict_data is not None:  # stored as a sealed blob of its own
            extra_bytes = len(dict_data.as_bytes()) + PER_CHUNK
    else:
        spec = option[1:]
        if option.startswith("c"):
            avg = args.big
        one, _, two = spec.partition("+")
        level, second = int(one), int(two or 0)
        chunks = cut(first, avg, seed)
    sizes, cpu = compress_all(chunks, level, second, dict_data)
    stored = sum(sizes) + extra_bytes
    # The day's backup: chunks of the second dump (the same seed, as in one repository)
    # whose content the first did not have.
    known = set(chunks)
    del chunks
    new = [c for c in cut(day, avg, seed) if c not in known]
    day_sizes, _ = compress_all(new, level, second, dict_data)
    return {
        "bytes": stored,
        "chunks": len(sizes),
        "cpu_per_gib": cpu / gib,
        "train_cpu_seconds": train_cpu,
        "day_bytes": sum(day_sizes),
        "day_fraction": sum(day_sizes) / stored,
    }


def inputs(dumps: Path, name: str, kind: str) -> tuple[list[bytes], list[bytes]]:
    """The first and the day's streams of dataset ``name``: the ``-Fc -Z0`` file
    (``kind`` ""), it without its row lengths ("rows"), or each file of the ``-Fd -Z0``
    directory a stream of its own ("dir", as ``backup --jobs`` stores them)."""
    if kind == "dir":
        return [
            [p.read_bytes() for p in sorted((dumps / f"{name}{when}.fd").iterdir())]
            for when in ("", ".day")
        ]  # type: ignore[return-value]
    first = (dumps / f"{name}.z0").read_bytes()
    day = (dumps / f"{name}.day.z0").read_bytes()
    if kind == "rows":
        return [strip_row_lengths(first)[0]], [strip_row_lengths(day)[0]]
    return [first], [day]


def run(args: argparse.Namespace) -> dict[str, Any]:
    import os

    dumps = args.workdir / "dumps"
    if not all((dumps / f"{d}.day.z0").exists() for d in DATASETS):
        make_dumps(args, dumps)
    report: dict[str, Any] = {
        "benchmark": "storage",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(("zstandard", "numpy")),
        "params": {
            "scale": args.scale,
            "pgbench_scale": args.pgbench_scale,
            "avg_kib": args.avg,
            "big_kib": args.big,
            "dict_bytes": args.dict_size,
            "options": args.options,
        },
        "datasets": {},
    }
    real_path = dumps / "real.json"
    real = json.loads(real_path.read_text()) if real_path.exists() else {}
    # One seed for the run: a repository's first and second backups share it.
    seed = int.from_bytes(os.urandom(8), "little") >> 1
    for name in args.datasets:
        fc = (dumps / f"{name}.fc").stat().st_size
        z0 = (dumps / f"{name}.z0").read_bytes()
        entry: dict[str, Any] = {"z0_bytes": len(z0), "fc_bytes": fc, "options": {}}
        if name in real:  # real first backups, when phase 1 made them (--real)
            entry["real"] = {k: {**v, "ratio": v["bytes"] / fc} for k, v in real[name].items()}
        entry["row_lengths"] = row_lengths_cost(z0)
        del z0
        log(f"  {name}: row lengths {entry['row_lengths']}")
        loaded: dict[str, tuple[list[bytes], list[bytes]]] = {}
        for option in args.options:
            kind, _, bare = option.rpartition(":")
            if kind not in loaded:
                loaded.clear()  # one input in memory at a time
                loaded[kind] = inputs(dumps, name, kind)
            r = measure(*loaded[kind], bare, args, seed)
            r["ratio"] = r["bytes"] / fc
            entry["options"][option] = r
            log(
                f"  {name} {option}: {r['ratio']:.3f} of -Fc, "
                f"{r['cpu_per_gib']:.2f} CPU-s/GiB"
                + (f", day {r['day_fraction']:.1%}" if "day_fraction" in r else "")
            )
        report["datasets"][name] = entry
    return report


def table(report: dict[str, Any]) -> Iterator[str]:
    for name, d in report["datasets"].items():
        yield ""
        yield (f"{name}: `-Z0` {d['z0_bytes'] / MIB:.1f} MiB, `-Fc` {d['fc_bytes'] / MIB:.1f} MiB")
        yield ""
        for k, v in d.get("real", {}).items():
            yield (
                f"- real `respaldo backup --jobs {k[5:]}`: {v['ratio']:.3f} of `-Fc`, "
                f"{v['seconds']:.1f} s, {v['cpu_seconds']:.2f} CPU s"
            )
        rl = d["row_lengths"]
        yield (
            f"- row lengths out / back, a MiB at a time: {rl['strip_cpu_per_gib']:.2f} / "
            f"{rl['put_back_cpu_per_gib']:.2f} CPU-s/GiB"
        )
        yield ""
        yield "| option | stored / `-Fc` | compression CPU-s/GiB | day stored |"
        yield "|---|--:|--:|--:|"
        for option, r in d["options"].items():
            day = f"{r['day_fraction']:.1%}" if "day_fraction" in r else "–"
            yield f"| {option} | {r['ratio']:.3f} | {r['cpu_per_gib']:.2f} | {day} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.storage_bench",
        description="A first backup's stored bytes under each way of compressing chunks.",
    )
    parser.add_argument("--scale", type=float, default=0.3, help="sample ERP scale (0.3)")
    parser.add_argument("--pgbench-scale", type=int, default=10)
    parser.add_argument("--pgbench-transactions", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--real",
        action="store_true",
        help="with the dumps, a real first backup of each dataset, serial and --jobs 2",
    )
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--options", nargs="+", default=list(DEFAULT_OPTIONS))
    parser.add_argument("--avg", type=int, default=16, help="average chunk KiB (16)")
    parser.add_argument("--big", type=int, default=64, help="cN options' average KiB (64)")
    parser.add_argument("--dict-size", type=int, default=112 * 1024, help="dictionary bytes")
    return parse_run_finish(
        parser,
        argv,
        run,
        table,
        workdir=Path("/tmp/storagebench"),
        workdir_help="cluster, dumps",
        results=RESULTS,
    )


if __name__ == "__main__":
    raise SystemExit(main())

"""Repository throughput: respaldo's write and read paths against cat and zstd.

Run::

    .venv/bin/python -m bench.repository_bench --size-mb 1024 --workdir /tmp/rbench

It generates deterministic mixed data (:mod:`bench.datagen`) once, then measures, each in
a fresh subprocess so that peak RSS (``wait4``'s ``ru_maxrss``) belongs to one
measurement only:

- ``cat``: the data copied to a file, fsynced: the floor for moving the bytes at all;
- ``zstd -3 -T1`` and ``zstd -3 -T2`` (and the same at the repository's zstd level when
  that is not 3): what plain compression costs and achieves (output fsynced); ``zstd -d``
  of the ``-3`` output to /dev/null, the floor for a restore;
- ``respaldo write``: a repository initialised in a local directory, the file written as
  one stream of one backup (``BackupWriter.write_stream`` + ``commit``), with the default
  chunker (:class:`respaldo.config.ChunkerSettings`), the default zstd level, 12 MiB
  packs and 2 workers;
- ``respaldo read``: that stream read back (``copy_stream`` to /dev/null), which checks
  every chunk and the stream's SHA-256 against the manifest (compared here with the
  data's own SHA-256);
- ``respaldo write again``: a second backup of the same data: the cost of a backup
  whose chunks are all known already;
- ``stages``: each step of the write path alone on one thread, and the sealing step on
  two threads, to see which stage bounds the pipeline and whether it escapes the GIL.

Inside the respaldo subprocesses the operation itself is timed (repository opening and
its argon2 key derivation excluded) and RSS is sampled from /proc every 20 ms, so that
the table can tell the operation's own peak from the interpreter's and argon2's (64 MiB).
The data file and the repository are read from the page cache (the machine has room for
both), so the figures are CPU-bound costs, not disk speed; every output is fsynced.

The machine may be shared: before each measurement the runner waits (``--quiet-wait``)
for the rest of the machine to fall idle, records how many cores others used meanwhile,
and with ``--repeat`` keeps the median of the undisturbed runs.

Results go to stdout as a table and to ``bench/results/repository.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from respaldo.repository import Repository

from bench.datagen import DEFAULT_SEED, MIB, ensure_data
from bench.measure import (
    add_common_arguments,
    build_packs,
    finish,
    log,
    machine,
    on_two_threads,
    wait_quiet,
)
from bench.measure import busy_seconds as _busy_seconds
from bench.measure import self_cpu as _self_cpu

RESULTS = Path(__file__).resolve().parent / "results" / "repository.json"
PASSPHRASE = "respaldo benchmark passphrase"  # noqa: S105 (a throwaway test repository)
PACK_SIZE = 12 * MIB
STREAM = "data"

# --- helpers used by both sides ------------------------------------------------------


def _rss_bytes() -> int:
    with Path("/proc/self/statm").open() as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def tree_bytes(root: Path) -> tuple[int, int]:
    """(apparent size, disk usage) of every file below ``root``, like ``du -sb`` / ``du``."""
    apparent = used = 0
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            st = Path(dirpath, name).stat()
            apparent += st.st_size
            used += st.st_blocks * 512
    return apparent, used


class RssSampler:
    """Peak resident set size of this process while a block runs, sampled every 20 ms."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self.peak = _rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


# --- the child side: one respaldo operation per process ----------------------------------


def _child(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="repository_bench --child")
    parser.add_argument("op", choices=["write", "read", "stages"])
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--backup-id", default="bench-1")
    parser.add_argument("--init", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--level", type=int, required=True)
    parser.add_argument("--stage-mb", type=int, default=64)
    args = parser.parse_args(argv)

    from respaldo.config import ChunkerSettings
    from respaldo.repository import ChunkerParams, KdfParams, Repository
    from respaldo.storage.local import LocalStorage

    result: dict[str, Any] = {}
    settings = ChunkerSettings()
    params = ChunkerParams(settings.min_size, settings.avg_size, settings.max_size)
    storage = LocalStorage(args.repo)
    t0 = time.perf_counter()
    if args.init:
        repo = Repository.init(
            storage,
            PASSPHRASE,
            chunker=params,
            kdf=KdfParams(),
            compression_level=args.level,
            pack_size=PACK_SIZE,
            workers=args.workers,
        )
    else:
        repo = Repository.open(
            storage,
            PASSPHRASE,
            compression_level=args.level,
            pack_size=PACK_SIZE,
            workers=args.workers,
        )
    result["setup_seconds"] = time.perf_counter() - t0
    result["rss_before_op"] = _rss_bytes()

    if args.op == "write":
        from respaldo.repository import BackupWriter

        started = datetime.now(UTC)
        with RssSampler() as rss:
            t0, c0 = time.perf_counter(), time.process_time()
            with BackupWriter(repo, args.backup_id) as writer, args.data.open("rb") as src:
                info = writer.write_stream(STREAM, src)
                writer.commit(kind="full", source="bench", started_at=started)
            result["op_seconds"] = time.perf_counter() - t0
            result["op_cpu_seconds"] = time.process_time() - c0
        result["stats"] = asdict(writer.stats)
        result["sha256"] = info.sha256
    elif args.op == "read":
        from respaldo.repository import copy_stream

        manifest = repo.load_manifest(args.backup_id)
        with RssSampler() as rss:
            t0, c0 = time.perf_counter(), time.process_time()
            with Path(os.devnull).open("wb") as out:
                total = copy_stream(repo, manifest, STREAM, out)
            result["op_seconds"] = time.perf_counter() - t0
            result["op_cpu_seconds"] = time.process_time() - c0
        result["bytes"] = total
        result["sha256"] = manifest.stream(STREAM).sha256
    else:
        with RssSampler() as rss:
            result["stages"] = _stages(repo, args.data, args.stage_mb * MIB)
    result["rss_peak_op"] = rss.peak
    json.dump(result, sys.stdout)
    return 0


def _best(fn: Callable[[], object], runs: int = 3) -> float:
    """The fastest of ``runs`` timings: the least disturbed by whatever else runs."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _stages(repo: Repository, data_path: Path, limit: int) -> dict[str, Any]:
    """Each stage of the write (and read) path on its own over the first ``limit`` bytes.

    Every figure is the best of three runs. Single-threaded unless the name says
    otherwise. The two-thread sealing figures compare the writer's scheme (one pool task
    per chunk) with tasks of 32 chunks and with two plain threads that each seal half of
    the chunks (the ceiling): all of zstd, AES-GCM, BLAKE3 and SHA-256 release the GIL, so
    the ceiling is near 2x.
    """
    from collections import deque
    from concurrent.futures import Future, ThreadPoolExecutor

    from respaldo.repository.chunker import iter_chunks
    from respaldo.repository.crypto import AAD_CHUNK

    with data_path.open("rb") as f:
        sample = f.read(limit)
    size = len(sample)
    sealer = repo.sealer
    seed = repo.keys.chunker_seed
    out: dict[str, Any] = {"sample_bytes": size}

    chunks = list(iter_chunks(io.BytesIO(sample), repo.chunker, seed))
    out["chunks"] = len(chunks)

    def cut() -> None:
        for _chunk in iter_chunks(io.BytesIO(sample), repo.chunker, seed):
            pass

    out["chunk (FastCDC + copy)"] = _best(cut)

    def stream_sha() -> None:
        sha = hashlib.sha256()
        for c in chunks:
            sha.update(c)

    out["sha256 (whole stream)"] = _best(stream_sha)
    ids = [sealer.chunk_id(c) for c in chunks]
    out["blake3 keyed (chunk ids)"] = _best(lambda: list(map(sealer.chunk_id, chunks)))
    index = repo.index
    out["index lookup"] = _best(lambda: [index.get(i) for i in ids])

    comp = sealer._compressor(sealer.compression_level)
    zstd = f"zstd -{sealer.compression_level}"
    out[f"{zstd} (per chunk)"] = _best(lambda: list(map(comp.compress, chunks)))
    if sealer.compressible_level > sealer.compression_level:
        both = f"{zstd}, then -{sealer.compressible_level} where it halves (per chunk)"
        out[both] = _best(lambda: list(map(sealer._compress, chunks)))
    packed = list(map(comp.compress, chunks))
    payloads = [p if len(p) < len(c) else c for p, c in zip(packed, chunks, strict=True)]
    aead = sealer._aead
    nonce = os.urandom(12)
    out["AES-256-GCM (per chunk)"] = _best(
        lambda: [
            aead.encrypt(nonce, b"\x01" + p, AAD_CHUNK + i)
            for p, i in zip(payloads, ids, strict=True)
        ]
    )
    out[f"seal_chunk ({zstd} + AES)"] = _best(lambda: list(map(sealer.seal_chunk, ids, chunks)))
    sealed = list(map(sealer.seal_chunk, ids, chunks))
    out["sealed_bytes"] = sum(map(len, sealed))

    # zstd's time split by outcome: what the chunks it cannot shrink (stored as they are)
    # cost, against the ones it can.
    shrinks, cannot = f"{zstd}, chunks it shrinks", f"{zstd}, chunks it cannot shrink"
    split = {shrinks: [0.0, 0], cannot: [0.0, 0]}
    for chunk in chunks:
        t0 = time.perf_counter()
        bucket = split[shrinks if len(comp.compress(chunk)) < len(chunk) else cannot]
        bucket[0] += time.perf_counter() - t0
        bucket[1] += len(chunk)
    out["split"] = {name: {"seconds": t, "bytes": n} for name, (t, n) in split.items()}

    out["pack build (join + sha256)"] = _best(
        lambda: build_packs(ids, sealed, chunks, sealer, PACK_SIZE)
    )
    pairs = list(zip(ids, chunks, strict=True))

    def seal_batch(batch: list[tuple[bytes, bytes]]) -> list[bytes]:
        return [sealer.seal_chunk(cid, data) for cid, data in batch]

    def pooled(batch_size: int) -> None:
        # Bounded like the writer: at most 16 chunks' worth of tasks in flight.
        batches = [pairs[i : i + batch_size] for i in range(0, len(pairs), batch_size)]
        window = max(2, 16 // batch_size)
        with ThreadPoolExecutor(2) as pool:
            inflight: deque[Future[list[bytes]]] = deque()
            for batch in batches:
                inflight.append(pool.submit(seal_batch, batch))
                while len(inflight) > window:
                    inflight.popleft().result()
            for future in inflight:
                future.result()

    def halves() -> None:
        threads = [threading.Thread(target=seal_batch, args=(pairs[k::2],)) for k in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    out["seal_chunk, pool of 2, a task per chunk (as the writer)"] = _best(lambda: pooled(1))
    out["seal_chunk, pool of 2, a task per 32 chunks"] = _best(lambda: pooled(32))
    out["seal_chunk, 2 plain threads, half the chunks each"] = _best(halves)

    def cut_twice() -> None:
        on_two_threads(cut)

    # Twice the work on two threads: as fast as once on one thread if it escapes the GIL.
    out["chunk x2, 2 plain threads"] = _best(cut_twice)
    # The read side's CPU work per chunk.
    out["open_chunk (AES + zstd -d + blake3 check)"] = _best(
        lambda: [sealer.open_chunk(i, s) for i, s in zip(ids, sealed, strict=True)]
    )
    return out


# --- the parent side ---------------------------------------------------------------------


DISTURBED_CORES = 0.25  # a run during which others used more is not kept if another is


class Runner:
    """Runs measured processes one at a time, each on as quiet a machine as it can get.

    The machine may be shared (other people's test suites): before each measurement it
    waits up to ``quiet_wait`` seconds for the rest of the machine to fall idle, and it
    records how many cores others used during the measurement (``background_cores``), so
    that a disturbed figure can be recognised.
    """

    def __init__(self, quiet_wait: float, log: Callable[[str], None]) -> None:
        self.quiet_wait = quiet_wait
        self.log = log

    def wait_quiet(self) -> float:
        return wait_quiet(self.quiet_wait, self.log)

    def run(self, cmd: list[str], stdout: Any, fsync: Path | None = None) -> dict[str, Any]:
        """Run one measured process; its wall time (plus the output's fsync) and rusage."""
        os.sync()  # earlier measurements' dirty pages must not be written during this one
        waited = self.wait_quiet()
        busy0, self0 = _busy_seconds(), _self_cpu()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=stdout)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if fsync is not None:
            fd = os.open(fsync, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
        cpu = usage.ru_utime + usage.ru_stime
        others = _busy_seconds() - busy0 - cpu - (_self_cpu() - self0)
        return {
            "process_seconds": wall,
            "op_seconds": wall,
            "max_rss": usage.ru_maxrss * 1024,
            "cpu_seconds": cpu,
            "user_seconds": usage.ru_utime,
            "sys_seconds": usage.ru_stime,
            "background_cores": max(0.0, others / wall),
            "waited_for_quiet_seconds": waited,
        }

    def external(self, cmd: list[str], out_path: Path | None) -> dict[str, Any]:
        if out_path is None:
            with Path(os.devnull).open("wb") as out:
                return self.run(cmd, out)
        with out_path.open("wb") as out:
            result = self.run(cmd, out, fsync=out_path)
        result["output_bytes"] = out_path.stat().st_size
        return result

    def respaldo(self, op: str, repo: Path, data: Path, *extra: str) -> dict[str, Any]:
        cmd = [
            sys.executable,
            "-m",
            "bench.repository_bench",
            "--child",
            op,
            "--repo",
            str(repo),
            "--data",
            str(data),
            *extra,
        ]
        # The child's report is a few hundred bytes: it fits in the pipe's buffer, so
        # reading it after the child has exited cannot deadlock.
        read_fd, write_fd = os.pipe()
        with os.fdopen(write_fd, "wb") as w:
            result = self.run(cmd, w)
        with os.fdopen(read_fd, "rb") as r:
            result.update(json.loads(r.read()))
        return result

    def measure(self, name: str, repeat: int, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Run ``fn`` ``repeat`` times and keep the median run (by op time) of the
        undisturbed ones (others used under ``DISTURBED_CORES``), or else the least
        disturbed run; every op time is kept too."""
        runs = []
        for i in range(repeat):
            run = fn()
            runs.append(run)
            self.log(
                f"  {name}{f' #{i + 1}' if repeat > 1 else ''}: {run['op_seconds']:.2f} s"
                f" (others used {run['background_cores']:.2f} cores)"
            )
        clean = [r for r in runs if r["background_cores"] < DISTURBED_CORES]
        if not clean:
            clean = [min(runs, key=lambda r: r["background_cores"])]
        clean.sort(key=lambda r: r["op_seconds"])
        kept = dict(clean[len(clean) // 2])
        kept["all_op_seconds"] = [r["op_seconds"] for r in runs]
        kept["all_background_cores"] = [r["background_cores"] for r in runs]
        kept["max_rss"] = max(r["max_rss"] for r in runs)
        if "rss_peak_op" in kept:
            kept["rss_peak_op"] = max(r["rss_peak_op"] for r in runs)
        return kept


def zstd_version() -> str:
    done = subprocess.run(["zstd", "--version"], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def run(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    size = args.size_mb * MIB
    data_path = workdir / f"data-{args.size_mb}m-{args.seed}.bin"
    log(f"data: {data_path} ({args.size_mb} MiB)")
    t0 = time.perf_counter()
    data = ensure_data(data_path, size, args.seed)
    log(f"  ready in {time.perf_counter() - t0:.1f} s, sha256 {data.sha256[:16]}…")
    _warm(data_path)

    runner = Runner(args.quiet_wait, log)
    out = workdir / "out"
    repo = workdir / "repo"
    level = args.compression_level or default_compression_level()
    workers = ["--workers", str(args.workers), "--level", str(level)]
    results: dict[str, dict[str, Any]] = {}

    def zstd(lvl: int, threads: int) -> tuple[str, Callable[[], dict[str, Any]]]:
        cmd = ["zstd", f"-{lvl}", f"-T{threads}", "-q", "-c", str(data_path)]
        return f"zstd -{lvl} -T{threads}", lambda: runner.external(cmd, out)

    def fresh_repo() -> dict[str, Any]:
        shutil.rmtree(repo, ignore_errors=True)
        return runner.respaldo("write", repo, data_path, "--init", *workers)

    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("cat", lambda: runner.external(["cat", str(data_path)], out)),
        zstd(3, 1),
        ("zstd -d (of -3)", lambda: runner.external(["zstd", "-d", "-q", "-c", str(out)], None)),
        zstd(3, 2),
        *([zstd(level, 1), zstd(level, 2)] if level != 3 else []),
        ("respaldo write", fresh_repo),
        ("respaldo read", lambda: runner.respaldo("read", repo, data_path, *workers)),
    ]
    for name, fn in steps:
        if name == "respaldo write":
            out.unlink(missing_ok=True)
        results[name] = runner.measure(name, args.repeat, fn)
        if name == "respaldo write":
            results[name]["stored_bytes"], results[name]["disk_bytes"] = tree_bytes(repo)
            results[name]["output_bytes"] = results[name]["stored_bytes"]
    if results["respaldo write"]["sha256"] != data.sha256:
        raise SystemExit("respaldo write: the stream's SHA-256 differs from the data's")
    read = results["respaldo read"]
    if read["sha256"] != data.sha256 or read["bytes"] != size:
        raise SystemExit("respaldo read: the restored stream differs from the data")

    # The second backup runs once: repeating it would only measure a third, fourth, … copy.
    before = tree_bytes(repo)[0]
    again = runner.respaldo("write", repo, data_path, "--backup-id", "bench-2", *workers)
    log(
        f"  respaldo write again: {again['op_seconds']:.2f} s"
        f" (others used {again['background_cores']:.2f} cores)"
    )
    again["new_bytes"] = tree_bytes(repo)[0] - before
    again["output_bytes"] = again["new_bytes"]
    again["all_op_seconds"] = [again["op_seconds"]]
    results["respaldo write again"] = again

    stages: dict[str, Any] = {}
    if args.stages:
        stage_mb = min(args.stage_mb, args.size_mb)
        measured = runner.respaldo(
            "stages", repo, data_path, "--level", str(level), "--stage-mb", str(stage_mb)
        )
        stages = measured["stages"]
        stages["background_cores"] = measured["background_cores"]
        log("  stages measured")
    if not args.keep:
        shutil.rmtree(repo, ignore_errors=True)
    out.unlink(missing_ok=True)

    return {
        "benchmark": "repository",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(
            ("pyfastcdc", "blake3", "zstandard", "cryptography"), zstd_cli=zstd_version()
        ),
        "source": source_version(),
        "params": {
            "size_bytes": size,
            "seed": args.seed,
            "chunker": _chunker_json(),
            "pack_size": PACK_SIZE,
            "workers": args.workers,
            "compression_level": level,
            "kdf": "KdfParams() default (argon2id, 64 MiB, 3 passes)",
            "repeat": args.repeat,
        },
        "data": asdict(data),
        "results": results,
        "ratios": ratios(results, level),
        "stages": stages,
    }


def source_version() -> dict[str, Any]:
    """The commit measured, and whether src/ had uncommitted changes (a shared checkout)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    changed = git("status", "--porcelain", "--", "src")
    return {"commit": git("rev-parse", "HEAD"), "src_changed": changed.splitlines()}


def default_compression_level() -> int:
    """The zstd level a repository gets when its creator does not choose one."""
    import inspect

    from respaldo.repository import Repository

    default = inspect.signature(Repository.init).parameters["compression_level"].default
    return int(default)


def _chunker_json() -> dict[str, int]:
    from respaldo.config import ChunkerSettings

    s = ChunkerSettings()
    return {"min_size": s.min_size, "avg_size": s.avg_size, "max_size": s.max_size}


def _warm(path: Path) -> None:
    """Read the data once so that every measurement finds it in the page cache."""
    with path.open("rb") as f:
        while f.read(8 * MIB):
            pass


def ratios(results: dict[str, dict[str, Any]], level: int) -> dict[str, float]:
    w = results["respaldo write"]
    r = results["respaldo read"]
    cat = results["cat"]["op_seconds"]
    out: dict[str, float] = {"write / cat (time)": w["op_seconds"] / cat}
    for lvl in sorted({3, level}):
        z1, z2 = results[f"zstd -{lvl} -T1"], results[f"zstd -{lvl} -T2"]
        out[f"write / zstd -{lvl} -T1 (time)"] = w["op_seconds"] / z1["op_seconds"]
        out[f"write / zstd -{lvl} -T2 (time)"] = w["op_seconds"] / z2["op_seconds"]
        out[f"stored / zstd -{lvl} output (bytes)"] = w["stored_bytes"] / z1["output_bytes"]
    out["read / cat (time)"] = r["op_seconds"] / cat
    out["read / zstd -d (time)"] = r["op_seconds"] / results["zstd -d (of -3)"]["op_seconds"]
    again = results["respaldo write again"]["op_seconds"]
    out["write again / write (time)"] = again / w["op_seconds"]
    return out


def table(report: dict[str, Any]) -> Iterator[str]:
    """The results as Markdown tables (they read fine in a terminal too)."""
    size = report["params"]["size_bytes"]
    yield (
        "| measurement | op s | MiB/s | op CPU s | process s | output bytes | out/in "
        "| peak RSS MiB | op peak RSS MiB | others' cores |"
    )
    yield "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    for name, r in report["results"].items():
        op = r["op_seconds"]
        out_bytes = r.get("output_bytes")
        out_s = f"{out_bytes:,}" if out_bytes is not None else "-"
        ratio = f"{out_bytes / size:.3f}" if out_bytes is not None else "-"
        op_rss = f"{r['rss_peak_op'] / MIB:.0f}" if "rss_peak_op" in r else "-"
        cpu = r.get("op_cpu_seconds", r["cpu_seconds"])
        yield (
            f"| {name} | {op:.2f} | {size / MIB / op:.0f} | {cpu:.2f} "
            f"| {r['process_seconds']:.2f} | {out_s} | {ratio} | {r['max_rss'] / MIB:.0f} "
            f"| {op_rss} | {r['background_cores']:.2f} |"
        )
    yield ""
    yield "| ratio | value |"
    yield "|---|--:|"
    for name, value in report["ratios"].items():
        yield f"| {name} | {value:.2f} |"
    stages = report.get("stages") or {}
    if stages:
        sample = stages["sample_bytes"]
        yield ""
        yield (
            f"Stages alone, {sample / MIB:.0f} MiB sample, {stages['chunks']:,} chunks "
            f"(mean {sample / stages['chunks'] / 1024:.1f} KiB), best of 3, others used "
            f"{stages['background_cores']:.2f} cores:"
        )
        yield ""
        yield "| stage | s | MiB/s |"
        yield "|---|--:|--:|"
        for name, value in stages.items():
            if name in ("sample_bytes", "chunks", "sealed_bytes", "split", "background_cores"):
                continue
            work = 2 * sample if name.startswith("chunk x2") else sample
            yield f"| {name} | {value:.2f} | {work / MIB / value:.0f} |"
        for name, part in stages.get("split", {}).items():
            share = part["bytes"] / sample
            rate = part["bytes"] / MIB / part["seconds"] if part["seconds"] else 0
            yield f"| {name} ({share:.0%} of bytes) | {part['seconds']:.2f} | {rate:.0f} |"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return _child(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m bench.repository_bench",
        description="Measure respaldo's repository write/read throughput against cat and zstd.",
    )
    parser.add_argument("--size-mb", type=int, default=1024, help="data size in MiB (1024)")
    add_common_arguments(
        parser,
        workdir=Path("/tmp/rbench"),
        workdir_help="where data, outputs and the repository go (/tmp/rbench)",
        results=RESULTS,
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--workers", type=int, default=2, help="sealing threads (2)")
    parser.add_argument(
        "--compression-level",
        type=int,
        help="the repository's zstd level (default: the repository's own default); "
        "zstd at this level is measured too",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per measurement; the median of the undisturbed runs is kept (1)",
    )
    parser.add_argument(
        "--no-stages", dest="stages", action="store_false", help="skip the per-stage breakdown"
    )
    parser.add_argument(
        "--stage-mb", type=int, default=64, help="sample size for the per-stage breakdown (64)"
    )
    args = parser.parse_args(argv)
    if args.size_mb < 1 or args.repeat < 1:
        parser.error("--size-mb and --repeat must be at least 1")

    report = run(args, log)
    return finish(report, args.json, table(report))


if __name__ == "__main__":
    raise SystemExit(main())

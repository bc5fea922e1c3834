"""Logical backups of the sample ERP database: respaldo against pg_dump and pg_restore.

Run::

    .venv/bin/python -m bench.logical_bench --scale 1.0 --workdir /tmp/lbench

It starts a throwaway cluster (:class:`sample.cluster.TempCluster`, its default settings:
``fsync=off``, ``synchronous_commit=off``, ``shared_buffers=32MB``) below ``--workdir``,
loads the sample ERP database (:func:`sample.generate.load`, deterministic; scale 1.0 is
about 1 GB) and vacuums it; none of that is measured. Then, in one run:

(a) ``pg_dump -Fc -f FILE`` (default compression), what the specification asked for;
(b) ``pg_dump -Fc -Z0 > /dev/null``: the floor for any backup that runs pg_dump;
(c) ``respaldo backup erp`` (the CLI, as a user runs it) into a new local repository;
(d) one day of ERP work (:func:`sample.day_of_work.day_of_work`, day 1), then a second
    respaldo backup: what it stores new, as a share of the first; and pg_dump -Fc again;
(e) a worst-case day on top of that (day 2: 1% of rows updated uniformly at random),
    and a third backup;
(f) ``respaldo restore`` of the first backup against ``pg_restore`` of (a)'s file into a
    new empty database, single-job and with two jobs.

Each ``--sweep AVG[:LEVEL]`` adds a repository with other chunk sizes (min avg/4, max
avg×4) or zstd level, which gets the three backups (c), (d), (e) too, so that chunk sizes
are compared on exactly the same database states.

Every measured command is its own process, started when the rest of the machine is idle
(up to ``--quiet-wait`` seconds; how many cores others used meanwhile is recorded). Wall
time includes the fsync of pg_dump's output file (respaldo fsyncs every pack it writes).
Peak RSS is the sum over the process tree (the command and its children, e.g. respaldo
and its pg_dump), sampled every 50 ms, plus the largest single process from ``wait4``.
The server's CPU time (its backends) is recorded apart: it is not in the tree. The
database and the outputs stay in the page cache (the machine has the memory), so these
are CPU-bound costs, not disk speed.

Results go to stdout as Markdown tables and to ``bench/results/logical.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import psutil  # type: ignore[import-untyped]
from sample import generate
from sample.cluster import TempCluster
from sample.day_of_work import day_of_work

from bench.measure import (
    ServerCpu,
    add_common_arguments,
    add_sample_arguments,
    build_packs,
    finish,
    log,
    machine,
    on_two_threads,
    secret_file,
    wait_quiet,
)
from bench.measure import busy_seconds as _busy_seconds
from bench.measure import self_cpu as _self_cpu

RESULTS = Path(__file__).resolve().parent / "results" / "logical.json"
PASSPHRASE = "respaldo logical benchmark passphrase"  # noqa: S105 (a throwaway repository)
MIB = 1024 * 1024
DB = "erp"
SAMPLE_INTERVAL = 0.05

TARGETS: dict[str, float] = {
    "backup / pg_dump -Fc (time)": 0.30,
    "backup / pg_dump -Fc -Z0 > /dev/null (time)": 1.25,
    "stored / pg_dump -Fc file (bytes)": 1.05,
    "day-of-work backup stored new / first stored": 0.12,
    "restore / pg_restore (time)": 1.05,
    "restore --jobs 2 / pg_restore -j 2 (time)": 1.05,
}


# --- measuring one process -------------------------------------------------------------


class TreeSampler:
    """Peak RSS of a process and its descendants (their sum), sampled in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self.peak_by_name: dict[str, int] = {}
        # Seconds after the start when each program was first and last seen: when a
        # backup's pg_dump ran within it, and so how long respaldo went on after it.
        self.seen_by_name: dict[str, list[float]] = {}
        self._t0 = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        total = 0
        for proc in procs:
            try:
                rss = int(proc.memory_info().rss)
                name = str(proc.name())
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
            total += rss
            self.peak_by_name[name] = max(self.peak_by_name.get(name, 0), rss)
            now = time.perf_counter() - self._t0
            self.seen_by_name.setdefault(name, [now, now])[1] = now
        self.peak = max(self.peak, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(SAMPLE_INTERVAL)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Runner:
    """Runs measured processes one at a time, each on as quiet a machine as it can get."""

    def __init__(self, quiet_wait: float, server: ServerCpu, log: Callable[[str], None]) -> None:
        self.quiet_wait = quiet_wait
        self.server = server
        self.log = log

    def wait_quiet(self) -> float:
        return wait_quiet(self.quiet_wait, self.log)

    def run(
        self,
        argv: Sequence[str],
        env: dict[str, str],
        *,
        stdout: IO[bytes] | int = subprocess.DEVNULL,
        stderr: IO[bytes] | int | None = None,
        fsync: Path | None = None,
    ) -> dict[str, Any]:
        """Run one measured process: wall time (plus the output's fsync), CPU and RSS."""
        os.sync()  # earlier steps' dirty pages must not be written back during this one
        waited = self.wait_quiet()
        busy0, self0, server0 = _busy_seconds(), _self_cpu(), self.server.seconds()
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdout=stdout, stderr=stderr, env=env)
        with TreeSampler(proc.pid) as rss:
            _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if fsync is not None and proc.returncode == 0:
            fd = os.open(fsync, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        wall = time.perf_counter() - t0
        server_cpu = self.server.seconds() - server0
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed with exit code {proc.returncode}")
        cpu = usage.ru_utime + usage.ru_stime
        others = _busy_seconds() - busy0 - cpu - server_cpu - (_self_cpu() - self0)
        return {
            "seconds": wall,
            "cpu_seconds": cpu,
            "user_seconds": usage.ru_utime,
            "sys_seconds": usage.ru_stime,
            "server_cpu_seconds": server_cpu,
            "tree_peak_rss": rss.peak,
            "peak_rss_by_program": rss.peak_by_name,
            "seen_by_program": rss.seen_by_name,
            # wait4: the largest of the process and its reaped descendants (not their sum).
            # Unreliable for small programs: a child's RSS between fork and exec counts,
            # which is this benchmark's own (~50 MiB). The sampled figures are the ones.
            "wait4_max_rss": usage.ru_maxrss * 1024,
            "background_cores": max(0.0, others / wall),
            "waited_for_quiet_seconds": waited,
        }


def best_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest run (on a shared machine, the least disturbed one), with every run's
    time, the median, and the worst peak RSS."""
    ordered = sorted(runs, key=lambda r: float(r["seconds"]))
    kept = dict(ordered[0])
    kept["all_seconds"] = [r["seconds"] for r in runs]
    kept["median_seconds"] = float(ordered[len(ordered) // 2]["seconds"])
    kept["tree_peak_rss"] = max(r["tree_peak_rss"] for r in runs)
    return kept


def tree_bytes(root: Path) -> int:
    """Apparent size of every file below ``root`` (``du -sb``)."""
    total = 0
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            total += Path(dirpath, name).stat().st_size
    return total


# --- respaldo setups -------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """One respaldo configuration: a catalog, a repository and a config file of its own."""

    avg: int
    level: int
    root: Path
    dbname: str = DB
    """The database it backs up (also the name it is configured under)."""

    @property
    def label(self) -> str:
        return f"avg {self.avg // 1024} KiB, zstd {self.level}"

    @property
    def config(self) -> Path:
        return self.root / "respaldo.toml"

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    def chunker(self) -> dict[str, int]:
        return {"min_size": self.avg // 4, "avg_size": self.avg, "max_size": self.avg * 4}

    def repositories_toml(self) -> str:
        """The config's ``[[repositories]]`` tables: one local repository, ``repo``."""
        return f'\n[[repositories]]\nname = "local"\nurl = "file://{self.repo}"\n'

    def write_config(self, cluster: TempCluster, password_file: Path) -> None:
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        chunker = "".join(f"{k} = {v}\n" for k, v in self.chunker().items())
        dsn = (
            f"host={cluster.host} port={cluster.port} user={cluster.superuser} dbname={self.dbname}"
        )
        self.config.write_text(
            f'cache_dir = "{self.root / "cache"}"\n'
            f"compression_level = {self.level}\n"
            "\n[catalog]\n"
            f'url = "sqlite:///{self.root / "catalog.db"}"\n'
            "\n[chunker]\n"
            f"{chunker}"
            f"{self.repositories_toml()}"
            "\n[[databases]]\n"
            f'name = "{self.dbname}"\n'
            f'dsn = "{dsn}"\n'
            f'password_file = "{password_file}"\n'
        )


def respaldo_argv(setup: Setup, *args: str, src: Path | None = None) -> list[str]:
    """respaldo's command line; with ``src``, the respaldo of that source tree (its
    ``src`` directory, run by this interpreter: ``--baseline-src``)."""
    script = Path(sys.executable).parent / "respaldo"
    if src is not None:
        base = [
            sys.executable,
            "-c",
            f"import sys; sys.path.insert(0, {str(src)!r}); "
            "from respaldo.cli.entry import run; run()",
        ]
    else:
        base = [str(script)] if script.exists() else [sys.executable, "-m", "respaldo.cli.main"]
    return [*base, "--config", str(setup.config), *args]


_CHUNKS = re.compile(r"\((\d+) of (\d+) chunks new\)")


class Bench:
    def __init__(
        self, args: argparse.Namespace, cluster: TempCluster, log: Callable[[str], None]
    ) -> None:
        self.args = args
        self.cluster = cluster
        self.log = log
        self.workdir: Path = args.workdir
        pid = int((cluster.datadir / "postmaster.pid").read_text().split()[0])
        self.runner = Runner(args.quiet_wait, ServerCpu(pid), log)
        secrets_dir = self.workdir / "secrets"
        shutil.rmtree(secrets_dir, ignore_errors=True)
        secrets_dir.mkdir(mode=0o700, parents=True)
        password = cluster.password.get_secret_value()
        self.password_file = secret_file(secrets_dir / "erp.pass", password + "\n")
        pgpass = secret_file(
            secrets_dir / "pgpass",
            f"{cluster.host}:{cluster.port}:*:{cluster.superuser}:"
            + password.replace("\\", "\\\\").replace(":", "\\:")
            + "\n",
        )
        base = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "RESPALDO_"))}
        self.pg_env = {**base, "PGPASSFILE": str(pgpass)}
        self.respaldo_env = {**base, "RESPALDO_PASSPHRASE": PASSPHRASE}
        self.out = self.workdir / "out"
        self.out.mkdir(parents=True, exist_ok=True)

    def dsn(self, dbname: str) -> str:
        c = self.cluster
        return f"host={c.host} port={c.port} user={c.superuser} dbname={dbname}"

    def tool(self, program: str) -> str:
        return str(self.cluster.bindir / program)

    # --- pg_dump / pg_restore -----------------------------------------------------------

    def pg_dump_file(self, path: Path) -> dict[str, Any]:
        path.unlink(missing_ok=True)
        argv = [self.tool("pg_dump"), "-Fc", "-f", str(path), "--no-password", self.dsn(DB)]
        result = self.runner.run(argv, self.pg_env, fsync=path)
        result["bytes"] = path.stat().st_size
        return result

    def pg_dump_null(self) -> dict[str, Any]:
        argv = [self.tool("pg_dump"), "-Fc", "-Z0", "--no-password", self.dsn(DB)]
        with Path(os.devnull).open("wb") as null:
            return self.runner.run(argv, self.pg_env, stdout=null)

    def createdb(self, target: str) -> dict[str, Any]:
        """``createdb`` from template0, measured: a restore into a new database needs it."""
        self.cluster.execute(f'DROP DATABASE IF EXISTS "{target}"')
        argv = [self.tool("createdb"), "--no-password", "--template=template0"]
        c = self.cluster
        argv += [f"--host={c.host}", f"--port={c.port}", f"--username={c.superuser}", target]
        return self.runner.run(argv, self.pg_env)

    def pg_restore(
        self, path: Path, target: str, jobs: int, *, created: bool = False
    ) -> dict[str, Any]:
        """pg_restore of ``path`` into ``target``, new (made unmeasured unless
        ``created``: then the caller made it, measured)."""
        if not created:
            self.cluster.execute(f'DROP DATABASE IF EXISTS "{target}"')
            self.cluster.execute(f'CREATE DATABASE "{target}" TEMPLATE template0')
        argv = [
            self.tool("pg_restore"),
            "--exit-on-error",
            "--no-password",
            *([f"--jobs={jobs}"] if jobs > 1 else []),
            "-d",
            self.dsn(target),
            str(path),
        ]
        try:
            result = self.runner.run(argv, self.pg_env)
            # Not part of pg_restore's time: what respaldo's check of the restored row
            # counts costs right after a restore (the first read of fresh tables also
            # sets their hint bits, i.e. writes every page).
            result["row_count_check_seconds"] = self.row_count_seconds(target, wait=False)
            return result
        finally:
            self.cluster.execute(f'DROP DATABASE IF EXISTS "{target}"')

    # --- respaldo -----------------------------------------------------------------------

    def init(self, setup: Setup) -> None:
        setup.write_config(self.cluster, self.password_file)
        done = subprocess.run(
            respaldo_argv(setup, "init"),
            env=self.respaldo_env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"respaldo init failed: {done.stderr}")

    def backup(self, setup: Setup, tag: str) -> dict[str, Any]:
        before = tree_bytes(setup.repo)
        out_path = self.out / f"backup-{tag}.json"
        err_path = self.out / f"backup-{tag}.err"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            result = self.runner.run(
                respaldo_argv(setup, "backup", setup.dbname, "--json"),
                self.respaldo_env,
                stdout=out,
                stderr=err,
            )
        record = json.loads(out_path.read_text())
        result["backup_id"] = record["id"]
        result["operation_seconds"] = record["duration"]
        result["size_bytes"] = record["sizeBytes"]
        result["size_compressed"] = record["sizeCompressed"]
        result["stored_new_bytes"] = record["storedNewBytes"]
        result["repository_bytes"] = tree_bytes(setup.repo)
        result["du_delta_bytes"] = result["repository_bytes"] - before
        match = _CHUNKS.search(err_path.read_text(errors="replace"))
        if match:
            result["new_chunks"], result["chunks"] = int(match[1]), int(match[2])
        return result

    def restore(
        self, setup: Setup, backup_id: str, target: str, jobs: int, *, src: Path | None = None
    ) -> dict[str, Any]:
        self.cluster.execute(f'DROP DATABASE IF EXISTS "{target}"')
        argv = respaldo_argv(
            setup,
            "restore",
            backup_id,
            "--target-database",
            target,
            "--jobs",
            str(jobs),
            "--work-dir",
            str(self.out),
            src=src,
        )
        err_path = self.out / f"restore-{target}.err"
        try:
            with err_path.open("wb") as err:
                return self.runner.run(argv, self.respaldo_env, stderr=err)
        finally:
            self.cluster.execute(f'DROP DATABASE IF EXISTS "{target}"')

    # --- database state (not measured) --------------------------------------------------

    def settle(self) -> None:
        """VACUUM ANALYZE and CHECKPOINT: no autovacuum or hint-bit writes during a timing."""
        t0 = time.perf_counter()
        self.cluster.execute("VACUUM (ANALYZE)", dbname=DB)
        self.cluster.execute("CHECKPOINT")
        os.sync()
        self.log(f"  vacuumed and checkpointed in {time.perf_counter() - t0:.1f} s")

    def database_size(self) -> int:
        return int(self.cluster.scalar("SELECT pg_database_size(%s)", (DB,)))

    def row_count_seconds(self, dbname: str = DB, *, wait: bool = True) -> float:
        """What respaldo's row counting costs: count(*) of every table in one snapshot."""
        from respaldo.postgres import exported_snapshot

        if wait:
            self.runner.wait_quiet()
        t0 = time.perf_counter()
        with exported_snapshot(self.cluster.conninfo(dbname)):
            pass
        return time.perf_counter() - t0


# --- the write path's stages on the real dump (--stages) ------------------------------


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def stages(dump: Path, setup: Setup, root: Path, levels: Sequence[int]) -> dict[str, Any]:
    """Each step of respaldo's write path alone, once, over a ``pg_dump -Fc -Z0`` file.

    Single-threaded unless the name says otherwise; in this process (the file in memory),
    on a repository with a cheap KDF. ``BackupWriter from the file`` is the whole write
    path without pg_dump: what respaldo alone costs for this stream.
    """
    import hashlib
    import io
    from collections import deque
    from concurrent.futures import Future, ThreadPoolExecutor

    import zstandard

    from respaldo.repository import BackupWriter, ChunkerParams, KdfParams, Repository
    from respaldo.repository.chunker import iter_chunks
    from respaldo.storage.local import LocalStorage

    shutil.rmtree(root, ignore_errors=True)
    repo = Repository.init(
        LocalStorage(root / "repo"),
        PASSPHRASE,
        chunker=ChunkerParams(**setup.chunker()),
        kdf=KdfParams(time_cost=1, memory_cost=8 * 1024, parallelism=1),
        compression_level=setup.level,
    )
    seed = repo.keys.chunker_seed
    sealer = repo.sealer
    data = dump.read_bytes()
    out: dict[str, Any] = {"bytes": len(data)}
    busy0, t_start = _busy_seconds(), time.perf_counter()
    cpu0 = _self_cpu()
    seconds: dict[str, float] = {}
    chunks: list[bytes] = []

    def cut() -> None:
        chunks[:] = iter_chunks(io.BytesIO(data), repo.chunker, seed)

    seconds["chunk (FastCDC + copy)"] = _timed(cut)
    out["chunks"] = len(chunks)
    seconds["sha256 (whole stream)"] = _timed(lambda: hashlib.sha256(data).digest())
    ids: list[bytes] = []
    seconds["blake3 keyed (chunk ids)"] = _timed(lambda: ids.extend(map(sealer.chunk_id, chunks)))
    index = repo.index
    seconds["index lookup"] = _timed(lambda: [index.get(i) for i in ids])
    compressed: dict[int, int] = {}
    for level in levels:
        comp = zstandard.ZstdCompressor(level=level)
        sizes: list[int] = []

        def compress(c: zstandard.ZstdCompressor = comp, sizes: list[int] = sizes) -> None:
            sizes.extend(min(len(c.compress(x)), len(x)) for x in chunks)

        seconds[f"zstd -{level} (per chunk)"] = _timed(compress)
        compressed[level] = sum(sizes)
    out["compressed_bytes_by_level"] = compressed
    sealed: list[bytes] = []
    seconds["seal_chunk (zstd + AES-GCM)"] = _timed(
        lambda: sealed.extend(map(sealer.seal_chunk, ids, chunks))
    )
    out["sealed_bytes"] = sum(map(len, sealed))

    def pooled() -> None:
        with ThreadPoolExecutor(2) as pool:
            inflight: deque[Future[bytes]] = deque()
            for cid, chunk in zip(ids, chunks, strict=True):
                inflight.append(pool.submit(sealer.seal_chunk, cid, chunk))
                while len(inflight) > 16:
                    inflight.popleft().result()
            for future in inflight:
                future.result()

    seconds["seal_chunk, pool of 2, a task per chunk (as the writer)"] = _timed(pooled)

    seconds["pack build (join + sha256)"] = _timed(
        lambda: build_packs(ids, sealed, chunks, sealer, repo.pack_size)
    )
    sealed.clear()  # free the memory

    def cut_and_id() -> None:
        for c in iter_chunks(io.BytesIO(data), repo.chunker, seed):
            sealer.chunk_id(c)

    def cut_and_id_twice() -> None:
        on_two_threads(cut_and_id)

    # Twice the work on two threads: as fast as once if chunking and ids escape the GIL.
    seconds["chunk + blake3, x2 on 2 threads"] = _timed(cut_and_id_twice)
    seconds["chunk + blake3, x1 on 1 thread"] = _timed(
        lambda: [sealer.chunk_id(c) for c in iter_chunks(io.BytesIO(data), repo.chunker, seed)]
    )
    chunks.clear()
    ids.clear()

    def write() -> None:
        with BackupWriter(repo, "stages-1") as writer, dump.open("rb") as src:
            writer.write_stream("dump", src)
            writer.commit(kind="full", source="bench", started_at=datetime.now(UTC))

    os.sync()
    seconds["BackupWriter from the file (2 workers, local store, fsync)"] = _timed(write)
    wall = time.perf_counter() - t_start
    others = _busy_seconds() - busy0 - (_self_cpu() - cpu0)
    out["seconds"] = seconds
    out["background_cores"] = max(0.0, others / wall)
    shutil.rmtree(root, ignore_errors=True)
    return out


# --- where a backup's time goes (--profile) --------------------------------------------

_PY_FRAME = re.compile(r"^(?P<func>.+) \((?P<file>[^()]*\.py|<[^>]+>):\d+\)$")
_NATIVE_FRAME = re.compile(r"^(?P<func>.+) \((?P<lib>[^()]+)\)$")


def _frame_label(frame: str) -> tuple[bool, str]:
    """(is a Python frame, short label) of one py-spy frame."""
    py = _PY_FRAME.match(frame)
    if py:
        return True, f"{py['func']} ({Path(py['file']).name})"
    native = _NATIVE_FRAME.match(frame)
    if native:
        lib = Path(native["lib"].split(":")[0]).name
        func = native["func"]
        return False, lib if func.startswith("0x") else f"{func} [{lib}]"
    return False, frame


def summarize_pyspy(raw: Path, top: int = 10) -> dict[str, Any]:
    """Samples per thread, and per thread the innermost Python frame → native leaf."""
    threads: dict[str, dict[str, int]] = {}
    totals: dict[str, int] = {}
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        thread = re.sub(r"^thread \(\d+\): ", "", frames[0])
        thread = re.sub(r"_\d+$", "_N", thread)  # seal_0, seal_1 -> seal_N
        inner_py = "-"
        leaf = ""
        for frame in frames[1:]:
            is_py, label = _frame_label(frame)
            if is_py:
                inner_py, leaf = label, ""
            else:
                leaf = label
        key = f"{inner_py} → {leaf}" if leaf else inner_py
        n = int(count_text)
        totals[thread] = totals.get(thread, 0) + n
        per = threads.setdefault(thread, {})
        per[key] = per.get(key, 0) + n
    return {
        "samples": totals,
        "top": {t: sorted(per.items(), key=lambda kv: -kv[1])[:top] for t, per in threads.items()},
    }


def profile_backup(bench: Bench, setup: Setup, rate: int) -> dict[str, Any]:
    """Two extra backups (fresh repositories) under py-spy: every thread's samples
    (idle ones too), then only the samples that hold the GIL."""
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists():
        return {"error": "py-spy not found (pip install py-spy into the venv)"}
    out: dict[str, Any] = {"rate_hz": rate}
    for mode, flags in (("all threads, idle included", ["--idle"]), ("holding the GIL", ["--gil"])):
        bench.init(setup)
        raw = bench.out / f"pyspy-{'gil' if '--gil' in flags else 'all'}.txt"
        argv = [
            pyspy,
            "record",
            "--format",
            "raw",
            "--threads",
            "--native",
            "--rate",
            str(rate),
            *flags,
            "--output",
            str(raw),
            "--",
            *respaldo_argv(setup, "backup", DB),
        ]
        bench.runner.wait_quiet()
        t0 = time.perf_counter()
        subprocess.run(argv, env=bench.respaldo_env, capture_output=True, check=True)
        summary = summarize_pyspy(raw)
        summary["seconds"] = time.perf_counter() - t0
        out[mode] = summary
    shutil.rmtree(setup.root, ignore_errors=True)
    return out


# --- the run ---------------------------------------------------------------------------


def parse_sweep(text: str) -> tuple[int, int | None]:
    avg, _, level = text.partition(":")
    try:
        return int(avg), int(level) if level else None
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected AVG or AVG:LEVEL, got {text!r}") from None


def run(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    main = Setup(args.chunk_avg, args.compression_level, workdir / "setups" / "main")
    sweeps = [
        Setup(
            avg,
            level if level is not None else args.compression_level,
            workdir / "setups" / f"s{i}",
        )
        for i, (avg, level) in enumerate(args.sweep)
    ]
    report: dict[str, Any] = {
        "benchmark": "logical",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(("pyfastcdc", "blake3", "zstandard", "cryptography")),
    }
    (workdir / "cluster").mkdir(exist_ok=True)
    with TempCluster.create(base_dir=workdir / "cluster") as cluster:
        version = cluster.scalar("SHOW server_version")
        log(f"cluster: PostgreSQL {version} on port {cluster.port}, {cluster.settings}")
        cluster.execute(f"CREATE DATABASE {DB}")
        log(f"loading the sample ERP database at scale {args.scale} (seed {args.seed})…")
        t0 = time.perf_counter()
        written = generate.load(cluster.conninfo_kwargs(DB), args.scale, args.seed)
        load_seconds = time.perf_counter() - t0
        bench = Bench(args, cluster, log)
        size0 = bench.database_size()
        log(f"  {sum(written.values()):,} rows, {size0 / MIB:.0f} MiB in {load_seconds:.0f} s")
        bench.settle()
        report["params"] = {
            "scale": args.scale,
            "seed": args.seed,
            "server_version": version,
            "cluster_settings": cluster.settings,
            "chunker": main.chunker(),
            "compression_level": main.level,
            "sweep": [{"chunker": s.chunker(), "compression_level": s.level} for s in sweeps],
            "repeat": args.repeat,
            "respaldo_defaults": "pack_size 12 MiB, workers 2, KdfParams() (argon2id 64 MiB)",
        }
        report["database"] = {
            "rows": written,
            "size_bytes": size0,
            "load_seconds": load_seconds,
        }
        results: dict[str, dict[str, Any]] = {}
        report["results"] = results

        def measure(name: str, fn: Callable[[], dict[str, Any]], repeat: int = 1) -> None:
            runs = []
            for i in range(repeat):
                r = fn()
                runs.append(r)
                log(
                    f"  {name}{f' #{i + 1}' if repeat > 1 else ''}: {r['seconds']:.2f} s"
                    f" (others used {r['background_cores']:.2f} cores)"
                )
            results[name] = best_run(runs)

        log("warming the page cache (one unmeasured pg_dump)…")
        bench.pg_dump_null()
        counts_seconds = bench.row_count_seconds()
        results["row counts (respaldo's pre-dump step)"] = {"seconds": counts_seconds}
        log(f"  row counts in one snapshot (unmeasured by pg_dump): {counts_seconds:.2f} s")
        dump_a = bench.out / "a.dump"
        measure("pg_dump -Fc -Z0 > /dev/null", bench.pg_dump_null, args.repeat)
        measure("pg_dump -Fc", lambda: bench.pg_dump_file(dump_a), args.repeat)

        kept_ids: dict[str, str] = {}  # the first backup in each kept repository

        def first_backup(setup: Setup) -> Callable[[], dict[str, Any]]:
            def fn() -> dict[str, Any]:
                bench.init(setup)  # a new repository for every repeat
                result = bench.backup(setup, "first")
                kept_ids[setup.root.name] = result["backup_id"]
                return result

            return fn

        measure("respaldo backup", first_backup(main), args.repeat)
        # With --repeat, the kept repository is the last run's, maybe not the fastest's.
        results["respaldo backup"]["kept_repository_bytes"] = tree_bytes(main.repo)
        sweep_results: list[dict[str, Any]] = [
            {"label": s.label, "chunker": s.chunker(), "compression_level": s.level} for s in sweeps
        ]
        if args.profile:
            log("profiling two extra first backups with py-spy…")
            report["profile"] = profile_backup(
                bench,
                Setup(main.avg, main.level, workdir / "setups" / "profile"),
                args.profile_rate,
            )
        for setup, sr in zip(sweeps, sweep_results, strict=True):
            bench.init(setup)
            sr["first"] = bench.backup(setup, f"first-{setup.root.name}")
            log(f"  sweep {setup.label}: first backup {sr['first']['seconds']:.2f} s")

        log("day of work (day 1)…")
        changes = day_of_work(cluster.conninfo_kwargs(DB), args.seed, 1)
        report["database"]["day_of_work"] = {t: c._asdict() for t, c in changes.items()}
        bench.settle()
        measure("respaldo backup after a day of work", lambda: bench.backup(main, "day"))
        for setup, sr in zip(sweeps, sweep_results, strict=True):
            sr["day"] = bench.backup(setup, f"day-{setup.root.name}")
            log(f"  sweep {setup.label}: day backup {sr['day']['seconds']:.2f} s")
        measure("pg_dump -Fc after a day of work", lambda: bench.pg_dump_file(bench.out / "d.dump"))

        log("worst-case day (day 2, 1% of rows updated uniformly at random)…")
        changes = day_of_work(cluster.conninfo_kwargs(DB), args.seed, 2, worst_case=True)
        report["database"]["worst_case_day"] = {t: c._asdict() for t, c in changes.items()}
        bench.settle()
        measure("respaldo backup after a worst-case day", lambda: bench.backup(main, "worst"))
        for setup, sr in zip(sweeps, sweep_results, strict=True):
            sr["worst"] = bench.backup(setup, f"worst-{setup.root.name}")
            log(f"  sweep {setup.label}: worst-case backup {sr['worst']['seconds']:.2f} s")
        measure(
            "pg_dump -Fc after a worst-case day",
            lambda: bench.pg_dump_file(bench.out / "e.dump"),
        )
        (bench.out / "d.dump").unlink(missing_ok=True)
        (bench.out / "e.dump").unlink(missing_ok=True)

        if not args.skip_restore:
            first_id = kept_ids[main.root.name]
            log(f"restores of the first backup ({first_id}) and of {dump_a.name}…")
            measure(
                "respaldo restore",
                lambda: bench.restore(main, first_id, "r1", 1),
                args.repeat,
            )
            measure("pg_restore", lambda: bench.pg_restore(dump_a, "r2", 1), args.repeat)
            measure(
                "respaldo restore --jobs 2",
                lambda: bench.restore(main, first_id, "r3", 2),
                args.repeat,
            )
            measure("pg_restore -j 2", lambda: bench.pg_restore(dump_a, "r4", 2), args.repeat)
        if args.stages:
            log("stages of the write path over a pg_dump -Fc -Z0 file (current state)…")
            z0 = bench.out / "z0.dump"
            subprocess.run(
                [
                    bench.tool("pg_dump"),
                    "-Fc",
                    "-Z0",
                    "-f",
                    str(z0),
                    "--no-password",
                    bench.dsn(DB),
                ],
                env=bench.pg_env,
                check=True,
            )
            bench.runner.wait_quiet()
            report["stages"] = stages(z0, main, workdir / "stages", args.stage_levels)
            z0.unlink(missing_ok=True)
        report["database"]["size_bytes_at_end"] = bench.database_size()
        report["sweep"] = [main_as_sweep(main, results), *sweep_results]
        for sr in report["sweep"]:
            add_shares(sr, results["pg_dump -Fc"]["bytes"])
    dump_a.unlink(missing_ok=True)
    if not args.keep:
        shutil.rmtree(workdir / "setups", ignore_errors=True)
    report["ratios"] = ratios(results)
    report["targets"] = TARGETS
    return report


# --- paired restores (--restore-pairs) ------------------------------------------------


def spread(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"min": ordered[0], "median": statistics.median(ordered), "max": ordered[-1]}


def restore_pairs(
    bench: Bench,
    setup: Setup,
    backup_id: str,
    dump: Path,
    *,
    pairs: int,
    jobs_list: Sequence[int],
    baseline_src: Path | None,
) -> dict[str, Any]:
    """``respaldo restore`` against ``createdb`` + ``pg_restore`` of the ``-Fc`` file (a
    restore into a new database, both ways), ratios pair by pair; with ``baseline_src``,
    the same restore by another source tree's respaldo too (A/base).

    The order alternates: A B (C) in even pairs, (C) B A in odd ones. Always run first,
    right after the previous pair's databases were dropped, A met another server state
    than B (autovacuum's launcher, the page cache the drops freed): session 16 could not
    tell its server CPU from an order effect. The summary gives each order apart too.

    One restore each way comes first, unmeasured: right after the backup (which the
    caller has just made), respaldo's restores' COPYs cost the server up to 3 CPU-s
    more, in five of the six that came first or second (docs/benchmarks.md, session 17),
    and pair 1 put that on A."""
    out: dict[str, Any] = {}
    bench.log("  warm-up: one restore each way, unmeasured…")
    bench.restore(setup, backup_id, "pair_a", jobs_list[0])
    bench.createdb("pair_b")
    bench.pg_restore(dump, "pair_b", jobs_list[0], created=True)
    for jobs in jobs_list:
        rows: list[dict[str, Any]] = []
        for i in range(pairs):
            a_first = i % 2 == 0
            got: dict[str, dict[str, Any]] = {}
            for step in "ABC" if a_first else "CBA":
                if step == "A":
                    got["a"] = bench.restore(setup, backup_id, "pair_a", jobs)
                elif step == "B":
                    got["made"] = bench.createdb("pair_b")
                    got["b"] = bench.pg_restore(dump, "pair_b", jobs, created=True)
                elif baseline_src is not None:
                    got["c"] = bench.restore(setup, backup_id, "pair_c", jobs, src=baseline_src)
            a, made, b = got["a"], got["made"], got["b"]
            row = {
                "order": "A first" if a_first else "B before A",
                "respaldo": a,
                "createdb": made,
                "pg_restore": b,
                "wall_ratio": a["seconds"] / (made["seconds"] + b["seconds"]),
                "wall_ratio_without_createdb": a["seconds"] / b["seconds"],
                "cpu_ratio": a["cpu_seconds"] / (made["cpu_seconds"] + b["cpu_seconds"]),
                "server_cpu_ratio": a["server_cpu_seconds"]
                / (made["server_cpu_seconds"] + b["server_cpu_seconds"]),
            }
            if baseline_src is not None:
                base = got["c"]
                row["baseline"] = base
                row["vs_baseline_wall"] = a["seconds"] / base["seconds"]
                row["vs_baseline_cpu"] = a["cpu_seconds"] / base["cpu_seconds"]
                row["vs_baseline_server_cpu"] = a["server_cpu_seconds"] / base["server_cpu_seconds"]
            bench.log(
                f"  jobs {jobs} pair {i + 1} ({row['order']}): respaldo {a['seconds']:.2f} s, "
                f"createdb + pg_restore {made['seconds'] + b['seconds']:.2f} s, ratio "
                f"{row['wall_ratio']:.2f} (cpu {row['cpu_ratio']:.2f}, server cpu "
                f"{a['server_cpu_seconds']:.2f} / "
                f"{made['server_cpu_seconds'] + b['server_cpu_seconds']:.2f})"
                + (
                    f"; baseline {row['baseline']['seconds']:.2f} s, server cpu "
                    f"{row['baseline']['server_cpu_seconds']:.2f}"
                    if baseline_src is not None
                    else ""
                )
            )
            rows.append(row)
        summary = {
            "pairs": rows,
            "wall_ratio": spread([r["wall_ratio"] for r in rows]),
            "wall_ratio_without_createdb": spread([r["wall_ratio_without_createdb"] for r in rows]),
            "cpu_ratio": spread([r["cpu_ratio"] for r in rows]),
            "respaldo_seconds": spread([r["respaldo"]["seconds"] for r in rows]),
            "pg_restore_seconds": spread(
                [r["createdb"]["seconds"] + r["pg_restore"]["seconds"] for r in rows]
            ),
            "respaldo_cpu_seconds": spread([r["respaldo"]["cpu_seconds"] for r in rows]),
            "pg_restore_cpu_seconds": spread(
                [r["createdb"]["cpu_seconds"] + r["pg_restore"]["cpu_seconds"] for r in rows]
            ),
            "background_cores": spread([r["respaldo"]["background_cores"] for r in rows]),
            "respaldo_server_cpu_seconds": spread(
                [r["respaldo"]["server_cpu_seconds"] for r in rows]
            ),
            "pg_restore_server_cpu_seconds": spread(
                [
                    r["createdb"]["server_cpu_seconds"] + r["pg_restore"]["server_cpu_seconds"]
                    for r in rows
                ]
            ),
            "by_order": {
                order: {
                    key: spread([r[key] for r in rows if r["order"] == order])
                    for key in ("wall_ratio", "cpu_ratio", "server_cpu_ratio")
                }
                for order in ("A first", "B before A")
                if any(r["order"] == order for r in rows)
            },
        }
        if baseline_src is not None:
            summary["vs_baseline_wall"] = spread([r["vs_baseline_wall"] for r in rows])
            summary["vs_baseline_cpu"] = spread([r["vs_baseline_cpu"] for r in rows])
            summary["vs_baseline_server_cpu"] = spread([r["vs_baseline_server_cpu"] for r in rows])
        out[f"jobs {jobs}"] = summary
    return out


@contextlib.contextmanager
def _restore_cluster(args: argparse.Namespace, log: Callable[[str], None]) -> Iterator[TempCluster]:
    """The cluster of --restore-pairs: the long-lived one of ``--cluster`` (made by
    :mod:`bench.bigdb`, left running), or a throwaway one loaded at ``--scale``."""
    if args.cluster is not None:
        from bench.bigdb import attach  # bench.bigdb imports this module

        yield attach(args.cluster)
        return
    (args.workdir / "cluster").mkdir(exist_ok=True)
    with TempCluster.create(base_dir=args.workdir / "cluster") as cluster:
        cluster.execute(f"CREATE DATABASE {DB}")
        log(f"loading the sample ERP database at scale {args.scale} (seed {args.seed})…")
        generate.load(cluster.conninfo_kwargs(DB), args.scale, args.seed)
        yield cluster


def run_restore_pairs(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    """--restore-pairs: the sample database, its ``-Fc`` file and one respaldo backup
    (unmeasured), then only the paired restores."""
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    setup = Setup(args.chunk_avg, args.compression_level, workdir / "setups" / "main")
    report: dict[str, Any] = {
        "benchmark": "logical restore pairs",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(("pyfastcdc", "blake3", "zstandard", "cryptography")),
        "params": {"scale": args.scale, "seed": args.seed, "pairs": args.restore_pairs},
    }
    with _restore_cluster(args, log) as cluster:
        bench = Bench(args, cluster, log)
        if args.cluster is None:
            bench.settle()
        report["database"] = {"size_bytes": bench.database_size()}
        dump = args.fc_file or bench.out / "a.dump"
        if args.fc_file is None:
            report["pg_dump -Fc"] = bench.pg_dump_file(dump)
        bench.init(setup)
        backup_id = bench.backup(setup, "first")["backup_id"]
        log(f"backup {backup_id}; paired restores…")
        report["restores"] = restore_pairs(
            bench,
            setup,
            backup_id,
            dump,
            pairs=args.restore_pairs,
            jobs_list=args.restore_jobs,
            baseline_src=args.baseline_src,
        )
    if args.fc_file is None:
        dump.unlink(missing_ok=True)
    if not args.keep:
        shutil.rmtree(workdir / "setups", ignore_errors=True)
    return report


def pairs_table(report: dict[str, Any]) -> Iterator[str]:
    def f(s: dict[str, float]) -> str:
        return f"{s['median']:.2f} ({s['min']:.2f}–{s['max']:.2f})"

    yield (
        f"scale {report['params']['scale']}, {report['params']['pairs']} pairs "
        f"(median, min–max); B is createdb + pg_restore of the same database's pg_dump "
        f"output (the -Fc file, or the -Fd directory for pardump_bench)"
    )
    yield ""
    yield (
        "| jobs | wall A/B | wall A/pg_restore alone | CPU A/B | A wall s | B wall s "
        "| A/baseline wall | A/baseline CPU | others' cores |"
    )
    yield "|---|---|---|---|---|---|---|---|---|"
    for name, r in report["restores"].items():
        base = f(r["vs_baseline_wall"]) if "vs_baseline_wall" in r else "-"
        base_cpu = f(r["vs_baseline_cpu"]) if "vs_baseline_cpu" in r else "-"
        yield (
            f"| {name} | {f(r['wall_ratio'])} | {f(r['wall_ratio_without_createdb'])} | "
            f"{f(r['cpu_ratio'])} | {f(r['respaldo_seconds'])} | {f(r['pg_restore_seconds'])} "
            f"| {base} | {base_cpu} | {f(r['background_cores'])} |"
        )
    yield ""
    yield "| jobs | order | pairs | wall A/B | CPU A/B | server CPU A/B |"
    yield "|---|---|---|---|---|---|"
    for name, r in report["restores"].items():
        for order, by in r.get("by_order", {}).items():
            n = sum(1 for p in r["pairs"] if p.get("order") == order)
            yield (
                f"| {name} | {order} | {n} | {f(by['wall_ratio'])} | {f(by['cpu_ratio'])} "
                f"| {f(by['server_cpu_ratio'])} |"
            )


def main_as_sweep(setup: Setup, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "label": setup.label + " (main)",
        "chunker": setup.chunker(),
        "compression_level": setup.level,
        "first": results["respaldo backup"],
        "day": results["respaldo backup after a day of work"],
        "worst": results["respaldo backup after a worst-case day"],
    }


def add_shares(sr: dict[str, Any], fc_bytes: int) -> None:
    first = sr["first"].get("kept_repository_bytes", sr["first"]["repository_bytes"])
    sr["first_stored_bytes"] = first
    sr["stored / pg_dump -Fc"] = first / fc_bytes
    sr["day_share"] = sr["day"]["stored_new_bytes"] / first
    sr["worst_share"] = sr["worst"]["stored_new_bytes"] / first
    if "chunks" in sr["first"]:
        sr["mean_chunk_bytes"] = sr["first"]["size_bytes"] / max(1, sr["first"]["chunks"])


def ratios(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    def t(name: str) -> float:
        return float(results[name]["seconds"])

    backup = results["respaldo backup"]
    day = results["respaldo backup after a day of work"]
    worst = results["respaldo backup after a worst-case day"]
    kept = backup.get("kept_repository_bytes", backup["repository_bytes"])
    out = {
        "backup / pg_dump -Fc (time)": t("respaldo backup") / t("pg_dump -Fc"),
        "backup / pg_dump -Fc -Z0 > /dev/null (time)": t("respaldo backup")
        / t("pg_dump -Fc -Z0 > /dev/null"),
        "stored / pg_dump -Fc file (bytes)": backup["repository_bytes"]
        / results["pg_dump -Fc"]["bytes"],
        "day-of-work backup stored new / first stored": day["stored_new_bytes"] / kept,
        "worst-case-day backup stored new / first stored": worst["stored_new_bytes"] / kept,
        "day-of-work pg_dump -Fc / first pg_dump -Fc (bytes)": results[
            "pg_dump -Fc after a day of work"
        ]["bytes"]
        / results["pg_dump -Fc"]["bytes"],
    }
    if "respaldo restore" in results:
        out["restore / pg_restore (time)"] = t("respaldo restore") / t("pg_restore")
        out["restore --jobs 2 / pg_restore -j 2 (time)"] = t("respaldo restore --jobs 2") / t(
            "pg_restore -j 2"
        )
    return out


# --- output ----------------------------------------------------------------------------


def _mib(n: float | None) -> str:
    return "-" if n is None else f"{n / MIB:,.0f}"


def _programs(peaks: dict[str, int]) -> str:
    top = sorted(peaks.items(), key=lambda kv: -kv[1])[:3]
    return ", ".join(f"{name} {rss / MIB:.0f}" for name, rss in top) or "-"


def table(report: dict[str, Any]) -> Iterator[str]:
    """The results as Markdown tables (they read fine in a terminal too)."""
    db = report["database"]
    p = report["params"]
    yield (
        f"Scale {p['scale']} (seed {p['seed']}): {sum(db['rows'].values()):,} rows, "
        f"database {db['size_bytes'] / MIB:,.0f} MiB; PostgreSQL {p['server_version']}; "
        f"chunker {p['chunker']}, zstd {p['compression_level']}."
    )
    yield ""
    yield (
        "| measurement | wall s | CPU s (tree) | server CPU s | output MiB "
        "| peak RSS MiB (tree) | peak RSS MiB by program | others' cores |"
    )
    yield "|---|--:|--:|--:|--:|--:|--:|--:|"
    for name, r in report["results"].items():
        if "cpu_seconds" not in r:
            yield f"| {name} | {r['seconds']:.2f} | - | - | - | - | - | - |"
            continue
        out = r.get("bytes", r.get("repository_bytes"))
        if "stored_new_bytes" in r and name != "respaldo backup":
            out = r["stored_new_bytes"]
        yield (
            f"| {name} | {r['seconds']:.2f} | {r['cpu_seconds']:.2f} "
            f"| {r['server_cpu_seconds']:.2f} | {_mib(out)} | {_mib(r['tree_peak_rss'])} "
            f"| {_programs(r['peak_rss_by_program'])} | {r['background_cores']:.2f} |"
        )
    check = report["results"].get("pg_restore", {}).get("row_count_check_seconds")
    if check is not None:
        yield ""
        yield (
            f"Counting every table's rows right after pg_restore (respaldo restore does this "
            f"check; pg_restore does not): {check:.2f} s."
        )
    yield ""
    yield "| ratio | value | target | met |"
    yield "|---|--:|--:|:-:|"
    for name, value in report["ratios"].items():
        target = report["targets"].get(name)
        if target is None:
            yield f"| {name} | {value:.3f} | - | - |"
        else:
            met = "yes" if value <= target else "NO"
            yield f"| {name} | {value:.3f} | ≤ {target:.2f} | {met} |"
    yield ""
    yield (
        "| chunker | first backup s | first stored MiB | stored / -Fc | mean chunk KiB "
        "| day: new MiB | day share | worst: new MiB | worst share |"
    )
    yield "|---|--:|--:|--:|--:|--:|--:|--:|--:|"
    for sr in report["sweep"]:
        mean = sr.get("mean_chunk_bytes")
        yield (
            f"| {sr['label']} | {sr['first']['seconds']:.2f} | {_mib(sr['first_stored_bytes'])} "
            f"| {sr['stored / pg_dump -Fc']:.3f} | {'-' if mean is None else f'{mean / 1024:.1f}'} "
            f"| {sr['day']['stored_new_bytes'] / MIB:.1f} | {sr['day_share']:.1%} "
            f"| {sr['worst']['stored_new_bytes'] / MIB:.1f} | {sr['worst_share']:.1%} |"
        )


def profile_table(prof: dict[str, Any]) -> Iterator[str]:
    if "error" in prof:
        yield f"profile: {prof['error']}"
        return
    for mode in ("all threads, idle included", "holding the GIL"):
        part = prof[mode]
        yield (
            f"py-spy, {mode}: {part['seconds']:.1f} s wall at {prof['rate_hz']} Hz; samples "
            + ", ".join(f"{t} {n}" for t, n in part["samples"].items())
        )
        yield ""
        yield "| thread | innermost Python frame → native leaf | samples | share of thread |"
        yield "|---|---|--:|--:|"
        for thread, rows in part["top"].items():
            total = part["samples"][thread]
            if total < 0.02 * sum(part["samples"].values()):
                continue
            for key, n in rows:
                yield f"| {thread} | {key} | {n} | {n / total:.0%} |"
        yield ""


def stage_table(st: dict[str, Any]) -> Iterator[str]:
    size = st["bytes"]
    yield (
        f"Stages alone over a {size / MIB:,.0f} MiB pg_dump -Fc -Z0 file, {st['chunks']:,} "
        f"chunks (mean {size / st['chunks'] / 1024:.1f} KiB), others used "
        f"{st['background_cores']:.2f} cores:"
    )
    yield ""
    yield "| stage | s | MiB/s |"
    yield "|---|--:|--:|"
    for name, value in st["seconds"].items():
        work = 2 * size if "x2" in name else size
        yield f"| {name} | {value:.2f} | {work / MIB / value:,.0f} |"
    yield ""
    yield "| zstd level (same chunks) | compressed MiB | share of the dump |"
    yield "|---|--:|--:|"
    for level, n in st["compressed_bytes_by_level"].items():
        yield f"| {level} | {n / MIB:,.1f} | {n / size:.3f} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.logical_bench",
        description="Logical backups of the sample ERP database: respaldo vs pg_dump/pg_restore.",
    )
    add_sample_arguments(parser, 1.0)
    add_common_arguments(
        parser,
        workdir=Path("/tmp/lbench"),
        workdir_help="cluster, repositories, dumps",
        results=RESULTS,
    )
    parser.add_argument(
        "--chunk-avg",
        type=int,
        default=16 * 1024,
        help="average chunk size in bytes; min is avg/4, max avg*4 (16384)",
    )
    parser.add_argument(
        "--compression-level", type=int, default=1, help="zstd level (1, respaldo's default)"
    )
    parser.add_argument(
        "--sweep",
        type=parse_sweep,
        action="append",
        default=[],
        metavar="AVG[:LEVEL]",
        help="another repository with these chunk sizes / zstd level, backed up at the same "
        "states (repeatable)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of (a), (b), (c), (f); the fastest is kept (1)"
    )
    parser.add_argument("--skip-restore", action="store_true", help="skip the restores (f)")
    parser.add_argument(
        "--restore-pairs",
        type=int,
        default=0,
        metavar="N",
        help="only this: N pairs of respaldo restore against createdb + pg_restore, for each "
        "--restore-jobs (no day of work, no sweeps)",
    )
    parser.add_argument(
        "--cluster",
        type=Path,
        default=None,
        help="with --restore-pairs: the long-lived database made by bench.bigdb in this "
        "directory, instead of loading one at --scale",
    )
    parser.add_argument(
        "--fc-file",
        type=Path,
        default=None,
        help="with --restore-pairs --cluster: a pg_dump -Fc file of that database, made "
        "earlier, instead of dumping it again (minutes at 1 GB)",
    )
    parser.add_argument(
        "--restore-jobs", type=int, nargs="+", default=[1, 2], help="with --restore-pairs (1 2)"
    )
    parser.add_argument(
        "--baseline-src",
        type=Path,
        default=None,
        help="with --restore-pairs: also restore with the respaldo of this src/ directory "
        "(another checkout's), for the ratio against it",
    )
    parser.add_argument(
        "--stages",
        action="store_true",
        help="also time each step of the write path alone over a -Z0 dump of the database",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also run two unmeasured first backups under py-spy (must be installed)",
    )
    parser.add_argument("--profile-rate", type=int, default=100, help="py-spy samples/s (100)")
    parser.add_argument(
        "--stage-levels",
        type=int,
        nargs="+",
        default=[1, 3, 6],
        help="zstd levels compared on the same chunks with --stages (1 3 6)",
    )
    args = parser.parse_args(argv)
    if args.scale <= 0 or args.repeat < 1:
        parser.error("--scale must be positive and --repeat at least 1")
    for avg, level in [(args.chunk_avg, args.compression_level), *args.sweep]:
        if avg < 256 or avg * 4 > 16 * MIB:
            parser.error(f"chunk average {avg} out of range (256 .. 4 MiB)")
        if level is not None and not 1 <= level <= 22:
            parser.error(f"zstd level {level} out of range (1..22)")

    if args.restore_pairs:
        if args.cluster is not None:  # the scale it was loaded at, for the report
            args.scale = json.loads((args.cluster / "database.json").read_text())["scale"]
        pairs = run_restore_pairs(args, log)
        return finish(pairs, args.json, pairs_table(pairs))
    report = run(args, log)
    tables = [table(report)]
    if "profile" in report:
        tables.append(profile_table(report["profile"]))
    if "stages" in report:
        tables.append(stage_table(report["stages"]))
    return finish(report, args.json, *tables)


if __name__ == "__main__":
    raise SystemExit(main())

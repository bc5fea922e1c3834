"""Physical backups and WAL archiving of the sample ERP: respaldo, pg_basebackup, pgBackRest.

Run::

    .venv/bin/python -m bench.physical_bench --scale 0.2 --workdir /tmp/pbench [--pgbackrest]

It starts a throwaway cluster (:class:`sample.cluster.TempCluster`: ``fsync=off``,
``synchronous_commit=off``, ``shared_buffers=32MB``, plus ``archive_mode=on``) below
``--workdir`` and loads the sample ERP database at ``--scale`` (1.0 is about 1 GB); none of
that is measured. respaldo runs as the server's OS user (as archive_command must), with a
repository made with the default (production) key derivation cost. Then:

(a) ``pg_basebackup -c fast -Ft -D DIR`` (WAL streamed into pg_wal.tar), the reference;
(b) ``pg_basebackup -c fast -Ft -X fetch -D - > /dev/null``: the floor for respaldo,
    which reads exactly that stream;
(c) ``respaldo backup erp --type incremental`` into a new repository (and pgBackRest
    ``--type=full`` with ``--pgbackrest``, zstd level 3 like respaldo);
(d) one day of ERP work (:func:`sample.day_of_work.day_of_work`), then a second respaldo
    backup (what it stores new, against the first's sealed size), a second
    pg_basebackup, and pgBackRest ``--type=incr``;
(e) ``respaldo wal-push`` per segment, Python start-up and key derivation included, on
    real segments of the cluster (and ``pgbackrest archive-push``); then ``wal-push
    --async`` per call, the background pusher working ahead;
(f) archive lag under ``pgbench -c 4 -j 2``, then under bulk inserts (WAL as fast as
    the machine makes it), each for ``--pgbench-seconds``, with ``archive_command`` =
    ``respaldo wal-push`` and then ``--async``: WAL rate, the largest number of files
    waiting to be archived, and how long the queue took to empty after the load stopped.

With ``--paired N`` it measures only the small-cluster target instead (issue 16: a
physical backup of a small cluster within 1.5x ``pg_basebackup -c fast`` to a directory):
after a first, uncounted respaldo backup, N rounds of ``pg_basebackup -c fast -Ft -D DIR``
then ``respaldo backup erp --type incremental`` (into the repository holding the earlier
ones), each process timed by GNU time (wall, CPU of the process and its children, peak
RSS); the report gives min / median / max of each and of the per-round ratio, with the
load average. ``--profile FILE`` adds one more respaldo backup under cProfile (as the
server's user), its statistics written to FILE, and prints the top of it; ``--phases N``
adds N more backups run by :func:`bench.physical_phases.phases` (as the server's
user, in a process that imports nothing else first), which times each part
of one backup (imports, settings, catalog, the repository and its index, the server's
connections, pg_basebackup's stream through the chunker, the commit, the catalog's
records) in CPU and wall seconds, without a profiler's overhead. E.g.::

    .venv/bin/python -m bench.physical_bench --scale 0.02 --paired 7 --profile /tmp/p.prof

With ``--via-service`` the paired rounds take the backup through one running
``respaldo serve`` instead (where scheduled physical backups run, with no start-up per
backup): ``POST /admin/backups`` then ``GET /admin/jobs/{id}`` every ``--poll`` seconds,
the service's CPU from ``/proc/PID/stat`` (pg_basebackup, its child, included), and
``pg_basebackup -X fetch -D - > /dev/null`` (what respaldo reads) as a floor in each
round; ``--baseline DIR`` then runs a second service of that tree, the two in turn;
``--service-profile FILE`` writes a CPU profile of each job, and ``--phases N`` times each
job by part inside the service (no profiler; process CPU and wall per part) besides N
one-shot backups by part after the rounds (bench/physical_service.py,
bench/serve_profiled.py)::

    .venv/bin/python -m bench.physical_bench --scale 0.02 --paired 9 --via-service \
        --baseline /tmp/base

Wall times on a shared machine are noisy: the load average is recorded with each
figure. Results go to stdout as Markdown and to ``bench/results/physical.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import pwd
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sample import generate
from sample.cluster import TempCluster
from sample.day_of_work import day_of_work
from tests.configs import local_config

RESULTS = Path(__file__).resolve().parent / "results" / "physical.json"
PASSPHRASE = "respaldo physical benchmark passphrase"  # noqa: S105 (a throwaway repository)
OS_USER = "postgres"
DB = "erp"
MIB = 1024 * 1024
SEED = 20250630


def load_average() -> float:
    return os.getloadavg()[0]


def du(path: Path) -> int:
    """Bytes of the files below ``path``."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def as_server(argv: Sequence[str]) -> list[str]:
    return ["runuser", "-u", OS_USER, "--", *argv] if os.geteuid() == 0 else list(argv)


def chown_tree(path: Path) -> None:
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam(OS_USER)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in (*dirnames, *filenames):
            os.lchown(Path(dirpath, name), entry.pw_uid, entry.pw_gid)


def server_respaldo() -> str:
    """The environment's ``respaldo``, which the server's user must be able to run (make
    setup and make install build it with Debian's python3 for that reason)."""
    script = Path(sys.executable).with_name("respaldo")
    probe = subprocess.run(as_server([str(script), "--help"]), capture_output=True, check=False)
    if probe.returncode != 0:
        raise SystemExit(f"the server's user cannot run {script}: rebuild it with make setup")
    return str(script)


@dataclass
class Timed:
    seconds: float
    stdout: str
    stderr: str
    load: float


def timed(argv: Sequence[str], *, env: dict[str, str] | None = None, stdout: Any = None) -> Timed:
    load = load_average()
    started = time.monotonic()
    done = subprocess.run(
        list(argv),
        env=env,
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-3000:]}")
    return Timed(seconds, done.stdout or "", done.stderr, load)


@dataclass
class Bench:
    args: argparse.Namespace
    workdir: Path
    cluster: TempCluster
    base: Path
    config: Path
    respaldo: str
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def pg_env(self) -> dict[str, str]:
        return {**os.environ, **self.cluster.libpq_env(DB)}

    def run_respaldo(self, *args: str) -> Timed:
        return timed(as_server([self.respaldo, "--config", str(self.config), *args]))

    def set_archive_command(self, command: str) -> None:
        self.cluster.execute(f"ALTER SYSTEM SET archive_command = '{command}'")
        self.cluster.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)

    def sql(self, query: str) -> Any:
        return self.cluster.scalar(query, dbname=DB)


def write_config(base: Path, cluster: TempCluster, passphrase: str) -> Path:
    """The benchmark's respaldo configuration in ``base``: one local repository, a
    SQLite catalog, and the database ``DB`` of ``cluster`` (secrets in 0600 files)."""
    passfile = base / "passphrase"
    passfile.write_text(passphrase + "\n")
    passfile.chmod(0o600)
    dbpass = base / "db.pass"
    dbpass.write_text(cluster.password.get_secret_value() + "\n")
    dbpass.chmod(0o600)
    return local_config(
        base,
        f"""
[[databases]]
name = "{DB}"
dsn = "postgresql://{cluster.superuser}@{cluster.host}:{cluster.port}/{DB}"
password_file = "{dbpass}"
""",
        settings=f'passphrase_file = "{passfile}"',
    )


def setup(args: argparse.Namespace) -> Bench:
    workdir = Path(args.workdir).absolute()
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    base = workdir / "respaldo"
    base.mkdir()
    cluster = TempCluster.create(
        base_dir=workdir,
        settings={
            "archive_mode": "on",
            "archive_command": "/bin/true",
            "max_wal_size": "2GB",
        },
    )
    respaldo = server_respaldo()
    config = write_config(base, cluster, PASSPHRASE)
    chown_tree(base)
    bench = Bench(args, workdir, cluster, base, config, respaldo)
    bench.run_respaldo("init")
    cluster.execute(f"CREATE DATABASE {DB}")
    print(f"loading the sample ERP at scale {args.scale} ...", file=sys.stderr)
    generate.load(cluster.conninfo_kwargs(DB), args.scale, SEED)
    cluster.execute("VACUUM ANALYZE", dbname=DB)
    cluster.execute("CHECKPOINT")
    bench.results["database_bytes"] = int(bench.sql(f"SELECT pg_database_size('{DB}')"))
    return bench


# --- backups ---------------------------------------------------------------------------------


def pg_basebackup(bench: Bench, label: str) -> dict[str, Any]:
    target = bench.workdir / f"pg_basebackup-{label}"
    bindir = bench.cluster.bindir
    t = timed(
        [str(bindir / "pg_basebackup"), "-c", "fast", "-Ft", "-D", str(target), "--no-password"],
        env=bench.pg_env,
    )
    size = du(target)
    shutil.rmtree(target)
    return {"seconds": t.seconds, "bytes": size, "load": t.load}


# The file checksums respaldo asks the server for (respaldo.postgres.basebackup's
# MANIFEST_CHECKSUMS; SHA256 before session 7), so that the floor is the stream it reads.
FLOOR_CHECKSUMS = "CRC32C"


def pg_basebackup_floor(bench: Bench) -> dict[str, Any]:
    bindir = bench.cluster.bindir
    with Path(os.devnull).open("wb") as null:
        t = timed(
            [
                str(bindir / "pg_basebackup"),
                "-c",
                "fast",
                "-Ft",
                "-X",
                "fetch",
                "-D",
                "-",
                f"--manifest-checksums={FLOOR_CHECKSUMS}",
                "--no-password",
            ],
            env=bench.pg_env,
            stdout=null,
        )
    return {"seconds": t.seconds, "load": t.load}


def respaldo_backup(bench: Bench) -> dict[str, Any]:
    t = bench.run_respaldo("backup", DB, "--type", "incremental", "--json")
    record = json.loads(t.stdout)
    return {
        "seconds": t.seconds,
        "load": t.load,
        "id": record["id"],
        "size_bytes": record["sizeBytes"],
        "size_compressed": record["sizeCompressed"],
        "stored_new_bytes": record["storedNewBytes"],
    }


@dataclass
class PgBackRest:
    bench: Bench
    home: Path

    @property
    def conf(self) -> Path:
        return self.home / "pgbackrest.conf"

    def command(self, *args: str) -> list[str]:
        return ["pgbackrest", f"--config={self.conf}", f"--stanza={DB}", *args]

    def run(self, *args: str) -> Timed:
        password = self.bench.cluster.password.get_secret_value()
        return timed(as_server(["env", f"PGPASSWORD={password}", *self.command(*args)]))

    def repo_bytes(self) -> int:
        return du(self.home / "repo" / "backup")


def pgbackrest_setup(bench: Bench) -> PgBackRest | None:
    if shutil.which("pgbackrest") is None:
        print("installing pgbackrest (Debian package) ...", file=sys.stderr)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "pgbackrest"],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            capture_output=True,
            check=False,
        )
    if shutil.which("pgbackrest") is None:
        print("pgbackrest is not available: skipped", file=sys.stderr)
        return None
    home = bench.workdir / "pgbackrest"
    for sub in ("repo", "log", "lock", "spool"):
        (home / sub).mkdir(parents=True)
    cluster = bench.cluster
    (home / "pgbackrest.conf").write_text(
        f"""[global]
repo1-path={home / "repo"}
repo1-retention-full=10
start-fast=y
compress-type=zst
compress-level=3
process-max=2
log-level-console=warn
log-level-file=off
lock-path={home / "lock"}
log-path={home / "log"}
spool-path={home / "spool"}

[{DB}]
pg1-path={cluster.datadir}
pg1-port={cluster.port}
pg1-socket-path={cluster.socket_dir}
pg1-user={cluster.superuser}
"""
    )
    chown_tree(home)
    backrest = PgBackRest(bench, home)
    backrest.run("stanza-create")
    return backrest


def pgbackrest_backup(backrest: PgBackRest, kind: str) -> dict[str, Any]:
    bench = backrest.bench
    push = " ".join(backrest.command("archive-push", "%p"))
    bench.set_archive_command(push)
    before = backrest.repo_bytes()
    try:
        t = backrest.run(f"--type={kind}", "backup")
    finally:
        bench.set_archive_command("/bin/true")
    return {
        "seconds": t.seconds,
        "load": t.load,
        "stored_new_bytes": backrest.repo_bytes() - before,
    }


# --- WAL ---------------------------------------------------------------------------------------


def collect_segments(bench: Bench, count: int) -> Path:
    """``count`` real segments of the cluster, copied out by archive_command as it closes them."""
    spool = bench.workdir / "segments"
    (spool / "archive_status").mkdir(parents=True)
    chown_tree(spool)
    bench.set_archive_command(f"cp %p {spool}/%f")
    bench.cluster.execute("CREATE TABLE IF NOT EXISTS wal_filler (v text)", dbname=DB)
    wanted: list[str] = []
    for _ in range(count):
        bench.cluster.execute(
            "INSERT INTO wal_filler SELECT md5(g::text) || repeat('x', 300)"
            " FROM generate_series(1, 25000) g",
            dbname=DB,
        )
        wanted.append(str(bench.sql("SELECT pg_walfile_name(pg_switch_wal())")))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not all((spool / s).exists() for s in wanted):
        time.sleep(0.2)
    bench.set_archive_command("/bin/true")
    for name in wanted:
        (spool / "archive_status" / f"{name}.ready").touch()
    chown_tree(spool)
    return spool


def wal_push_costs(bench: Bench, spool: Path, backrest: PgBackRest | None) -> dict[str, Any]:
    names = sorted(p.name for p in spool.iterdir() if p.is_file())
    sync = [bench.run_respaldo("wal-push", str(spool / n)).seconds for n in names]
    out: dict[str, Any] = {
        "segments": len(names),
        "segment_bytes": (spool / names[0]).stat().st_size,
        "sync_seconds": sync,
        "load": load_average(),
    }
    # Same segments again: "already archived" (a retried push) costs a read and a compare.
    out["again_seconds"] = [bench.run_respaldo("wal-push", str(spool / names[0])).seconds]
    # Async on a copy of the queue the pusher has not seen: the first call starts the pusher.
    async_dir = bench.workdir / "segments-async"
    shutil.copytree(spool, async_dir)
    chown_tree(async_dir)
    respool = bench.base / "spool-bench"
    calls = []
    for name in names:
        calls.append(
            bench.run_respaldo(
                "wal-push", "--async", "--spool", str(respool), str(async_dir / name)
            ).seconds
        )
        (async_dir / "archive_status" / f"{name}.ready").unlink()
    out["async_seconds"] = calls
    if backrest is not None:
        backrest_times = [backrest.run("archive-push", str(spool / n)).seconds for n in names]
        out["pgbackrest_seconds"] = backrest_times
    return out


def pgbench_lag(bench: Bench, mode: str, workload: str) -> dict[str, Any]:
    """Archive lag while the server writes, with archive_command = wal-push (mode sync or
    async). ``workload``: ``pgbench`` (-c 4 -j 2, TPC-B-like) or ``bulk`` (INSERT … SELECT
    of 200,000 rows at a time: WAL as fast as this machine makes it)."""
    cluster = bench.cluster
    cluster.execute("CHECKPOINT")  # both modes start with the same full-page-write burst
    extra = f" --async --spool {bench.base / 'spool-pgbench'}" if mode == "async" else ""
    bench.set_archive_command(f"{bench.respaldo} --config {bench.config} wal-push{extra} %p")
    status = cluster.datadir / "pg_wal" / "archive_status"

    def waiting() -> int:
        return sum(1 for p in status.iterdir() if p.name.endswith(".ready"))

    start_lsn = bench.sql("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(waiting())
            stop.wait(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    seconds = bench.args.pgbench_seconds
    load = load_average()
    tps = "-"
    if workload == "pgbench":
        done = subprocess.run(
            [
                str(cluster.bindir / "pgbench"),
                "-c",
                "4",
                "-j",
                "2",
                "-T",
                str(seconds),
                "-n",
                "--no-vacuum",
                "bench",
            ],
            env={**os.environ, **cluster.libpq_env("bench")},
            capture_output=True,
            text=True,
            check=False,
        )
        tps = next(
            (
                line.split("=")[1].split("(")[0].strip()
                for line in done.stdout.splitlines()
                if line.startswith("tps")
            ),
            "?",
        )
    else:
        ends = time.monotonic() + seconds
        cluster.execute("CREATE TABLE IF NOT EXISTS bulk (v text)", dbname="bench")
        while time.monotonic() < ends:
            cluster.execute(
                "INSERT INTO bulk SELECT md5(g::text) || repeat('y', 200)"
                " FROM generate_series(1, 200000) g",
                dbname="bench",
            )
        cluster.execute("TRUNCATE bulk", dbname="bench")
    end_lsn = bench.sql("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
    cluster.execute("SELECT pg_switch_wal()")
    at_end = waiting()
    drain_started = time.monotonic()
    while waiting() and time.monotonic() - drain_started < 300:
        time.sleep(0.5)
    drained = time.monotonic() - drain_started
    stop.set()
    sampler.join()
    wal = int(end_lsn) - int(start_lsn)
    failed = cluster.scalar("SELECT failed_count FROM pg_stat_archiver")
    return {
        "mode": mode,
        "workload": workload,
        "seconds": seconds,
        "tps": tps,
        "wal_bytes": wal,
        "wal_mib_per_s": wal / MIB / seconds,
        "max_waiting": max(samples, default=0),
        "waiting_at_end": at_end,
        "drain_seconds": drained,
        "archiver_failures": int(failed or 0),
        "load": load,
    }


# --- the small-cluster target, paired ----------------------------------------------------------

TIME = "/usr/bin/time"  # GNU time: CPU of the process and the children it waited for


def gnu_timed(
    argv: Sequence[str], scratch: Path, env: dict[str, str] | None = None
) -> dict[str, float]:
    """One process, timed by GNU time (its figures go through the file ``scratch``)."""
    load = load_average()
    started = time.monotonic()
    done = subprocess.run(
        [TIME, "-f", "%U %S %M", "-o", str(scratch), *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr[-3000:]}")
    user, system, rss_kib = scratch.read_text().split()[-3:]
    return {
        "seconds": seconds,
        "cpu_seconds": float(user) + float(system),
        "peak_rss": int(rss_kib) * 1024,
        "load": load,
    }


def paired_small_cluster(bench: Bench, rounds: int, baseline: Path | None = None) -> dict[str, Any]:
    """pg_basebackup to a directory, then a respaldo backup, ``rounds`` times in turn;
    with ``baseline`` (the source tree of another version), a backup by that version
    too in each round."""
    bench.run_respaldo("backup", DB, "--type", "incremental")  # the first: not counted
    target = bench.workdir / "pg_basebackup-paired"
    base_argv = [
        str(bench.cluster.bindir / "pg_basebackup"),
        "-c",
        "fast",
        "-Ft",
        "-D",
        str(target),
        "--no-password",
    ]
    respaldo_argv = as_server(
        [bench.respaldo, "--config", str(bench.config), "backup", DB, "--type", "incremental"]
    )
    baseline_argv = None
    if baseline is not None:
        src = baseline.absolute() / "src"
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(src)], check=True)
        baseline_argv = as_server(
            [
                "env",
                f"PYTHONPATH={src}",
                sys.executable,
                "-c",
                "from respaldo.cli.entry import run; run()",
                *respaldo_argv[respaldo_argv.index(bench.respaldo) + 1 :],
            ]
        )
    pairs = []
    for _ in range(rounds):
        scratch = bench.workdir / "time.out"
        base = gnu_timed(base_argv, scratch, env=bench.pg_env)
        shutil.rmtree(target)
        pair = {"pg_basebackup": base, "respaldo": gnu_timed(respaldo_argv, scratch)}
        if baseline_argv is not None:
            pair["baseline"] = gnu_timed(baseline_argv, scratch)
        pairs.append(pair)
    return {"rounds": rounds, "pairs": pairs}


@dataclass
class Service:
    """One ``respaldo serve`` of the bench: its program, configuration and token."""

    name: str
    program: list[str]
    config: Path
    port: int
    token: str


def service_of(bench: Bench, name: str, src: Path | None) -> Service:
    """The service of this tree (``src`` None), or of the source tree ``src`` with its own
    configuration, catalog and repository below ``workdir/name`` (two services cannot
    share a catalog: the second refuses to start)."""
    from bench import physical_service as svc

    if src is None:
        program, config = [bench.respaldo], bench.config
    else:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(src)], check=True)
        program = [
            "env",
            f"PYTHONPATH={src}",
            sys.executable,
            "-c",
            "from respaldo.cli.entry import run; run()",
        ]
        base = bench.workdir / name
        base.mkdir()
        config = write_config(base, bench.cluster, PASSPHRASE)
        chown_tree(base)
        timed(as_server([*program, "--config", str(config), "init"]))
    port = svc.free_port()
    config = svc.service_config(config, port)
    chown_tree(config.parent)
    return Service(name, program, config, port, svc.create_token(program, config, as_server))


def paired_via_service(
    bench: Bench, rounds: int, poll: float, baseline: Path | None
) -> dict[str, Any]:
    """The paired rounds with the backup taken by one running ``respaldo serve`` through
    its API (bench/physical_service.py); the first backup is not counted (it also warms the
    service's lazy imports). With ``baseline`` (a source tree), a second service of that
    tree takes a backup in each round too, the two in turn first."""
    from bench import physical_service as svc

    services = [service_of(bench, "service", None)]
    if baseline is not None:
        services.append(service_of(bench, "baseline", baseline.absolute() / "src"))
    target = bench.workdir / "pg_basebackup-paired"
    base_argv = [
        str(bench.cluster.bindir / "pg_basebackup"),
        "-c",
        "fast",
        "-Ft",
        "-D",
        str(target),
        "--no-password",
    ]
    # What respaldo runs, its output thrown away (gnu_timed's stdout is /dev/null): the
    # floor of the service's backup.
    floor_argv = [
        str(bench.cluster.bindir / "pg_basebackup"),
        *("-c", "fast", "-Ft", "-X", "fetch", "-D", "-"),
        *(f"--manifest-checksums={FLOOR_CHECKSUMS}", "--no-password"),
    ]
    cli_argv = as_server(
        [bench.respaldo, "--config", str(bench.config), "backup", DB, "--type", "incremental"]
    )
    prefix = bench.base / "job.prof"  # written by the server's user, copied out at the end
    env = {}
    if bench.args.service_profile:
        env["RESPALDO_BENCH_PROFILE"] = str(prefix)
    if bench.args.phases:
        env["RESPALDO_BENCH_PHASES"] = str(bench.base / "job.phases")
    with contextlib.ExitStack() as stack:
        running = []
        for service in services:
            process = stack.enter_context(
                svc.serving(
                    service.program,
                    service.config,
                    OS_USER,
                    (env or None) if service.name == "service" else None,
                )
            )
            svc.wait_until_answering(process, service.port, service.config.with_name("serve.log"))
            client = svc.Client(service.port, service.token)
            svc.service_backup(client, process.pid, DB, poll)  # the first: not counted
            running.append((service.name, client, process.pid))
        pairs = []
        for i in range(rounds):
            scratch = bench.workdir / "time.out"
            pair: dict[str, dict[str, Any]] = {
                "pg_basebackup": gnu_timed(base_argv, scratch, env=bench.pg_env)
            }
            shutil.rmtree(target)
            pair["floor"] = gnu_timed(floor_argv, scratch, env=bench.pg_env)
            for name, client, pid in running[i % 2 :] + running[: i % 2]:
                pair[name] = svc.service_backup(client, pid, DB, poll)
            if bench.args.with_cli:  # the one-shot command, beside the running service
                pair["cli"] = gnu_timed(cli_argv, scratch)
            pairs.append(pair)
        _, client, pid = running[0]
        get_cpu = svc.get_cost(client, pid, pairs[-1]["service"]["job_id"])
    if bench.args.service_profile is not None:
        for i, path in enumerate(
            sorted(bench.base.glob("job.prof.*"), key=lambda p: int(p.suffix[1:]))
        ):
            shutil.copyfile(path, f"{bench.args.service_profile}.{i}")
    result = {"rounds": rounds, "poll_seconds": poll, "get_cpu_seconds": get_cpu, "pairs": pairs}
    if bench.args.phases:
        # The service's jobs by part, the first (uncounted, it warms the imports) left out.
        counted = {str(p["service"]["job_id"]) for p in pairs}
        result["job_phases"] = [
            json.loads(path.read_text())
            for path in sorted(bench.base.glob("job.phases.*"))
            if path.suffix[1:] in counted
        ]
    return result


def service_report(results: dict[str, Any]) -> str:
    r = results
    s = r["service"]
    pairs = s["pairs"]
    loads = [p["pg_basebackup"]["load"] for p in pairs]
    base = [p["pg_basebackup"] for p in pairs]
    svc = [p["service"] for p in pairs]

    def ratio(mine: str, theirs: str) -> list[float]:
        return [x[mine] / max(b[theirs], 0.01) for x, b in zip(svc, base, strict=True)]

    def cli(key: str) -> list[float]:
        return [p["cli"][key] / max(p["pg_basebackup"][key], 0.01) for p in pairs]

    def versus(key: str) -> list[float]:
        return [p["service"][key] / max(p["baseline"][key], 0.01) for p in pairs]

    net = [
        (x["cpu_seconds"] - x["polls"] * s["get_cpu_seconds"]) / max(b["cpu_seconds"], 0.01)
        for x, b in zip(svc, base, strict=True)
    ]

    lines = [
        f"Sample ERP at scale {r['scale']}: database {r['database_bytes'] / MIB:.0f} MiB; "
        f"{r['machine']}; {len(pairs)} paired rounds through one `respaldo serve`, load "
        f"average {min(loads):.1f}-{max(loads):.1f}; job polled every {s['poll_seconds']} s "
        "(wall overstates the job by at most that plus one GET). min / median / max:",
        "",
        "| | wall s | job s | CPU s |",
        "|---|---|---|---|",
        f"| `pg_basebackup -c fast -Ft -D DIR` | {_mmm([b['seconds'] for b in base], '{:.2f}')} "
        f"| - | {_mmm([b['cpu_seconds'] for b in base], '{:.2f}')} |",
        f"| floor: `pg_basebackup -c fast -Ft -X fetch -D - --manifest-checksums={FLOOR_CHECKSUMS} "
        f"> /dev/null` | {_mmm([p['floor']['seconds'] for p in pairs], '{:.2f}')} | - | "
        f"{_mmm([p['floor']['cpu_seconds'] for p in pairs], '{:.2f}')} |",
        f"| POST /admin/backups (incremental), to the job's end | "
        f"{_mmm([x['seconds'] for x in svc], '{:.2f}')} | "
        f"{_mmm([x['job_seconds'] for x in svc], '{:.2f}')} | "
        f"{_mmm([x['cpu_seconds'] for x in svc], '{:.2f}')} |",
        *(
            [
                f"| `respaldo backup erp --type incremental` (one-shot CLI) | "
                f"{_mmm([p['cli']['seconds'] for p in pairs], '{:.2f}')} | - | "
                f"{_mmm([p['cli']['cpu_seconds'] for p in pairs], '{:.2f}')} |",
            ]
            if "cli" in pairs[0]
            else []
        ),
        *(
            [
                f"| the same, by the baseline tree's service | "
                f"{_mmm([p['baseline']['seconds'] for p in pairs], '{:.2f}')} | "
                f"{_mmm([p['baseline']['job_seconds'] for p in pairs], '{:.2f}')} | "
                f"{_mmm([p['baseline']['cpu_seconds'] for p in pairs], '{:.2f}')} |",
                "",
                "per round, this tree / baseline: job "
                f"{_mmm(versus('job_seconds'), '{:.2f}')}; CPU "
                f"{_mmm(versus('cpu_seconds'), '{:.2f}')}; the baseline's job / "
                "pg_basebackup "
                + _mmm(
                    [
                        p["baseline"]["job_seconds"] / max(p["pg_basebackup"]["seconds"], 0.01)
                        for p in pairs
                    ],
                    "{:.2f}",
                ),
            ]
            if "baseline" in pairs[0]
            else []
        ),
        "",
        "per round, service / pg_basebackup: wall "
        f"{_mmm(ratio('seconds', 'seconds'), '{:.2f}')}"
        f"; job {_mmm(ratio('job_seconds', 'seconds'), '{:.2f}')}"
        f"; CPU {_mmm(ratio('cpu_seconds', 'cpu_seconds'), '{:.2f}')}"
        "; floor / pg_basebackup wall "
        f"{_mmm([p['floor']['seconds'] / p['pg_basebackup']['seconds'] for p in pairs], '{:.2f}')}"
        + (
            f"; one-shot CLI / pg_basebackup wall {_mmm(cli('seconds'), '{:.2f}')}"
            f", CPU {_mmm(cli('cpu_seconds'), '{:.2f}')}"
            if "cli" in pairs[0]
            else ""
        )
        + f"; GETs per backup {_mmm([float(x['polls']) for x in svc], '{:.0f}')}, "
        f"{s['get_cpu_seconds'] * 1000:.1f} CPU ms each (50 GETs of an ended job); service CPU "
        "net of the GETs / pg_basebackup's: "
        f"{_mmm(net, '{:.2f}')}",
    ]
    if s.get("job_phases"):
        lines += ["", service_phases_report(s["job_phases"])]
    return "\n".join(lines)


def service_phases_report(jobs: list[dict[str, list[float]]]) -> str:
    """The service's jobs by part (bench/serve_profiled.py): median process CPU and wall
    seconds of each part over the counted jobs; parts nest (the job holds the rest)."""
    import statistics

    lines = [
        f"The service's jobs by part, {len(jobs)} jobs, medians (process CPU s, all "
        "threads; wall s):",
        "",
        "| part | CPU s | wall s |",
        "|---|---|---|",
    ]
    for name in jobs[0]:
        cpu = statistics.median(j[name][0] for j in jobs if name in j)
        wall = statistics.median(j[name][1] for j in jobs if name in j)
        lines.append(f"| {name.strip()} | {cpu:.3f} | {wall:.3f} |")
    return "\n".join(lines)


def profile_backup(bench: Bench, out: Path) -> str:
    """One more respaldo backup under cProfile, as the server's user; the top of it."""
    import io
    import pstats

    spot = bench.base / "backup.prof"
    timed(
        as_server(
            [
                sys.executable,
                "-m",
                "cProfile",
                "-o",
                str(spot),
                bench.respaldo,
                "--config",
                str(bench.config),
                "backup",
                DB,
                "--type",
                "incremental",
            ]
        )
    )
    shutil.copyfile(spot, out)
    text = io.StringIO()
    pstats.Stats(str(out), stream=text).sort_stats("cumulative").print_stats(40)
    return text.getvalue()


def run_phases(bench: Bench, runs: int) -> list[list[tuple[str, float, float]]]:
    """:func:`phases` in a process of its own as the server's user, ``runs`` times."""
    code = (
        "import json, sys; from bench.physical_phases import phases; "
        "print(json.dumps(phases(sys.argv[1], sys.argv[2])))"
    )
    root = str(Path(__file__).resolve().parent.parent)
    out = []
    for _ in range(runs):
        t = timed(
            as_server(
                ["env", f"PYTHONPATH={root}", sys.executable, "-c", code, str(bench.config), DB]
            )
        )
        out.append([tuple(x) for x in json.loads(t.stdout.splitlines()[-1])])
    return out


def phases_report(runs: list[list[tuple[str, float, float]]]) -> str:
    import statistics

    lines = [
        f"One backup by part, {len(runs)} runs, medians (CPU s, wall s):",
        "",
        "| part | CPU s | wall s |",
        "|---|---|---|",
    ]
    for i, (name, _, _) in enumerate(runs[0]):
        cpu = statistics.median(r[i][1] for r in runs)
        wall = statistics.median(r[i][2] for r in runs)
        lines.append(f"| {name} | {cpu:.3f} | {wall:.3f} |")
    return "\n".join(lines)


def _mmm(values: list[float], fmt: str) -> str:
    import statistics

    return " / ".join(fmt.format(v) for v in (min(values), statistics.median(values), max(values)))


def paired_report(results: dict[str, Any]) -> str:
    r = results
    pairs = r["paired"]["pairs"]
    loads = [p["pg_basebackup"]["load"] for p in pairs]
    lines = [
        f"Sample ERP at scale {r['scale']}: database {r['database_bytes'] / MIB:.0f} MiB; "
        f"{r['machine']}; {len(pairs)} paired rounds, load average "
        f"{min(loads):.1f}-{max(loads):.1f}. min / median / max:",
        "",
        "| | wall s | CPU s | peak RSS MiB |",
        "|---|---|---|---|",
    ]
    for name, key in (
        ("`pg_basebackup -c fast -Ft -D DIR`", "pg_basebackup"),
        ("`respaldo backup erp --type incremental`", "respaldo"),
        ("the same, by the baseline tree", "baseline"),
    ):
        if key not in pairs[0]:
            continue
        lines.append(
            f"| {name} | {_mmm([p[key]['seconds'] for p in pairs], '{:.2f}')} | "
            f"{_mmm([p[key]['cpu_seconds'] for p in pairs], '{:.2f}')} | "
            f"{_mmm([p[key]['peak_rss'] / MIB for p in pairs], '{:.0f}')} |"
        )
    ratios = [p["respaldo"]["seconds"] / p["pg_basebackup"]["seconds"] for p in pairs]
    lines += ["", f"respaldo / pg_basebackup wall time, per round: {_mmm(ratios, '{:.2f}')}"]
    if "baseline" in pairs[0]:
        before = [p["baseline"]["seconds"] / p["pg_basebackup"]["seconds"] for p in pairs]
        cpu = [p["respaldo"]["cpu_seconds"] / p["baseline"]["cpu_seconds"] for p in pairs]
        lines += [
            f"baseline / pg_basebackup wall time, per round: {_mmm(before, '{:.2f}')}",
            f"respaldo / baseline CPU, per round: {_mmm(cpu, '{:.2f}')}",
        ]
    return "\n".join(lines)


# --- report -----------------------------------------------------------------------------------


def report(results: dict[str, Any]) -> str:
    r = results
    lines = [
        f"Sample ERP at scale {r['scale']}: database {r['database_bytes'] / MIB:.0f} MiB; "
        f"{r['machine']}.",
        "",
        "| backup | wall s | stored MiB | new MiB |",
        "|---|---|---|---|",
    ]
    b1, b2 = r["pg_basebackup_1"], r["pg_basebackup_2"]
    lines.append(
        f"| pg_basebackup -c fast -Ft | {b1['seconds']:.1f} | {b1['bytes'] / MIB:.0f} | - |"
    )
    lines.append(
        f"| pg_basebackup -Ft -X fetch -D - > /dev/null | {r['floor']['seconds']:.1f} | - | - |"
    )
    for label, key in (("first", "respaldo_1"), ("after a day of work", "respaldo_2")):
        x = r[key]
        lines.append(
            f"| respaldo, {label} | {x['seconds']:.1f} | {x['size_compressed'] / MIB:.1f} | "
            f"{x['stored_new_bytes'] / MIB:.1f} |"
        )
    if "pgbackrest_full" in r:
        f, i = r["pgbackrest_full"], r["pgbackrest_incr"]
        lines.append(
            f"| pgBackRest full (zst 3) | {f['seconds']:.1f} | - | "
            f"{f['stored_new_bytes'] / MIB:.1f} |"
        )
        lines.append(
            f"| pgBackRest incr after a day of work | {i['seconds']:.1f} | - | "
            f"{i['stored_new_bytes'] / MIB:.1f} |"
        )
    lines.append(
        f"| pg_basebackup, after a day of work | {b2['seconds']:.1f} | "
        f"{b2['bytes'] / MIB:.0f} | - |"
    )
    lines.append("")
    lines.append(
        f"respaldo CLI start-up ('respaldo list'): {r['cli_startup']:.2f} s; "
        f"respaldo / pg_basebackup wall time: {r['respaldo_1']['seconds'] / b1['seconds']:.2f}; "
        f"second backup stored new / first sealed: {r['second_share']:.1%}"
    )
    w = r["wal_push"]
    mean = sum(w["sync_seconds"]) / len(w["sync_seconds"])
    amean = sum(w["async_seconds"][1:]) / max(1, len(w["async_seconds"]) - 1)
    lines += [
        "",
        f"wal-push per {w['segment_bytes'] // MIB} MiB segment (process start-up and key "
        f"derivation included): {mean:.2f} s sync (mean of {w['segments']}); "
        f"{amean:.2f} s per call with --async once the pusher runs "
        f"(first call {w['async_seconds'][0]:.2f} s); already archived: "
        f"{w['again_seconds'][0]:.2f} s"
        + (
            f"; pgbackrest archive-push: "
            f"{sum(w['pgbackrest_seconds']) / len(w['pgbackrest_seconds']):.2f} s"
            if "pgbackrest_seconds" in w
            else ""
        ),
        "",
        "| load | archive_command | tps | WAL MiB/s | most files waiting "
        "| waiting at end | drain s |",
        "|---|---|---|---|---|---|---|",
    ]
    for lag in r["pgbench"]:
        tps = f"{float(lag['tps']):.0f}" if lag["tps"] not in ("-", "?") else lag["tps"]
        load = "pgbench -c 4 -j 2" if lag["workload"] == "pgbench" else "bulk INSERT"
        lines.append(
            f"| {load} | wal-push{' --async' if lag['mode'] == 'async' else ''} | {tps} | "
            f"{lag['wal_mib_per_s']:.1f} | {lag['max_waiting']} | {lag['waiting_at_end']} | "
            f"{lag['drain_seconds']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--scale", type=float, default=0.2)
    parser.add_argument("--workdir", default="/tmp/respaldo-physical-bench")
    parser.add_argument("--pgbackrest", action="store_true", help="Also measure pgBackRest.")
    parser.add_argument("--segments", type=int, default=6)
    parser.add_argument("--pgbench-seconds", type=int, default=30)
    parser.add_argument("--pgbench-scale", type=int, default=20)
    parser.add_argument(
        "--paired",
        type=int,
        default=0,
        help="measure only the small-cluster target: N paired rounds (see above)",
    )
    parser.add_argument("--profile", type=Path, help="with --paired: cProfile one more backup")
    parser.add_argument(
        "--phases",
        type=int,
        default=0,
        help="with --paired: N more one-shot backups timed by part; with --via-service also "
        "each of the service's jobs by part",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="with --paired: the source tree of another version (git archive of a commit), "
        "whose backup runs in each round too",
    )
    parser.add_argument(
        "--via-service",
        action="store_true",
        help="with --paired: the backups through one running respaldo serve's API",
    )
    parser.add_argument(
        "--poll", type=float, default=0.05, help="with --via-service: GET the job every S s"
    )
    parser.add_argument(
        "--with-cli",
        action="store_true",
        help="with --via-service: the one-shot respaldo backup in each round too",
    )
    parser.add_argument(
        "--service-profile",
        type=Path,
        help="with --via-service: cProfile each job of the service into FILE.<job id>",
    )
    args = parser.parse_args(argv)
    bench = setup(args)
    r = bench.results
    r.update(
        {
            "scale": args.scale,
            "when": datetime.now(UTC).isoformat(),
            "machine": f"{os.cpu_count()} cores, {platform.platform()}",
        }
    )
    if args.paired:
        try:
            if args.via_service:
                r["service"] = paired_via_service(bench, args.paired, args.poll, args.baseline)
            else:
                r["paired"] = paired_small_cluster(bench, args.paired, args.baseline)
                if args.profile is not None:
                    print(profile_backup(bench, args.profile))
            if args.phases:  # the one-shot command by part (for reference, via the service)
                r["phases"] = run_phases(bench, args.phases)
                print(phases_report(r["phases"]))
                print()
        finally:
            bench.cluster.destroy()
        name = "physical_service.json" if args.via_service else "physical_paired.json"
        out = RESULTS.with_name(name)
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(r, indent=2, default=str) + "\n")
        print(service_report(r) if args.via_service else paired_report(r))
        return 0
    try:
        backrest = pgbackrest_setup(bench) if args.pgbackrest else None
        r["pg_basebackup_1"] = pg_basebackup(bench, "1")
        r["floor"] = pg_basebackup_floor(bench)
        r["cli_startup"] = bench.run_respaldo("list").seconds
        r["respaldo_1"] = respaldo_backup(bench)
        if backrest is not None:
            r["pgbackrest_full"] = pgbackrest_backup(backrest, "full")
        r["day_of_work"] = {
            k: list(v) for k, v in day_of_work(bench.cluster.conninfo_kwargs(DB), SEED, 1).items()
        }
        r["respaldo_2"] = respaldo_backup(bench)
        r["second_share"] = r["respaldo_2"]["stored_new_bytes"] / r["respaldo_1"]["size_compressed"]
        if backrest is not None:
            r["pgbackrest_incr"] = pgbackrest_backup(backrest, "incr")
        r["pg_basebackup_2"] = pg_basebackup(bench, "2")
        spool = collect_segments(bench, args.segments)
        r["wal_push"] = wal_push_costs(bench, spool, backrest)
        bench.cluster.execute("CREATE DATABASE bench")
        timed(
            [
                str(bench.cluster.bindir / "pgbench"),
                "-i",
                "-q",
                "-s",
                str(args.pgbench_scale),
                "bench",
            ],
            env={**os.environ, **bench.cluster.libpq_env("bench")},
        )
        bench.cluster.execute("CHECKPOINT")
        r["pgbench"] = [
            pgbench_lag(bench, mode, workload)
            for workload in ("pgbench", "bulk")
            for mode in ("sync", "async")
        ]
    finally:
        bench.cluster.destroy()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(r, indent=2, default=str) + "\n")
    print(report(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())

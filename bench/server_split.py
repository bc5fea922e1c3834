"""Where the server's CPU goes during a restore: respaldo's against pg_restore's.

Run (on a database made by :mod:`bench.bigdb`, and a ``pg_dump -Fc`` file of it)::

    .venv/bin/python -m bench.server_split --cluster S1 --fc-file FC --rounds 4

``logical_bench --restore-pairs`` reads the server's CPU as one figure (the postmaster
and every child, reaped or alive). This splits it, for ``respaldo restore --jobs N`` of
a ``-Fc`` backup (R) and ``createdb`` + ``pg_restore -j N`` of the ``-Fc`` file (P):

- every statement's CPU, from the server's own ``log_statement_stats`` (``getrusage`` of
  the backend around each statement, COPY's data included), grouped by what the
  statement is (COPY, CREATE INDEX, a key or a foreign key, ``count(*)``, other DDL…);
- every server process's CPU, read from ``/proc`` every 20 ms (a process is grouped by
  its title: a backend, an autovacuum worker, the checkpointer…); a backend's CPU
  outside its statements is its start-up (a first connection to a new database builds
  its caches) and its idle time; an autovacuum worker's is the vacuum and analyze of the
  freshly loaded tables;
- what neither saw: processes that ended between two reads (the last 20 ms or so of
  each, and short connections whole: about 10 ms a connection at 1 GB).

Caveats: ``getrusage`` is the backend's own, so the parallel workers of an index build or
a foreign key's check count as processes, outside any statement; the log is read for the
whole step, so it holds the bench's own row count after ``pg_restore`` (outside P's
measured window, as in :mod:`bench.logical_bench`).

The rounds alternate the order (R P, P R, …), so that an order effect (the state the
previous run's dropped databases leave) shows as a difference between the two orders.

The cluster's logging settings are changed for the run (``ALTER SYSTEM``, reloaded) and
reset at its end. Results go to stdout and to ``bench/results/server_split.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.logical_bench import (
    Bench,
    Runner,
    Setup,
    TreeSampler,
)
from bench.measure import busy_seconds, log, self_cpu

RESULTS = Path(__file__).resolve().parent / "results" / "server_split.json"
TICK = os.sysconf("SC_CLK_TCK")
LOGGING = {
    "log_min_duration_statement": "0",
    "log_statement_stats": "on",
    "log_autovacuum_min_duration": "0",
    "log_checkpoints": "on",
    "log_connections": "on",
    "log_line_prefix": "'%m|%p|%b|%a|%d| '",
}


# --- every server process's CPU, from /proc ----------------------------------------------


def _children(ppid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{ppid}/task/{ppid}/children").read_bytes().split()]
    except OSError:
        return []


def _cpu(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def _title(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return raw.replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None


class ProcSampler:
    """Each child of the postmaster: its title when first seen and its CPU seconds in the
    window (the first reading of a process that existed before the window is its
    baseline)."""

    def __init__(self, postmaster: int, interval: float = 0.02) -> None:
        self.postmaster = postmaster
        self.interval = interval
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.title: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        for pid in _children(postmaster):  # the baseline of those alive already
            cpu = _cpu(pid)
            if cpu is not None:
                self.first[pid] = self.last[pid] = cpu
                self.title[pid] = _title(pid) or "?"

    def _sample(self) -> None:
        for pid in _children(self.postmaster):
            cpu = _cpu(pid)
            if cpu is None:
                continue
            if pid not in self.first:
                self.first[pid] = 0.0  # born in the window: all its time is in it
                self.title[pid] = _title(pid) or "?"
            self.last[pid] = cpu

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> ProcSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def by_process(self) -> dict[int, tuple[str, float]]:
        return {
            pid: (self.title[pid], self.last[pid] - self.first[pid])
            for pid in self.first
            if self.last[pid] - self.first[pid] > 0
        }


def process_kind(title: str) -> str:
    """A process's group, from its title (``postgres: checkpointer``,
    ``postgres: autovacuum worker erp``, ``postgres: postgres pair_a 127.0.0.1(5) COPY``)."""
    t = title.removeprefix("postgres: ")
    for kind in ("autovacuum worker", "autovacuum launcher", "checkpointer", "walwriter"):
        if t.startswith(kind):
            return kind
    if t.startswith(("background writer", "logical replication", "logger", "archiver")):
        return "other background"
    return "backends"


# --- every statement's CPU, from the server log ------------------------------------------

_PREFIX = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \w+)\|(?P<pid>\d+)\|(?P<btype>[^|]*)\|"
    r"(?P<app>[^|]*)\|(?P<db>[^|]*)\| (?P<level>\w+):  (?P<msg>.*)$"
)
_STATS = re.compile(r"(QUERY|PARSE MESSAGE|BIND MESSAGE|EXECUTE MESSAGE) STATISTICS$")
_USAGE = re.compile(r"!\s+([\d.]+) s user, ([\d.]+) s system, ([\d.]+) s elapsed")
_AV_CPU = re.compile(r"CPU: user: ([\d.]+) s, system: ([\d.]+) s, elapsed: ([\d.]+) s")
_AV_WHAT = re.compile(r"automatic (vacuum|analyze) of table \"([^\"]+)\"")
_DURATION = re.compile(r"duration: [\d.]+ ms  (?:statement|execute [^:]*): (?P<sql>.*)", re.S)


def statement_kind(sql: str) -> str:
    s = " ".join(sql.split()).upper()
    if s.startswith("COPY") and "FROM STDIN" in s:
        return "COPY (load)"
    if s.startswith("SELECT COUNT(*)"):
        return "count(*)"
    if s.startswith(("CREATE INDEX", "CREATE UNIQUE INDEX")):
        return "CREATE INDEX"
    if s.startswith("ALTER TABLE") and "FOREIGN KEY" in s:
        return "foreign key"
    if s.startswith("ALTER TABLE") and ("PRIMARY KEY" in s or " UNIQUE " in s):
        return "primary / unique key"
    if s.startswith("ALTER INDEX") and "ATTACH PARTITION" in s:
        return "index attach"
    if s.startswith("CREATE DATABASE"):
        return "CREATE DATABASE"
    if s.startswith("ALTER DATABASE") and "RENAME" in s:
        return "rename"
    if s.startswith("TRUNCATE"):
        return "TRUNCATE"
    if "LO_" in s or "PG_LARGEOBJECT" in s:
        return "large objects"
    if s.startswith(("SELECT PG_CATALOG.SETVAL", "SELECT SETVAL")):
        return "setval"
    if s.startswith(("CREATE", "ALTER", "COMMENT", "GRANT", "REVOKE", "DROP")):
        return "other DDL"
    if s.startswith(("SET ", "RESET", "BEGIN", "COMMIT", "START", "SHOW")):
        return "SET / BEGIN / COMMIT"
    return "other queries"


def parse_log(text: str) -> dict[str, Any]:
    """Statement CPU by kind and by application, autovacuum's by table, checkpoints."""
    by_kind: dict[str, float] = defaultdict(float)
    by_app: dict[str, float] = defaultdict(float)
    count_by_kind: dict[str, int] = defaultdict(int)
    av: dict[str, float] = defaultdict(float)
    av_runs: list[tuple[str, str, float]] = []
    checkpoints = 0
    connections = 0
    cancelled = 0
    by_pid: dict[int, float] = defaultdict(float)
    apps: dict[int, str] = {}
    last_sql: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _PREFIX.match(lines[i])
        i += 1
        if m is None:
            continue
        body = [m["msg"]]
        while i < len(lines) and not _PREFIX.match(lines[i]):
            body.append(lines[i])
            i += 1
        # DETAIL lines come as their own prefixed line: gather the next one too.
        msg = "\n".join(body)
        pid = m["pid"]
        d = _DURATION.match(msg)
        if d:
            last_sql[pid] = d["sql"]
            continue
        if _STATS.match(msg):
            detail = msg
            if i < len(lines):
                n = _PREFIX.match(lines[i])
                if n and n["msg"].startswith("! system usage stats"):
                    detail_lines = [n["msg"]]
                    i += 1
                    while i < len(lines) and not _PREFIX.match(lines[i]):
                        detail_lines.append(lines[i])
                        i += 1
                    detail = "\n".join(detail_lines)
            u = _USAGE.search(detail)
            if u is None:
                continue
            cpu = float(u[1]) + float(u[2])
            # The extended protocol's parse and bind have statistics of their own.
            kind = statement_kind(last_sql.pop(pid, "")) if msg[0] in "QE" else "parse / bind"
            by_kind[kind] += cpu
            by_kind[f"{kind}, system"] += float(u[2])
            count_by_kind[kind] += 1
            by_app[m["app"] or "-"] += cpu
            by_pid[int(pid)] += cpu
            apps[int(pid)] = f"{m['app']}@{m['db']}"
            continue
        if msg.startswith("connection authorized"):
            connections += 1
            continue
        a = _AV_WHAT.search(msg)
        if a:
            c = _AV_CPU.search(msg)
            if c:
                cpu = float(c[1]) + float(c[2])
                av[f"autovacuum {a[1]}"] += cpu
                av_runs.append((a[1], a[2], cpu))
            continue
        if msg.startswith("checkpoint complete"):
            checkpoints += 1
        if msg.startswith("canceling autovacuum task"):
            cancelled += 1  # its work lost, after the statement in its way waited
    return {
        "statements_by_kind": dict(by_kind),
        "statements_count_by_kind": dict(count_by_kind),
        "statements_by_app": dict(by_app),
        "autovacuum_logged": dict(av),
        "autovacuum_runs": av_runs,
        "checkpoints": checkpoints,
        "connections": connections,
        "autovacuum_cancelled": cancelled,
        "statements_by_pid": dict(by_pid),
        "app_by_pid": apps,
    }


# --- the measured runs -------------------------------------------------------------------


class SplitRunner(Runner):
    """:class:`Runner` whose measured window also samples every server process."""

    def __init__(self, base: Runner, postmaster: int) -> None:
        super().__init__(base.quiet_wait, base.server, base.log)
        self.postmaster = postmaster
        self.samples: list[ProcSampler] = []

    def run(self, argv: Any, env: dict[str, str], **kw: Any) -> dict[str, Any]:
        os.sync()
        waited = self.wait_quiet()
        busy0, self0, server0 = busy_seconds(), self_cpu(), self.server.seconds()
        t0 = time.perf_counter()
        with ProcSampler(self.postmaster) as procs:
            proc = subprocess.Popen(
                list(argv), stdout=kw.get("stdout", subprocess.DEVNULL),
                stderr=kw.get("stderr"), env=env,
            )  # fmt: skip
            with TreeSampler(proc.pid):
                _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        server_cpu = self.server.seconds() - server0
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(argv)} failed")
        self.samples.append(procs)
        cpu = usage.ru_utime + usage.ru_stime
        others = busy_seconds() - busy0 - cpu - server_cpu - (self_cpu() - self0)
        return {
            "seconds": wall,
            "cpu_seconds": cpu,
            "sys_seconds": usage.ru_stime,
            "server_cpu_seconds": server_cpu,
            "background_cores": max(0.0, others / wall),
            "waited_for_quiet_seconds": waited,
        }


def split_one(
    bench: Bench, runner: SplitRunner, fn: Callable[[], list[dict[str, Any]]]
) -> dict[str, Any]:
    logfile = bench.cluster.logfile
    start = logfile.stat().st_size
    runner.samples.clear()
    load0 = os.getloadavg()[0]
    parts = fn()
    time.sleep(0.5)  # the log's last lines (it is written by the server as it goes)
    with logfile.open("rb") as fh:
        fh.seek(start)
        text = fh.read().decode(errors="replace")
    procs: dict[str, float] = defaultdict(float)
    seen = 0.0
    backends_n = 0
    per_pid: list[tuple[int, str, float]] = []
    for sampler in runner.samples:
        for pid, (title, cpu) in sampler.by_process().items():
            per_pid.append((pid, title, cpu))
            kind = process_kind(title)
            procs[kind] += cpu
            seen += cpu
            backends_n += kind == "backends"
    server = sum(p["server_cpu_seconds"] for p in parts)
    parsed = parse_log(text)
    statements = sum(v for k, v in parsed["statements_by_kind"].items() if ", system" not in k)
    return {
        "load": load0,
        "wall": sum(p["seconds"] for p in parts),
        "client_cpu": sum(p["cpu_seconds"] for p in parts),
        "server_cpu": server,
        "processes": dict(procs),
        "backends_seen": backends_n,
        "unseen": server - seen,
        "backends_outside_statements": procs.get("backends", 0.0) - statements,
        "processes_by_pid": per_pid,
        "others_cores": max(p["background_cores"] for p in parts),
        **parsed,
    }


def set_logging(bench: Bench, on: bool) -> None:
    for name, value in LOGGING.items():
        if on:
            bench.cluster.execute(f"ALTER SYSTEM SET {name} = {value}")
        else:
            bench.cluster.execute(f"ALTER SYSTEM RESET {name}")
    bench.cluster.execute("SELECT pg_reload_conf()")


def main(argv: list[str] | None = None) -> int:
    from bench.bigdb import attach

    parser = argparse.ArgumentParser(prog="python -m bench.server_split")
    parser.add_argument("--cluster", type=Path, required=True)
    parser.add_argument("--fc-file", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/server_split"))
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--quiet-wait", type=float, default=5)
    parser.add_argument(
        "--src",
        type=Path,
        action="append",
        default=[],
        help="also restore with the respaldo of this src/ directory (repeatable)",
    )
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.keep = True
    cluster = attach(args.cluster)
    bench = Bench(args, cluster, log)
    postmaster = int((cluster.datadir / "postmaster.pid").read_text().split()[0])
    runner = SplitRunner(bench.runner, postmaster)
    bench.runner = runner
    setup = Setup(16 * 1024, 1, args.workdir / "setups" / "main")
    bench.init(setup)
    backup_id = bench.backup(setup, "first")["backup_id"]
    log(f"backup {backup_id}")

    def respaldo(src: Path | None) -> Callable[[], list[dict[str, Any]]]:
        return lambda: [bench.restore(setup, backup_id, "split_r", args.jobs, src=src)]

    def pg_restore() -> list[dict[str, Any]]:
        made = bench.createdb("split_p")
        return [made, bench.pg_restore(args.fc_file, "split_p", args.jobs, created=True)]

    ways: dict[str, Callable[[], list[dict[str, Any]]]] = {"R": respaldo(None)}
    for n, src in enumerate(args.src):
        ways[f"R{n + 1}"] = respaldo(src)
    ways["P"] = pg_restore
    runs: list[dict[str, Any]] = []
    set_logging(bench, True)
    try:
        for rnd in range(args.rounds):
            order = list(ways) if rnd % 2 == 0 else list(reversed(ways))
            for pos, name in enumerate(order):
                r = split_one(bench, runner, ways[name])
                r.update(way=name, round=rnd, position=pos)
                runs.append(r)
                log(
                    f"round {rnd} {name} (#{pos}): wall {r['wall']:.2f} "
                    f"client {r['client_cpu']:.2f} server {r['server_cpu']:.2f} "
                    f"load {r['load']:.1f} "
                    + " ".join(f"{k}={v:.2f}" for k, v in sorted(r["processes"].items()))
                    + f" unseen={r['unseen']:.2f}"
                )
    finally:
        set_logging(bench, False)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(runs, indent=1, default=str))
    for line in summary(runs, list(ways)):
        print(line)
    return 0


def summary(runs: list[dict[str, Any]], ways: list[str]) -> list[str]:
    def med(values: list[float]) -> str:
        if not values:
            return "-"
        return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"

    rows: dict[str, dict[str, list[float]]] = {w: defaultdict(list) for w in ways}
    for r in runs:
        row = rows[r["way"]]
        row["wall"].append(r["wall"])
        row["client CPU"].append(r["client_cpu"])
        row["server CPU"].append(r["server_cpu"])
        for k, v in r["processes"].items():
            row[f"proc: {k}"].append(v)
        row["proc: unseen"].append(r["unseen"])
        row["backends outside statements"].append(r["backends_outside_statements"])
        for k, v in r["statements_by_kind"].items():
            row[f"stmt: {k}"].append(v)
        row["autovacuum (logged)"].append(sum(r["autovacuum_logged"].values()))
        row["checkpoints"].append(float(r["checkpoints"]))
        row["connections"].append(float(r["connections"]))
        row["autovacuum cancelled"].append(float(r.get("autovacuum_cancelled", 0)))
        row["backends seen"].append(float(r["backends_seen"]))
    keys = sorted({k for row in rows.values() for k in row})
    out = ["| | " + " | ".join(ways) + " |", "|---" * (len(ways) + 1) + "|"]
    for k in keys:
        out.append(f"| {k} | " + " | ".join(med(rows[w].get(k, [])) for w in ways) + " |")
    return out


if __name__ == "__main__":
    raise SystemExit(main())

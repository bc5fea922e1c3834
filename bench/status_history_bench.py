"""The status against a long restore-test history: ``compute_status`` (catalog only, as
``/metrics`` and ``/admin/status?servers=false`` compute it) over a catalog holding
``--runs`` restore tests of 10 databases, this checkout against another one, side by side.

Run::

    .venv/bin/python -m bench.status_history_bench --runs 37000 --baseline ../main/src
    .venv/bin/python -m bench.status_history_bench --runs 37000 --postgres --baseline ../main/src

The catalog (a SQLite file under ``--workdir``, or with ``--postgres`` a database of a
throwaway cluster) is filled once: per database, hourly restore tests (logical and
physical backups in turn, the newest of each; one in 37 failed, each settled by the next
pass of its kind), a logical backup a day and a physical one every 6 hours, the backups of
the last 14 days still in the catalog (retention deleted the older ones: their runs keep
their kind, their backups' dates are gone). Then ``--rounds`` paired rounds, interleaved
(A B, B A, ...), each a fresh process per checkout (``PYTHONPATH``) computing the status
``--repeat`` times: the median seconds of one ``compute_status`` and the SQL statements it
ran, per checkout, and the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

DATABASES = [f"db{n:02d}" for n in range(10)]
START = datetime(2026, 1, 1, tzinfo=UTC)
RETAINED = timedelta(days=14)


def _now(runs: int) -> datetime:
    hours = runs // len(DATABASES)
    return START + timedelta(hours=hours, minutes=30)


def populate(url: str, runs: int) -> None:
    from respaldo.catalog import open_catalog
    from respaldo.catalog.models import BackupRecord, DrillRun
    from respaldo.domain import BackupKind, BackupStatus, DrillStatus, TriggeredBy

    hours = runs // len(DATABASES)
    now = _now(runs)
    with open_catalog(url, create=True) as catalog, catalog.begin() as session:
        for db in DATABASES:
            backups: list[dict[str, Any]] = []
            drills: list[dict[str, Any]] = []
            newest: dict[BackupKind, str] = {}
            failing = {BackupKind.FULL: False, BackupKind.INCREMENTAL: False}
            for hour in range(hours):
                at = START + timedelta(hours=hour)
                for kind, every in ((BackupKind.FULL, 24), (BackupKind.INCREMENTAL, 6)):
                    if hour % every:
                        continue
                    backup_id = f"{at:%Y%m%dT%H%M%SZ}-{db}{'f' if kind is BackupKind.FULL else 'p'}"
                    newest[kind] = backup_id
                    if now - at <= RETAINED:
                        backups.append(
                            {
                                "id": backup_id,
                                "backup_type": kind,
                                "status": BackupStatus.COMPLETED,
                                "repository": "local",
                                "database_name": db,
                                "triggered_by": TriggeredBy.SCHEDULE,
                                "created_at": at,
                                "started_at": at,
                                "completed_at": at + timedelta(minutes=10),
                                "size_bytes": 1000,
                                "size_compressed": 100,
                                "retention_days": 14,
                                "expires_at": at + RETAINED,
                            }
                        )
                kind = BackupKind.FULL if hour % 2 else BackupKind.INCREMENTAL
                if kind not in newest:
                    continue
                failed = hour % 37 == 0 and not failing[kind]
                failing[kind] = failed
                finished = at + timedelta(minutes=20)
                drills.append(
                    {
                        "backup_id": newest[kind],
                        "backup_kind": kind,
                        "database_name": db,
                        "status": DrillStatus.FAILED if failed else DrillStatus.PASSED,
                        "scratch_name": "scratch",
                        "started_at": finished - timedelta(minutes=5),
                        "finished_at": finished,
                        "restore_seconds": 60.0,
                        "error_message": "row counts differ in 1 table" if failed else None,
                    }
                )
            session.execute(sa.insert(BackupRecord), backups)
            session.execute(sa.insert(DrillRun), drills)


def measure(url: str, runs: int, repeat: int) -> dict[str, float]:
    """One process's median seconds of a status and its statements."""
    from respaldo.config import Settings
    from respaldo.operations.context import Context
    from respaldo.operations.status import compute_status

    settings = Settings(
        catalog={"url": url},
        repositories=[{"name": "local", "url": "file:///nonexistent-bench-repository"}],
        databases=[{"name": db, "dsn": f"postgresql://r@127.0.0.1:1/{db}"} for db in DATABASES],
        cache_dir=Path(os.environ.get("TMPDIR", "/tmp")) / "status-history-bench-cache",
    )
    now = _now(runs)
    times: list[float] = []
    statements = [0]
    with Context.open(settings) as ctx:

        def count(*_: object) -> None:
            statements[0] += 1

        sa.event.listen(ctx.catalog.engine, "before_cursor_execute", count)
        compute_status(ctx, now, wal_archived=DATABASES, servers=False)  # warm-up
        statements[0] = 0
        for _ in range(repeat):
            started = time.perf_counter()
            report = compute_status(ctx, now, wal_archived=DATABASES, servers=False)
            times.append(time.perf_counter() - started)
        levels = sorted({i.level for i in report.items if i.check == "restore_test"})
    return {
        "seconds": statistics.median(times),
        "statements": statements[0] / repeat,
        "levels": ",".join(levels),  # type: ignore[dict-item]  # a check, not a figure
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=37000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", help="another checkout's src directory (B)")
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/status-history-bench"))
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # a child: the catalog's URL
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.runs, args.repeat)))
        return 0
    cluster = None
    if args.postgres:
        from sample.cluster import TempCluster

        cluster = TempCluster.create()
        info = cluster.conninfo_kwargs()
        url = (
            f"postgresql://{info['user']}:{info['password']}@{info['host']}:{info['port']}/"
            f"{info['dbname']}"
        )
    else:
        args.workdir.mkdir(parents=True, exist_ok=True)
        path = args.workdir / f"catalog-{args.runs}.db"
        path.unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    try:
        populate(url, args.runs)
        root = Path(__file__).resolve().parents[1]
        here = str(root / "src")
        sides = {"A (this checkout)": here}
        if args.baseline:
            sides["B (baseline)"] = str(Path(args.baseline).resolve())
        found: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
        for n in range(args.rounds):
            order = list(sides.items()) if n % 2 == 0 else list(reversed(sides.items()))
            for name, src in order:
                env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, str(root)])}
                child = [sys.executable, "-m", "bench.status_history_bench", "--measure", url]
                child += ["--runs", str(args.runs), "--repeat", str(args.repeat)]
                out = subprocess.run(
                    child, env=env, cwd=root, check=True, capture_output=True, text=True
                )
                found[name].append(json.loads(out.stdout))
        print(f"{args.runs} restore tests, {'PostgreSQL' if args.postgres else 'SQLite'}")
        print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print("| checkout | status s (min / median / max) | statements | restore_test levels |")
        print("|---|---|---|---|")
        for name, rows in found.items():
            secs = [r["seconds"] for r in rows]
            print(
                f"| {name} | {min(secs):.3f} / {statistics.median(secs):.3f} / {max(secs):.3f} "
                f"| {rows[0]['statements']:.0f} | {rows[0]['levels']} |"
            )
    finally:
        if cluster is not None:
            cluster.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Opening a primary and its mirror with one ``cache_dir``: what a backup that copies to a
mirror, then the next backup, cost in the local chunk index cache.

Run::

    .venv/bin/python -m bench.mirror_open_bench --backups 16 --runs 5 \\
        --baseline-src /path/to/an/export/of/main/src

Builds once, in ``--workdir``, a local primary of ``--backups`` backups of 24 MiB of
random data (chunks of about 1 KiB: about 20,000 a backup) and a local mirror holding a
copy of each (same repository id and master key, index files of its own). Then, each
in a fresh process, ``--runs`` times, with the respaldo of this tree and (with
``--baseline-src``) of the other one in turn (A B A B), after one unmeasured round that
fills each tree's own cache directory: open the primary, the mirror, the primary again
(a backup's open, its copy's open of the mirror, the next backup's open). Reported: CPU
seconds of the three opens, the process's peak RSS, and whether numpy was imported (the
whole cache was rebuilt: a cache that is up to date is read with plain Python).
Results go to stdout as Markdown and to ``bench/results/mirror_open.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.measure import add_common_arguments, finish, log, machine, wait_quiet

RESULTS = Path(__file__).resolve().parent / "results" / "mirror_open.json"
ROOT = Path(__file__).resolve().parents[1]

_CREATE = """
import io, os, sys
from datetime import UTC, datetime
from pathlib import Path
from respaldo.repository import BackupWriter, ChunkerParams, KdfParams, Repository
from respaldo.repository.copy import copy_backup
from respaldo.storage.local import LocalStorage

work, backups, pw = Path(sys.argv[1]), int(sys.argv[2]), os.environ["BENCH_PASSPHRASE"]
kdf = KdfParams(1, 1024, 1)
p = Repository.init(LocalStorage(work / "p"), pw, chunker=ChunkerParams(256, 1024, 4096), kdf=kdf)
m = Repository.init_mirror(LocalStorage(work / "m"), p, pw, kdf=kdf)
for i in range(backups):
    with BackupWriter(p, f"b{i}") as w:
        w.write_stream("dump", io.BytesIO(os.urandom(24 * 2**20)))
        w.commit(kind="full", source="bench", started_at=datetime.now(UTC))
    copy_backup(p, m, f"b{i}")
print(len(Repository.open(LocalStorage(work / "p"), pw).index))
"""

_MEASURE = """
import json, os, resource, sys
from pathlib import Path
from respaldo.repository import Repository
from respaldo.storage.local import LocalStorage

work, cache, pw = Path(sys.argv[1]), Path(sys.argv[2]), os.environ["BENCH_PASSPHRASE"]
before = resource.getrusage(resource.RUSAGE_SELF)
for name in ("p", "m", "p"):
    Repository.open(LocalStorage(work / name), pw, cache_dir=cache)
after = resource.getrusage(resource.RUSAGE_SELF)
cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
print(json.dumps({"cpu_s": cpu, "peak_mib": after.ru_maxrss / 1024,
                  "numpy": "numpy" in sys.modules}))
"""


_PASSPHRASE = secrets.token_hex(16)
"""The repositories' passphrase: given to the children in their environment, not argv."""


def _run(src: Path, code: str, *args: str) -> str:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(src), str(ROOT)]),
        "BENCH_PASSPHRASE": _PASSPHRASE,
    }
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, check=True, capture_output=True, text=True
    )
    return done.stdout.strip().splitlines()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backups", type=int, default=16, help="backups of 24 MiB (16)")
    parser.add_argument("--runs", type=int, default=5, help="measured rounds (5)")
    parser.add_argument("--baseline-src", type=Path, help="another tree's src: measured too")
    add_common_arguments(
        parser,
        workdir=Path("/tmp/mirror-open-bench"),
        workdir_help="scratch directory (repositories, caches)",
        results=RESULTS,
    )
    args = parser.parse_args()
    trees = {"this": ROOT / "src"}
    if args.baseline_src is not None:
        trees["baseline"] = args.baseline_src.resolve()
    work: Path = args.workdir
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    log("creating the primary and its mirror")
    chunks = int(_run(trees["this"], _CREATE, str(work), str(args.backups)))
    log(f"{chunks} chunks")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for round_no in range(args.runs + 1):
        for name, src in trees.items():
            wait_quiet(args.quiet_wait, log)
            out = json.loads(_run(src, _MEASURE, str(work), str(work / f"cache-{name}")))
            out["load"] = os.getloadavg()[0]
            if round_no > 0:  # the first round fills the caches
                runs[name].append(out)
                log(f"  {name}: {out}")
    if not args.keep:
        shutil.rmtree(work)
    lines = [
        f"primary + mirror of {chunks} chunks each side, open primary, mirror, primary:",
        "",
        "| tree | CPU-s min / median / max | peak MiB median | numpy imported | load |",
        "|---|--:|--:|---|--:|",
    ]
    for name, results in runs.items():
        cpu = sorted(r["cpu_s"] for r in results)
        lines.append(
            f"| {name} | {cpu[0]:.2f} / {statistics.median(cpu):.2f} / {cpu[-1]:.2f} "
            f"| {statistics.median(r['peak_mib'] for r in results):.0f} "
            f"| {sum(r['numpy'] for r in results)} of {len(results)} "
            f"| {statistics.median(r['load'] for r in results):.1f} |"
        )
    report = {"machine": machine(("numpy",)), "chunks": chunks, "runs": runs}
    return finish(report, args.json, lines)


if __name__ == "__main__":
    raise SystemExit(main())

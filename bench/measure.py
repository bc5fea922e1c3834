"""What every benchmark does the same way: machine-wide busy time, own CPU, a server's CPU,
waiting for a quiet machine, the common command-line options and the report's output."""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

_HZ = os.sysconf("SC_CLK_TCK")


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (steal included) since boot."""
    with Path("/proc/stat").open() as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / _HZ


def self_cpu() -> float:
    """CPU seconds (user + system) of this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class ServerCpu:
    """CPU seconds of a server process: itself, its live children and its reaped ones."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)

    def seconds(self) -> float:
        # A child reaped between the server's own reading and its own (a backend of the
        # restore just measured, exiting as it ends) is counted in neither: once, a
        # pg_restore's server CPU read 5.7 s instead of ~11 (session 17). Read again
        # until no child was reaped meanwhile.
        while True:
            times = self.proc.cpu_times()
            total = float(times.user + times.system + times.children_user + times.children_system)
            for child in self.proc.children():
                try:
                    ct = child.cpu_times()
                except psutil.NoSuchProcess:
                    continue  # reaped: the check below reads again
                total += float(ct.user + ct.system)
            after = self.proc.cpu_times()
            if (after.children_user, after.children_system) == (
                times.children_user,
                times.children_system,
            ):
                return total


QUIET_CORES = 0.10  # the rest of the machine counts as idle below a tenth of one core


def wait_quiet(max_wait: float, log: Callable[[str], None], *, window: float = 0.5) -> float:
    """Wait until the machine's busy time over ``window`` seconds is below QUIET_CORES,
    or ``max_wait`` seconds have passed; return the seconds waited.

    The machine may be shared (other people's test suites): a measurement taken while
    others use a core is not a measurement of respaldo.
    """
    t0 = time.perf_counter()
    while True:
        before = busy_seconds()
        time.sleep(window)
        busy = (busy_seconds() - before) / window
        waited = time.perf_counter() - t0
        if busy < QUIET_CORES:
            if waited > 5:
                log(f"    (waited {waited:.0f} s for the machine to be idle)")
            return waited
        if waited > max_wait:
            log(f"    (machine still busy after {waited:.0f} s: {busy:.2f} cores in use)")
            return waited


# --- the command line and the report ---------------------------------------------------


def add_common_arguments(
    parser: argparse.ArgumentParser, *, workdir: Path, workdir_help: str, results: Path
) -> None:
    """--workdir, --quiet-wait, --keep and --json, as every benchmark takes them."""
    parser.add_argument("--workdir", type=Path, default=workdir, help=workdir_help)
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=300,
        help="max seconds to wait for an idle machine before each measurement (300)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the repositories afterwards")
    parser.add_argument(
        "--json",
        type=Path,
        default=results,
        help=f"results file (bench/results/{results.name})",
    )


def parse_run_finish(
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    run: Callable[[argparse.Namespace], dict[str, Any]],
    table: Callable[[dict[str, Any]], Iterable[str]],
    *,
    workdir: Path,
    workdir_help: str,
    results: Path,
) -> int:
    """The end of a benchmark's ``main`` once its own options are added: the common ones,
    then parse ``argv``, ``run`` and :func:`finish` with ``table`` of the report."""
    add_common_arguments(parser, workdir=workdir, workdir_help=workdir_help, results=results)
    args = parser.parse_args(argv)
    report = run(args)
    return finish(report, args.json, table(report))


def log(message: str) -> None:
    """Progress lines go to stderr; the report (Markdown) goes to stdout."""
    print(message, file=sys.stderr, flush=True)


def finish(report: dict[str, Any], json_path: Path, *tables: Iterable[str]) -> int:
    """Write the raw results as JSON, print the tables (blank line between), return 0."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    print("\n\n".join("\n".join(lines) for lines in tables))
    log(f"results written to {json_path}")
    return 0


def machine(libraries: tuple[str, ...], **extra: str) -> dict[str, Any]:
    """The machine and software a result was measured on (``extra``: tool versions)."""
    from importlib.metadata import version

    model = ""
    with Path("/proc/cpuinfo").open() as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with Path("/proc/meminfo").open() as f:
        mem_kib = int(f.readline().split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        **extra,
        "libraries": {name: version(name) for name in libraries},
    }


def add_sample_arguments(parser: argparse.ArgumentParser, default_scale: float) -> None:
    """--scale and --seed of the sample ERP database."""
    parser.add_argument(
        "--scale",
        type=float,
        default=default_scale,
        help=f"sample scale; 1.0 ≈ 1 GB ({default_scale})",
    )
    parser.add_argument("--seed", type=int, default=1, help="sample data seed (1)")


def on_two_threads(work: Callable[[], object]) -> None:
    """Run ``work`` on two threads at once and wait for both (does it escape the GIL?)."""
    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def build_packs(
    ids: list[bytes], sealed: list[bytes], chunks: list[bytes], sealer: Any, pack_size: int
) -> None:
    """The writer's pack building alone, over chunks sealed beforehand (a stage timing)."""
    from respaldo.repository.packs import PackBuilder

    builder = PackBuilder(pack_size)
    for cid, blob, chunk in zip(ids, sealed, chunks, strict=True):
        builder.add(cid, blob, len(chunk))
        if builder.full:
            builder.finish(sealer)
    if len(builder):
        builder.finish(sealer)


def secret_file(path: Path, text: str) -> Path:
    """``text`` in a new 0600 file at ``path`` (replacing one there): created with its mode,
    never readable by others for a moment, as respaldo's *_file settings want."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return path

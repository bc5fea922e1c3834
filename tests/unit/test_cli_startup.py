"""What a one-shot command (``respaldo restore``, ``respaldo backup``) pays before it works.

Every backup from cron and every restore starts a new process, and on a small database
the start-up was most of respaldo's CPU: the imports alone were twice ``pg_restore``'s
whole CPU time at 0.1 GB (docs/benchmarks.md). These tests pin what the start-up must
not bring back (measured with ``python -X importtime`` and bench/startup_bench.py).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit


def _run(code: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.stdout, done.stderr
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_a_command_runs_with_the_collector_on_and_the_start_up_heap_frozen(
    tmp_path: object,
) -> None:
    """The imports run with the cyclic collector off (walking their objects again and again
    cost about 0.3 CPU-s of a small restore); the command itself runs with it on, as
    always (memory stays flat), and what the imports built is frozen."""
    code = (
        "import atexit, gc, json, sys\n"
        "from respaldo.cli import entry\n"
        "atexit.register(lambda: print(json.dumps("
        "{'enabled': gc.isenabled(), 'frozen': gc.get_freeze_count()})))\n"
        f"sys.argv = ['respaldo', '--config', {str(tmp_path)!r} + '/missing.toml', 'list']\n"
        "entry.run()\n"
    )
    seen = _run(code)
    assert seen["enabled"] is True
    assert isinstance(seen["frozen"], int) and seen["frozen"] > 10_000


def test_in_process_callers_keep_their_collector_as_it_is() -> None:
    code = (
        "import contextlib, gc, io, json\n"
        "from respaldo.cli.main import invoke\n"
        "with contextlib.redirect_stderr(io.StringIO()):\n"
        "    invoke(['--config', '/nonexistent/respaldo.toml', 'list'])\n"
        "print(json.dumps({'enabled': gc.isenabled(), 'frozen': gc.get_freeze_count()}))\n"
    )
    assert _run(code) == {"enabled": True, "frozen": 0}

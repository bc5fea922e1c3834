"""The CLI's start-up cost: commands that do not serve do not import the server.

Every backup from cron and every ``wal-fetch`` of a recovery starts a new process; the
HTTP server (uvicorn, FastAPI) and the scheduler (APScheduler) would add about 0.2 s and
13 MB to each.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

# prometheus_client: only `respaldo metrics` and the service need it; procrastinate:
# only workers and a PostgreSQL catalog's queue.
HEAVY = (
    "fastapi",
    "uvicorn",
    "starlette",
    "apscheduler",
    "prometheus_client",
    "procrastinate",
)


def test_the_cli_imports_no_server_until_serve_runs() -> None:
    code = (
        f"import sys, respaldo.cli.main; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
